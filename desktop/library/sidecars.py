"""The files A1111 and its extensions keep beside a model, and the model's own metadata, for display.

Next to ``name.safetensors`` (or a diffusers folder ``name``):

- ``name.preview.png`` / ``name.png`` (also ``.jpg``, ``.jpeg``, ``.webp``): the thumbnail;
- ``name.civitai.info``: civitai's model-version JSON, saved by Civitai Helper and similar tools;
- ``name.json``: A1111's extra-networks user metadata (activation text, description, notes,
  a checkpoint's preferred VAE...);
- ``name.txt``: a plain description.

They come from the internet and from other programs, so nothing in them is trusted: a file that
is too big, not UTF-8, not JSON or of the wrong shape is skipped (in whole or in part), never an
error, and text is kept literally, HTML included (BAD_INPUTS 9): the UI shows it as plain text.

The one file written here is ``name.json``, for a checkpoint's preferred VAE
(:func:`write_preferred_vae`): every other key is kept, and a file that cannot be read back
exactly (not JSON, not UTF-8, too big) is refused rather than replaced.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from desktop.core.errors import DesktopError, UserInputError
from desktop.library.atomic_write import write_text_atomically
from desktop.library.safetensors_file import DuplicateKey, reject_duplicate_keys

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

# A1111 (1.6+) keeps a checkpoint's preferred VAE in name.json under "vae": a VAE's file name
# ("vae-ft-mse-840000-ema-pruned.safetensors"), "Automatic" (no preference) or "None" (the
# checkpoint's own VAE, whatever else would apply).
VAE_KEY = "vae"
VAE_AUTOMATIC = "Automatic"
VAE_NONE = "None"
_VAE_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")


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
    preferred_vae: str = ""  # name.json "vae": a VAE file name or "None"; "" for none or "Automatic"


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
        preferred_vae=_preferred_vae(user.get(VAE_KEY)),
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


# --- a checkpoint's preferred VAE (A1111's per-model user metadata) -----------------------------


@dataclass(frozen=True)
class PreferredVae:
    """What a checkpoint's ``name.json`` asks for as its VAE, and the installed file that answers it."""

    name: str = ""  # as name.json writes it: a VAE file name, "None", or "" (no preference)
    path: Path | None = None  # the VAE file it names, when one is installed

    @property
    def missing(self) -> bool:
        """A VAE is named but no VAE of that name is installed (the checkpoint's own VAE is used)."""
        return bool(self.name) and self.name != VAE_NONE and self.path is None


def read_preferred_vae(model_path: Path) -> str:
    """A checkpoint's name.json ``"vae"`` ("" for none or "Automatic"); never raises, reads one small file."""
    return _preferred_vae(_read_json_object(_user_metadata_file(Path(model_path))).get(VAE_KEY))


def preferred_vae(model_path: Path, vae_files: Iterable[Path]) -> PreferredVae:
    """The preferred VAE of the checkpoint at ``model_path``, looked up among ``vae_files`` (see :func:`resolve_vae_name`)."""
    name = read_preferred_vae(model_path)
    return PreferredVae(name, resolve_vae_name(name, vae_files))


def resolve_vae_name(name: str, vae_files: Iterable[Path]) -> Path | None:
    """The VAE file that ``name`` (a name.json ``"vae"``) refers to; None for "None", "Automatic" or no match.

    A1111 matches the file name with its extension; the name without extension matches too, so a
    preference written for a ``.ckpt`` or ``.pt`` VAE finds the ``.safetensors`` converted from it.
    An exact match wins over a case-insensitive one (macOS volumes usually ignore case).

    >>> files = [Path("VAE/vae-ft-mse-840000-ema-pruned.safetensors"), Path("VAE/xl/sdxl_vae.safetensors")]
    >>> resolve_vae_name("vae-ft-mse-840000-ema-pruned.safetensors", files).name
    'vae-ft-mse-840000-ema-pruned.safetensors'
    >>> resolve_vae_name("sdxl_vae", files).name, resolve_vae_name("vae-ft-mse-840000-ema-pruned.ckpt", files).name
    ('sdxl_vae.safetensors', 'vae-ft-mse-840000-ema-pruned.safetensors')
    >>> resolve_vae_name("SDXL_VAE.safetensors", files).name
    'sdxl_vae.safetensors'
    >>> resolve_vae_name("None", files), resolve_vae_name("kl-f8-anime2.safetensors", files)
    (None, None)
    """
    name = name.strip()
    if not name or name in (VAE_AUTOMATIC, VAE_NONE):
        return None
    files = [Path(file) for file in vae_files]
    bare = next((name[: -len(suffix)] for suffix in _VAE_SUFFIXES if name.lower().endswith(suffix)), name)
    for fold in (lambda text: text, str.casefold):
        for matches in (
            lambda file: fold(file.name) == fold(name),
            lambda file: fold(file.stem) == fold(name),
            lambda file: fold(file.stem) == fold(bare),
        ):
            found = next((file for file in files if matches(file)), None)
            if found is not None:
                return found
    return None


def write_preferred_vae(model_path: Path, vae: str) -> Path | None:
    """Set a checkpoint's preferred VAE in its ``name.json`` as A1111 does, keeping every other key.

    ``vae`` is a VAE's file name (A1111 writes it with its extension), ``"None"``, or ``""`` for no
    preference (written as A1111's ``"Automatic"``; no file is created only to say that). The file
    is replaced atomically, keeping its permissions. Returns the file written, or None when there
    was nothing to change.

    Raises :class:`UserInputError` when an existing ``name.json`` cannot be read back exactly (not
    UTF-8, not a JSON object, duplicate keys, too big): it is left as it is, never overwritten.
    Raises :class:`DesktopError` when the file cannot be written.
    """
    model_path = Path(model_path)
    existing = _user_metadata_file(model_path)
    target = existing or model_path.with_name(_base_name(model_path) + _USER_METADATA)
    metadata = _read_for_update(existing) if existing is not None else {}
    value = vae.strip() or VAE_AUTOMATIC
    if metadata.get(VAE_KEY, VAE_AUTOMATIC) == value:  # absent means Automatic
        return None
    metadata[VAE_KEY] = value
    if target.is_symlink():  # write the linked file, keep the link
        target = target.resolve()
    try:
        mode = target.stat().st_mode & 0o7777 if existing is not None else 0o644
        write_text_atomically(target, json.dumps(metadata, indent=4, ensure_ascii=False))  # A1111's layout
        os.chmod(target, mode)  # the temporary file was private
    except OSError as exc:
        raise DesktopError(
            f"{target.name} could not be saved: {exc.strerror or exc}", path=str(target), reason="unwritable"
        ) from exc
    return target


def _base_name(model_path: Path) -> str:
    return model_path.name if _is_folder(model_path) else model_path.stem


def _user_metadata_file(model_path: Path) -> Path | None:
    return _StatLookup(model_path.parent).find(_base_name(model_path) + _USER_METADATA)


def _preferred_vae(value: object) -> str:
    name = _string(value).strip()
    return "" if name == VAE_AUTOMATIC else name


def _read_for_update(path: Path) -> dict[str, object]:
    """``name.json`` as a dict that, written back, loses nothing; raises UserInputError otherwise."""

    def refuse(problem: str) -> UserInputError:
        return UserInputError(
            f"{path.name} {problem}; it was left unchanged and the preferred VAE was not saved. "
            "Correct or remove the file, then try again.",
            path=str(path),
            reason="corrupt_sidecar",
        )

    try:
        with path.open("rb") as file:
            raw = file.read(MAX_SIDECAR_BYTES + 1)
    except OSError as exc:
        raise refuse(f"cannot be read ({exc.strerror or exc})") from exc
    if len(raw) > MAX_SIDECAR_BYTES:
        raise refuse(f"is larger than {MAX_SIDECAR_BYTES // 2**20} MB, far more than A1111's notes")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise refuse(f"is not UTF-8 text (byte {exc.start})") from exc
    if not text.strip():
        return {}  # an empty file has nothing to keep
    try:
        parsed = json.loads(text, object_pairs_hook=reject_duplicate_keys)
    except DuplicateKey as exc:
        raise refuse(f"has the key {str(exc)[:_KEY_LIMIT]!r} twice") from exc
    except json.JSONDecodeError as exc:
        raise refuse(f"is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from exc
    except (ValueError, RecursionError) as exc:  # e.g. absurd nesting or an integer too long to parse
        raise refuse("is not JSON this app can read back exactly") from exc
    if not isinstance(parsed, dict):
        raise refuse(f"holds a JSON {type(parsed).__name__}, not an object of named values")
    return parsed


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

