"""Text conditioning the way A1111 builds it: emphasis, 75-token chunks, BOS/EOS per chunk, clip skip.

A scheduled prompt text is parsed into ``(text, weight)`` pieces (:mod:`desktop.core.prompt_syntax`);
the tokens are cut into chunks, each chunk is encoded separately and the chunks are concatenated
to (1, 77*k, dim). Weights multiply the token embeddings, then the mean is restored (A1111's
"Original" emphasis).

Textual-inversion embeddings (:mod:`desktop.engine.networks.embeddings`) take ``vector_count``
token positions in a chunk, written as placeholder id 0 and recorded as a :class:`ChunkFix`; at
encode time the token-embedding layer's output is overwritten there with the vectors (A1111's
``EmbeddingsWithFixes``), through a forward hook that is removed as soon as the chunk is encoded.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from desktop.core.prompt_syntax import extract_networks, parse_emphasis, prompt_schedule, split_and
from desktop.engine.networks.embeddings import SDXL_KEYS, SINGLE_KEY, Embedding, PromptEmbeddings
from desktop.library.taxonomy import ModelFamily

CHUNK_LENGTH = 75  # tokens of text per chunk; with BOS and EOS a chunk is CLIP's 77
COMMA_BACKTRACK = 20  # A1111 default "comma padding backtrack"
BREAK = ("BREAK", -1.0)
EMBEDDING_PLACEHOLDER = 0  # A1111 writes token 0 where an embedding's vectors go


@dataclass(frozen=True)
class ChunkFix:
    """A1111's ``PromptChunkFix``: an embedding's vectors start at ``offset`` (a text position, before BOS)."""

    offset: int
    embedding: Embedding


@dataclass
class PromptChunk:
    tokens: list[int] = field(default_factory=list)
    multipliers: list[float] = field(default_factory=list)
    text_tokens: int = 0  # tokens of prompt text in the chunk, before framing and padding
    fixes: list[ChunkFix] = field(default_factory=list)


def chunk_tokens(
    pieces: Sequence[tuple[str, float]], tokenizer: Any, embeddings: PromptEmbeddings | None = None
) -> list[PromptChunk]:
    """A1111's ``tokenize_line``: split weighted text into chunks of 75 tokens, each framed by BOS/EOS and padded.

    With ``embeddings``, an embedding name in the text takes its ``vector_count`` positions; one
    that does not fit in the rest of the chunk moves whole to the next chunk.
    """
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    comma = tokenizer.convert_tokens_to_ids(",</w>")  # get_vocab() would rebuild a 49k-entry dict per prompt
    texts = [text for text, weight in pieces if (text, weight) != BREAK]
    tokenized = iter(tokenizer(texts, truncation=False, add_special_tokens=False)["input_ids"] if texts else [])
    chunks: list[PromptChunk] = []
    chunk = PromptChunk()
    last_comma = -1

    def next_chunk() -> None:
        nonlocal chunk, last_comma
        pad = CHUNK_LENGTH - len(chunk.tokens)
        chunk.text_tokens = len(chunk.tokens)
        chunk.tokens = [bos, *chunk.tokens, *([eos] * pad), eos]
        chunk.multipliers = [1.0, *chunk.multipliers, *([1.0] * pad), 1.0]
        chunks.append(chunk)
        chunk = PromptChunk()
        last_comma = -1

    for text, weight in pieces:
        if (text, weight) == BREAK:
            next_chunk()
            continue
        tokens = next(tokenized)
        position = 0
        while position < len(tokens):
            token = tokens[position]
            if token == comma:
                last_comma = len(chunk.tokens)
            elif (
                len(chunk.tokens) == CHUNK_LENGTH
                and last_comma != -1
                and len(chunk.tokens) - last_comma <= COMMA_BACKTRACK
            ):
                # The chunk is full mid-phrase: move the words after the last comma to the next chunk.
                # As in A1111, only tokens and multipliers move: an embedding among them keeps its
                # fix in the full chunk (its vectors land in that chunk's padding) and only its
                # placeholder tokens move. Deliberate, so that such prompts give A1111's images.
                moved_tokens = chunk.tokens[last_comma + 1 :]
                moved_multipliers = chunk.multipliers[last_comma + 1 :]
                chunk.tokens = chunk.tokens[: last_comma + 1]
                chunk.multipliers = chunk.multipliers[: last_comma + 1]
                next_chunk()
                chunk.tokens, chunk.multipliers = moved_tokens, moved_multipliers
            if len(chunk.tokens) == CHUNK_LENGTH:
                next_chunk()
            match = embeddings.find_at(tokens, position, tokenizer) if embeddings is not None else None
            if match is None:
                chunk.tokens.append(token)
                chunk.multipliers.append(weight)
                position += 1
                continue
            count = match.embedding.vector_count
            if len(chunk.tokens) + count > CHUNK_LENGTH:
                next_chunk()
            chunk.fixes.append(ChunkFix(len(chunk.tokens), match.embedding))
            chunk.tokens.extend([EMBEDDING_PLACEHOLDER] * count)
            chunk.multipliers.extend([weight] * count)
            position += match.token_count
    if chunk.tokens or not chunks:
        next_chunk()
    return chunks


@dataclass(frozen=True)
class EncoderSpec:
    """How one text encoder's output is taken (A1111's wrappers for SD1, SD2 and SDXL)."""

    pad_token: int  # written after the first EOS of each chunk
    hidden_layer: int | None  # None: last hidden state (with final layer norm); -N: hidden_states[-N]
    final_layer_norm: bool  # apply the final layer norm to hidden_states[-N]
    honours_clip_skip: bool
    embedding_key: str = SINGLE_KEY  # which vectors of an embedding this encoder reads


def encode_chunks(chunks: Sequence[PromptChunk], encoder: Any, spec: EncoderSpec, clip_skip: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(1, 77*k, dim) hidden states, and the pooled projection of the first chunk when the encoder has one."""
    parameter = next(encoder.parameters())
    outputs, pooled = [], None
    for index, chunk in enumerate(chunks):
        tokens = list(chunk.tokens)
        if spec.pad_token != tokens[-1]:
            first_eos = tokens.index(tokens[-1])
            tokens[first_eos + 1 :] = [spec.pad_token] * (len(tokens) - first_eos - 1)
        ids = torch.tensor([tokens], device=parameter.device)
        with _vectors_substituted(encoder, chunk.fixes, spec.embedding_key):
            z, chunk_pooled = _run_encoder(encoder, ids, spec, clip_skip)
        if index == 0:
            pooled = chunk_pooled
        outputs.append(_apply_emphasis(z, chunk.multipliers).float())
    return torch.cat(outputs, dim=1), (pooled.float() if pooled is not None else None)


@contextlib.contextmanager
def _vectors_substituted(encoder: Any, fixes: Sequence[ChunkFix], key: str) -> Iterator[None]:
    """While encoding one chunk, overwrite the token embeddings at each fix with the embedding's vectors.

    A1111's ``EmbeddingsWithFixes.forward``: the vectors start after BOS (offset + 1) and are cut
    at the chunk's end. transformers' CLIPTextModel takes no ``inputs_embeds``, so the token
    embedding layer gets a forward hook for the duration of this one call.
    """
    if not fixes:
        yield
        return

    def substitute(_module: Any, _inputs: Any, output: torch.Tensor) -> torch.Tensor:
        output = output.clone()
        for fix in fixes:
            vectors = fix.embedding.vectors[key].to(device=output.device, dtype=output.dtype)
            start = fix.offset + 1
            count = min(output.shape[1] - start, vectors.shape[0])
            output[:, start : start + count] = vectors[:count]
        return output

    handle = encoder.get_input_embeddings().register_forward_hook(substitute)
    try:
        yield
    finally:
        handle.remove()


def _apply_emphasis(z: torch.Tensor, multipliers: Sequence[float]) -> torch.Tensor:
    """A1111's "Original" emphasis: multiply each token's vector, then restore the overall mean.

    With every weight 1 the rescale factor is exactly 1, so it is skipped; that also keeps a
    degenerate all-zero embedding from turning into 0/0 = NaN.
    """
    if all(weight == 1.0 for weight in multipliers):
        return z
    original_mean = z.mean()
    weighted = z * torch.tensor(multipliers, device=z.device, dtype=z.dtype).reshape(1, -1, 1)
    new_mean = weighted.mean()
    return weighted if new_mean == 0 else weighted * (original_mean / new_mean)


@torch.no_grad()
def _run_encoder(encoder: Any, ids: torch.Tensor, spec: EncoderSpec, clip_skip: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    return read_encoder(encoder, ids, spec, clip_skip)


def read_encoder(encoder: Any, ids: torch.Tensor, spec: EncoderSpec, clip_skip: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The hidden states ``spec`` says to take (and the pooled projection, if any); gradients as the caller's context.

    Inference runs it without gradients; LoRA training reads the encoders the same way, with them.
    """
    out = encoder(input_ids=ids, output_hidden_states=True)
    pooled = getattr(out, "text_embeds", None)
    if spec.honours_clip_skip and clip_skip > 1:
        return encoder.final_layer_norm(out.hidden_states[-clip_skip]), pooled
    if spec.hidden_layer is None:
        return out.last_hidden_state, pooled
    z = out.hidden_states[spec.hidden_layer]
    return (encoder.final_layer_norm(z) if spec.final_layer_norm else z), pooled


# How each family's encoders are read (A1111's FrozenCLIPEmbedder / OpenCLIP wrappers).
ENCODER_SPECS = {
    # SD1: last layer; clip skip N takes hidden state -N, then the final layer norm.
    ModelFamily.SD1: (EncoderSpec(pad_token=49407, hidden_layer=None, final_layer_norm=True, honours_clip_skip=True),),
    # SD2: the bundled encoder already stops at the penultimate layer; A1111 ignores clip skip here.
    ModelFamily.SD2: (EncoderSpec(pad_token=0, hidden_layer=None, final_layer_norm=True, honours_clip_skip=False),),
    # SDXL: penultimate hidden states of both encoders, no final layer norm, clip skip ignored.
    # Each reads its own vectors of an SDXL embedding: clip_l for CLIP-L, clip_g for bigG.
    ModelFamily.SDXL: (
        EncoderSpec(
            pad_token=49407, hidden_layer=-2, final_layer_norm=False, honours_clip_skip=False, embedding_key=SDXL_KEYS[0]
        ),
        EncoderSpec(
            pad_token=0, hidden_layer=-2, final_layer_norm=False, honours_clip_skip=False, embedding_key=SDXL_KEYS[1]
        ),
    ),
}


def encode_prompt(
    prompt: str,
    tokenizer: Any,
    text_encoder: Any,
    *,
    clip_skip: int = 1,
    family: ModelFamily = ModelFamily.SD1,
    novelai: bool = False,
    embeddings: PromptEmbeddings | None = None,
) -> torch.Tensor:
    """(1, 77*k, hidden) conditioning of one SD1/SD2 prompt text: emphasis, chunks, clip skip.

    ``prompt`` is one scheduled text (no AND, no schedule brackets left): A1111 parses emphasis
    and BREAK here. ``novelai`` enables the opt-in ``{word}`` x1.05 emphasis. ``embeddings``
    places textual-inversion embeddings named in the text and records them in ``embeddings.used``.
    """
    (spec,) = ENCODER_SPECS[family]
    pieces = parse_emphasis(prompt, novelai=novelai)
    z, _ = encode_chunks(chunk_tokens(pieces, tokenizer, embeddings), text_encoder, spec, clip_skip)
    return z


def encode_prompt_sdxl(
    prompt: str,
    tokenizers: Sequence[Any],
    text_encoders: Sequence[Any],
    *,
    novelai: bool = False,
    embeddings: PromptEmbeddings | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """SDXL: both encoders' hidden states side by side (1, 77*k, 768 + 1280), and the pooled vector.

    The pooled vector is encoder 2's projection of the first chunk, as A1111 takes it. Each
    encoder chunks the text itself (as A1111's two wrappers do) and reads its own vectors of an
    embedding (clip_l, clip_g).
    """
    pieces = parse_emphasis(prompt, novelai=novelai)
    states, pooled = [], None
    for tokenizer, encoder, spec in zip(tokenizers, text_encoders, ENCODER_SPECS[ModelFamily.SDXL]):
        z, encoder_pooled = encode_chunks(chunk_tokens(pieces, tokenizer, embeddings), encoder, spec, clip_skip=1)
        states.append(z)
        pooled = encoder_pooled if encoder_pooled is not None else pooled
    if pooled is None:
        raise ValueError("the second SDXL text encoder must return a pooled projection (text_embeds)")
    return torch.cat(states, dim=-1), pooled


@dataclass(frozen=True)
class PromptLength:
    """A1111's token counter: tokens used, and the limit of the chunks they fill ("37/75")."""

    tokens: int
    limit: int

    @property
    def chunks(self) -> int:
        return self.limit // CHUNK_LENGTH

    def __str__(self) -> str:
        return f"{self.tokens}/{self.limit}"


def count_tokens(
    prompt: str,
    tokenizer: Any,
    steps: int = 20,
    *,
    novelai: bool = False,
    embeddings: PromptEmbeddings | None = None,
) -> PromptLength:
    """The counter A1111 shows under a prompt box: the longest text over AND parts and schedule steps.

    Extra-network tags do not count; a full chunk counts 75 even when the comma backtrack left it
    shorter, and the limit is the next multiple of 75. With ``embeddings`` an embedding counts as
    its number of vectors (A1111 counts the loaded model's embeddings the same way).
    """
    text, _ = extract_networks(prompt)
    longest = 0
    for part, _weight in split_and(text):
        for _end, scheduled in prompt_schedule(part, steps):
            chunks = chunk_tokens(parse_emphasis(scheduled, novelai=novelai), tokenizer, embeddings)
            used = CHUNK_LENGTH * (len(chunks) - 1) + chunks[-1].text_tokens
            longest = max(longest, used)
    return PromptLength(longest, max(1, math.ceil(longest / CHUNK_LENGTH)) * CHUNK_LENGTH)
