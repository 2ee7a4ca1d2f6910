"""Textual-inversion embeddings at inference, as A1111 uses them.

Real files in tmp_path: A1111 ``.pt`` dicts written by ``torch.save`` (converted by the safe
pickle converter), ``.safetensors`` with ``emb_params`` or SDXL ``clip_l``/``clip_g``. The
conditioning is checked against a reference built without our code path: a copy of the text
encoder whose token-embedding rows for unused token ids are set to the vectors, fed those ids.
Covers BAD_INPUTS items 7 (malicious pickle), 12 (a file for another base, or not an embedding)
and 25 (a name in the prompt with no file is just text).
"""

from __future__ import annotations

import copy
import os
import pickle
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from desktop.core.errors import DesktopError, ModelFileError
from desktop.engine.conditioning import (
    CHUNK_LENGTH,
    ChunkFix,
    chunk_tokens,
    count_tokens,
    encode_prompt,
    encode_prompt_sdxl,
)
from desktop.engine.devices import plan_devices
from desktop.engine.loading import load_model, load_tokenizers
from desktop.engine.networks.embeddings import (
    MAX_VECTORS,
    SINGLE_KEY,
    EmbeddingLibrary,
    PromptEmbeddings,
    load_embedding,
    text_encoder_widths,
)
from desktop.engine.prompt_conditioning import EncodedText, build_prompt_conditioning
from desktop.library.pickle_convert import convert_pickle_file
from desktop.library.pickle_reader import UnsafePickle
from desktop.library.taxonomy import ModelFamily

BOS, EOS, CAT, DOG, COMMA = 49406, 49407, 2368, 1929, 267
EASYNEGATIVE = [18308, 8869]  # "easynegative": two tokens
UNUSED_IDS = 1000  # reference encoders put the vectors in rows 1000... (tokens no test prompt uses)


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizers(ModelFamily.SD1)[0]


@pytest.fixture(scope="module")
def sd1(tiny_sd1):
    return load_model(tiny_sd1, plan_devices("cpu", "fp32"))


@pytest.fixture(scope="module")
def sdxl(tiny_sdxl):
    return load_model(tiny_sdxl, plan_devices("cpu", "fp32"))


def vectors(count: int, width: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(count, width, generator=torch.Generator().manual_seed(seed))


def a1111_pt(path: Path, tensor: torch.Tensor) -> Path:
    """The dict A1111's textual-inversion training saves with torch.save."""
    torch.save(
        {"string_to_token": {"*": 265}, "string_to_param": {"*": tensor}, "name": path.stem, "step": 1500},
        path,
    )
    return path


def safetensors_file(path: Path, tensors: Mapping[str, torch.Tensor]) -> Path:
    save_file(dict(tensors), str(path))
    return path


def library_of(*paths: Path) -> EmbeddingLibrary:
    return EmbeddingLibrary({path.stem: path for path in paths})


def chunk_ids(prompt: str, tokenizer, embeddings: PromptEmbeddings | None = None) -> list[list[int]]:
    return [chunk.tokens for chunk in chunk_tokens([(prompt, 1.0)], tokenizer, embeddings)]


def reference_encoder(encoder, rows: torch.Tensor):
    """A copy of ``encoder`` whose token embeddings UNUSED_IDS... are ``rows``: substitution without our hook."""
    reference = copy.deepcopy(encoder)
    with torch.no_grad():
        reference.get_input_embeddings().weight[UNUSED_IDS : UNUSED_IDS + len(rows)] = rows
    return reference


def framed(text_ids: Sequence[int], pad: int = EOS) -> torch.Tensor:
    """One 77-token chunk as A1111 frames it: BOS, text, EOS, then the encoder's pad token."""
    return torch.tensor([[BOS, *text_ids, EOS] + [pad] * (CHUNK_LENGTH - len(text_ids))])


def emphasised(z: torch.Tensor, multipliers: Sequence[float]) -> torch.Tensor:
    """A1111's "Original" emphasis, written out: scale each token's vector, then restore the mean."""
    weighted = z * torch.tensor(multipliers).reshape(1, -1, 1)
    return weighted * (z.mean() / weighted.mean())


# --- files --------------------------------------------------------------------------------------


def test_a1111_pt_converted_by_the_safe_converter_is_read_as_emb_params(tmp_path):
    expected = vectors(4, 768)
    source = a1111_pt(tmp_path / "my-style.pt", expected)

    converted = convert_pickle_file(source, tmp_path / "converted" / "my-style.safetensors")
    assert sorted(load_file(str(converted))) == [SINGLE_KEY]
    from_converted = load_embedding(converted)
    from_pt = load_embedding(source)  # the .pt itself goes through the same converter, in a child

    for embedding in (from_converted, from_pt):
        assert embedding.name == "my-style"
        assert embedding.vector_count == 4
        assert embedding.shape == 768
        assert embedding.family is ModelFamily.SD1
        assert torch.equal(embedding.vectors[SINGLE_KEY], expected)
    assert from_pt.path == source


def test_safetensors_emb_params_in_half_precision_become_float32(tmp_path):
    expected = vectors(2, 1024).half()
    embedding = load_embedding(safetensors_file(tmp_path / "sd2-style.safetensors", {"emb_params": expected}))

    assert embedding.vectors[SINGLE_KEY].dtype == torch.float32
    assert torch.equal(embedding.vectors[SINGLE_KEY], expected.float())
    assert (embedding.vector_count, embedding.shape, embedding.family) == (2, 1024, ModelFamily.SD2)
    assert embedding.fits_family(ModelFamily.SD2) and not embedding.fits_family(ModelFamily.SD1)


def test_sdxl_embedding_keeps_clip_l_and_clip_g(tmp_path):
    clip_l, clip_g = vectors(3, 768, 1), vectors(3, 1280, 2)
    embedding = load_embedding(safetensors_file(tmp_path / "xl.safetensors", {"clip_g": clip_g, "clip_l": clip_l}))

    assert torch.equal(embedding.vectors["clip_l"], clip_l) and torch.equal(embedding.vectors["clip_g"], clip_g)
    assert (embedding.vector_count, embedding.shape, embedding.widths) == (3, 2048, (768, 1280))
    assert embedding.family is ModelFamily.SDXL
    assert embedding.fits((768, 1280)) and not embedding.fits((768,)) and not embedding.fits((1280, 768))


def test_sdxl_embedding_saved_as_pt_converts(tmp_path):
    source = tmp_path / "xl.pt"
    torch.save({"clip_l": vectors(2, 768), "clip_g": vectors(2, 1280)}, source)

    assert load_embedding(source).widths == (768, 1280)


def test_diffusers_learned_embeds_and_flattened_string_to_param_are_single_vector_sets(tmp_path):
    token_vector = vectors(1, 768)[0]  # diffusers saves one [768] vector named after its token
    learned = load_embedding(safetensors_file(tmp_path / "cat-toy.safetensors", {"<cat-toy>": token_vector}))
    flattened = load_embedding(
        safetensors_file(
            tmp_path / "flat.safetensors",
            {"string_to_param.*": vectors(5, 768), "string_to_token.*": torch.tensor([265])},
        )
    )

    assert learned.vector_count == 1 and torch.equal(learned.vectors[SINGLE_KEY][0], token_vector)
    assert flattened.vector_count == 5


def write_bad(path: Path, kind: str) -> Path:
    if kind == "random bytes":
        path.write_bytes(b"\x00\x01garbage" * 10)
    elif kind == "a LoRA":
        save_file({"lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight": torch.ones(4, 768),
                   "lora_te_text_model_encoder_layers_0_mlp_fc1.lora_up.weight": torch.ones(3072, 4)}, str(path))
    elif kind == "integer vectors":
        save_file({"emb_params": torch.ones(2, 768, dtype=torch.int32)}, str(path))
    elif kind == "3-D vectors":
        save_file({"emb_params": torch.ones(1, 2, 768)}, str(path))
    elif kind == "NaN":
        save_file({"emb_params": torch.full((2, 768), float("nan"))}, str(path))
    elif kind == "too many vectors":
        save_file({"emb_params": torch.ones(MAX_VECTORS + 1, 768)}, str(path))
    elif kind == "clip_l and clip_g disagree":
        save_file({"clip_l": torch.ones(2, 768), "clip_g": torch.ones(3, 1280)}, str(path))
    return path


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("random bytes", "bad.safetensors"),
        ("a LoRA", "bad.safetensors is not a textual-inversion embedding: it holds 2 tensors"),
        ("integer vectors", "are I32, not floating point"),
        ("3-D vectors", "have shape [1, 2, 768]"),
        ("NaN", "contain NaN or infinite values"),
        ("too many vectors", "has 76 vectors; at most 75 fit"),
        ("clip_l and clip_g disagree", "clip_l has 2 vectors but clip_g has 3"),
    ],
)
def test_item12_odd_or_corrupt_files_are_refused_naming_the_file(tmp_path, kind, message):
    path = write_bad(tmp_path / "bad.safetensors", kind)

    with pytest.raises(ModelFileError, match=re.escape(message)) as refused:
        load_embedding(path)
    assert refused.value.details["path"] == str(path)


def test_missing_files_and_other_formats_are_model_file_errors(tmp_path):
    with pytest.raises(ModelFileError, match="gone.safetensors does not exist"):
        load_embedding(tmp_path / "gone.safetensors")
    (tmp_path / "preview.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(ModelFileError, match="preview.png is not an embedding file"):
        load_embedding(tmp_path / "preview.png")


class Payload:
    """Pickles as REDUCE(os.system, (command,)): what a hostile embedding does."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def test_item7_a_malicious_pt_never_executes(tmp_path, tokenizer):
    sentinel = tmp_path / "pwned"
    source = tmp_path / "evil.pt"
    source.write_bytes(pickle.dumps({"string_to_param": {"*": Payload(f"touch '{sentinel}'")}}, protocol=2))

    with pytest.raises(UnsafePickle, match="evil.pt"):
        load_embedding(source)
    # Named in a prompt, it is text with a warning; the job goes on.
    embeddings = PromptEmbeddings(library_of(source), widths=(32,))
    assert chunk_ids("a evil cat", tokenizer, embeddings) == chunk_ids("a evil cat", tokenizer)
    assert [(w.name, w.reason) for w in embeddings.warnings] == [("evil", "unsafe_pickle")]
    assert not sentinel.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.pt"]  # no converted file left behind


# --- names in prompts ---------------------------------------------------------------------------


def test_names_match_by_token_ids_longest_first(tmp_path, tokenizer):
    files = [
        safetensors_file(tmp_path / f"{name}.safetensors", {"emb_params": torch.ones(count, 32)})
        for name, count in (("bad", 1), ("bad_prompt", 2), ("bad_prompt_version2", 3))
    ]
    embeddings = PromptEmbeddings(library_of(*files), widths=(32,))

    (chunk,) = chunk_tokens([("bad_prompt_version2 bad_prompt bad prompt", 1.0)], tokenizer, embeddings)

    assert [(fix.offset, fix.embedding.name) for fix in chunk.fixes] == [(0, "bad_prompt_version2"), (3, "bad_prompt"), (5, "bad")]
    assert chunk.tokens[1:8] == [0, 0, 0, 0, 0, 0, 20198]  # placeholders, then "prompt" as text
    assert sorted(embeddings.used) == ["bad", "bad_prompt", "bad_prompt_version2"]


def test_matching_ignores_case_as_a1111_does(tmp_path, tokenizer):
    """A1111 matches token ids and the CLIP tokenizer lowercases: EASYNEGATIVE finds EasyNegative.pt."""
    path = safetensors_file(tmp_path / "EasyNegative.safetensors", {"emb_params": torch.ones(2, 32)})
    embeddings = PromptEmbeddings(library_of(path), widths=(32,))

    (chunk,) = chunk_tokens([("EASYNEGATIVE, easynegative", 1.0)], tokenizer, embeddings)

    assert [fix.offset for fix in chunk.fixes] == [0, 3]
    assert list(embeddings.used) == ["EasyNegative"]


def test_item25_a_name_without_a_file_is_just_text(tmp_path, tokenizer):
    path = safetensors_file(tmp_path / "easynegative.safetensors", {"emb_params": torch.ones(2, 32)})
    embeddings = PromptEmbeddings(library_of(path), widths=(32,))

    prompt = "badhandv4, easy negative, a cat"  # another file's name; the words of ours split apart
    assert chunk_ids(prompt, tokenizer, embeddings) == chunk_ids(prompt, tokenizer)
    assert embeddings.used == {} and embeddings.warnings == []


def test_an_eight_vector_embedding_at_token_70_moves_whole_to_chunk_2(tmp_path, tokenizer):
    path = safetensors_file(tmp_path / "easynegative.safetensors", {"emb_params": torch.ones(8, 32)})
    embeddings = PromptEmbeddings(library_of(path), widths=(32,))

    first, second = chunk_tokens([("cat " * 70 + "easynegative dog", 1.0)], tokenizer, embeddings)

    assert first.tokens == [BOS] + [CAT] * 70 + [EOS] * 6 and first.fixes == []
    assert second.tokens[:11] == [BOS] + [0] * 8 + [DOG, EOS]
    assert [(fix.offset, fix.embedding.name) for fix in second.fixes] == [(0, "easynegative")]
    # At token 67 it still fits: 67 + 8 = 75.
    (only,) = chunk_tokens([("cat " * 67 + "easynegative", 1.0)], tokenizer, embeddings)
    assert only.tokens[68:] == [0] * 8 + [EOS] and only.fixes[0].offset == 67


def test_token_counter_counts_an_embedding_as_its_vectors(tmp_path, tokenizer):
    path = safetensors_file(tmp_path / "easynegative.safetensors", {"emb_params": torch.ones(8, 32)})
    embeddings = PromptEmbeddings(library_of(path))  # the counter has no model: any readable file counts

    assert str(count_tokens("easynegative", tokenizer)) == "2/75"
    assert str(count_tokens("easynegative", tokenizer, embeddings=embeddings)) == "8/75"
    assert str(count_tokens("cat " * 70 + "easynegative", tokenizer, embeddings=embeddings)) == "83/150"
    assert str(count_tokens("cat " * 67 + "easynegative", tokenizer, embeddings=embeddings)) == "75/75"


def test_comma_backtrack_moves_placeholders_but_leaves_the_fix_as_a1111_does(tmp_path, tokenizer):
    """A1111's tokenize_line relocates tokens and multipliers only; the fix stays in the full chunk."""
    path = safetensors_file(tmp_path / "emb3.safetensors", {"emb_params": torch.ones(3, 32)})
    embeddings = PromptEmbeddings(library_of(path), widths=(32,))

    first, second = chunk_tokens([("cat " * 60 + ", " + "cat " * 10 + "emb3 dog dog", 1.0)], tokenizer, embeddings)

    assert first.tokens[1:62] == [CAT] * 60 + [COMMA] and first.tokens[62:] == [EOS] * 15
    assert first.fixes == [ChunkFix(71, first.fixes[0].embedding)]
    assert second.tokens[1:16] == [CAT] * 10 + [0] * 3 + [DOG, DOG] and second.fixes == []


# --- conditioning --------------------------------------------------------------------------------


def test_sd1_conditioning_equals_the_vectors_substituted_by_hand(tmp_path, sd1, tokenizer):
    encoder = sd1.text_encoders[0]
    rows = vectors(3, 32, seed=5)
    path = safetensors_file(tmp_path / "mystyle.safetensors", {"emb_params": rows})
    embeddings = PromptEmbeddings.for_encoders(library_of(path), sd1.text_encoders)
    assert embeddings.widths == text_encoder_widths(sd1.text_encoders) == (32,)

    z = encode_prompt("a mystyle cat", tokenizer, encoder, embeddings=embeddings)

    reference = reference_encoder(encoder, rows)
    with torch.no_grad():
        expected = reference(input_ids=framed([320, 1000, 1001, 1002, CAT])).last_hidden_state
    torch.testing.assert_close(z, expected, rtol=0, atol=1e-6)
    assert not torch.allclose(z, encode_prompt("a mystyle cat", tokenizer, encoder), atol=1e-3)
    assert list(embeddings.used) == ["mystyle"] and embeddings.used["mystyle"].path == path
    # The hook is gone: the encoder is as it was.
    assert not encoder.get_input_embeddings()._forward_hooks


def test_weighted_embedding_scales_its_vectors_then_restores_the_mean(tmp_path, sd1, tokenizer):
    encoder = sd1.text_encoders[0]
    rows = vectors(2, 32, seed=6)
    path = safetensors_file(tmp_path / "easynegative.safetensors", {"emb_params": rows})
    embeddings = PromptEmbeddings.for_encoders(library_of(path), sd1.text_encoders)

    z = encode_prompt("(easynegative:1.2), cat", tokenizer, encoder, embeddings=embeddings)

    with torch.no_grad():
        plain = reference_encoder(encoder, rows)(input_ids=framed([1000, 1001, COMMA, CAT])).last_hidden_state
    multipliers = [1.0, 1.2, 1.2] + [1.0] * 74
    torch.testing.assert_close(z, emphasised(plain, multipliers), rtol=0, atol=1e-5)


def test_sdxl_puts_clip_l_into_clip_l_and_clip_g_into_big_g(tmp_path, sdxl):
    clip_l, clip_g = vectors(2, 32, seed=7), vectors(2, 64, seed=8)
    path = safetensors_file(tmp_path / "xlstyle.safetensors", {"clip_l": clip_l, "clip_g": clip_g})
    embeddings = PromptEmbeddings.for_encoders(library_of(path), sdxl.text_encoders)
    assert embeddings.widths == (32, 64)

    z, pooled = encode_prompt_sdxl("a xlstyle", sdxl.tokenizers, sdxl.text_encoders, embeddings=embeddings)

    text = [320, 1000, 1001]
    with torch.no_grad():
        out_l = reference_encoder(sdxl.text_encoders[0], clip_l)(input_ids=framed(text), output_hidden_states=True)
        out_g = reference_encoder(sdxl.text_encoders[1], clip_g)(input_ids=framed(text, pad=0), output_hidden_states=True)
    torch.testing.assert_close(z, torch.cat([out_l.hidden_states[-2], out_g.hidden_states[-2]], dim=-1), rtol=0, atol=1e-6)
    torch.testing.assert_close(pooled, out_g.text_embeds, rtol=0, atol=1e-6)
    assert list(embeddings.used) == ["xlstyle"]


def test_negative_prompt_uses_embeddings_the_same_way(tmp_path, sd1, tokenizer):
    encoder = sd1.text_encoders[0]
    path = safetensors_file(tmp_path / "easynegative.safetensors", {"emb_params": vectors(2, 32, seed=9)})
    embeddings = PromptEmbeddings.for_encoders(library_of(path), sd1.text_encoders)

    def encode(text: str) -> EncodedText:
        return EncodedText(encode_prompt(text, tokenizer, encoder, embeddings=embeddings))

    conditioning = build_prompt_conditioning("a cat", "easynegative, lowres", 20, encode)

    negative = conditioning.negative[0].encoded.context
    torch.testing.assert_close(negative, encode_prompt("easynegative, lowres", tokenizer, encoder, embeddings=embeddings))
    assert not torch.allclose(negative, encode_prompt("easynegative, lowres", tokenizer, encoder), atol=1e-3)
    assert list(embeddings.used) == ["easynegative"]


@pytest.mark.parametrize(
    ("tensors", "described"),
    [
        ({"clip_l": torch.ones(2, 768), "clip_g": torch.ones(2, 1280)}, "a Stable Diffusion XL embedding (768 + 1280 wide)"),
        ({"emb_params": torch.ones(2, 768)}, "a Stable Diffusion 1.x embedding (768 wide)"),
    ],
)
def test_item12_an_embedding_for_another_base_model_warns_and_is_text(tmp_path, sd1, tokenizer, tensors, described):
    path = safetensors_file(tmp_path / "otherbase.safetensors", tensors)
    embeddings = PromptEmbeddings.for_encoders(library_of(path), sd1.text_encoders)  # tiny SD1: 32 wide

    z = encode_prompt("otherbase cat, otherbase", tokenizer, sd1.text_encoders[0], embeddings=embeddings)

    assert torch.equal(z, encode_prompt("otherbase cat, otherbase", tokenizer, sd1.text_encoders[0]))
    (warning,) = embeddings.warnings  # once per name, however often it appears
    assert (warning.name, warning.path, warning.reason) == ("otherbase", path, "mismatch")
    assert warning.message == (
        f"otherbase.safetensors is {described}, which does not fit this model's text encoder (32 wide); "
        '"otherbase" in the prompt is read as plain text'
    )
    assert embeddings.used == {}


def test_a_shorter_name_that_fits_wins_over_a_longer_one_that_does_not(tmp_path, tokenizer):
    """A1111 never registers a file of the wrong width, so the next-longest name matches instead."""
    wrong = safetensors_file(tmp_path / "bad_prompt.safetensors", {"emb_params": torch.ones(2, 768)})
    right = safetensors_file(tmp_path / "bad.safetensors", {"emb_params": torch.ones(1, 32)})
    embeddings = PromptEmbeddings(library_of(wrong, right), widths=(32,))

    (chunk,) = chunk_tokens([("bad_prompt", 1.0)], tokenizer, embeddings)

    assert chunk.tokens[1:4] == [0, 318, 20198] and [fix.embedding.name for fix in chunk.fixes] == ["bad"]
    assert [w.name for w in embeddings.warnings] == ["bad_prompt"]


def test_a_corrupt_file_warns_and_generation_continues(tmp_path, sd1, tokenizer):
    path = write_bad(tmp_path / "broken.safetensors", "random bytes")
    embeddings = PromptEmbeddings.for_encoders(library_of(path), sd1.text_encoders)

    z = encode_prompt("broken cat", tokenizer, sd1.text_encoders[0], embeddings=embeddings)

    assert z.shape == (1, 77, 32)
    (warning,) = embeddings.warnings
    assert warning.name == "broken" and "broken.safetensors" in warning.message
    assert warning.message.endswith('"broken" in the prompt is read as plain text')


def test_library_reads_lazily_caches_and_rereads_a_changed_file(tmp_path):
    path = safetensors_file(tmp_path / "style.safetensors", {"emb_params": torch.ones(1, 32)})
    library = library_of(path, tmp_path / "never-read.safetensors")

    first = library.load("style")
    assert library.load("style") is first
    safetensors_file(path, {"emb_params": torch.ones(4, 32)})
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000_000))
    assert library.load("style").vector_count == 4
    assert library.names == ("never-read", "style") and "style" in library and len(library) == 2
    with pytest.raises(KeyError):
        library.load("unknown")
    with pytest.raises(DesktopError, match="never-read.safetensors does not exist"):
        library.load("never-read")
