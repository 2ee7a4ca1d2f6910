"""``python -m desktop info IMAGE``: the generation parameters of an image, whatever wrote it."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image, PngImagePlugin

from desktop.cli import EXIT_BAD_INPUT, EXIT_OK
from desktop.library.outputs import save_png
from tests.cli.test_convert_command import run

INFOTEXT = "a cat, 猫\nNegative prompt: dog\nSteps: 5, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 8x8"


def test_an_a1111_png_prints_its_infotext_exactly(tmp_path: Path):
    path = save_png(Image.new("RGB", (8, 8)), INFOTEXT, tmp_path, 1)
    code, out, err = run("info", str(path))
    assert code == EXIT_OK and out.strip() == INFOTEXT and "AUTOMATIC1111" in err
    code, out, _ = run("info", str(path), "--json")
    facts = json.loads(out)
    assert facts["prompt"] == "a cat, 猫" and facts["params"]["Sampler"] == "Euler"


def test_a_comfyui_png_is_read(tmp_path: Path):
    graph = {
        "3": {"class_type": "KSampler", "inputs": {"seed": 42, "steps": 20, "cfg": 6.5, "sampler_name": "euler", "scheduler": "normal",
                                                   "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0], "model": ["4", 0]}},
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "dreamshaper_8.safetensors"}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 768, "batch_size": 1}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "fog", "clip": ["4", 1]}},
    }
    info = PngImagePlugin.PngInfo()
    info.add_text("prompt", json.dumps(graph))
    path = tmp_path / "ComfyUI_00001_.png"
    Image.new("RGB", (8, 8)).save(path, pnginfo=info)
    code, out, err = run("info", str(path))
    assert code == EXIT_OK, err
    assert out.startswith("a lighthouse\nNegative prompt: fog\n") and "Seed: 42" in out and "Size: 512x768" in out


def test_no_parameters_and_not_an_image(tmp_path: Path):
    plain = tmp_path / "plain.png"
    Image.new("RGB", (8, 8)).save(plain)
    code, out, _ = run("info", str(plain))
    assert code == EXIT_OK and "no generation parameters found" in out
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    code, out, err = run("info", str(text))
    assert code == EXIT_BAD_INPUT and out == "" and "not an image" in err
