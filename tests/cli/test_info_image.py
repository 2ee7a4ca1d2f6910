"""``python -m desktop info IMAGE``: the generation parameters of any image, for people and scripts.

Covers BAD_INPUTS.md items 9, 29 and 30 on the command line.
"""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
from pathlib import Path

from PIL import Image, PngImagePlugin

from desktop.cli import EXIT_BAD_INPUT, EXIT_OK, main
from desktop.library.outputs import save_png

INFOTEXT = (
    "a cat, (red hat:1.2), 猫\nNegative prompt: blurry\n"
    'Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 5, Size: 512x768, Model: dreamshaper_8, Lora hashes: "cat: 0123abcd4567"'
)
COMFY_PROMPT = {
    "3": {
        "class_type": "KSampler",
        "inputs": {"seed": 8, "steps": 25, "cfg": 6.5, "sampler_name": "dpmpp_2m", "scheduler": "karras", "denoise": 1,
                   "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]},
    },
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd15/v1-5-pruned-emaonly.safetensors"}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 640, "batch_size": 1}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse", "clip": ["4", 1]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "fog", "clip": ["4", 1]}},
}  # fmt: skip


def run(*argv: str, stdout: io.StringIO | None = None) -> tuple[int, str, str]:
    out, err = stdout or io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def png(path: Path, texts: dict[str, str]) -> Path:
    info = PngImagePlugin.PngInfo()
    for key, text in texts.items():
        info.add_text(key, text)
    Image.new("RGB", (12, 10)).save(path, "PNG", pnginfo=info)
    return path


def test_a1111_png_prints_exactly_the_infotext(tmp_path: Path):
    path = save_png(Image.new("RGB", (12, 10)), INFOTEXT, tmp_path, seed=5)
    code, out, err = run("info", str(path))
    assert code == EXIT_OK, err
    assert out == INFOTEXT + "\n"  # stdout is for scripts: nothing else on it
    assert err == "source: AUTOMATIC1111\n"


def test_comfyui_png_prints_the_a1111_text_it_amounts_to(tmp_path: Path):
    path = png(tmp_path / "ComfyUI_00001_.png", {"prompt": json.dumps(COMFY_PROMPT), "workflow": "{}"})
    code, out, err = run("info", str(path))
    assert code == EXIT_OK, err
    assert out == (
        "a lighthouse\nNegative prompt: fog\n"
        "Steps: 25, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 8, Size: 512x640, "
        "Model: v1-5-pruned-emaonly\n"
    )
    assert err == "source: ComfyUI\n"


def test_json_output(tmp_path: Path):
    path = save_png(Image.new("RGB", (12, 10)), INFOTEXT, tmp_path, seed=5)
    code, out, _err = run("info", str(path), "--json")
    assert code == EXIT_OK
    facts = json.loads(out)
    assert facts == {
        "source": "a1111",
        "prompt": "a cat, (red hat:1.2), 猫",
        "negative_prompt": "blurry",
        "params": {
            "Steps": "20",
            "Sampler": "Euler a",
            "CFG scale": "7",
            "Seed": "5",
            "Size": "512x768",
            "Model": "dreamshaper_8",
            "Lora hashes": "cat: 0123abcd4567",
        },
        "width": 12,
        "height": 10,
    }


def test_jpeg_exif_user_comment(tmp_path: Path):
    """BAD_INPUTS 29: JPEG with the infotext in EXIF UserComment, as A1111 saves it."""
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = b"UNICODE\0" + INFOTEXT.encode("utf-16-be")
    path = tmp_path / "a.jpg"
    Image.new("RGB", (12, 10)).save(path, "JPEG", exif=exif)
    code, out, _err = run("info", str(path))
    assert (code, out) == (EXIT_OK, INFOTEXT + "\n")


def test_image_without_parameters(tmp_path: Path):
    path = tmp_path / "plain.png"
    Image.new("RGB", (12, 10)).save(path)
    code, out, err = run("info", str(path))
    assert (code, out, err) == (EXIT_OK, "no generation parameters found\n", "")
    code, out, _err = run("info", str(path), "--json")
    assert json.loads(out) == {"source": "", "prompt": "", "negative_prompt": "", "params": {}, "width": 12, "height": 10}


def test_an_image_is_recognised_by_content_whatever_its_name(tmp_path: Path):
    # ".bin" would be refused as a pickle model file; the content says it is a PNG.
    path = save_png(Image.new("RGB", (12, 10)), INFOTEXT, tmp_path, seed=5).rename(tmp_path / "download.bin")
    code, out, _err = run("info", str(path))
    assert (code, out) == (EXIT_OK, INFOTEXT + "\n")


def test_not_an_image_exits_2(tmp_path: Path):
    """BAD_INPUTS 30: text named .png, an empty file, a damaged PNG, a missing file."""
    fake = tmp_path / "fake.png"
    fake.write_text("not an image")
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    damaged = tmp_path / "damaged.png"
    data = bytearray(save_png(Image.new("RGB", (12, 10)), INFOTEXT, tmp_path, seed=5).read_bytes())
    data[data.index(b"a cat")] ^= 1  # the text chunk no longer matches its checksum
    damaged.write_bytes(bytes(data))
    for path, problem in [(fake, "not an image"), (empty, "empty"), (damaged, "damaged PNG"), (tmp_path / "gone.webp", "does not exist")]:
        code, out, err = run("info", str(path))
        assert code == EXIT_BAD_INPUT, path
        assert out == ""
        assert err.startswith(f"error: {path.name} ") and problem in err and err.count("\n") == 1


def test_model_files_keep_their_behaviour(tmp_path: Path):
    header = json.dumps({"weight": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    model = tmp_path / "tiny.safetensors"
    model.write_bytes(struct.pack("<Q", len(header)) + header + b"\0\0\0\0")
    code, out, err = run("info", str(model), "--no-hash")
    assert code == EXIT_OK, err
    assert "what: not a Stable Diffusion model file" in out
    assert "tensors: 1" in out
    junk = tmp_path / "junk.safetensors"
    junk.write_text("neither model nor image")
    code, _out, err = run("info", str(junk))
    assert code == EXIT_BAD_INPUT and "junk.safetensors" in err


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_control_characters_are_escaped_on_a_terminal_but_not_in_a_pipe(tmp_path: Path):
    """BAD_INPUTS 9: text from a stranger's image cannot drive the terminal; markup stays literal."""
    hostile = "<img src=x onerror=alert(1)> \x1b]0;owned\x07\x1b[31mred\u202eevil\nSteps: 1, Seed: 2, Size: 8x8"
    path = png(tmp_path / "hostile.png", {"parameters": hostile})
    _code, out, _err = run("info", str(path), stdout=_Terminal())
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
    assert out.startswith("<img src=x onerror=alert(1)> \\u001b]0;owned\\u0007\\u001b[31mred\\u202eevil\n")
    _code, out, _err = run("info", str(path))
    assert out == hostile + "\n"


def test_python_m_desktop_info_in_a_real_process(tmp_path: Path):
    path = save_png(Image.new("RGB", (12, 10)), INFOTEXT, tmp_path, seed=5)
    result = subprocess.run(
        [sys.executable, "-m", "desktop", "info", str(path)], capture_output=True, timeout=120, encoding="utf-8"
    )
    assert result.returncode == EXIT_OK, result.stderr
    assert result.stdout == INFOTEXT + "\n"
    assert result.stderr == "source: AUTOMATIC1111\n"
