"""A loaded checkpoint's base weights, read again from its file instead of kept as copies.

Applying a LoRA changes weights in place; taking it off needs their base values. Copies of every
layer a LoRA touches cost 700 MB on SD1.5 and 5.8 GB on SDXL, too much beside SDXL on a 16 GB Mac.
A single-file checkpoint is memory-mapped when it loads, so its tensors can simply be read again:
this maps each of our parameters back to the file's key (the UNet through diffusers' own LDM
converter, as :mod:`desktop.engine.networks.lora_keys` does; CLIP ViT-L by its fixed prefix). The
patcher uses a value only after checking it is bit-identical to the live weight, and copies
whatever this cannot give (OpenCLIP's fused projections, diffusers folders).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from desktop.engine.networks.lora_keys import ldm_unet_paths


class CheckpointOriginals:
    """``originals(component, parameter name) -> tensor | None`` over the load's own memory map.

    ``tensors`` are the views the loader filled the model from: the mapping of the file as it was
    when loaded (a file replaced on disk since then keeps its old pages here).
    """

    def __init__(self, tensors: Mapping[str, torch.Tensor], unet: torch.nn.Module, text_prefixes: Mapping[str, str]) -> None:
        self._tensors = tensors
        self._unet_keys = {ours: ldm for ldm, ours in ldm_unet_paths(unet).items()}
        self._text_prefixes = dict(text_prefixes)  # component -> the file's key prefix of its text_model

    def __call__(self, component: str, name: str) -> torch.Tensor | None:
        key = self.file_key(component, name)
        return None if key is None else self._tensors.get(key)

    def file_key(self, component: str, name: str) -> str | None:
        """The checkpoint's key for one of our parameters, or None when it has no single one."""
        if component == "unet":
            module, _, parameter = name.rpartition(".")
            ldm = self._unet_keys.get(module)
            return None if ldm is None else f"model.diffusion_model.{ldm}.{parameter}"
        prefix = self._text_prefixes.get(component)
        # transformers 5's CLIPTextModel has no text_model level; the file's keys do.
        return None if prefix is None else f"{prefix}text_model.{name.removeprefix('text_model.')}"
