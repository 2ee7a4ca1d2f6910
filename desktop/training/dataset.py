"""A training folder read the way kohya sd-scripts reads it: repeat folders, captions, buckets.

Layout (kohya's DreamBooth style)::

    train_data_dir/
        10_mychar woman/    every image here is seen 10 times an epoch; "mychar woman" is the
            a.png           caption of images that have no a.txt / a.caption next to them
            a.txt
        b.jpg               images directly in the folder count once

A regularisation folder has the same layout; its images are balanced to the number of training
visits per epoch, as kohya does, and weighted by ``prior_loss_weight``.

Only image headers are read here (plus, by default, a cheap integrity check: PNG chunk CRCs, JPEG
decoded at 1/8 scale), so a folder of big photos scans quickly and a broken file is reported by
name before training starts, not hours into it. This module imports Pillow but no torch or numpy:
the UI uses it to show counts and steps per epoch.
"""

from __future__ import annotations

import random
import re
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from desktop.core.errors import UserInputError
from desktop.training.config import TrainingConfig
from desktop.training.buckets import (
    Size,
    assign_bucket,
    assign_bucket_no_upscale,
    batch_count,
    make_buckets,
)

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp"})
# The decoders Pillow may use: a file called .png that is really EPS must not reach Ghostscript.
PIL_FORMATS = ("PNG", "JPEG", "WEBP", "BMP")  # JPEG also opens multi-picture (MPO) files
CAPTION_FALLBACKS = (".caption", ".txt")
MIN_IMAGE_SIDE = 64
# Pillow's own refusal threshold (twice its warning limit), fixed here so that nothing depends on
# the process-wide Image.MAX_IMAGE_PIXELS: 178 megapixels, about 540 MB of RGB once decoded.
MAX_IMAGE_PIXELS = 2 * 89_478_485
EXIF_ORIENTATION = 0x0112
IGNORED_NAMES = frozenset({"__MACOSX", "Thumbs.db", "desktop.ini"})

_REPEAT_FOLDER = re.compile(r"^(\d+)_(.*)$", re.DOTALL)


class DatasetError(UserInputError):
    """The training images cannot be used: missing or empty folder, no usable image, bad options."""

    code = "dataset"


class UnusableImage(Exception):
    """One image file cannot be trained on; ``reason`` completes "'name.png' ..." for a warning."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class DatasetOptions:
    """The dataset part of a training config, under kohya's option names and defaults."""

    train_data_dir: Path
    reg_data_dir: Path | None = None
    resolution: Size = (512, 512)  # (width, height)
    enable_bucket: bool = True
    min_bucket_reso: int = 256
    max_bucket_reso: int = 1024
    bucket_reso_steps: int = 64
    bucket_no_upscale: bool = False
    caption_extension: str = ".txt"
    trigger_word: str = ""
    shuffle_caption: bool = False
    keep_tokens: int = 0
    caption_separator: str = ","
    caption_dropout_rate: float = 0.0
    caption_tag_dropout_rate: float = 0.0
    flip_aug: bool = False
    prior_loss_weight: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "train_data_dir", Path(self.train_data_dir))
        if self.reg_data_dir is not None and str(self.reg_data_dir) != "":
            object.__setattr__(self, "reg_data_dir", Path(self.reg_data_dir))
        else:
            object.__setattr__(self, "reg_data_dir", None)
        object.__setattr__(self, "resolution", _as_size(self.resolution))
        extension = self.caption_extension.strip()
        object.__setattr__(self, "caption_extension", extension if extension.startswith(".") else "." + extension)
        object.__setattr__(self, "trigger_word", self.trigger_word.strip())
        for problem in _option_problems(self):
            raise DatasetError(problem, option=problem.split(" ", 1)[0])

    @property
    def caption_extensions(self) -> tuple[str, ...]:
        """The sidecar suffixes tried in order: the configured one, then ``.caption`` and ``.txt``."""
        return tuple(dict.fromkeys((self.caption_extension.lower(), *CAPTION_FALLBACKS)))


def options_from_config(config: TrainingConfig) -> DatasetOptions:
    """The dataset part of a training run's settings (the trainer and the window's summary share it)."""
    return DatasetOptions(
        train_data_dir=Path(config.train_data_dir), reg_data_dir=Path(config.reg_data_dir) if config.reg_data_dir else None,
        resolution=config.resolution, enable_bucket=config.enable_bucket, min_bucket_reso=config.min_bucket_reso,
        max_bucket_reso=config.max_bucket_reso, bucket_reso_steps=config.bucket_reso_steps,
        bucket_no_upscale=config.bucket_no_upscale, caption_extension=config.caption_extension,
        trigger_word=config.trigger_word, shuffle_caption=config.shuffle_caption, keep_tokens=config.keep_tokens,
        caption_separator=config.caption_separator, caption_dropout_rate=config.caption_dropout_rate,
        caption_tag_dropout_rate=config.caption_tag_dropout_rate, flip_aug=config.flip_aug,
        prior_loss_weight=config.prior_loss_weight,
    )  # fmt: skip


def _as_size(value: object) -> Size:
    if isinstance(value, int):
        return (value, value)
    if isinstance(value, str):
        value = [part for part in re.split(r"[,x ]+", value.strip()) if part]
    parts = tuple(int(part) for part in value)  # type: ignore[union-attr]
    if len(parts) == 1:
        return (parts[0], parts[0])
    if len(parts) != 2:
        raise DatasetError(f"resolution must be one or two numbers (width, height), not {value!r}")
    return (parts[0], parts[1])


def _option_problems(options: DatasetOptions) -> Iterator[str]:
    width, height = options.resolution
    if width < 64 or height < 64 or width % 8 or height % 8:
        yield f"resolution {width}x{height} must be at least 64 and a multiple of 8 on each side"
    if options.bucket_reso_steps < 8 or options.bucket_reso_steps % 8:
        yield f"bucket_reso_steps {options.bucket_reso_steps} must be a multiple of 8"
    if not 0 < options.min_bucket_reso <= options.max_bucket_reso:
        yield f"min_bucket_reso {options.min_bucket_reso} must be positive and at most max_bucket_reso {options.max_bucket_reso}"
    if options.enable_bucket and options.max_bucket_reso < max(width, height):
        yield f"max_bucket_reso {options.max_bucket_reso} must be at least the resolution's larger side {max(width, height)}"
    for name in ("caption_dropout_rate", "caption_tag_dropout_rate"):
        if not 0.0 <= getattr(options, name) <= 1.0:
            yield f"{name} {getattr(options, name)} must be between 0 and 1"
    if options.keep_tokens < 0:
        yield f"keep_tokens {options.keep_tokens} cannot be negative"
    if options.prior_loss_weight < 0:
        yield f"prior_loss_weight {options.prior_loss_weight} cannot be negative"
    if options.caption_separator == "":
        yield "caption_separator cannot be empty"


@dataclass(frozen=True)
class TrainItem:
    """One usable image: its caption (trigger word in), repeats per epoch, oriented size and bucket."""

    path: Path
    caption: str
    repeats: int
    is_reg: bool
    loss_weight: float
    width: int  # after the EXIF orientation
    height: int
    bucket: Size
    folder: str = ""  # the folder's name, the key of kohya's ss_tag_frequency / ss_dataset_dirs
    captioned: bool = True  # False when the caption came from the folder name or the trigger word
    caption_file: Path | None = None  # the .txt/.caption sidecar read, if any (even an empty one)

    @property
    def size(self) -> Size:
        return (self.width, self.height)


@dataclass(frozen=True)
class DatasetFolder:
    """One source folder: a repeat folder, or the root's own images (1 repeat)."""

    path: Path
    name: str
    repeats: int
    class_text: str
    is_reg: bool
    image_count: int = 0  # usable images


@dataclass(frozen=True)
class Dataset:
    """The scanned dataset: what will be trained on, and the warnings a user should see."""

    options: DatasetOptions
    items: tuple[TrainItem, ...]
    warnings: tuple[str, ...] = ()
    folders: tuple[DatasetFolder, ...] = ()
    tag_frequency: Mapping[str, Mapping[str, int]] = field(default_factory=dict)

    @property
    def image_count(self) -> int:
        """Training images (regularisation images not counted)."""
        return sum(1 for item in self.items if not item.is_reg)

    @property
    def reg_image_count(self) -> int:
        return sum(1 for item in self.items if item.is_reg)

    @property
    def repeated_count(self) -> int:
        """Image visits per epoch: training images times their repeats, plus the balanced regularisation."""
        return sum(item.repeats for item in self.items)

    def bucket_counts(self) -> dict[Size, int]:
        """Visits per epoch in each bucket, sorted by bucket (kohya's ss_bucket_info counts)."""
        counts: dict[Size, int] = {}
        for item in self.items:
            counts[item.bucket] = counts.get(item.bucket, 0) + item.repeats
        return dict(sorted(counts.items()))

    def steps_per_epoch(self, batch_size: int) -> int:
        """Batches per epoch: each bucket's visits cut into batches of ``batch_size`` (the last may be short)."""
        return batch_count(self.bucket_counts().values(), batch_size)

    def dataset_dirs(self, *, is_reg: bool = False) -> dict[str, dict[str, int]]:
        """kohya's ``ss_dataset_dirs`` (or ``ss_reg_dataset_dirs``): ``{folder: {n_repeats, img_count}}``."""
        return {
            folder.name: {"n_repeats": folder.repeats, "img_count": folder.image_count}
            for folder in self.folders
            if folder.is_reg == is_reg
        }


ScanProgress = Callable[[int, int], None]
"""Called with (images looked at, images found) while scanning."""


def scan_dataset(options: DatasetOptions, *, check_pixels: bool = True, progress: ScanProgress | None = None) -> Dataset:
    """Read the training (and regularisation) folders into a :class:`Dataset`.

    Unusable files (not an image, corrupt, truncated, too small, too large) are skipped, each with a
    warning naming it. ``check_pixels=False`` reads headers only (instant, for a dataset picker);
    the default also catches truncated and corrupt files. Raises :class:`DatasetError` when the
    folder is missing or yields no usable image.
    """
    notes: list[str] = []
    train_sources = _sources(options.train_data_dir, notes, is_reg=False)
    reg_sources = _sources(options.reg_data_dir, notes, is_reg=True)
    work = [(source, path) for source in train_sources + reg_sources for path in _image_files(source.path)]
    if not any(not source.is_reg for source, _ in work):
        raise DatasetError(_no_images_message(options.train_data_dir), folder=str(options.train_data_dir))

    scanner = _Scanner(options, notes, check_pixels)
    for done, (source, path) in enumerate(work, start=1):
        scanner.add(source, path)
        if progress is not None:
            progress(done, len(work))

    train = [item for item in scanner.items if not item.is_reg]
    if not train:
        raise DatasetError(_none_usable_message(options.train_data_dir, notes), folder=str(options.train_data_dir), warnings=tuple(notes))
    reg = _balance_regularisation([item for item in scanner.items if item.is_reg], sum(i.repeats for i in train), notes)
    if options.reg_data_dir and not reg:
        notes.append(f"No usable regularisation images in {options.reg_data_dir}; training without them.")
    scanner.warn_missing_captions()
    items = tuple(train + reg)
    return Dataset(
        options=options,
        items=items,
        warnings=tuple(notes),
        folders=_counted_folders(train_sources + reg_sources, items),
        tag_frequency=tag_frequency(items),
    )


def _none_usable_message(folder: Path, notes: list[str]) -> str:
    skipped = [note for note in notes if note.startswith("Skipped ")]
    shown = " ".join(skipped[:3]) + (f" (and {len(skipped) - 3} more)" if len(skipped) > 3 else "")
    return f"None of the images in {folder} can be used. {shown}".strip()


def _no_images_message(folder: Path) -> str:
    suffixes = ", ".join(sorted(IMAGE_SUFFIXES))
    return (
        f"No images ({suffixes}) in {folder} or in its repeat folders (named like '10_name'). "
        "Put the training images there, with a .txt caption next to each."
    )


# --- folders -------------------------------------------------------------------------------------


def _sources(root: Path | None, notes: list[str], *, is_reg: bool) -> list[DatasetFolder]:
    """The root itself (if it holds images, 1 repeat) and its ``N_name`` subfolders, sorted by name."""
    if root is None:
        return []
    if not root.is_dir():
        kind = "Regularisation folder" if is_reg else "Training folder"
        raise DatasetError(f"{kind} {root} does not exist or is not a folder.", folder=str(root))
    sources = []
    if _image_files(root):
        sources.append(DatasetFolder(path=root, name=root.name, repeats=1, class_text="", is_reg=is_reg))
    for child in _subfolders(root):
        source = _repeat_folder(child, notes, is_reg=is_reg)
        if source is not None:
            sources.append(source)
    return sources


def _repeat_folder(folder: Path, notes: list[str], *, is_reg: bool) -> DatasetFolder | None:
    match = _REPEAT_FOLDER.match(folder.name)
    if match is None:
        if _image_files(folder):
            notes.append(
                f"Folder '{folder.name}' skipped: its name does not start with a repeat count, "
                f"as in '10_{folder.name}'."
            )
        return None
    repeats = int(match[1])
    if repeats == 0:
        notes.append(f"Folder '{folder.name}' skipped: 0 repeats.")
        return None
    nested = [child.name for child in _subfolders(folder) if _image_files(child)]
    if nested:
        notes.append(f"Images in subfolders of '{folder.name}' ({', '.join(nested)}) are not used; move them up.")
    return DatasetFolder(path=folder, name=folder.name, repeats=repeats, class_text=match[2].strip(), is_reg=is_reg)


def _visible(path: Path) -> bool:
    return not path.name.startswith(".") and path.name not in IGNORED_NAMES


def _listing(folder: Path) -> list[Path]:
    try:
        return sorted((child for child in folder.iterdir() if _visible(child)), key=lambda child: child.name)
    except OSError:
        return []


def _subfolders(folder: Path) -> list[Path]:
    return [child for child in _listing(folder) if child.is_dir()]


def _image_files(folder: Path) -> list[Path]:
    return [child for child in _listing(folder) if child.suffix.lower() in IMAGE_SUFFIXES and child.is_file()]


def _counted_folders(sources: list[DatasetFolder], items: tuple[TrainItem, ...]) -> tuple[DatasetFolder, ...]:
    counts: dict[tuple[str, bool], int] = {}
    for item in items:
        key = (item.folder, item.is_reg)
        counts[key] = counts.get(key, 0) + 1
    return tuple(replace(source, image_count=counts.get((source.name, source.is_reg), 0)) for source in sources)


# --- images --------------------------------------------------------------------------------------


class _Scanner:
    """Turns image files into items, collecting warnings and the count of images without a caption."""

    def __init__(self, options: DatasetOptions, notes: list[str], check_pixels: bool) -> None:
        self.options = options
        self.notes = notes
        self.check_pixels = check_pixels
        self.buckets = make_buckets(
            options.resolution, options.min_bucket_reso, options.max_bucket_reso, options.bucket_reso_steps
        )
        self.items: list[TrainItem] = []
        self.uncaptioned = 0
        self.train_count = 0
        self._sidecars: dict[Path, dict[str, Path]] = {}

    def add(self, source: DatasetFolder, path: Path) -> None:
        name = _display_name(source, path)
        try:
            width, height = read_image_size(path, check_pixels=self.check_pixels)
            self._check_size(width, height)
        except UnusableImage as unusable:
            self.notes.append(f"Skipped '{name}': {unusable.reason}")
            return
        caption_file = self._caption_file(path)
        caption, captioned = self._caption(source, caption_file, name)
        if not source.is_reg:  # reg images are usually captioned by their class folder, as kohya intends
            self.uncaptioned += not captioned
            self.train_count += 1
        self.items.append(
            TrainItem(
                path=path,
                caption=caption,
                repeats=source.repeats,
                is_reg=source.is_reg,
                loss_weight=self.options.prior_loss_weight if source.is_reg else 1.0,
                width=width,
                height=height,
                bucket=self._bucket(width, height),
                folder=source.name,
                captioned=captioned,
                caption_file=caption_file,
            )
        )

    def _check_size(self, width: int, height: int) -> None:
        smallest = self.options.min_bucket_reso
        if min(width, height) < MIN_IMAGE_SIDE or (width < smallest and height < smallest):
            raise UnusableImage(
                f"{width}x{height} pixels is too small (at least {MIN_IMAGE_SIDE} px on each side "
                f"and {smallest} px on one side)."
            )

    def _bucket(self, width: int, height: int) -> Size:
        options = self.options
        if not options.enable_bucket:
            return options.resolution
        if options.bucket_no_upscale:
            area = options.resolution[0] * options.resolution[1]
            return assign_bucket_no_upscale(width, height, area, options.bucket_reso_steps)
        return assign_bucket(width, height, self.buckets)

    def _caption(self, source: DatasetFolder, caption_file: Path | None, name: str) -> tuple[str, bool]:
        """The caption file's text, else the folder's class text; the trigger word put in either way."""
        text = read_caption_file(caption_file, self.notes, name) if caption_file is not None else ""
        captioned = bool(text)
        if not text:
            text = source.class_text
        return with_trigger_word(text, self.options.trigger_word, self.options.caption_separator), captioned

    def _caption_file(self, image: Path) -> Path | None:
        """The first sidecar found among the caption extensions, matching the name in any case."""
        sidecars = self._sidecars.get(image.parent)
        if sidecars is None:
            sidecars = {child.name.lower(): child for child in _listing(image.parent) if child.is_file()}
            self._sidecars[image.parent] = sidecars
        for extension in self.options.caption_extensions:
            sidecar = sidecars.get((image.stem + extension).lower())
            if sidecar is not None:
                return sidecar
        return None

    def warn_missing_captions(self) -> None:
        if self.uncaptioned:
            extensions = " or ".join(self.options.caption_extensions)
            self.notes.append(
                f"{self.uncaptioned} of {_count(self.train_count, 'training image')} without a caption ({extensions} file "
                "next to it): captioned with the folder's name and the trigger word instead."
            )


def _display_name(source: DatasetFolder, path: Path) -> str:
    """How warnings name a file: its folder's name and its own, e.g. '10_mychar/a.png'."""
    return f"{source.name}/{path.name}"


def read_caption_file(path: Path, notes: list[str] | None = None, name: str = "") -> str:
    """A caption file's text: UTF-8 (a BOM dropped), all whitespace and line breaks collapsed to one space."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        if notes is not None:
            notes.append(f"Caption '{path.name}' of '{name or path.name}' is not UTF-8 text; it is not used.")
        return ""
    except OSError as error:
        if notes is not None:
            notes.append(f"Caption '{path.name}' cannot be read ({error.strerror or error}); it is not used.")
        return ""
    return " ".join(text.split())


def read_image_size(path: Path, *, check_pixels: bool = True) -> Size:
    """(width, height) as displayed (EXIF orientation applied), from the header; raises :class:`UnusableImage`.

    With ``check_pixels`` a PNG's chunks and CRCs are verified and a JPEG is decoded at 1/8 scale
    (other formats fully), so truncated and corrupt files are caught too.
    """
    try:
        with open_image(path) as image:
            size = oriented_size(image)
            if check_pixels:
                _check_pixels(image)
    except UnusableImage:
        raise
    except Exception as error:  # Pillow's decoders raise many kinds on broken files
        raise UnusableImage(f"the file is corrupt or truncated ({_describe(error)}).") from error
    return size


@contextmanager
def open_image(path: Path) -> Iterator[Image.Image]:
    """``Image.open`` limited to our formats and to :data:`MAX_IMAGE_PIXELS`; raises :class:`UnusableImage`."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path, formats=PIL_FORMATS)
    except Image.DecompressionBombError as error:
        declared = re.search(r"\((\d+) pixels\)", str(error))
        megapixels = f"{int(declared[1]) // 1_000_000} megapixels" if declared else "over Pillow's limit"
        raise UnusableImage(_too_large(megapixels)) from error
    except UnidentifiedImageError as error:
        raise UnusableImage("not a PNG, JPEG, WebP or BMP image Pillow can read.") from error
    except OSError as error:
        raise UnusableImage(f"cannot be read ({_describe(error)}).") from error
    with image:
        width, height = image.size
        if width * height > MAX_IMAGE_PIXELS:
            raise UnusableImage(_too_large(f"{width}x{height} pixels, {width * height // 1_000_000} megapixels"))
        if width < 1 or height < 1:
            raise UnusableImage(f"declares an empty size {width}x{height}.")
        yield image


def _too_large(what: str) -> str:
    return f"too large ({what}); the limit is {MAX_IMAGE_PIXELS // 1_000_000} megapixels."


def _describe(error: BaseException) -> str:
    return str(error) or type(error).__name__


def _check_pixels(image: Image.Image) -> None:
    if image.format == "PNG":
        image.verify()
        return
    if image.format in ("JPEG", "MPO"):
        image.draft(image.mode, (1, 1))  # libjpeg decodes at 1/8 scale: every byte read, little work done
    image.load()


def exif_orientation(image: Image.Image) -> int:
    """The EXIF orientation (1..8, 1 = as stored) without decoding pixels (a PNG's eXIf is read from the header only)."""
    try:
        if image.format == "PNG":
            raw = image.info.get("exif")
            if not raw:
                return 1
            exif = Image.Exif()
            exif.load(raw)
        else:
            exif = image.getexif()
        value = int(exif.get(EXIF_ORIENTATION, 1))
    except Exception:  # a broken EXIF block is ignored, as browsers do
        return 1
    return value if 1 <= value <= 8 else 1


def oriented_size(image: Image.Image) -> Size:
    """The image's (width, height) after its EXIF orientation: swapped for 5..8 (quarter turns)."""
    width, height = image.size
    return (height, width) if exif_orientation(image) >= 5 else (width, height)


# --- captions ------------------------------------------------------------------------------------


def with_trigger_word(caption: str, trigger_word: str, separator: str = ",") -> str:
    """``caption`` with ``trigger_word`` put first, unless it already contains it as a word.

    >>> with_trigger_word("1girl, smile", "mychar")
    'mychar, 1girl, smile'
    >>> with_trigger_word("photo of MyChar at the beach", "mychar")
    'photo of MyChar at the beach'
    >>> with_trigger_word("", "mychar")
    'mychar'
    """
    if not trigger_word:
        return caption
    if not caption:
        return trigger_word
    if re.search(rf"(?<!\w){re.escape(trigger_word)}(?!\w)", caption, re.IGNORECASE):
        return caption
    return f"{trigger_word}{_joiner(separator)}{caption}"


def _joiner(separator: str) -> str:
    return separator.strip() + " " if separator.strip() else separator


def make_caption(caption: str, options: DatasetOptions, rng: random.Random) -> str:
    """kohya's ``process_caption``: the caption of one visit, with dropout and shuffling drawn from ``rng``.

    Caption dropout drops the whole caption. Otherwise, when shuffling or tag dropout is on, the
    caption is split on ``caption_separator``; the first ``keep_tokens`` tokens (at least the
    trigger word when it comes first) stay in place, the rest are shuffled and then each dropped
    with ``caption_tag_dropout_rate``.

    >>> options = DatasetOptions(train_data_dir=Path("."), shuffle_caption=True, keep_tokens=1)
    >>> make_caption("mychar, red hair, smile, outdoors", options, random.Random(1)).startswith("mychar, ")
    True
    """
    if options.caption_dropout_rate > 0 and rng.random() < options.caption_dropout_rate:
        return ""
    if not (options.shuffle_caption or options.caption_tag_dropout_rate > 0):
        return caption
    tokens = [token.strip() for token in caption.split(options.caption_separator)]
    tokens = [token for token in tokens if token]
    keep = _kept_token_count(tokens, options)
    fixed, flexible = tokens[:keep], tokens[keep:]
    if options.shuffle_caption:
        rng.shuffle(flexible)
    if options.caption_tag_dropout_rate > 0:
        flexible = [token for token in flexible if rng.random() >= options.caption_tag_dropout_rate]
    return _joiner(options.caption_separator).join(fixed + flexible)


def _kept_token_count(tokens: list[str], options: DatasetOptions) -> int:
    trigger_first = bool(options.trigger_word) and bool(tokens) and tokens[0].casefold() == options.trigger_word.casefold()
    return max(options.keep_tokens, 1) if trigger_first else options.keep_tokens


def tag_frequency(items: tuple[TrainItem, ...] | list[TrainItem]) -> dict[str, dict[str, int]]:
    """kohya's ``ss_tag_frequency``: per folder, how many images carry each comma-separated tag (lower case)."""
    frequency: dict[str, dict[str, int]] = {}
    for item in items:
        folder = frequency.setdefault(item.folder, {})
        for tag in item.caption.split(","):
            tag = tag.strip().lower()
            if tag:
                folder[tag] = folder.get(tag, 0) + 1
    return frequency


# --- regularisation ------------------------------------------------------------------------------


def _balance_regularisation(reg: list[TrainItem], train_visits: int, notes: list[str]) -> list[TrainItem]:
    """kohya's balancing: register reg images (with their repeats) until they match the training visits,
    then add one repeat at a time, in order, until they do; images past that point are not used."""
    if not reg:
        return []
    repeats: list[int] = []
    visits = 0
    while visits < train_visits:
        for index, item in enumerate(reg):
            if len(repeats) <= index:
                repeats.append(item.repeats)
                visits += item.repeats
            else:
                repeats[index] += 1
                visits += 1
            if visits >= train_visits:
                break
    if len(repeats) < len(reg):
        notes.append(
            f"Using {len(repeats)} of {len(reg)} regularisation images: kohya balances them to the "
            f"{train_visits} training image visits per epoch."
        )
    return [replace(item, repeats=count) for item, count in zip(reg, repeats, strict=False)]


def describe_dataset(dataset: Dataset, batch_size: int = 1) -> str:
    """One line for logs and the UI: images x repeats, regularisation, buckets, steps per epoch."""
    parts = [_count(dataset.image_count, "image"), _count(dataset.repeated_count, "visit") + " per epoch"]
    if dataset.reg_image_count:
        parts.append(_count(dataset.reg_image_count, "regularisation image"))
    parts.append(_count(len(dataset.bucket_counts()), "bucket"))
    parts.append(_count(dataset.steps_per_epoch(batch_size), "step") + f" per epoch at batch size {batch_size}")
    return ", ".join(parts)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"

