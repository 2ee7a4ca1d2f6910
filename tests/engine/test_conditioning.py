"""A1111 chunking and encoder outputs: 75-token chunks, padding per encoder, clip skip, SDXL."""

from __future__ import annotations

import pytest
import torch

from desktop.engine.conditioning import (
    BREAK,
    CHUNK_LENGTH,
    ENCODER_SPECS,
    chunk_tokens,
    count_tokens,
    encode_chunks,
    encode_prompt,
    encode_prompt_sdxl,
)
from desktop.engine.devices import plan_devices
from desktop.engine.loading import load_model, load_tokenizers
from desktop.library.taxonomy import ModelFamily

BOS, EOS, COMMA = 49406, 49407, 267


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizers(ModelFamily.SD1)[0]


@pytest.fixture(scope="module")
def sd1(tiny_sd1):
    return load_model(tiny_sd1, plan_devices("cpu", "fp32"))


@pytest.fixture(scope="module")
def sdxl(tiny_sdxl):
    return load_model(tiny_sdxl, plan_devices("cpu", "fp32"))


def test_short_prompt_is_one_padded_chunk(tokenizer):
    (chunk,) = chunk_tokens([("a photo of a cat", 1.0)], tokenizer)
    assert chunk.tokens[:7] == [BOS, 320, 1125, 539, 320, 2368, EOS]
    assert len(chunk.tokens) == CHUNK_LENGTH + 2 == 77
    assert chunk.tokens[7:] == [EOS] * 70
    assert chunk.multipliers == [1.0] * 77


def test_empty_prompt_is_still_one_chunk(tokenizer):
    (chunk,) = chunk_tokens([("", 1.0)], tokenizer)
    assert chunk.tokens == [BOS] + [EOS] * 76


def test_long_prompt_spills_into_a_second_chunk(tokenizer):
    chunks = chunk_tokens([("cat " * 100, 1.0)], tokenizer)
    assert [len(c.tokens) for c in chunks] == [77, 77]
    assert chunks[0].tokens.count(2368) == 75 and chunks[1].tokens.count(2368) == 25


def test_comma_backtrack_moves_the_last_phrase_to_the_next_chunk(tokenizer):
    # 70 "cat" tokens, a comma, then 10 more: the chunk fills at 75 within 20 tokens of the comma,
    # so everything after the comma moves to chunk 2 (A1111's comma padding backtrack).
    chunks = chunk_tokens([("cat " * 70 + ", " + "dog " * 10, 1.0)], tokenizer)
    first, second = chunks
    assert first.tokens[1:72] == [2368] * 70 + [COMMA]
    assert first.tokens[72:] == [EOS] * 5
    assert second.tokens[1:11] == [1929] * 10


def test_break_starts_a_new_chunk(tokenizer):
    chunks = chunk_tokens([("a cat", 1.0), BREAK, ("a dog", 1.0)], tokenizer)
    assert [c.tokens[1:3] for c in chunks] == [[320, 2368], [320, 1929]]


def test_weights_scale_tokens_then_restore_the_mean(sd1, tokenizer):
    encoder = sd1.text_encoders[0]
    spec = ENCODER_SPECS[ModelFamily.SD1][0]
    plain, _ = encode_chunks(chunk_tokens([("a cat", 1.0)], tokenizer), encoder, spec, clip_skip=1)
    weighted, _ = encode_chunks(chunk_tokens([("a ", 1.0), ("cat", 1.5)], tokenizer), encoder, spec, clip_skip=1)
    assert torch.allclose(plain.mean(), weighted.mean(), atol=1e-6)
    assert not torch.allclose(plain[0, 2], weighted[0, 2])


def test_clip_skip_takes_an_earlier_layer_then_the_final_norm(sd1, tokenizer):
    encoder = sd1.text_encoders[0]
    spec = ENCODER_SPECS[ModelFamily.SD1][0]
    chunks = chunk_tokens([("a photo of a cat", 1.0)], tokenizer)
    skip1, _ = encode_chunks(chunks, encoder, spec, clip_skip=1)
    skip2, _ = encode_chunks(chunks, encoder, spec, clip_skip=2)
    with torch.no_grad():
        out = encoder(input_ids=torch.tensor([chunks[0].tokens]), output_hidden_states=True)
        expected = encoder.final_layer_norm(out.hidden_states[-2])
    assert torch.allclose(skip1, out.last_hidden_state)
    assert torch.allclose(skip2, expected)
    assert not torch.allclose(skip1, skip2)


def test_open_clip_chunks_are_padded_with_zero_after_the_end_token(sdxl, tokenizer):
    calls = []
    big_g = sdxl.text_encoders[1]
    original_forward = big_g.forward

    def spy(input_ids, **kwargs):
        calls.append(input_ids[0].tolist())
        return original_forward(input_ids=input_ids, **kwargs)

    big_g.forward = spy
    try:
        encode_chunks(chunk_tokens([("a cat", 1.0)], tokenizer), big_g, ENCODER_SPECS[ModelFamily.SDXL][1], clip_skip=1)
    finally:
        del big_g.forward
    assert calls == [[BOS, 320, 2368, EOS] + [0] * 73]


def test_sdxl_concatenates_both_encoders_and_pools_the_first_chunk(sdxl):
    z, pooled = encode_prompt_sdxl("cat " * 80, sdxl.tokenizers, sdxl.text_encoders)
    widths = [e.config.hidden_size for e in sdxl.text_encoders]
    assert z.shape == (1, 154, sum(widths))
    assert z.shape[-1] == sdxl.unet.config.cross_attention_dim
    short_z, short_pooled = encode_prompt_sdxl("cat " * 75, sdxl.tokenizers, sdxl.text_encoders)
    assert pooled.shape == (1, sdxl.text_encoders[1].config.projection_dim)
    assert torch.allclose(pooled, short_pooled)  # the first chunk is the same: 75 cats
    assert torch.allclose(z[:, :77], short_z)


def test_encode_prompt_parses_emphasis_and_break(sd1, tokenizer):
    encoder = sd1.text_encoders[0]
    plain = encode_prompt("a cat", tokenizer, encoder)
    assert plain.shape == (1, 77, encoder.config.hidden_size)
    emphasised = encode_prompt("a (cat:1.5)", tokenizer, encoder)
    manual, _ = encode_chunks(chunk_tokens([("a ", 1.0), ("cat", 1.5)], tokenizer), encoder, ENCODER_SPECS[ModelFamily.SD1][0], 1)
    assert torch.equal(emphasised, manual)
    assert not torch.equal(plain, emphasised)
    assert encode_prompt("a cat BREAK a dog", tokenizer, encoder).shape == (1, 154, encoder.config.hidden_size)
    escaped, _ = encode_chunks(chunk_tokens([("a (cat)", 1.0)], tokenizer), encoder, ENCODER_SPECS[ModelFamily.SD1][0], 1)
    assert torch.equal(encode_prompt(r"a \(cat\)", tokenizer, encoder), escaped)  # escapes are literal text


def test_novelai_braces_only_when_asked(sd1, tokenizer):
    encoder = sd1.text_encoders[0]
    literal = encode_prompt("a {cat}", tokenizer, encoder)
    weighted = encode_prompt("a {cat}", tokenizer, encoder, novelai=True)
    assert literal.shape == weighted.shape
    assert not torch.equal(literal, weighted)
    manual, _ = encode_chunks(chunk_tokens([("a ", 1.0), ("cat", 1.05)], tokenizer), encoder, ENCODER_SPECS[ModelFamily.SD1][0], 1)
    assert torch.equal(weighted, manual)


@pytest.mark.parametrize(
    ("prompt", "counter"),
    [
        ("", "0/75"),
        ("a photo of a cat", "5/75"),
        ("(a photo:1.3) of [a] cat <lora:detail:0.8>", "5/75"),  # syntax and network tags do not count
        ("cat " * 80, "80/150"),
        ("a cat BREAK a dog", "77/150"),  # a BREAK fills its chunk
        ("[cat:dog cat dog cat:5]", "4/75"),  # the longest scheduled text counts
        ("cat AND dog dog dog", "3/75"),
    ],
)
def test_token_counter_matches_a1111(tokenizer, prompt, counter):
    assert str(count_tokens(prompt, tokenizer, steps=20)) == counter
