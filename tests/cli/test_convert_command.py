"""``python -m desktop convert``: pickle to safetensors from the command line."""

from __future__ import annotations

import io
from pathlib import Path

import torch
from safetensors.torch import load_file

from desktop.cli import EXIT_BAD_INPUT, EXIT_OK, main


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_convert_writes_safetensors_beside_the_file_and_says_what_it_is(tmp_path: Path):
    source = tmp_path / "easynegative.pt"
    torch.save({"string_to_param": {"*": torch.randn(8, 768)}, "name": "easynegative", "step": 100}, source)
    code, out, err = run("convert", str(source))
    assert code == EXIT_OK, err
    target = Path(out.strip())
    assert target == tmp_path / "easynegative.safetensors"
    assert load_file(target)["emb_params"].shape == (8, 768)
    assert "embedding" in err
    code, _out, err = run("convert", str(source))  # never overwrites
    assert code == EXIT_BAD_INPUT and "already exists" in err


def test_convert_refuses_a_file_that_is_not_a_pickle(tmp_path: Path):
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"7z\xbc\xaf\x27\x1c" + b"\0" * 100)
    code, _out, err = run("convert", str(junk), "--out", str(tmp_path / "out.safetensors"))
    assert code == EXIT_BAD_INPUT and err.startswith("error: ")
    assert not (tmp_path / "out.safetensors").exists()
