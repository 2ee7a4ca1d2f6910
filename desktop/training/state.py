"""The resume state of a run: LoRA weights, optimizer and scheduler state, the step, and the run's facts.

Written as ``state.tensors`` (every tensor, safetensors format) plus ``state.json`` (everything else) into a folder,
never as a pickle: a state folder from anywhere can be opened safely. The folder is replaced
atomically: written beside it as ``NAME.partial``, then swapped in, so a crash while saving leaves the
previous state (``NAME.old`` is picked up if the crash came between the two renames).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from desktop.core.errors import UserInputError

STATE_VERSION = 1
_TENSORS = "state.tensors"  # safetensors format; not .safetensors, so model browsers do not list it
_FACTS = "state.json"
_NETWORK = "network."
_OPTIMIZER = "optimizer."


class StateError(UserInputError):
    """A state folder that cannot be resumed from (missing, damaged, or from another kind of run)."""

    code = "training_state"


@dataclass
class TrainingState:
    step: int  # optimizer steps done
    network: dict[str, torch.Tensor]  # kohya names -> fp32 tensors
    optimizer: dict[str, Any]  # torch optimizer state_dict
    scheduler: dict[str, Any]
    facts: dict[str, Any] = field(default_factory=dict)  # what must match to resume (seed, network shape...)
    losses: list[float] = field(default_factory=list)  # recent losses, for the moving average


def save_state(folder: Path, state: TrainingState) -> Path:
    folder = Path(folder)
    partial = folder.with_name(folder.name + ".partial")
    old = folder.with_name(folder.name + ".old")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    tensors = {_NETWORK + name: tensor.detach().to("cpu", torch.float32).contiguous() for name, tensor in state.network.items()}
    optimizer_facts = _split_optimizer(state.optimizer, tensors)
    save_file(tensors, str(partial / _TENSORS))
    facts = {
        "version": STATE_VERSION,
        "step": state.step,
        "optimizer": optimizer_facts,
        "scheduler": state.scheduler,
        "facts": state.facts,
        "losses": state.losses,
    }
    (partial / _FACTS).write_text(json.dumps(facts, indent=1, ensure_ascii=False), encoding="utf-8")
    _fsync_folder(partial)
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        folder.rename(old)
    partial.rename(folder)
    shutil.rmtree(old, ignore_errors=True)
    return folder


def load_state(folder: Path) -> TrainingState:
    folder = Path(folder)
    if not (folder / _FACTS).exists():
        old = folder.with_name(folder.name + ".old")
        if (old / _FACTS).exists():
            folder = old
        else:
            raise StateError(f"{folder} is not a training state folder (no {_FACTS})", path=str(folder))
    try:
        facts = json.loads((folder / _FACTS).read_text(encoding="utf-8"))
        tensors = load_file(str(folder / _TENSORS))
    except (OSError, ValueError) as error:
        raise StateError(f"The training state in {folder} is damaged: {error}", path=str(folder)) from error
    if not isinstance(facts, dict) or facts.get("version") != STATE_VERSION:
        raise StateError(f"The training state in {folder} was written by another version", path=str(folder))
    network = {name[len(_NETWORK):]: tensor for name, tensor in tensors.items() if name.startswith(_NETWORK)}
    return TrainingState(
        step=int(facts["step"]),
        network=network,
        optimizer=_join_optimizer(facts["optimizer"], tensors),
        scheduler=facts["scheduler"],
        facts=facts.get("facts", {}),
        losses=[float(x) for x in facts.get("losses", [])],
    )


def mismatches(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """The facts that differ between the saved run and this one, as "key: saved -> now" lines."""
    return [f"{key}: {saved.get(key)!r} -> {current.get(key)!r}" for key in sorted(current) if saved.get(key) != current.get(key)]


def _split_optimizer(state_dict: dict[str, Any], tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    """The optimizer's tensors go into ``tensors``; its plain values come back for the JSON file."""
    per_parameter: dict[str, dict[str, Any]] = {}
    for index, values in state_dict["state"].items():
        plain = {}
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{_OPTIMIZER}{index}.{key}"] = value.detach().to("cpu").contiguous()
            else:
                plain[key] = value
        per_parameter[str(index)] = plain
    return {"state": per_parameter, "param_groups": state_dict["param_groups"]}


def _join_optimizer(facts: dict[str, Any], tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {int(index): dict(plain) for index, plain in facts["state"].items()}
    for name, tensor in tensors.items():
        if name.startswith(_OPTIMIZER):
            index, _, key = name[len(_OPTIMIZER):].partition(".")
            state.setdefault(int(index), {})[key] = tensor
    groups = []
    for group in facts["param_groups"]:
        group = dict(group)
        if isinstance(group.get("betas"), list):
            group["betas"] = tuple(group["betas"])
        groups.append(group)
    return {"state": state, "param_groups": groups}


def _fsync_folder(folder: Path) -> None:
    for path in folder.iterdir():
        with open(path, "rb") as stream:
            os.fsync(stream.fileno())
