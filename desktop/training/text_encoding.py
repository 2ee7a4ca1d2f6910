"""Captions to UNet conditioning during training, read from the text encoders as inference reads them.

Each family's encoders are read with the same ``EncoderSpec`` as at inference (SD1: last layer or
clip skip; SD2: the bundled penultimate tower; SDXL: penultimate states of both, pooled from bigG),
so what the LoRA learns is what A1111 later feeds it. Captions are cut to one 75-token chunk, as
kohya does with its default ``max_token_length``; the tokens after the end token are the encoder's
padding token, as in A1111.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from desktop.engine.conditioning import ENCODER_SPECS, read_encoder
from desktop.library.taxonomy import ModelFamily

CHUNK_LENGTH = 77  # BOS + 75 tokens + EOS


def caption_ids(captions: Sequence[str], tokenizer: Any, pad_token: int) -> torch.Tensor:
    """(batch, 77) token ids: BOS, the caption cut to 75 tokens, EOS, then ``pad_token``."""
    rows = []
    for caption in captions:
        ids = tokenizer(caption, truncation=True, max_length=CHUNK_LENGTH)["input_ids"]
        rows.append(ids + [pad_token] * (CHUNK_LENGTH - len(ids)))
    return torch.tensor(rows, dtype=torch.long)


def encode_captions(
    captions: Sequence[str], model: Any, *, clip_skip: int, with_grad: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(batch, 77, dim) hidden states, and SDXL's pooled vector (None for SD1/SD2).

    ``with_grad`` when the text encoder's LoRA is being trained; otherwise no graph is kept.
    """
    family: ModelFamily = model.family
    states, pooled = [], None
    with torch.set_grad_enabled(with_grad):
        for tokenizer, encoder, spec in zip(model.tokenizers, model.text_encoders, ENCODER_SPECS[family]):
            device = next(encoder.parameters()).device
            ids = caption_ids(captions, tokenizer, spec.pad_token).to(device)
            z, encoder_pooled = read_encoder(encoder, ids, spec, clip_skip)
            states.append(z)
            pooled = encoder_pooled if encoder_pooled is not None else pooled
    hidden = torch.cat(states, dim=-1) if len(states) > 1 else states[0]
    return hidden, (pooled if family is ModelFamily.SDXL else None)


def sdxl_time_ids(original_sizes: Sequence[tuple[int, int]], crops: Sequence[tuple[int, int]], target: tuple[int, int]) -> torch.Tensor:
    """SDXL's size conditioning per sample: original (height, width), crop (top, left), target (height, width).

    >>> sdxl_time_ids([(1200, 800)], [(16, 0)], (1024, 768)).tolist()
    [[1200.0, 800.0, 16.0, 0.0, 1024.0, 768.0]]
    """
    rows = [[*original, *crop, *target] for original, crop in zip(original_sizes, crops)]
    return torch.tensor(rows, dtype=torch.float32)
