"""The files A1111 and its extensions keep beside a model, and the model's own metadata, for display.

Next to ``name.safetensors`` (or a diffusers folder ``name``):

- ``name.preview.png`` / ``name.png`` (also ``.jpg``, ``.jpeg``, ``.webp``): the thumbnail;
- ``name.civitai.info``: civitai's model-version JSON, saved by Civitai Helper and similar tools;
- ``name.json``: A1111's extra-networks user metadata (activation text, description, notes...);
- ``name.txt``: a plain description.

They come from the internet and from other programs, so nothing in them is trusted: a file that
is too big, not UTF-8, not JSON or of the wrong shape is skipped (in whole or in part), never an
error, and text is kept literally, HTML included (BAD_INPUTS 9): the UI shows it as plain text.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

# Sidecars are a few KB; anything bigger is not one we want to parse on every scan.
MAX_SIDECAR_BYTES = 1 << 20

# In the order they are looked for (A1111 accepts all of these).
PREVIEW_SUFFIXES = (
    ".preview.png",
    ".png",
    ".preview.jpg",
    ".preview.jpeg",
    ".preview.webp",
    ".jpg",
    ".jpeg",
    ".webp",
)
_CIVITAI_INFO = ".civitai.info"
_USER_METADATA = ".json"
_DESCRIPTION = ".txt"

# Metadata keys holding base64 images (kohya's ssmd_cover_images, sai modelspec's thumbnail).
_IMAGE_KEYS = frozenset({"ssmd_cover_images", "modelspec.thumbnail"})
_TRIGGER_PHRASE_KEY = "modelspec.trigger_phrase"
_TAG_FREQUENCY_KEY = "ss_tag_frequency"
_KEY_LIMIT = 200  # real keys are short; a long one is garbage and only needs to be recognisable


@dataclass(frozen=True)
class Sidecars:
    """What the files beside one model say; empty values where they say nothing usable."""

    preview: Path | None = None
    trigger_words: tuple[str, ...] = ()  # civitai trainedWords, then name.json activation text
    base_model: str = ""  # civitai "baseModel" ("SD 1.5", "SDXL 1.0"...), else name.json "sd version"
    civitai_url: str = ""
    notes: str = ""  # name.json description and notes, name.txt
    preferred_weight: float | None = None  # name.json "preferred weight" (0 or missing: none)
    civitai_name: str = ""  # the civitai model's name, when name.civitai.info gives it


def read_sidecars(model_path: Path, *, listing: FolderListing | None = None) -> Sidecars:
    """What the sidecar files of ``model_path`` say; never raises.

    ``listing`` (of the model's folder, shared by all the models in it) saves a ``stat`` per
    candidate name, which adds up over thousands of models.
    """
    model_path = Path(model_path)
    base = model_path.name if _is_folder(model_path) else model_path.stem
    names = listing if listing is not None else _StatLookup(model_path.parent)
    info = _read_json_object(names.find(base + _CIVITAI_INFO))
    user = _read_json_object(names.find(base + _USER_METADATA))
    description = _read_text(names.find(base + _DESCRIPTION))

    trigger_words = merge_trigger_words(
        _civitai_trained_words(info),
        split_words(_string(user.get("activation text"))),
    )
    sd_version = _string(user.get("sd version"))
    base_model = _string(info.get("baseModel")) or ("" if sd_version.lower() == "unknown" else sd_version)
    notes = _join_paragraphs(_string(user.get("description")), _string(user.get("notes")), description)
    model = info.get("model")
    return Sidecars(
        preview=next((p for p in (names.find(base + s) for s in PREVIEW_SUFFIXES) if p is not None), None),
        trigger_words=trigger_words,
        base_model=base_model.strip(),
        civitai_url=_civitai_url(info),
        notes=notes,
        preferred_weight=_preferred_weight(user.get("preferred weight")),
        civitai_name=_string(model.get("name")).strip() if isinstance(model, dict) else "",
    )


def split_words(text: str) -> tuple[str, ...]:
    """Comma-separated trigger words as a tuple, blanks dropped.

    >>> split_words(" masterpiece, 1girl ,, <lora:x:1>")
    ('masterpiece', '1girl', '<lora:x:1>')
    """
    return tuple(word.strip() for word in text.split(",") if word.strip())


def merge_trigger_words(*groups: Iterable[str]) -> tuple[str, ...]:
    """Trigger words from several sources, each once, in first-seen order.

    >>> merge_trigger_words(("a", "b"), ("b", "c"))
    ('a', 'b', 'c')
    """
    merged: dict[str, None] = {}
    for group in groups:
        for word in group:
            merged.setdefault(word, None)
    return tuple(merged)


def metadata_trigger_words(metadata: Mapping[str, str]) -> tuple[str, ...]:
    """The trigger words a safetensors file declares itself (``modelspec.trigger_phrase``).

    >>> metadata_trigger_words({"modelspec.trigger_phrase": "sks dog, photo"})
    ('sks dog', 'photo')
    """
    return split_words(_string(metadata.get(_TRIGGER_PHRASE_KEY)))


def display_metadata(metadata: Mapping[str, str], limit: int = 2000) -> tuple[tuple[str, str], ...]:
    """A safetensors ``__metadata__`` made safe to show: sorted keys, long values cut (BAD_INPUTS 10).

    Embedded images (megabytes of base64) are replaced by their size; any other value longer than
    ``limit`` characters is cut and says how long it was.

    >>> display_metadata({"ss_network_dim": "32", "modelspec.thumbnail": "data:image/png;base64,AAAA"})
    (('modelspec.thumbnail', '(image data, 26 bytes)'), ('ss_network_dim', '32'))
    >>> display_metadata({"ss_tag_frequency": "x" * 12}, limit=5)
    (('ss_tag_frequency', 'xxxxx… (12 characters)'),)
    """
    shown = []
    for key, value in metadata.items():
        key, value = _clip(str(key), _KEY_LIMIT), str(value)
        if key in _IMAGE_KEYS or value.startswith("data:image/"):
            shown.append((key, f"(image data, {len(value.encode('utf-8', 'replace'))} bytes)"))
        else:
            shown.append((key, _clip(value, limit)))
    return tuple(sorted(shown))


def training_tags(metadata: Mapping[str, str]) -> list[tuple[str, int]]:
    """kohya's ``ss_tag_frequency`` ({dataset: {tag: count}}) summed over datasets, most frequent first.

    Garbage (not JSON, wrong shapes, non-numeric counts) is skipped.

    >>> training_tags({"ss_tag_frequency": '{"a": {"1girl": 3, " solo": 1}, "b": {"solo": 4, "x": "?"}}'})
    [('solo', 5), ('1girl', 3)]
    """
    datasets = _parse_json(_string(metadata.get(_TAG_FREQUENCY_KEY)))
    counts: dict[str, int] = {}
    if isinstance(datasets, dict):
        for tags in datasets.values():
            if not isinstance(tags, dict):
                continue
            for tag, count in tags.items():
                tag, number = str(tag).strip(), _count(count)
                if tag and number:
                    counts[tag] = counts.get(tag, 0) + number
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


# --- finding and reading the files -----------------------------------------------------------


class FolderListing:
    """The names in one folder, to find sidecars without a ``stat`` per candidate name.

    Names are compared case-insensitively because macOS volumes usually are: a ``Model.PNG``
    there is the same file as ``Model.png``.
    """

    def __init__(self, folder: Path) -> None:
        self._folder = Path(folder)
        self._by_folded: dict[str, str] = {}
        try:
            with os.scandir(self._folder) as entries:
                for entry in entries:
                    if _is_file(entry):
                        self._by_folded[entry.name.casefold()] = entry.name
        except OSError:
            pass  # an unreadable folder has no sidecars we can read

    def find(self, name: str) -> Path | None:
        actual = self._by_folded.get(name.casefold())
        return None if actual is None else self._folder / actual


def _is_folder(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:  # e.g. a name too long for the filesystem
        return False


def _is_file(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_file()
    except OSError:
        return False


class _StatLookup:
    def __init__(self, folder: Path) -> None:
        self._folder = folder

    def find(self, name: str) -> Path | None:
        path = self._folder / name
        try:
            return path if path.is_file() else None
        except OSError:  # e.g. a name too long for the filesystem
            return None


def _read_bytes(path: Path | None) -> bytes | None:
    if path is None:
        return None
    try:
        with path.open("rb") as file:
            return file.read(MAX_SIDECAR_BYTES + 1)
    except OSError:
        return None


def _read_text(path: Path | None) -> str:
    raw = _read_bytes(path)
    if raw is None:
        return ""
    # A plain description too long to be one is kept, cut: it is only shown.
    return _decode(raw[:MAX_SIDECAR_BYTES]).strip()


def _read_json_object(path: Path | None) -> dict[str, object]:
    raw = _read_bytes(path)
    if raw is None or len(raw) > MAX_SIDECAR_BYTES:
        return {}  # cut JSON is not JSON
    parsed = _parse_json(_decode(raw))
    return parsed if isinstance(parsed, dict) else {}


def _decode(raw: bytes) -> str:
    # Invalid UTF-8 becomes U+FFFD rather than costing the whole file; a BOM is dropped.
    return raw.decode("utf-8-sig", errors="replace")


def _parse_json(text: str) -> object:
    if not text:
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        return None


# --- picking values out of untrusted JSON ----------------------------------------------------


def _string(value: object) -> str:
    return value if isinstance(value, str) else ""


def _civitai_trained_words(info: Mapping[str, object]) -> tuple[str, ...]:
    words = info.get("trainedWords")
    if isinstance(words, str):  # not what civitai writes, but plainly meant
        words = [words]
    if not isinstance(words, list):
        return ()
    return tuple(word for item in words if isinstance(item, str) for word in split_words(item))


def _civitai_url(info: Mapping[str, object]) -> str:
    model_id = _identifier(info.get("modelId"))
    if model_id is None:
        model = info.get("model")
        model_id = _identifier(model.get("id")) if isinstance(model, dict) else None
    if model_id is None:
        return ""
    version_id = _identifier(info.get("id"))
    url = f"https://civitai.com/models/{model_id}"
    return url if version_id is None else f"{url}?modelVersionId={version_id}"


def _identifier(value: object) -> int | None:
    """A civitai id: a positive integer (or its digits as a string); anything else is not one."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 18:
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 10**18:
        return value
    return None


def _preferred_weight(value: object) -> float | None:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value:
        return float(value)
    return None


def _count(value: object) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return max(value, 0)
    if isinstance(value, float) and math.isfinite(value):
        return max(int(value), 0)
    return 0


def _join_paragraphs(*parts: str) -> str:
    unique: dict[str, None] = {}
    for part in parts:
        if part.strip():
            unique.setdefault(part.strip(), None)
    return "\n\n".join(unique)


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text)} characters)"

