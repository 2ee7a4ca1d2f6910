"""Sidecar files beside a model (previews, civitai.info, A1111 user metadata) and metadata for display.

Real files in tmp_path, shaped as A1111, Civitai Helper and kohya write them. Covers BAD_INPUTS
items 9 (HTML kept literally), 10 (huge metadata cut for display) and 14 (Unicode names).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from desktop.core.errors import DesktopError, UserInputError
from desktop.library.sidecars import (
    MAX_SIDECAR_BYTES,
    FolderListing,
    PreferredVae,
    Sidecars,
    display_metadata,
    merge_trigger_words,
    metadata_trigger_words,
    preferred_vae,
    read_preferred_vae,
    read_sidecars,
    resolve_vae_name,
    split_words,
    training_tags,
    write_preferred_vae,
)

HOSTILE = '<img src=x onerror="alert(1)"> <a href="javascript:alert(2)">click</a>'

# Trimmed from a real civitai /api/v1/model-versions response as Civitai Helper saves it.
CIVITAI_INFO = {
    "id": 128713,
    "modelId": 4201,
    "name": "v6.0",
    "baseModel": "SD 1.5",
    "trainedWords": ["detailed eyes, masterpiece", "  best quality "],
    "model": {"name": "Realistic Vision V6.0 B1", "type": "Checkpoint", "nsfw": False},
    "files": [{"name": "realisticVisionV60B1_v60B1VAE.safetensors", "hashes": {"AutoV2": "E6BB9EA85A"}}],
    "description": "<p>Recommended: <b>DPM++ SDE Karras</b></p>",
}


def model(folder: Path, name: str = "model.safetensors") -> Path:
    path = folder / name
    path.write_bytes(b"not read by sidecars")
    return path


def test_no_sidecars_gives_empty_values(tmp_path: Path) -> None:
    assert read_sidecars(model(tmp_path)) == Sidecars()


def test_preview_png_is_preferred_then_the_other_a1111_names(tmp_path: Path) -> None:
    path = model(tmp_path, "detail.safetensors")
    (tmp_path / "detail.webp").write_bytes(b"webp")
    assert read_sidecars(path).preview == tmp_path / "detail.webp"
    (tmp_path / "detail.preview.jpeg").write_bytes(b"jpeg")
    assert read_sidecars(path).preview == tmp_path / "detail.preview.jpeg"
    (tmp_path / "detail.png").write_bytes(b"png")
    assert read_sidecars(path).preview == tmp_path / "detail.png"
    (tmp_path / "detail.preview.png").write_bytes(b"png")
    assert read_sidecars(path).preview == tmp_path / "detail.preview.png"
    # Another model's preview with a longer name is not this one's.
    other = model(tmp_path, "detail tweaker.safetensors")
    assert read_sidecars(other).preview is None


def test_a_diffusers_folder_uses_sidecars_named_after_the_folder(tmp_path: Path) -> None:
    folder = tmp_path / "sd15.fp16"
    folder.mkdir()
    (tmp_path / "sd15.fp16.preview.png").write_bytes(b"png")
    (tmp_path / "sd15.fp16.txt").write_text("the diffusers one", encoding="utf-8")
    sidecars = read_sidecars(folder)
    assert sidecars.preview == tmp_path / "sd15.fp16.preview.png"
    assert sidecars.notes == "the diffusers one"


def test_civitai_info_gives_trigger_words_base_model_and_page(tmp_path: Path) -> None:
    path = model(tmp_path, "realisticVision.safetensors")
    (tmp_path / "realisticVision.civitai.info").write_text(json.dumps(CIVITAI_INFO), encoding="utf-8")
    sidecars = read_sidecars(path)
    assert sidecars.trigger_words == ("detailed eyes", "masterpiece", "best quality")
    assert sidecars.base_model == "SD 1.5"
    assert sidecars.civitai_url == "https://civitai.com/models/4201?modelVersionId=128713"
    assert sidecars.civitai_name == "Realistic Vision V6.0 B1"
    assert sidecars.notes == ""  # civitai's HTML description is not a user note


def test_a1111_user_metadata_and_txt_description(tmp_path: Path) -> None:
    path = model(tmp_path, "style.safetensors")
    (tmp_path / "style.json").write_text(
        json.dumps(
            {
                "description": "Watercolour style",
                "sd version": "SDXL",
                "activation text": "wtrclr, paper texture",
                "preferred weight": 0.7,
                "notes": "works best at CFG 5",
            }
        ),
        encoding="utf-8",
    )
    (tmp_path / "style.txt").write_text("Old description\n", encoding="utf-8")
    sidecars = read_sidecars(path)
    assert sidecars.trigger_words == ("wtrclr", "paper texture")
    assert sidecars.base_model == "SDXL"
    assert sidecars.preferred_weight == 0.7
    assert sidecars.notes == "Watercolour style\n\nworks best at CFG 5\n\nOld description"


def test_civitai_words_come_first_and_duplicates_are_dropped(tmp_path: Path) -> None:
    path = model(tmp_path, "m.safetensors")
    (tmp_path / "m.civitai.info").write_text(json.dumps({"trainedWords": ["a, b"], "baseModel": "Pony"}))
    (tmp_path / "m.json").write_text(json.dumps({"activation text": "b, c", "sd version": "SD1"}))
    sidecars = read_sidecars(path)
    assert sidecars.trigger_words == ("a", "b", "c")
    assert sidecars.base_model == "Pony"  # civitai's own wording wins over A1111's coarse one


def test_bad_input_9_html_in_sidecars_is_kept_literally(tmp_path: Path) -> None:
    path = model(tmp_path, "evil.safetensors")
    info = {"trainedWords": [HOSTILE], "baseModel": HOSTILE, "modelId": 1}
    (tmp_path / "evil.civitai.info").write_text(json.dumps(info), encoding="utf-8")
    (tmp_path / "evil.json").write_text(json.dumps({"description": HOSTILE}), encoding="utf-8")
    sidecars = read_sidecars(path)
    assert sidecars.base_model == HOSTILE
    assert sidecars.notes == HOSTILE
    assert ", ".join(sidecars.trigger_words) == HOSTILE  # split at its comma-free parts, nothing escaped


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"[1, 2, 3]",
        b'"just a string"',
        b"null",
        b'{"trainedWords": {"a": 1}, "baseModel": 7, "modelId": "x", "id": true}',
        b'{"trainedWords": [1, null, ["nested"], {"x": 1}], "modelId": -4, "model": "not an object"}',
        b'{"trainedWords": ["ok", "\xff\xfe broken utf-8"], "modelId": 1.5}',
        b"[" * 100_000 + b"]" * 100_000,  # nesting deep enough to exhaust the JSON decoder
        b'{"modelId": 1' + b"0" * 5000 + b"}",  # an integer too long for Python to parse
        b"\x00\x01\x02\x03" * 1000,
    ],
    ids=["invalid", "array", "string", "null", "wrong-types", "wrong-items", "bad-utf8", "deep", "huge-int", "binary"],
)
def test_garbage_civitai_info_is_ignored_without_raising(tmp_path: Path, content: bytes) -> None:
    path = model(tmp_path, "m.safetensors")
    (tmp_path / "m.civitai.info").write_bytes(content)
    (tmp_path / "m.json").write_text(json.dumps({"activation text": "still read"}))
    sidecars = read_sidecars(path)
    assert sidecars.civitai_url == "" and sidecars.base_model == ""
    assert "still read" in sidecars.trigger_words
    assert all(isinstance(word, str) for word in sidecars.trigger_words)


def test_trained_words_with_invalid_utf8_keep_the_valid_ones(tmp_path: Path) -> None:
    path = model(tmp_path, "m.safetensors")
    (tmp_path / "m.civitai.info").write_bytes(b'{"trainedWords": ["good word", "bad \xff byte"], "modelId": "12"}')
    sidecars = read_sidecars(path)
    assert sidecars.trigger_words[0] == "good word"
    assert sidecars.trigger_words[1] == "bad \ufffd byte"
    assert sidecars.civitai_url == "https://civitai.com/models/12"


def test_huge_sidecars_are_not_parsed_and_text_is_cut(tmp_path: Path) -> None:
    path = model(tmp_path, "m.safetensors")
    padding = " " * (MAX_SIDECAR_BYTES + 10)
    (tmp_path / "m.civitai.info").write_text('{"baseModel": "SD 1.5"' + padding + "}", encoding="utf-8")
    (tmp_path / "m.txt").write_text("x" * (3 * MAX_SIDECAR_BYTES), encoding="utf-8")
    sidecars = read_sidecars(path)
    assert sidecars.base_model == ""
    assert len(sidecars.notes) == MAX_SIDECAR_BYTES


def test_a_sidecar_that_is_a_folder_or_unreadable_is_skipped(tmp_path: Path) -> None:
    path = model(tmp_path, "m.safetensors")
    (tmp_path / "m.civitai.info").mkdir()
    (tmp_path / "m.png").mkdir()
    assert read_sidecars(path) == Sidecars()
    assert read_sidecars(path, listing=FolderListing(tmp_path)) == Sidecars()


def test_bad_input_14_unicode_names_and_a_folder_listing_matching_case_insensitively(tmp_path: Path) -> None:
    path = model(tmp_path, "水彩 🎨, v1:2.safetensors")
    (tmp_path / "水彩 🎨, v1:2.PNG").write_bytes(b"png")
    (tmp_path / "水彩 🎨, v1:2.json").write_text(json.dumps({"activation text": "水彩画, 🎨"}), encoding="utf-8")
    listed = read_sidecars(path, listing=FolderListing(tmp_path))
    assert listed.preview == tmp_path / "水彩 🎨, v1:2.PNG"  # the name as it is on disk
    assert listed.trigger_words == ("水彩画", "🎨")
    assert FolderListing(tmp_path / "missing").find("anything") is None


def test_bad_input_10_display_metadata_cuts_long_values_and_hides_images() -> None:
    cover = "data:image/jpeg;base64," + "A" * 3_000_000
    tags = json.dumps({"10_style": {f"tag{i}": i for i in range(5000)}})
    metadata = {
        "ss_network_dim": "32",
        "ssmd_cover_images": json.dumps([cover]),
        "modelspec.thumbnail": cover,
        "ss_tag_frequency": tags,
        "ss_output_name": HOSTILE,
        "other_image": cover,
    }
    shown = dict(display_metadata(metadata))
    assert list(dict(display_metadata(metadata))) == sorted(metadata)
    assert shown["ss_network_dim"] == "32"
    assert shown["ssmd_cover_images"] == f"(image data, {len(json.dumps([cover]))} bytes)"
    assert shown["modelspec.thumbnail"] == shown["other_image"] == f"(image data, {len(cover)} bytes)"
    assert shown["ss_tag_frequency"] == tags[:2000] + f"… ({len(tags)} characters)"
    assert shown["ss_output_name"] == HOSTILE  # BAD_INPUTS 9: literal
    assert sum(len(value) for value in shown.values()) < 3000
    assert display_metadata({"k": "abcdef"}, limit=3) == (("k", "abc… (6 characters)"),)


def test_training_tags_sum_datasets_and_survive_garbage() -> None:
    frequency = {"10_cat": {"cat": 10, "sitting": 2}, "5_dog": {"cat": 1, "dog": 5, "bad": "x", "neg": -3, "yes": True}}
    assert training_tags({"ss_tag_frequency": json.dumps(frequency)}) == [("cat", 11), ("dog", 5), ("sitting", 2)]
    for garbage in ("", "{", "[1, 2]", '{"a": [1]}', '{"a": {"b": {"c": 1}}}', "NaN", '"text"'):
        assert training_tags({"ss_tag_frequency": garbage}) == []
    assert training_tags({}) == []


def test_trigger_words_from_metadata_and_helpers() -> None:
    assert metadata_trigger_words({"modelspec.trigger_phrase": "ohwx man, portrait"}) == ("ohwx man", "portrait")
    assert metadata_trigger_words({"ss_output_name": "not a trigger"}) == ()
    assert split_words(" , ,") == ()
    assert merge_trigger_words(["x", "y"], ("y",), ["z", "x"]) == ("x", "y", "z")


# --- a checkpoint's preferred VAE (A1111 1.6+ "vae" in name.json) ------------------------------

# What A1111's checkpoint user-metadata editor saves (json.dump(..., indent=4, ensure_ascii=False)).
A1111_CHECKPOINT_METADATA = {
    "description": "Mon modèle préféré <b>x</b>",
    "sd version": "SD1",
    "activation text": "",
    "preferred weight": 0,
    "notes": "用 DPM++ 2M Karras",
    "vae": "vae-ft-mse-840000-ema-pruned.safetensors",
}


def vae_folder(root: Path) -> list[Path]:
    folder = root / "VAE"
    (folder / "xl").mkdir(parents=True)
    files = [folder / "vae-ft-mse-840000-ema-pruned.safetensors", folder / "kl-f8-anime2.safetensors", folder / "xl" / "sdxl_vae.safetensors"]
    for file in files:
        file.write_bytes(b"vae")
    return files


def test_the_preferred_vae_is_read_as_a1111_writes_it(tmp_path: Path) -> None:
    vaes = vae_folder(tmp_path)
    checkpoint = model(tmp_path, "dreamshaper_8.safetensors")
    (tmp_path / "dreamshaper_8.json").write_text(json.dumps(A1111_CHECKPOINT_METADATA, indent=4), encoding="utf-8")

    assert read_sidecars(checkpoint).preferred_vae == "vae-ft-mse-840000-ema-pruned.safetensors"
    assert read_preferred_vae(checkpoint) == "vae-ft-mse-840000-ema-pruned.safetensors"
    assert preferred_vae(checkpoint, vaes) == PreferredVae("vae-ft-mse-840000-ema-pruned.safetensors", vaes[0])

    for written, read in (("Automatic", ""), ("None", "None"), (None, ""), (3, ""), ("  sdxl_vae ", "sdxl_vae")):
        (tmp_path / "dreamshaper_8.json").write_text(json.dumps({"vae": written}), encoding="utf-8")
        assert read_preferred_vae(checkpoint) == read, written
    assert preferred_vae(checkpoint, vaes) == PreferredVae("sdxl_vae", vaes[2])  # in a subfolder, without extension
    (tmp_path / "dreamshaper_8.json").write_text('{"vae": "None"}', encoding="utf-8")
    assert preferred_vae(checkpoint, vaes) == PreferredVae("None", None) and not PreferredVae("None").missing
    (tmp_path / "dreamshaper_8.json").write_text("{not json", encoding="utf-8")
    assert read_preferred_vae(checkpoint) == "" and read_sidecars(checkpoint).preferred_vae == ""
    assert read_preferred_vae(tmp_path / "no such model.safetensors") == ""


def test_a_preferred_vae_is_matched_by_file_name_with_or_without_extension(tmp_path: Path) -> None:
    vaes = vae_folder(tmp_path)
    assert resolve_vae_name("kl-f8-anime2.safetensors", vaes) == vaes[1]
    assert resolve_vae_name("kl-f8-anime2", vaes) == vaes[1]
    assert resolve_vae_name("kl-f8-anime2.ckpt", vaes) == vaes[1]  # converted to .safetensors when installed
    assert resolve_vae_name("KL-F8-Anime2.PT", vaes) == vaes[1]
    exact = tmp_path / "VAE" / "KL-F8-Anime2.safetensors"
    assert resolve_vae_name("KL-F8-Anime2.safetensors", [*vaes, exact]) == exact  # exact case first
    gone = preferred_vae(model(tmp_path), vaes)
    assert gone == PreferredVae() and not gone.missing
    missing = PreferredVae("orangemix.vae.pt", resolve_vae_name("orangemix.vae.pt", vaes))
    assert missing.path is None and missing.missing
    assert resolve_vae_name("Automatic", vaes) is None and resolve_vae_name("", vaes) is None


def test_writing_the_preferred_vae_keeps_every_other_key(tmp_path: Path) -> None:
    checkpoint = model(tmp_path, "dreamshaper_8.safetensors")
    sidecar = tmp_path / "dreamshaper_8.json"
    sidecar.write_text(json.dumps(A1111_CHECKPOINT_METADATA, indent=4, ensure_ascii=False), encoding="utf-8")
    sidecar.chmod(0o640)

    assert write_preferred_vae(checkpoint, "kl-f8-anime2.safetensors") == sidecar
    written = json.loads(sidecar.read_text(encoding="utf-8"))
    assert written == {**A1111_CHECKPOINT_METADATA, "vae": "kl-f8-anime2.safetensors"}
    assert list(written) == list(A1111_CHECKPOINT_METADATA)  # same order
    assert "用 DPM++ 2M Karras" in sidecar.read_text(encoding="utf-8")  # UTF-8, not \u escapes, as A1111
    assert sidecar.stat().st_mode & 0o777 == 0o640
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".")] == []  # no temporary left
    assert read_sidecars(checkpoint).notes == "Mon modèle préféré <b>x</b>\n\n用 DPM++ 2M Karras"

    assert write_preferred_vae(checkpoint, "") == sidecar  # no preference: A1111's "Automatic"
    assert json.loads(sidecar.read_text(encoding="utf-8"))["vae"] == "Automatic"
    assert write_preferred_vae(checkpoint, "") is None  # nothing to change: not rewritten
    assert read_preferred_vae(checkpoint) == ""


def test_writing_creates_the_sidecar_only_when_there_is_a_preference(tmp_path: Path) -> None:
    checkpoint = model(tmp_path, "anything.safetensors")
    assert write_preferred_vae(checkpoint, "") is None and not (tmp_path / "anything.json").exists()
    assert write_preferred_vae(checkpoint, "None") == tmp_path / "anything.json"
    assert json.loads((tmp_path / "anything.json").read_text(encoding="utf-8")) == {"vae": "None"}
    # A diffusers folder's sidecar is named after the folder.
    folder = tmp_path / "sd15.fp16"
    folder.mkdir()
    assert write_preferred_vae(folder, "vae.safetensors") == tmp_path / "sd15.fp16.json"
    assert read_preferred_vae(folder) == "vae.safetensors"
    # An existing file without "vae" already means Automatic.
    (tmp_path / "other.json").write_text('{"notes": "n"}', encoding="utf-8")
    assert write_preferred_vae(model(tmp_path, "other.safetensors"), "") is None


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"{\"notes\": \"unfinished", "not valid JSON (line 1"),
        (b"[\"a list\"]", "holds a JSON list"),
        (b"{\"notes\": \"caf\xe9\"}", "not UTF-8"),
        (b"{\"vae\": \"a\", \"vae\": \"b\"}", "has the key 'vae' twice"),
        (b"{\"notes\": " + b"[" * 100_000 + b"]" * 100_000 + b"}", "can read back exactly"),
        (b" " * (MAX_SIDECAR_BYTES + 1), "larger than 1 MB"),
    ],
)
def test_a_sidecar_that_cannot_be_read_back_exactly_is_never_overwritten(tmp_path: Path, content: bytes, problem: str) -> None:
    checkpoint = model(tmp_path, "mine.safetensors")
    sidecar = tmp_path / "mine.json"
    sidecar.write_bytes(content)
    with pytest.raises(UserInputError, match=re.escape(problem)) as raised:
        write_preferred_vae(checkpoint, "kl-f8-anime2.safetensors")
    assert "mine.json" in str(raised.value) and "left unchanged" in str(raised.value)
    assert sidecar.read_bytes() == content


def test_an_empty_sidecar_is_replaced_and_a_linked_one_is_written_through(tmp_path: Path) -> None:
    checkpoint = model(tmp_path, "mine.safetensors")
    (tmp_path / "mine.json").write_bytes(b"\xef\xbb\xbf  \n")  # a BOM and whitespace: nothing to keep
    write_preferred_vae(checkpoint, "x.safetensors")
    assert json.loads((tmp_path / "mine.json").read_text(encoding="utf-8")) == {"vae": "x.safetensors"}

    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "notes.json").write_text('{"notes": "kept"}', encoding="utf-8")
    linked = model(tmp_path, "linked.safetensors")
    (tmp_path / "linked.json").symlink_to(shared / "notes.json")
    write_preferred_vae(linked, "x.safetensors")
    assert (tmp_path / "linked.json").is_symlink()
    assert json.loads((shared / "notes.json").read_text(encoding="utf-8")) == {"notes": "kept", "vae": "x.safetensors"}


def test_a_sidecar_that_cannot_be_written_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "not a folder").write_text("a file where the model's folder should be", encoding="utf-8")
    with pytest.raises(DesktopError, match="m.json could not be saved"):
        write_preferred_vae(tmp_path / "not a folder" / "m.safetensors", "x.safetensors")
