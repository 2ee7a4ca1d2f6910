"""The headless ``generate`` / ``info`` contract: saved paths on stdout, exit codes, A1111 metadata."""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from desktop.cli import main
from desktop.core.infotext import parse_infotext

REPO = Path(__file__).resolve().parents[2]
TINY = ["--steps", "3", "--width", "32", "--height", "32", "--device", "cpu"]


def run(*args: str | Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main([str(a) for a in args], stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def pixels(path: str | Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


@pytest.mark.parametrize("family", ["sd1", "sdxl"])
def test_generate_writes_pngs_with_a1111_parameters(checkpoints, tmp_path, family):
    model = checkpoints[family]
    code, out, err = run(
        "generate", "--model", model, "--prompt", "a photo of a cat, (red hair:1.2)", "--negative", "blurry",
        "--seed", "1234", "--sampler", "DPM++ 2M", "--cfg", "6.5", "--out", tmp_path, *TINY,
    )
    assert code == 0, err
    saved = out.splitlines()
    assert len(saved) == 1 and Path(saved[0]).parent == tmp_path and Path(saved[0]).name == "00000-1234.png"
    image = Image.open(saved[0])
    assert image.size == (32, 32)
    prompt, negative, params = parse_infotext(image.text["parameters"])
    assert (prompt, negative) == ("a photo of a cat, (red hair:1.2)", "blurry")
    assert params["Steps"] == "3"
    assert params["Sampler"] == "DPM++ 2M"
    assert params["Schedule type"] == "Karras"  # what "Automatic" means for DPM++ 2M in A1111
    assert params["CFG scale"] == "6.5"
    assert params["Seed"] == "1234"
    assert params["Size"] == "32x32"
    assert params["Model"] == model.stem
    assert params["Model hash"] == hashlib.sha256(model.read_bytes()).hexdigest()[:10]
    assert "step 3/3" in err


def test_same_seed_same_image_and_batches_follow_a1111_seeds(tiny_sd1, tmp_path):
    first = run("generate", "--model", tiny_sd1, "--prompt", "cat", "--seed", "7", "--out", tmp_path / "a", *TINY)
    again = run("generate", "--model", tiny_sd1, "--prompt", "cat", "--seed", "7", "--out", tmp_path / "b", *TINY)
    other = run("generate", "--model", tiny_sd1, "--prompt", "cat", "--seed", "8", "--out", tmp_path / "c", *TINY)
    batch = run(
        "generate", "--model", tiny_sd1, "--prompt", "cat", "--seed", "7", "--batch-size", "2", "--batch-count", "2",
        "--out", tmp_path / "d", *TINY,
    )
    assert first[0] == again[0] == other[0] == batch[0] == 0
    assert np.array_equal(pixels(first[1].strip()), pixels(again[1].strip()))
    assert not np.array_equal(pixels(first[1].strip()), pixels(other[1].strip()))
    paths = batch[1].splitlines()
    assert [Path(p).name for p in paths] == ["00000-7.png", "00001-8.png", "00002-9.png", "00003-10.png"]
    seeds = [parse_infotext(Image.open(p).text["parameters"])[2]["Seed"] for p in paths]
    assert seeds == ["7", "8", "9", "10"]
    # image i of a batch is the image of seed + i (up to float noise from the batch shape)
    assert np.abs(pixels(paths[0]) - pixels(first[1].strip())).max() <= 2
    assert np.abs(pixels(paths[1]) - pixels(other[1].strip())).max() <= 2


def test_random_seed_is_recorded_and_reproduces(tiny_sd1, tmp_path):
    code, out, _ = run("generate", "--model", tiny_sd1, "--prompt", "cat", "--out", tmp_path / "r", *TINY)
    assert code == 0
    seed = parse_infotext(Image.open(out.strip()).text["parameters"])[2]["Seed"]
    assert 0 <= int(seed) <= 2**32 - 1
    code, again, _ = run("generate", "--model", tiny_sd1, "--prompt", "cat", "--seed", seed, "--out", tmp_path / "s", *TINY)
    assert np.array_equal(pixels(out.strip()), pixels(again.strip()))


def test_sampler_and_schedule_names_change_the_result_and_are_recorded(tiny_sd1, tmp_path):
    results = {}
    for sampler, schedule in [
        ("Euler a", "automatic"), ("Euler", "Automatic"), ("Euler", "karras"), ("DPM++ 2M Karras", "automatic"),
        ("Euler", "align_your_steps"),
    ]:
        code, out, err = run(
            "generate", "--model", tiny_sd1, "--prompt", "cat", "--seed", "3", "--sampler", sampler,
            "--schedule", schedule, "--out", tmp_path / f"{sampler}-{schedule}", *TINY,
        )
        assert code == 0, err
        params = parse_infotext(Image.open(out.strip()).text["parameters"])[2]
        results[(sampler, schedule)] = (params["Sampler"], params["Schedule type"], pixels(out.strip()))
    assert [v[:2] for v in results.values()] == [
        ("Euler a", "Automatic"), ("Euler", "Automatic"), ("Euler", "Karras"), ("DPM++ 2M", "Karras"),
        ("Euler", "Align Your Steps"),
    ]
    images = [v[2] for v in results.values()]
    assert not np.array_equal(images[0], images[1])
    assert not np.array_equal(images[1], images[2])


def test_clip_skip_and_vae_are_recorded(tiny_sd1, tmp_path):
    from tests.fixtures import ldm_layout

    vae = tmp_path / "my-vae.safetensors"
    ldm_layout.write_checkpoint(vae, ldm_layout.vae_shapes(**ldm_layout.TINY["sd1"]["vae"], prefix=""), seed=5)
    code, out, err = run(
        "generate", "--model", tiny_sd1, "--prompt", "cat", "--seed", "1", "--clip-skip", "2", "--vae", vae,
        "--out", tmp_path / "o", *TINY,
    )
    assert code == 0, err
    params = parse_infotext(Image.open(out.strip()).text["parameters"])[2]
    assert params["Clip skip"] == "2"
    assert params["VAE"] == "my-vae.safetensors"
    assert params["VAE hash"] == hashlib.sha256(vae.read_bytes()).hexdigest()[:10]


def test_vae_auto_uses_the_checkpoints_preferred_vae_from_its_a1111_sidecar(tiny_sd1, tmp_path):
    """A1111 1.6+ keeps a checkpoint's preferred VAE in name.json ("vae": the VAE's file name)."""
    import json
    import shutil

    from tests.fixtures import ldm_layout

    models = tmp_path / "models"
    (models / "Stable-diffusion").mkdir(parents=True)
    (models / "VAE").mkdir()
    shutil.copy(tiny_sd1, models / "Stable-diffusion" / "dreamshaper.safetensors")
    vae = models / "VAE" / "vae-ft-mse-840000-ema-pruned.safetensors"
    ldm_layout.write_checkpoint(vae, ldm_layout.vae_shapes(**ldm_layout.TINY["sd1"]["vae"], prefix=""), seed=5)
    sidecar = models / "Stable-diffusion" / "dreamshaper.json"
    sidecar.write_text(json.dumps({"description": "", "notes": "", "vae": vae.name}, indent=4), encoding="utf-8")

    def params_of(*vae_args: str, out: str) -> tuple[dict[str, str], str]:
        code, saved, err = run(
            "generate", "--model", "dreamshaper", "--models-dir", models, "--prompt", "cat", "--seed", "1",
            *vae_args, "--out", tmp_path / out, *TINY,
        )
        assert code == 0, err
        return parse_infotext(Image.open(saved.strip()).text["parameters"])[2], err

    params, err = params_of(out="auto")  # --vae auto is the default
    assert params["VAE"] == vae.name and params["VAE hash"] == hashlib.sha256(vae.read_bytes()).hexdigest()[:10]
    assert f"VAE: {vae.name} (preferred in dreamshaper.json)" in err
    params, err = params_of("--vae", "none", out="none")  # the checkpoint's own, whatever name.json says
    assert "VAE" not in params and "VAE hash" not in params

    sidecar.write_text(json.dumps({"vae": "orangemix.vae.pt"}), encoding="utf-8")
    params, err = params_of(out="missing")
    assert "VAE" not in params
    assert "warning: dreamshaper.json prefers the VAE orangemix.vae.pt, which is not in" in err
    assert "using the checkpoint's own VAE" in err


def test_resolve_vae_keywords_names_and_paths(tmp_path):
    import json

    from desktop.cli import resolve_vae

    (tmp_path / "VAE").mkdir()
    vae = tmp_path / "VAE" / "kl-f8-anime2.safetensors"
    vae.write_bytes(b"vae")
    model = tmp_path / "m.safetensors"
    model.write_bytes(b"m")
    assert resolve_vae("auto", model, tmp_path) == (None, "")  # no name.json: the checkpoint's own
    (tmp_path / "m.json").write_text(json.dumps({"vae": "kl-f8-anime2.ckpt"}), encoding="utf-8")
    assert resolve_vae("AUTO", model, tmp_path) == (vae, "VAE: kl-f8-anime2.safetensors (preferred in m.json)")
    assert resolve_vae("None", model, tmp_path) == (None, "")
    assert resolve_vae("kl-f8-anime2", model, tmp_path) == (vae, "")  # an explicit choice wins
    assert resolve_vae(str(vae), model, tmp_path) == (vae, "")
    (tmp_path / "m.json").write_text(json.dumps({"vae": "None"}), encoding="utf-8")
    assert resolve_vae("auto", model, tmp_path) == (None, "")


def _bad_files(folder: Path, tiny_sd1: Path) -> dict[str, Path]:
    folder.mkdir()
    files = {
        "zero-byte": folder / "empty.safetensors",
        "truncated": folder / "truncated.safetensors",
        "not-safetensors": folder / "photo.safetensors",
        "pickle": folder / "model.ckpt",
        "missing": folder / "nope.safetensors",
    }
    files["zero-byte"].write_bytes(b"")
    files["truncated"].write_bytes(tiny_sd1.read_bytes()[: tiny_sd1.stat().st_size // 2])
    files["not-safetensors"].write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 100)
    files["pickle"].write_bytes(b"\x80\x02}q\x00.")
    from safetensors.torch import save_file
    import torch

    files["lora"] = folder / "add_detail.safetensors"
    save_file(
        {
            "lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": torch.zeros(4, 320),
            "lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight": torch.zeros(320, 4),
            "lora_unet_down_blocks_0_attentions_0_proj_in.alpha": torch.tensor(4.0),
            # cross-attention keys read the text width: 768 means an SD1 LoRA
            "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight": torch.zeros(4, 768),
            "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_up.weight": torch.zeros(320, 4),
        },
        str(files["lora"]),
    )
    return files


@pytest.mark.parametrize("case", ["zero-byte", "truncated", "not-safetensors", "pickle", "missing", "lora"])
def test_bad_model_files_exit_2_with_one_line_and_write_nothing(tiny_sd1, tmp_path, case):
    model = _bad_files(tmp_path / "files", tiny_sd1)[case]
    out_dir = tmp_path / "out"
    code, out, err = run("generate", "--model", model, "--prompt", "cat", "--out", out_dir, *TINY)
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and model.name in lines[0]
    assert not out_dir.exists()


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["--width", "100"], "width"),
        (["--height", "0"], "height"),
        (["--steps", "0"], "steps"),
        (["--sampler", "Euler z"], "sampler"),
        (["--schedule", "wiggly"], "schedule"),
        (["--seed", "-5"], "seed"),
        (["--batch-size", "0"], "batch size"),
        (["--cfg", "nan"], "CFG"),
        (["--steps", "many"], "steps"),
    ],
)
def test_bad_parameters_exit_2_naming_the_problem(tiny_sd1, tmp_path, args, names):
    out_dir = tmp_path / "out"
    code, out, err = run("generate", "--model", tiny_sd1, "--prompt", "cat", "--out", out_dir, "--device", "cpu", *args)
    assert code == 2, err
    assert out == ""
    assert len(err.strip().splitlines()) == 1 and names in err
    assert not out_dir.exists()


def test_info_describes_a_checkpoint_without_loading_it(tiny_sdxl):
    code, out, _ = run("info", tiny_sdxl)
    assert code == 0
    facts = dict(line.split(": ", 1) for line in out.splitlines())
    assert facts["family"] == "sdxl" and facts["kind"] == "checkpoint"
    assert facts["precision"] == "fp16"
    assert facts["model hash (AutoV2)"] == hashlib.sha256(tiny_sdxl.read_bytes()).hexdigest()[:10]


def test_module_entry_point_contract(tiny_sd1, tmp_path):
    """The real command line: ``python -m desktop`` with stdout/stderr split and exit codes."""
    ok = subprocess.run(
        [sys.executable, "-m", "desktop", "generate", "--model", str(tiny_sd1), "--prompt", "cat", "--seed", "5",
         "--out", str(tmp_path / "o"), *TINY],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert ok.returncode == 0, ok.stderr
    assert Path(ok.stdout.strip()).is_file() and "Loaded" in ok.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "desktop", "generate", "--model", str(tiny_sd1), "--prompt", "cat", "--width", "65"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert bad.returncode == 2 and bad.stdout == "" and "width" in bad.stderr


def test_info_refuses_pickles_and_names_other_kinds(tiny_sd1, tmp_path):
    files = _bad_files(tmp_path / "files", tiny_sd1)
    code, out, err = run("info", files["pickle"])
    assert code == 2 and out == "" and "pickle" in err
    code, out, _ = run("info", files["lora"], "--json", "--no-hash")
    assert code == 0
    import json

    facts = json.loads(out)
    assert (facts["kind"], facts["family"]) == ("lora", "sd1")
    assert "LoRA" in facts["what"]


def test_generate_accepts_the_full_prompt_language(tiny_sd1, tmp_path):
    prompt = "((masterpiece)), [cat:dog:0.5], [red|blue] hair, (sky:1.3) BREAK a house AND a tree :0.5 <lora:x:0.7>"
    negative = "[blurry::2], (worst quality:1.4)"
    code, out, err = run(
        "generate", "--model", tiny_sd1, "--prompt", prompt, "--negative", negative, "--seed", "1",
        "--out", tmp_path / "o", *TINY,
    )
    assert code == 0, err
    saved_prompt, saved_negative, _ = parse_infotext(Image.open(out.strip()).text["parameters"])
    assert (saved_prompt, saved_negative) == (prompt, negative)
    assert "LoRA 'x' was not found" in err  # a warning; the image is made without it


def test_model_names_are_looked_up_in_the_a1111_folders(tmp_path, monkeypatch):
    from desktop.cli import resolve_model_path

    models = tmp_path / "models"
    (models / "Stable-diffusion").mkdir(parents=True)
    checkpoint = models / "Stable-diffusion" / "anything-v5.safetensors"
    checkpoint.write_bytes(b"x")
    monkeypatch.chdir(tmp_path)
    assert resolve_model_path(Path("anything-v5"), "Stable-diffusion", models) == checkpoint
    assert resolve_model_path(Path("anything-v5.safetensors"), "Stable-diffusion", models) == checkpoint
    assert resolve_model_path(Path("missing"), "Stable-diffusion", models) == Path("missing")
    local = tmp_path / "anything-v5"
    local.mkdir()  # a diffusers folder of that name in the working directory wins
    assert resolve_model_path(Path("anything-v5"), "Stable-diffusion", models) == Path("anything-v5")
