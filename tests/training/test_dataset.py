"""Scanning a training folder the way kohya does: repeats, captions, regularisation, buckets, bad files.

Every test writes real image files with Pillow into ``tmp_path``; nothing is mocked.
"""

from __future__ import annotations

import random
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from desktop.core.errors import DesktopError, UserInputError
from desktop.training.buckets import (
    assign_bucket,
    assign_bucket_no_upscale,
    crop_plan,
    epoch_batches,
    make_buckets,
)
from desktop.training.dataset import (
    Dataset,
    DatasetError,
    DatasetOptions,
    make_caption,
    scan_dataset,
    with_trigger_word,
)

# kohya sd-scripts' make_bucket_resolutions((512, 512), 256, 1024, 64), sorted.
KOHYA_BUCKETS_512 = (
    (256, 832), (256, 896), (256, 960), (256, 1024), (320, 704), (320, 768), (384, 640), (448, 576),
    (512, 512), (576, 448), (640, 384), (704, 320), (768, 320), (832, 256), (896, 256), (960, 256), (1024, 256),
)  # fmt: skip


def write_image(path: Path, size: tuple[int, int] = (512, 512), color=(180, 90, 40), mode: str = "RGB", **save) -> Path:
    """A solid image file (format from the suffix), parent folders created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path, **save)
    return path


def write_caption(image: Path, text: str, extension: str = ".txt", encoding: str = "utf-8") -> Path:
    path = image.with_suffix(extension)
    path.write_bytes(text.encode(encoding))
    return path


def options_for(folder: Path, **overrides) -> DatasetOptions:
    return DatasetOptions(train_data_dir=folder, **overrides)


def captions_by_name(dataset: Dataset) -> dict[str, str]:
    return {item.path.name: item.caption for item in dataset.items}


# --- repeats and steps ---------------------------------------------------------------------------


def test_repeat_folders_set_repeats_and_root_images_count_once(tmp_path):
    for name in ("a.png", "b.png"):
        write_image(tmp_path / "10_mychar woman" / name)
    write_image(tmp_path / "2_style" / "c.jpg")
    write_image(tmp_path / "d.png")

    dataset = scan_dataset(options_for(tmp_path))

    repeats = {item.path.name: item.repeats for item in dataset.items}
    assert repeats == {"a.png": 10, "b.png": 10, "c.jpg": 2, "d.png": 1}
    assert dataset.image_count == 4
    assert dataset.repeated_count == 23
    assert dataset.steps_per_epoch(1) == 23
    assert dataset.dataset_dirs() == {
        tmp_path.name: {"n_repeats": 1, "img_count": 1},
        "10_mychar woman": {"n_repeats": 10, "img_count": 2},
        "2_style": {"n_repeats": 2, "img_count": 1},
    }


def test_steps_per_epoch_cut_batches_within_each_bucket(tmp_path):
    """25 square visits and 10 landscape ones at batch 4: ceil(25/4) + ceil(10/4) = 7 + 3, not ceil(35/4) = 9."""
    for index in range(5):
        write_image(tmp_path / "5_square" / f"{index}.png")
    write_image(tmp_path / "10_wide" / "wide.png", size=(768, 512))

    dataset = scan_dataset(options_for(tmp_path))

    assert dataset.bucket_counts() == {(512, 512): 25, (640, 384): 10}
    assert dataset.steps_per_epoch(4) == 10
    assert len(epoch_batches(dataset, epoch=0, batch_size=4, seed=1)) == 10


def test_images_are_found_case_insensitively_and_hidden_files_are_ignored(tmp_path):
    write_image(tmp_path / "1_x" / "UPPER.PNG")
    write_image(tmp_path / "1_x" / "photo.JPeG")
    write_image(tmp_path / "1_x" / "pic.webp")
    write_image(tmp_path / "1_x" / "old.bmp")
    write_image(tmp_path / "1_x" / "._photo.jpg")  # AppleDouble companion
    (tmp_path / "1_x" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    write_image(tmp_path / "__MACOSX" / "1_x" / "ghost.png")

    dataset = scan_dataset(options_for(tmp_path))

    assert sorted(item.path.name for item in dataset.items) == ["UPPER.PNG", "old.bmp", "photo.JPeG", "pic.webp"]
    assert dataset.warnings == ("4 of 4 training images without a caption (.txt or .caption file next to it): "
                                "captioned with the folder's name and the trigger word instead.",)  # fmt: skip


def test_folders_without_a_repeat_count_are_skipped_with_a_warning(tmp_path):
    write_image(tmp_path / "3_ok" / "a.png")
    write_image(tmp_path / "misc" / "b.png")
    write_image(tmp_path / "0_none" / "c.png")
    (tmp_path / "notes").mkdir()  # no images: not worth a warning

    dataset = scan_dataset(options_for(tmp_path))

    assert [item.path.name for item in dataset.items] == ["a.png"]
    assert any("'misc' skipped" in warning and "10_misc" in warning for warning in dataset.warnings)
    assert any("'0_none' skipped: 0 repeats" in warning for warning in dataset.warnings)
    assert not any("notes" in warning for warning in dataset.warnings)


def test_progress_reports_every_image(tmp_path):
    for index in range(3):
        write_image(tmp_path / f"{index}.png")
    calls = []

    scan_dataset(options_for(tmp_path), progress=lambda done, total: calls.append((done, total)))

    assert calls == [(1, 3), (2, 3), (3, 3)]


# --- captions ------------------------------------------------------------------------------------


def test_captions_come_from_txt_caption_folder_and_trigger_word(tmp_path):
    folder = tmp_path / "5_mychar woman"
    write_caption(write_image(folder / "txt.png"), "red hair, smile")
    write_caption(write_image(folder / "cap.png"), "blue dress", extension=".caption")
    write_image(folder / "none.png")
    write_image(tmp_path / "root.png")

    plain = captions_by_name(scan_dataset(options_for(tmp_path)))
    triggered = captions_by_name(scan_dataset(options_for(tmp_path, trigger_word="mychar")))

    assert plain == {"txt.png": "red hair, smile", "cap.png": "blue dress", "none.png": "mychar woman", "root.png": ""}
    assert triggered == {
        "txt.png": "mychar, red hair, smile",
        "cap.png": "mychar, blue dress",
        "none.png": "mychar woman",  # already says it
        "root.png": "mychar",
    }


def test_configured_caption_extension_wins_over_the_fallbacks(tmp_path):
    image = write_image(tmp_path / "a.png")
    write_caption(image, "from txt")
    write_caption(image, "from caption", extension=".caption")

    assert captions_by_name(scan_dataset(options_for(tmp_path)))["a.png"] == "from txt"
    assert captions_by_name(scan_dataset(options_for(tmp_path, caption_extension="caption")))["a.png"] == "from caption"


def test_caption_files_drop_the_bom_collapse_whitespace_and_match_any_case(tmp_path):
    write_caption(write_image(tmp_path / "a.png"), "\ufeff  1girl,\n  long   hair\r\n\tsmile \n")
    upper = write_image(tmp_path / "b.png")
    (tmp_path / "B.TXT").write_text("shouted caption", encoding="utf-8")

    captions = captions_by_name(scan_dataset(options_for(tmp_path)))

    assert captions == {"a.png": "1girl, long hair smile", "b.png": "shouted caption"}
    assert upper.exists()


def test_a_caption_that_is_not_utf8_is_reported_and_replaced_by_the_folder_name(tmp_path):
    write_caption(write_image(tmp_path / "2_cafe" / "a.png"), "caf\xe9 au lait", encoding="latin-1")

    dataset = scan_dataset(options_for(tmp_path))

    assert captions_by_name(dataset) == {"a.png": "cafe"}
    assert any("'a.txt'" in warning and "not UTF-8" in warning for warning in dataset.warnings)


def test_images_without_captions_are_counted_in_one_warning(tmp_path):
    """BAD_INPUTS (training): images without captions fall back to the folder name / trigger word."""
    write_caption(write_image(tmp_path / "3_dog" / "a.png"), "dog, grass")
    write_image(tmp_path / "3_dog" / "b.png")
    write_image(tmp_path / "3_dog" / "c.png")
    write_caption(write_image(tmp_path / "3_dog" / "d.png"), "   \n")  # empty file: no caption either

    dataset = scan_dataset(options_for(tmp_path, trigger_word="sks"))

    assert captions_by_name(dataset) == {"a.png": "sks, dog, grass", "b.png": "sks, dog", "c.png": "sks, dog", "d.png": "sks, dog"}
    assert [warning for warning in dataset.warnings if "without a caption" in warning] == [
        "3 of 4 training images without a caption (.txt or .caption file next to it): "
        "captioned with the folder's name and the trigger word instead."
    ]
    assert [item.captioned for item in dataset.items] == [True, False, False, False]
    assert [item.caption_file.name if item.caption_file else None for item in dataset.items] == ["a.txt", None, None, "d.txt"]


def test_trigger_word_is_matched_as_a_whole_word_in_any_case():
    assert with_trigger_word("photo of MyChar at the beach", "mychar") == "photo of MyChar at the beach"
    assert with_trigger_word("mycharacter, smile", "mychar") == "mychar, mycharacter, smile"
    assert with_trigger_word("a, b", "ohwx", separator=";") == "ohwx; a, b"
    assert with_trigger_word("a, b", "") == "a, b"


def test_chinese_and_emoji_names_and_captions(tmp_path):
    image = write_image(tmp_path / "3_中文 角色" / "猫🐱 照片.png")
    write_caption(image, "一只猫, 🐱, 可爱")
    write_image(tmp_path / "3_中文 角色" / "无字幕.jpg")

    dataset = scan_dataset(options_for(tmp_path))

    assert captions_by_name(dataset) == {"猫🐱 照片.png": "一只猫, 🐱, 可爱", "无字幕.jpg": "中文 角色"}
    assert dataset.tag_frequency["3_中文 角色"] == {"一只猫": 1, "🐱": 1, "可爱": 1, "中文 角色": 1}


# --- caption processing --------------------------------------------------------------------------


CAPTION = "mychar, red hair, smile, outdoors, blue sky, dress"


def test_without_shuffle_or_dropout_the_caption_is_unchanged():
    options = options_for(Path("."))
    assert make_caption("a,b ,  c", options, random.Random(0)) == "a,b ,  c"


def test_shuffle_keeps_the_first_keep_tokens_in_place():
    options = options_for(Path("."), shuffle_caption=True, keep_tokens=2)
    results = {make_caption(CAPTION, options, random.Random(seed)) for seed in range(30)}

    assert len(results) > 5  # it does shuffle
    for result in results:
        tokens = result.split(", ")
        assert tokens[:2] == ["mychar", "red hair"]
        assert sorted(tokens[2:]) == sorted(["smile", "outdoors", "blue sky", "dress"])


def test_shuffle_is_deterministic_for_a_given_generator():
    options = options_for(Path("."), shuffle_caption=True, keep_tokens=1)
    assert make_caption(CAPTION, options, random.Random(7)) == make_caption(CAPTION, options, random.Random(7))


def test_the_trigger_word_counts_as_a_kept_token():
    """kohya users put the trigger first and set keep_tokens=1; with a trigger word it stays first even at 0."""
    options = options_for(Path("."), trigger_word="mychar", shuffle_caption=True, keep_tokens=0)
    assert all(make_caption(CAPTION, options, random.Random(seed)).startswith("mychar, ") for seed in range(30))
    two = options_for(Path("."), trigger_word="mychar", shuffle_caption=True, keep_tokens=2)
    assert all(make_caption(CAPTION, two, random.Random(seed)).startswith("mychar, red hair, ") for seed in range(30))


def test_caption_dropout_rates_zero_and_one():
    never = options_for(Path("."), caption_dropout_rate=0.0)
    always = options_for(Path("."), caption_dropout_rate=1.0)
    assert all(make_caption(CAPTION, never, random.Random(seed)) == CAPTION for seed in range(20))
    assert all(make_caption(CAPTION, always, random.Random(seed)) == "" for seed in range(20))


def test_tag_dropout_drops_only_the_tokens_that_are_not_kept():
    all_tags = options_for(Path("."), caption_tag_dropout_rate=1.0, keep_tokens=1)
    no_tags = options_for(Path("."), caption_tag_dropout_rate=0.0, shuffle_caption=False)
    half = options_for(Path("."), caption_tag_dropout_rate=0.5, keep_tokens=1)

    assert make_caption(CAPTION, all_tags, random.Random(0)) == "mychar"
    assert make_caption(CAPTION, no_tags, random.Random(0)) == CAPTION
    lengths = {len(make_caption(CAPTION, half, random.Random(seed)).split(", ")) for seed in range(40)}
    assert min(lengths) >= 1 and len(lengths) > 2


def test_tag_frequency_counts_lower_cased_tags_per_folder(tmp_path):
    write_caption(write_image(tmp_path / "2_a" / "1.png"), "Red Hair, smile")
    write_caption(write_image(tmp_path / "2_a" / "2.png"), "red hair, , outdoors")
    write_caption(write_image(tmp_path / "1_b" / "3.png"), "smile")

    dataset = scan_dataset(options_for(tmp_path))

    assert dataset.tag_frequency == {"1_b": {"smile": 1}, "2_a": {"red hair": 2, "smile": 1, "outdoors": 1}}


# --- regularisation ------------------------------------------------------------------------------


def test_regularisation_images_are_balanced_to_the_training_visits(tmp_path):
    """kohya: 2 images x 5 repeats = 10 visits; 3 reg images of 1 repeat get 4, 3, 3."""
    for name in ("a.png", "b.png"):
        write_image(tmp_path / "train" / "5_sks dog" / name)
    for name in ("r1.png", "r2.png", "r3.png"):
        write_image(tmp_path / "reg" / "1_dog" / name)

    dataset = scan_dataset(options_for(tmp_path / "train", reg_data_dir=tmp_path / "reg", prior_loss_weight=0.5))

    reg = [item for item in dataset.items if item.is_reg]
    assert [(item.path.name, item.repeats, item.loss_weight, item.caption) for item in reg] == [
        ("r1.png", 4, 0.5, "dog"),
        ("r2.png", 3, 0.5, "dog"),
        ("r3.png", 3, 0.5, "dog"),
    ]
    assert all(item.loss_weight == 1.0 for item in dataset.items if not item.is_reg)
    assert (dataset.image_count, dataset.reg_image_count, dataset.repeated_count) == (2, 3, 20)
    assert dataset.dataset_dirs(is_reg=True) == {"1_dog": {"n_repeats": 1, "img_count": 3}}


def test_surplus_regularisation_images_are_cut_with_a_note(tmp_path):
    write_image(tmp_path / "train" / "2_x" / "a.png")
    for index in range(5):
        write_image(tmp_path / "reg" / "1_y" / f"r{index}.png")

    dataset = scan_dataset(options_for(tmp_path / "train", reg_data_dir=tmp_path / "reg"))

    assert [(item.path.name, item.repeats) for item in dataset.items if item.is_reg] == [("r0.png", 1), ("r1.png", 1)]
    assert any("Using 2 of 5 regularisation images" in warning for warning in dataset.warnings)


def test_an_empty_regularisation_folder_is_a_warning_and_a_missing_one_an_error(tmp_path):
    write_image(tmp_path / "train" / "a.png")
    (tmp_path / "reg").mkdir()

    dataset = scan_dataset(options_for(tmp_path / "train", reg_data_dir=tmp_path / "reg"))
    assert dataset.reg_image_count == 0
    assert any("No usable regularisation images" in warning for warning in dataset.warnings)

    with pytest.raises(DatasetError, match="Regularisation folder .*missing"):
        scan_dataset(options_for(tmp_path / "train", reg_data_dir=tmp_path / "missing"))


# --- buckets -------------------------------------------------------------------------------------


def test_bucket_list_is_kohyas_for_512():
    assert make_buckets((512, 512), 256, 1024, 64) == KOHYA_BUCKETS_512
    assert all(width * height <= 512 * 512 for width, height in KOHYA_BUCKETS_512)


def test_bucket_list_for_sdxl_keeps_the_area_and_the_limits():
    buckets = make_buckets((1024, 1024), 512, 2048, 64)
    assert (1024, 1024) in buckets and (1216, 832) in buckets and (832, 1216) in buckets
    assert all(width * height <= 1024 * 1024 and 512 <= min(width, height) for width, height in buckets)


def test_buckets_are_chosen_by_the_closest_aspect_ratio():
    assert assign_bucket(768, 512, KOHYA_BUCKETS_512) == (640, 384)  # 1.5 -> 1.67 beats 1.29
    assert assign_bucket(512, 768, KOHYA_BUCKETS_512) == (384, 640)
    assert assign_bucket(3000, 3000, KOHYA_BUCKETS_512) == (512, 512)
    assert assign_bucket(448, 576, KOHYA_BUCKETS_512) == (448, 576)  # exactly a bucket
    assert assign_bucket(5000, 100, KOHYA_BUCKETS_512) == (1024, 256)


def test_no_upscale_buckets_never_exceed_the_image():
    assert assign_bucket_no_upscale(300, 400, 512 * 512) == (256, 384)  # small: only cropped to steps of 64
    assert assign_bucket_no_upscale(2000, 1000, 512 * 512) == (640, 320)  # large: scaled to the area first
    width, height = assign_bucket_no_upscale(4032, 3024, 512 * 512)
    assert width * height <= 512 * 512 and width % 64 == height % 64 == 0


def test_scan_assigns_buckets_from_the_options(tmp_path):
    write_image(tmp_path / "wide.png", size=(768, 512))
    write_image(tmp_path / "small.png", size=(300, 400))

    def buckets(**overrides) -> dict[str, tuple[int, int]]:
        return {item.path.name: item.bucket for item in scan_dataset(options_for(tmp_path, **overrides)).items}

    assert buckets() == {"wide.png": (640, 384), "small.png": (448, 576)}
    assert buckets(bucket_no_upscale=True) == {"wide.png": (576, 384), "small.png": (256, 384)}
    assert buckets(enable_bucket=False) == {"wide.png": (512, 512), "small.png": (512, 512)}


def test_crop_plan_covers_the_bucket_and_mirrors_the_crop_when_flipped():
    plan = crop_plan((768, 512), (640, 384))
    assert (plan.resized_size, plan.box, plan.crop_top_left) == ((640, 427), (0, 21, 640, 405), (21, 0))
    odd = crop_plan((1001, 384), (640, 384), flip=True)
    assert (odd.left, odd.crop_top_left) == (180, (0, 181))


# --- epochs --------------------------------------------------------------------------------------


def _mixed_dataset(folder: Path, **overrides) -> Dataset:
    for index in range(3):
        write_image(folder / "4_square" / f"s{index}.png")
    for index in range(2):
        write_image(folder / "3_wide" / f"w{index}.png", size=(768, 512))
    write_image(folder / "2_tall" / "t.png", size=(512, 768))
    return scan_dataset(options_for(folder, **overrides))


def test_epoch_batches_visit_every_repeat_once_with_one_bucket_per_batch(tmp_path):
    dataset = _mixed_dataset(tmp_path)

    batches = epoch_batches(dataset, epoch=3, batch_size=4, seed=42)

    visits = sorted((ref.item, ref.repeat) for batch in batches for ref in batch)
    expected = sorted((index, repeat) for index, item in enumerate(dataset.items) for repeat in range(item.repeats))
    assert visits == expected
    assert all(len({dataset.items[ref.item].bucket for ref in batch}) == 1 for batch in batches)
    assert all(1 <= len(batch) <= 4 for batch in batches)
    assert len(batches) == dataset.steps_per_epoch(4) == 3 + 2 + 1
    assert not any(ref.flip for batch in batches for ref in batch)


def test_epoch_batches_are_deterministic_and_differ_between_epochs(tmp_path):
    dataset = _mixed_dataset(tmp_path, flip_aug=True)

    first = epoch_batches(dataset, epoch=1, batch_size=2, seed=7)

    assert first == epoch_batches(dataset, epoch=1, batch_size=2, seed=7)
    assert first != epoch_batches(dataset, epoch=2, batch_size=2, seed=7)
    assert first != epoch_batches(dataset, epoch=1, batch_size=2, seed=8)
    flips = [ref.flip for batch in first for ref in batch]
    assert any(flips) and not all(flips)


# --- bad datasets --------------------------------------------------------------------------------


def test_a_missing_or_empty_folder_is_a_dataset_error_naming_it(tmp_path):
    with pytest.raises(DatasetError, match="does not exist") as missing:
        scan_dataset(options_for(tmp_path / "nope"))
    (tmp_path / "empty" / "10_x").mkdir(parents=True)
    (tmp_path / "empty" / ".DS_Store").write_bytes(b"junk")
    with pytest.raises(DatasetError, match="No images") as empty:
        scan_dataset(options_for(tmp_path / "empty"))

    assert str(tmp_path / "nope") in str(missing.value)
    assert str(tmp_path / "empty") in str(empty.value)
    assert isinstance(empty.value, UserInputError) and isinstance(empty.value, DesktopError)
    assert empty.value.code == "dataset"


def _truncated(path: Path, keep: float = 0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def _noise_image(path: Path, size=(512, 512)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.frombytes("RGB", size, random.Random(0).randbytes(size[0] * size[1] * 3)).save(path)
    return path


def test_unreadable_files_are_skipped_each_with_a_warning_naming_it(tmp_path):
    """BAD_INPUTS (training): corrupt and truncated images, and a text file named .png, are skipped."""
    folder = tmp_path / "2_set"
    write_image(folder / "good.png")
    (folder / "notes.png").write_text("this is not an image", encoding="utf-8")
    (folder / "garbage.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8)
    _truncated(_noise_image(folder / "cut.png"))
    _truncated(_noise_image(folder / "cut.jpg"))
    (folder / "empty.webp").write_bytes(b"")

    dataset = scan_dataset(options_for(tmp_path))

    assert [item.path.name for item in dataset.items] == ["good.png"]
    for name in ("notes.png", "garbage.jpg", "cut.png", "cut.jpg", "empty.webp"):
        assert any(warning.startswith(f"Skipped '2_set/{name}': ") for warning in dataset.warnings), name


def test_header_only_scan_misses_truncation_but_still_rejects_non_images(tmp_path):
    """check_pixels=False is the dataset picker's instant scan; the trainer's full scan catches the rest."""
    _truncated(_noise_image(tmp_path / "cut.jpg"), keep=0.6)
    (tmp_path / "notes.png").write_text("text", encoding="utf-8")

    dataset = scan_dataset(options_for(tmp_path), check_pixels=False)

    assert [item.path.name for item in dataset.items] == ["cut.jpg"]
    with pytest.raises(DatasetError, match="None of the images") as error:
        scan_dataset(options_for(tmp_path))
    assert "cut.jpg" in str(error.value) and "notes.png" in str(error.value)
    assert len(error.value.details["warnings"]) == 2


def test_tiny_images_are_skipped(tmp_path):
    """BAD_INPUTS (training): under 64 px on a side, or under the smallest bucket side both ways."""
    write_image(tmp_path / "ok_thin.png", size=(256, 64))
    write_image(tmp_path / "icon.png", size=(32, 32))
    write_image(tmp_path / "thumb.png", size=(200, 200))
    write_image(tmp_path / "sliver.png", size=(1024, 40))

    dataset = scan_dataset(options_for(tmp_path))

    assert [item.path.name for item in dataset.items] == ["ok_thin.png"]
    for name, size in (("icon.png", "32x32"), ("thumb.png", "200x200"), ("sliver.png", "1024x40")):
        assert any(f"/{name}': {size} pixels is too small" in warning for warning in dataset.warnings)


def write_png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG that declares a size and holds no pixels: cheap to make, costly only if someone decodes it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))
    return path


def test_images_over_the_pixel_limit_are_refused_without_decoding(tmp_path):
    """BAD_INPUTS (training): a 20000x20000 (or 100000x100000) declared size is a warning, not a 1 GB allocation."""
    write_image(tmp_path / "ok.png")
    write_png_header_only(tmp_path / "bomb.png", 20000, 20000)
    write_png_header_only(tmp_path / "bigger.png", 100000, 100000)

    dataset = scan_dataset(options_for(tmp_path))

    assert [item.path.name for item in dataset.items] == ["ok.png"]
    assert sum("too large" in warning and "megapixels" in warning for warning in dataset.warnings) == 2


def test_bad_options_are_rejected_with_the_option_named(tmp_path):
    for overrides, name in (
        ({"resolution": (500, 512)}, "resolution"),
        ({"caption_dropout_rate": 1.5}, "caption_dropout_rate"),
        ({"min_bucket_reso": 2048}, "min_bucket_reso"),
        ({"resolution": 2048}, "max_bucket_reso"),
        ({"keep_tokens": -1}, "keep_tokens"),
        ({"bucket_reso_steps": 12}, "bucket_reso_steps"),
    ):
        with pytest.raises(DatasetError, match=name):
            options_for(tmp_path, **overrides)


def test_options_accept_kohya_resolution_spellings(tmp_path):
    assert options_for(tmp_path, resolution=768).resolution == (768, 768)
    assert options_for(tmp_path, resolution="1024,768").resolution == (1024, 768)
    assert options_for(tmp_path, resolution=[640, 512]).resolution == (640, 512)
    assert options_for(str(tmp_path), reg_data_dir="").reg_data_dir is None  # type: ignore[arg-type]
