"""How an image was made, read from its metadata whatever tool wrote it, without decoding a pixel.

What each tool leaves in the file:

- AUTOMATIC1111 (and Forge, SD.Next, Fooocus in A1111 mode): the PNG text chunk ``parameters``
  (tEXt, zTXt or iTXt), or the EXIF UserComment of a JPEG or WebP.
- ComfyUI: the PNG text chunks ``prompt`` (the API graph) and ``workflow`` (the editor's graph);
  its WebP files keep them in EXIF Model/Make as ``prompt:{...}`` and ``workflow:{...}``.
- InvokeAI: ``invokeai_metadata`` JSON, and the older ``sd-metadata`` JSON and ``Dream`` command line.
- NovelAI: ``Software`` = NovelAI, ``Description`` (the prompt) and ``Comment`` (JSON settings).
- Draw Things: XMP whose ``exif:UserComment`` holds JSON settings (best effort).

Foreign settings are written under A1111's keys where one exists ("Steps", "Sampler", "Schedule
type", "CFG scale", "Seed", "Size", "Model", ...), so the rest of the app handles one shape.

The files are read by small walkers of their containers (PNG chunks, JPEG segments, WebP RIFF
chunks) instead of ``Image.open``: nothing depends on Pillow's process-wide limits
(``MAX_IMAGE_PIXELS``, ``MAX_TEXT_CHUNK``), an image declaring 100000 x 100000 pixels costs
nothing to look at, and every read is bounded by the file's size and by the limits below. Pillow
parses the EXIF blocks found, and TIFF headers (lazily, so no pixels either).

>>> metadata = metadata_from_texts({"parameters": "a cat\\nSteps: 20, Sampler: Euler a, Seed: 5"})
>>> metadata.source, metadata.prompt, metadata.param("Sampler")
('a1111', 'a cat', 'Euler a')
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import struct
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import BinaryIO
from xml.etree import ElementTree

from PIL import Image, TiffImagePlugin

from desktop.core.errors import UserInputError
from desktop.core.infotext import format_infotext, parse_infotext
from desktop.core.sampling_names import SAMPLER_NAMES, SCHEDULE_NAMES

# "Show raw" gets at most this many characters of the text as found.
RAW_TEXT_LIMIT = 200_000
# A text chunk (after decompression) or EXIF/XMP block larger than this is not parsed; only its
# start is kept for "Show raw". ComfyUI workflows run to a few hundred KB; Pillow stops at 1 MB.
MAX_TEXT_BYTES = 8 * 1024 * 1024
# All the text read from one file together, as Pillow's MAX_TEXT_MEMORY.
MAX_TOTAL_TEXT_BYTES = 64 * 1024 * 1024

SOURCE_NAMES: Mapping[str, str] = MappingProxyType(
    {
        "a1111": "AUTOMATIC1111",
        "comfyui": "ComfyUI",
        "invokeai": "InvokeAI",
        "novelai": "NovelAI",
        "drawthings": "Draw Things",
    }
)

FORMAT_NAMES: Mapping[str, str] = MappingProxyType(
    {"png": "PNG", "jpeg": "JPEG", "webp": "WebP", "gif": "GIF", "tiff": "TIFF"}
)

# Only for naming errors: a file called .png that is not one is reported as "not an image".
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".webp", ".gif", ".tif", ".tiff"})


@dataclass(frozen=True)
class ImageMetadata:
    """The generation parameters found in an image; ``source`` is "" when there were none."""

    source: str = ""  # "a1111" | "comfyui" | "invokeai" | "novelai" | "drawthings" | ""
    prompt: str = ""
    negative_prompt: str = ""
    params: tuple[tuple[str, str], ...] = ()  # A1111 key names where a mapping exists
    raw: str = ""  # the text or JSON as found, at most RAW_TEXT_LIMIT characters
    width: int = 0
    height: int = 0

    @property
    def found(self) -> bool:
        return self.source != ""

    def param(self, key: str, default: str = "") -> str:
        """The first value of parameter ``key``.

        >>> ImageMetadata(params=(("Steps", "20"),)).param("Steps"), ImageMetadata().param("Seed", "-1")
        ('20', '-1')
        """
        for name, value in self.params:
            if name == key:
                return value
        return default

    def infotext(self) -> str:
        """The parameters as A1111 writes them (for other tools, the A1111 text they amount to)."""
        return format_infotext(self.prompt, self.negative_prompt, dict(self.params))


class ImageFileError(UserInputError):
    """The file is not an image, cannot be read, or is damaged."""

    code = "image_file"


def sniff_image_format(header: bytes) -> str | None:
    """The format of an image from its first 12 bytes ("png", "jpeg", "webp", "gif", "tiff"), or None.

    >>> sniff_image_format(b"\\x89PNG\\r\\n\\x1a\\n\\0\\0\\0\\r"), sniff_image_format(b"GIF89a"), sniff_image_format(b"{}")
    ('png', 'gif', None)
    """
    if header.startswith(_PNG_SIGNATURE):
        return "png"
    if header.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if header[:4] == b"RIFF" and header[8:12] == b"WEBP":
        return "webp"
    if header[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if header[:4] in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"):  # classic and BigTIFF
        return "tiff"
    return None


def image_format(path: str | Path) -> str | None:
    """The format of the file at ``path`` judged by its content; None for anything else or unreadable."""
    try:
        with open(path, "rb") as file:
            return sniff_image_format(file.read(12))
    except OSError:
        return None


def read_image_metadata(path: str | Path) -> ImageMetadata:
    """Read the generation parameters of the image at ``path``; never decodes pixels.

    Raises :class:`ImageFileError` when the file is missing, unreadable, not an image (judged by
    its content) or damaged (a failed checksum, cut short). An image without parameters gives an
    :class:`ImageMetadata` whose ``source`` is "" (with its size, and any other text in ``raw``).
    """
    path = Path(path)
    with _reading(path):
        if path.is_dir():
            raise ImageFileError(f"{path.name} is a folder, not an image", path=str(path), reason="folder")
        with path.open("rb") as file:
            size = os.fstat(file.fileno()).st_size
            kind = sniff_image_format(file.read(12))
            if kind is None:
                raise _not_an_image(path, size)
            file.seek(0)
            try:
                found = _CONTAINER_READERS[kind](_Reader(file, size))
            except _Damaged as damage:
                raise ImageFileError(
                    f"{path.name} is a damaged {FORMAT_NAMES[kind]} image: {damage}", path=str(path), reason="damaged"
                ) from None
    try:
        return metadata_from_texts(found.texts, found.width, found.height, clipped=found.clipped)
    except (TypeError, ValueError, KeyError, AttributeError, IndexError, RecursionError):
        # The readers are written (and fuzzed) never to raise; should one still trip over a strange
        # file, that file shows as having no parameters, its text still under "Show raw".
        return ImageMetadata(raw=_raw_dump(found.texts, found.clipped), width=found.width, height=found.height)


def metadata_from_texts(
    texts: Mapping[str, str], width: int = 0, height: int = 0, *, clipped: Mapping[str, str] | None = None
) -> ImageMetadata:
    """Interpret the text found in an image (PNG chunk keywords as keys) as one tool's parameters.

    ``clipped`` holds the start of texts too large to interpret; they only reach ``raw``.
    Never raises, whatever the texts hold.
    """
    for read in _TOOL_READERS:
        metadata = read(texts, width, height)
        if metadata is not None:
            return metadata
    return ImageMetadata(raw=_raw_dump(texts, clipped or {}), width=width, height=height)


def decode_user_comment(value: bytes | str, *, little_endian: bool = False) -> str:
    """Decode an EXIF UserComment: an 8-byte character code, then the text.

    "UNICODE" text is UTF-16 in the byte order of its EXIF block (``little_endian`` for "II"), as
    the EXIF standard says and exiftool writes; A1111 (piexif) writes big-endian in a big-endian
    block. A byte-order mark overrides both. "ASCII" and undefined text is read as UTF-8, as A1111
    reads it. Trailing NULs (padding) are dropped.

    >>> decode_user_comment(b"UNICODE\\0" + "猫 cat".encode("utf-16-be"))
    '猫 cat'
    >>> decode_user_comment(b"ASCII\\0\\0\\0a dog\\0\\0")
    'a dog'
    """
    if isinstance(value, str):
        return value.rstrip("\0")
    code, body = value[:8], value[8:]
    if code == b"UNICODE\0":
        if body.startswith((b"\xfe\xff", b"\xff\xfe")):
            text = body.decode("utf-16", "replace")  # the codec reads the byte-order mark
        else:
            text = body.decode("utf-16-le" if little_endian else "utf-16-be", "replace")
    elif code == b"JIS\0\0\0\0\0":
        text = body.decode("shift_jis", "replace")
    elif code in (b"ASCII\0\0\0", b"\0" * 8):
        text = body.decode("utf-8", "replace")
    else:  # no character code at all: some writers put plain UTF-8 here
        text = value.decode("utf-8", "replace")
    return text.rstrip("\0")


# --- reading files ---------------------------------------------------------------------------


class _Damaged(Exception):
    """A container walker met something no valid file holds; the message says what."""


_TRUNCATED = "it is cut short (truncated)"


@contextlib.contextmanager
def _reading(path: Path) -> Iterator[None]:
    """Turn OS errors on ``path`` into an :class:`ImageFileError` naming the file."""
    try:
        yield
    except FileNotFoundError:
        raise ImageFileError(f"{path.name} does not exist ({path})", path=str(path), reason="missing") from None
    except OSError as error:
        raise ImageFileError(
            f"{path.name} cannot be read: {error.strerror or error}", path=str(path), reason="unreadable"
        ) from error


def _not_an_image(path: Path, size: int) -> ImageFileError:
    if size == 0:
        return ImageFileError(f"{path.name} is empty (0 bytes), not an image", path=str(path), reason="empty")
    return ImageFileError(
        f"{path.name} is not an image: its content is not PNG, JPEG, WebP, GIF or TIFF",
        path=str(path),
        reason="not_an_image",
    )


class _Reader:
    """A file read forwards, every length checked against the file's size before anything is read."""

    def __init__(self, file: BinaryIO, size: int) -> None:
        self.file = file
        self.size = size

    @property
    def remaining(self) -> int:
        return self.size - self.file.tell()

    @property
    def position(self) -> int:
        return self.file.tell()

    def read(self, count: int) -> bytes:
        if count > self.remaining:
            raise _Damaged(_TRUNCATED)
        return self.file.read(count)

    def skip(self, count: int) -> None:
        if count > self.remaining:
            raise _Damaged(_TRUNCATED)
        self.file.seek(count, os.SEEK_CUR)


@dataclass
class _Found:
    """What a container walker found: the image's size and its texts, keyed like PNG text chunks."""

    width: int = 0
    height: int = 0
    texts: dict[str, str] = field(default_factory=dict)
    clipped: dict[str, str] = field(default_factory=dict)  # too large to interpret: the start only
    # Text still to be read from this file. Compressed chunks count what they inflate to, so many
    # small zip bombs cannot add up to minutes of work either.
    budget: int = MAX_TOTAL_TEXT_BYTES

    def fits(self, size: int) -> bool:
        return size <= min(MAX_TEXT_BYTES, self.budget)

    def add(self, key: str, text: str, *, clipped: bool = False) -> None:
        self.budget -= len(text)
        if key in self.texts or key in self.clipped:
            return  # the first of repeated keys wins
        if clipped or len(text) > MAX_TEXT_BYTES:
            self.clipped[key] = text[:RAW_TEXT_LIMIT]
            return
        self.texts[key] = text

    def add_exif(self, data: bytes) -> None:
        for key, text in _exif_texts(data).items():
            self.add(key, text)


# How much of an oversized text chunk is read for "Show raw": enough for RAW_TEXT_LIMIT characters.
_CLIPPED_HEAD_BYTES = 4 * RAW_TEXT_LIMIT + 1024
# Walkers give up (keeping what they found) after this many chunks: a hostile file of millions
# of tiny chunks would otherwise keep a thread busy for minutes.
_MAX_CHUNKS = 100_000

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_TEXT_CHUNKS = frozenset({b"tEXt", b"zTXt", b"iTXt"})
_PNG_MAX_LENGTH = 0x7FFF_FFFF  # the PNG standard's limit on a chunk's length
XMP_KEY = "XML:com.adobe.xmp"  # the PNG iTXt keyword for XMP; other containers' XMP is filed under it too


def _read_png(reader: _Reader) -> _Found:
    """Walk the chunks: IHDR for the size, text and eXIf chunks for metadata; skip the rest unread.

    The checksum of every chunk read is verified (as Pillow does). Pixel data is skipped, so a
    damaged IDAT goes unnoticed here: that is for whoever decodes the pixels.
    """
    reader.read(len(_PNG_SIGNATURE))
    found = _Found()
    for index in range(_MAX_CHUNKS):
        length, kind = struct.unpack(">I4s", reader.read(8))
        if not kind.isalpha():
            raise _Damaged("it holds a chunk with an invalid type")
        if length > _PNG_MAX_LENGTH:
            raise _Damaged(f"its {kind.decode()} chunk declares an impossible length")
        if index == 0 and (kind != b"IHDR" or length != 13):
            raise _Damaged("it does not begin with an IHDR header chunk")
        if kind == b"IEND":
            return found
        wanted = kind == b"IHDR" or kind == b"eXIf" or kind in _PNG_TEXT_CHUNKS
        if not wanted or (kind != b"IHDR" and found.budget <= 0) or (kind == b"eXIf" and not found.fits(length)):
            reader.skip(length + 4)
            continue
        if kind in _PNG_TEXT_CHUNKS and not found.fits(length):
            head = reader.read(min(length, _CLIPPED_HEAD_BYTES))
            reader.skip(length - len(head) + 4)  # too big to check: its checksum stays unread
            text = _png_text(kind, head, _CLIPPED_HEAD_BYTES)
            if text is not None:
                found.add(text[0], text[1], clipped=True)
            continue
        data = reader.read(length)
        if zlib.crc32(kind + data) != int.from_bytes(reader.read(4), "big"):
            raise _Damaged(f"its {kind.decode()} chunk fails its checksum (CRC)")
        if kind == b"IHDR":
            found.width, found.height = struct.unpack(">II", data[:8])
        elif kind == b"eXIf":
            found.add_exif(data)
        else:
            text = _png_text(kind, data, min(MAX_TEXT_BYTES, found.budget))
            if text is not None:
                found.add(text[0], text[1], clipped=text[2])
    return found


def _png_text(kind: bytes, data: bytes, limit: int) -> tuple[str, str, bool] | None:
    """``(keyword, text, clipped)`` of a tEXt, zTXt or iTXt chunk; None when it is malformed.

    Compressed text inflates to at most ``limit`` bytes (``clipped`` says it had more).
    tEXt and zTXt are Latin-1 by the standard (Pillow writes text that fits Latin-1 there and
    anything else as UTF-8 iTXt); iTXt is UTF-8. Invalid UTF-8 is decoded with replacement
    characters rather than refused.
    """
    keyword, separator, rest = data.partition(b"\0")
    if not separator or not keyword:
        return None
    key = keyword.decode("latin-1")
    if kind == b"tEXt":
        return key, rest.decode("latin-1"), False
    if kind == b"zTXt":
        body, clipped = _inflate(rest[1:], limit)  # rest[0] is the compression method, always zlib
        return None if body is None else (key, body.decode("latin-1"), clipped)
    if len(rest) < 2:
        return None
    compressed = rest[0] == 1
    _language, separator_1, rest = rest[2:].partition(b"\0")
    _translated_keyword, separator_2, body = rest.partition(b"\0")
    if not (separator_1 and separator_2):
        return None
    clipped = False
    if compressed:
        inflated, clipped = _inflate(body, limit)
        if inflated is None:
            return None
        body = inflated
    return key, body.decode("utf-8", "replace"), clipped


def _inflate(data: bytes, limit: int) -> tuple[bytes | None, bool]:
    """Decompress at most ``limit`` bytes (a zip bomb stops there); ``(text, clipped)``, None if broken."""
    inflater = zlib.decompressobj()
    try:
        text = inflater.decompress(data, max(1, limit))
    except zlib.error:
        return None, False
    return text, bool(inflater.unconsumed_tail)


_JPEG_FRAME_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # SOF0-SOF15 but DHT, JPG, DAC
_JPEG_APP1, _JPEG_COMMENT, _JPEG_SCAN, _JPEG_END = 0xE1, 0xFE, 0xDA, 0xD9
_EXIF_HEADER = b"Exif\0\0"
_JPEG_XMP_HEADER = b"http://ns.adobe.com/xap/1.0/\0"
_MAX_JPEG_FILL_BYTES = 65536


def _read_jpeg(reader: _Reader) -> _Found:
    """Walk the segments up to the first scan: SOF for the size, APP1 for EXIF and XMP, COM for text."""
    reader.read(2)
    found = _Found()
    frame_seen = False
    for _ in range(_MAX_CHUNKS):
        marker = _next_jpeg_marker(reader)
        if marker in (_JPEG_SCAN, _JPEG_END):
            break  # the metadata comes before the image data
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:
            continue  # TEM, RSTn and SOI stand alone, without a length
        length = int.from_bytes(reader.read(2), "big")
        if length < 2:
            raise _Damaged("a segment declares an impossible length")
        if marker not in _JPEG_FRAME_MARKERS and marker not in (_JPEG_APP1, _JPEG_COMMENT):
            reader.skip(length - 2)
            continue
        data = reader.read(length - 2)  # at most 65533 bytes
        if marker in _JPEG_FRAME_MARKERS:
            if len(data) < 5:
                raise _Damaged("its frame header is too short")
            if not frame_seen:
                found.height, found.width = struct.unpack(">HH", data[1:5])
                frame_seen = True
        elif marker == _JPEG_APP1 and data.startswith(_EXIF_HEADER):
            found.add_exif(data)
        elif marker == _JPEG_APP1 and data.startswith(_JPEG_XMP_HEADER):
            found.add(XMP_KEY, data[len(_JPEG_XMP_HEADER) :].decode("utf-8", "replace"))
        elif marker == _JPEG_COMMENT:
            found.add("comment", data.decode("utf-8", "replace"))
    if not frame_seen:
        raise _Damaged("it has no frame header (SOF) before its image data")
    return found


def _next_jpeg_marker(reader: _Reader) -> int:
    if reader.read(1) != b"\xff":
        raise _Damaged("a segment marker is missing")
    for _ in range(_MAX_JPEG_FILL_BYTES):  # any number of 0xFF fill bytes may precede a marker
        byte = reader.read(1)[0]
        if byte == 0x00:
            raise _Damaged("a segment marker is invalid")
        if byte != 0xFF:
            return byte
    raise _Damaged("a segment marker is missing")


def _read_webp(reader: _Reader) -> _Found:
    """Walk the RIFF chunks: VP8X/VP8/VP8L for the size, EXIF and XMP for metadata."""
    header = reader.read(12)
    riff_end = min(8 + int.from_bytes(header[4:8], "little"), reader.size)
    found = _Found()
    has_image = False
    for _ in range(_MAX_CHUNKS):
        if reader.position + 8 > riff_end:
            break
        fourcc = reader.read(4)
        size = int.from_bytes(reader.read(4), "little")
        if fourcc in (b"VP8X", b"VP8 ", b"VP8L"):
            data = reader.read(min(size, 10))
            reader.skip(size - len(data))
            has_image = True
            _webp_size(fourcc, data, found)
        elif fourcc in (b"EXIF", b"XMP ") and found.fits(size):
            data = reader.read(size)
            if fourcc == b"EXIF":
                found.add_exif(data)
            else:
                found.add(XMP_KEY, data.decode("utf-8", "replace"))
        else:
            has_image = has_image or fourcc == b"ANIM"
            reader.skip(size)
        if size % 2 and reader.remaining:
            reader.skip(1)  # chunks are padded to an even length
    if not has_image:
        raise _Damaged("it holds no image data")
    return found


def _webp_size(fourcc: bytes, data: bytes, found: _Found) -> None:
    if fourcc == b"VP8X":  # the canvas: it comes first and wins over the frame's own size
        if len(data) < 10:
            raise _Damaged("its VP8X header is too short")
        found.width = 1 + int.from_bytes(data[4:7], "little")
        found.height = 1 + int.from_bytes(data[7:10], "little")
    elif found.width:
        return
    elif fourcc == b"VP8 ":
        if len(data) < 10 or data[3:6] != b"\x9d\x01\x2a":
            raise _Damaged("its VP8 frame header is invalid")
        found.width = int.from_bytes(data[6:8], "little") & 0x3FFF
        found.height = int.from_bytes(data[8:10], "little") & 0x3FFF
    else:
        if len(data) < 5 or data[0] != 0x2F:
            raise _Damaged("its VP8L header is invalid")
        bits = int.from_bytes(data[1:5], "little")
        found.width = (bits & 0x3FFF) + 1
        found.height = ((bits >> 14) & 0x3FFF) + 1


def _read_gif(reader: _Reader) -> _Found:
    """The size from the logical screen descriptor; no tool writes generation parameters into GIFs."""
    header = reader.read(10)
    width, height = struct.unpack("<HH", header[6:10])
    return _Found(width=width, height=height)


# What Pillow raises on malformed TIFF and EXIF structures (it turns the same set into
# UnidentifiedImageError in Image.open).
_PILLOW_PARSE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError, struct.error)


def _read_tiff(reader: _Reader) -> _Found:
    """Pillow's TIFF header reader, used directly: Image.open would apply the process-wide bomb limit."""
    little_endian = reader.read(2) == b"II"
    reader.file.seek(0)
    try:
        image = TiffImagePlugin.TiffImageFile(reader.file)
        found = _Found(width=image.size[0], height=image.size[1])
        xmp = image.tag_v2.get(700)  # XMLPacket
    except _PILLOW_PARSE_ERRORS as error:
        raise _Damaged("its header cannot be read") from error
    try:
        texts = _texts_from_exif(image.getexif(), little_endian)
    except _PILLOW_PARSE_ERRORS:
        texts = {}  # damaged EXIF loses its text, not the image
    for key, text in texts.items():
        found.add(key, text)
    if isinstance(xmp, bytes) and found.fits(len(xmp)):
        found.add(XMP_KEY, xmp.decode("utf-8", "replace"))
    return found


_CONTAINER_READERS: Mapping[str, Callable[[_Reader], _Found]] = MappingProxyType(
    {"png": _read_png, "jpeg": _read_jpeg, "webp": _read_webp, "gif": _read_gif, "tiff": _read_tiff}
)

_EXIF_IFD = 0x8769
_USER_COMMENT = 0x9286
# ComfyUI's WebP and animated saves write "prompt:{...}" into Model (0x0110), "workflow:{...}" into
# Make (0x010F) and further keys into the tags below those.
_COMFYUI_EXIF_TAGS = range(0x0100, 0x0111)


def _exif_texts(data: bytes) -> dict[str, str]:
    """The texts of an EXIF block (with or without its "Exif\\0\\0" header); {} when it is damaged."""
    tiff = data[len(_EXIF_HEADER) :] if data.startswith(_EXIF_HEADER) else data
    exif = Image.Exif()
    try:
        exif.load(tiff)
        return _texts_from_exif(exif, little_endian=tiff[:2] == b"II")
    except _PILLOW_PARSE_ERRORS:
        return {}  # damaged EXIF loses its text, not the image


def _texts_from_exif(exif: Image.Exif, little_endian: bool) -> dict[str, str]:
    texts: dict[str, str] = {}
    comment = exif.get_ifd(_EXIF_IFD).get(_USER_COMMENT)
    if isinstance(comment, (bytes, str)):
        text = decode_user_comment(comment, little_endian=little_endian)
        if text.strip():
            texts["parameters"] = text
    for tag in _COMFYUI_EXIF_TAGS:
        value = exif.get(tag)
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if isinstance(value, str):
            key, separator, text = value.partition(":")
            if separator and key in ("prompt", "workflow"):
                texts.setdefault(key, text)
    return texts


# --- interpreting the texts, one reader per tool ---------------------------------------------

_ToolReader = Callable[[Mapping[str, str], int, int], "ImageMetadata | None"]


def _metadata(
    source: str, prompt: str, negative: str, params: Mapping[str, object], raw: str, width: int, height: int
) -> ImageMetadata:
    """An :class:`ImageMetadata` with the parameters written as text and empty ones left out."""
    written = tuple((key, text) for key, value in params.items() if (text := _value_text(value)))
    return ImageMetadata(source, prompt, negative, written, raw[:RAW_TEXT_LIMIT], width, height)


def _from_infotext(source: str, text: str, width: int, height: int) -> ImageMetadata:
    """A1111 text, read as A1111 reads it; the values stay exactly as parsed."""
    prompt, negative, params = parse_infotext(text)
    return ImageMetadata(source, prompt, negative, tuple(params.items()), text[:RAW_TEXT_LIMIT], width, height)


def _raw_dump(texts: Mapping[str, str], clipped: Mapping[str, str]) -> str:
    """All the text an unrecognised image holds, for "Show raw"."""
    dump = "\n".join(f"{key}: {text}" for key, text in (*texts.items(), *clipped.items()))
    return dump[:RAW_TEXT_LIMIT]


def _a1111(texts: Mapping[str, str], width: int, height: int) -> ImageMetadata | None:
    text = texts.get("parameters", "")
    # A JSON object is some other tool's (ComfyUI's JPEG savers put graphs here); a prompt
    # starting with "{" (NovelAI emphasis) is not valid JSON and stays A1111 text.
    if not text.strip() or _json_object(text) is not None:
        return None
    return _from_infotext("a1111", text, width, height)


def _a1111_comment(texts: Mapping[str, str], width: int, height: int) -> ImageMetadata | None:
    """A JPEG comment holding A1111 text (some older tools): only when it has a parameters line."""
    metadata = _from_infotext("a1111", texts.get("comment", ""), width, height)
    return metadata if metadata.params else None


# --- ComfyUI ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Node:
    class_type: str
    inputs: Mapping[str, object]


_Graph = Mapping[str, _Node]

_SAMPLER_CLASSES = frozenset({"KSampler", "KSamplerAdvanced", "SamplerCustom", "SamplerCustomAdvanced"})
# Inputs that hold prompt text, in the order they are preferred (SDXL's text_g before text_l,
# Flux's t5xxl before clip_l); "value" only counts on nodes whose type says they encode text.
_TEXT_INPUTS = ("text", "text_g", "t5xxl", "prompt", "clip_l", "text_l")
_CONDITIONING_INPUTS = ("conditioning", "conditioning_1", "conditioning_2", "conditioning_to", "conditioning_from")
# Where a linked value is found on the node it links to (primitives, string and seed nodes).
_VALUE_INPUTS = ("value", "text", "string", "seed", "noise_seed", "int", "float", "number", "Text", "STRING", "prompt")
_CHECKPOINT_INPUTS = ("ckpt_name", "unet_name", "model_name")
_SCHEDULERS_BY_SIGMA_NODE = MappingProxyType(
    {
        "KarrasScheduler": "karras",
        "ExponentialScheduler": "exponential",
        "PolyexponentialScheduler": "polyexponential",
        "AlignYourStepsScheduler": "align_your_steps",
        "BetaSamplingScheduler": "beta",
    }
)
_MAX_HOPS = 16  # links followed from one input: enough for real graphs, a stop for cycles


def _comfyui(texts: Mapping[str, str], width: int, height: int) -> ImageMetadata | None:
    for key in ("prompt", "parameters"):
        graph = _api_graph(_json_object(texts.get(key, "")))
        if graph:
            return _from_comfyui_graph(graph, texts[key], width, height)
    for key in ("workflow", "parameters"):
        graph = _workflow_graph(_json_object(texts.get(key, "")))
        if graph:
            return _from_comfyui_graph(graph, texts[key], width, height)
    return None


def _api_graph(data: Mapping[str, object] | None) -> dict[str, _Node]:
    """The API graph ({node_id: {class_type, inputs}}), keeping only nodes of the right shape."""
    graph: dict[str, _Node] = {}
    for node_id, node in (data or {}).items():
        if isinstance(node, dict) and isinstance(node.get("class_type"), str):
            inputs = node.get("inputs")
            graph[node_id] = _Node(node["class_type"], inputs if isinstance(inputs, dict) else {})
    return graph


# The editor saves widget values as a list in the widgets' order; these name them for the nodes
# that carry generation settings, so a workflow reads like an API graph.
_WIDGET_NAMES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "KSampler": ("seed", "control_after_generate", "steps", "cfg", "sampler_name", "scheduler", "denoise"),
        "KSamplerAdvanced": (
            "add_noise",
            "noise_seed",
            "control_after_generate",
            "steps",
            "cfg",
            "sampler_name",
            "scheduler",
            "start_at_step",
            "end_at_step",
            "return_with_leftover_noise",
        ),
        "SamplerCustom": ("add_noise", "noise_seed", "control_after_generate", "cfg"),
        "KSamplerSelect": ("sampler_name",),
        "BasicScheduler": ("scheduler", "steps", "denoise"),
        "KarrasScheduler": ("steps", "sigma_max", "sigma_min", "rho"),
        "RandomNoise": ("noise_seed", "control_after_generate"),
        "CFGGuider": ("cfg",),
        "CLIPTextEncode": ("text",),
        "CLIPTextEncodeSDXL": ("width", "height", "crop_w", "crop_h", "target_width", "target_height", "text_g", "text_l"),
        "CLIPTextEncodeSDXLRefiner": ("ascore", "width", "height", "text"),
        "EmptyLatentImage": ("width", "height", "batch_size"),
        "EmptySD3LatentImage": ("width", "height", "batch_size"),
        "CheckpointLoaderSimple": ("ckpt_name",),
        "CheckpointLoader": ("config_name", "ckpt_name"),
        "UNETLoader": ("unet_name", "weight_dtype"),
        "LoraLoader": ("lora_name", "strength_model", "strength_clip"),
        "PrimitiveNode": ("value", "control_after_generate"),
    }
)


def _workflow_graph(data: Mapping[str, object] | None) -> dict[str, _Node]:
    """The editor's workflow ({nodes, links}) rebuilt as an API graph, as far as it can be."""
    if data is None or not isinstance(data.get("nodes"), list):
        return {}
    origins: dict[object, list[object]] = {}  # link id -> [origin node id, origin slot]
    for link in data.get("links") if isinstance(data.get("links"), list) else ():
        if isinstance(link, list) and len(link) >= 3:
            link_id, origin, slot = link[0], link[1], link[2]
        elif isinstance(link, dict):
            link_id, origin, slot = link.get("id"), link.get("origin_id"), link.get("origin_slot")
        else:
            continue
        if _is_id(link_id) and _is_id(origin):
            origins[link_id] = [str(origin), slot if isinstance(slot, int) and not isinstance(slot, bool) else 0]
    graph: dict[str, _Node] = {}
    for node in data["nodes"]:
        if not isinstance(node, dict) or not isinstance(node.get("type"), str) or not _is_id(node.get("id")):
            continue
        class_type = node["type"]
        inputs: dict[str, object] = {}
        widgets = node.get("widgets_values")
        if isinstance(widgets, dict):
            inputs.update((name, value) for name, value in widgets.items() if isinstance(name, str))
        elif isinstance(widgets, list) and widgets:
            names = _WIDGET_NAMES.get(class_type, ("value",))  # unknown nodes: their first widget
            inputs.update(zip(names, widgets))
        for entry in node.get("inputs") if isinstance(node.get("inputs"), list) else ():
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                continue
            link = entry.get("link")
            # A widget turned into an input keeps its last value among the widgets; that value wins.
            if _is_id(link) and link in origins and entry["name"] not in inputs:
                inputs[entry["name"]] = origins[link]
        graph[str(node["id"])] = _Node(class_type, inputs)
    return graph


def _is_id(value: object) -> bool:
    return isinstance(value, (int, str)) and not isinstance(value, bool)


def _from_comfyui_graph(graph: _Graph, raw: str, width: int, height: int) -> ImageMetadata:
    order = sorted(graph, key=_node_order)
    samplers = [graph[node_id] for node_id in order if _is_sampler(graph[node_id])]
    settings = _sampler_settings(graph, _main_sampler(graph, samplers)) if samplers else {}
    prompt = _conditioning_text(graph, settings.get("positive"), "positive")
    negative = _conditioning_text(graph, settings.get("negative"), "negative")
    sampler, schedule = a1111_sampler_name(
        _text(graph, settings.get("sampler_name"), "sampler_name"), _text(graph, settings.get("scheduler"), "scheduler")
    )
    latent_width, latent_height = _latent_size(graph, settings.get("latent_image"))
    denoise = _value_text(_resolve(graph, settings.get("denoise"), "denoise"))
    params = {
        "Steps": _resolve(graph, settings.get("steps"), "steps"),
        "Sampler": sampler,
        "Schedule type": schedule,
        "CFG scale": _resolve(graph, settings.get("cfg"), "cfg"),
        "Seed": _resolve(graph, settings.get("seed"), "seed"),
        "Size": _size_text(latent_width, latent_height) or _size_text(width, height),
        "Model": _model_name(graph, settings.get("model")) or _any_checkpoint(graph, order),
        "Denoising strength": denoise if _below_one(denoise) else "",
    }
    return _metadata("comfyui", prompt, negative, params, raw, width, height)


def _node_order(node_id: str) -> tuple[int, int, str]:
    # Numeric ids in numeric order ("3" before "10"), then the rest ("12:5" in group nodes) by name.
    return (0, int(node_id), "") if node_id.isdecimal() and len(node_id) < 18 else (1, 0, node_id)


def _is_sampler(node: _Node) -> bool:
    inputs = node.inputs
    if node.class_type in _SAMPLER_CLASSES:
        return True
    # Custom samplers ("KSampler (Efficient)", ...) look like KSampler.
    return "positive" in inputs and "negative" in inputs and "steps" in inputs


def _main_sampler(graph: _Graph, samplers: list[_Node]) -> _Node:
    """The first pass: the sampler that starts from an empty latent (a hires pass starts from another's)."""
    for node in samplers:
        latent = _linked_node(graph, node.inputs.get("latent_image"))
        if latent is not None and "width" in latent[1].inputs and "height" in latent[1].inputs:
            return node
    return samplers[0]


def _sampler_settings(graph: _Graph, node: _Node) -> dict[str, object]:
    """The sampler's inputs, with those SamplerCustom(Advanced) take from the small nodes linked to them."""
    settings = dict(node.inputs)
    helpers = (
        ("noise", ("noise_seed",)),
        ("guider", ("cfg", "positive", "negative", "conditioning", "model")),
        ("sampler", ("sampler_name",)),
        ("sigmas", ("steps", "scheduler", "denoise")),
    )
    for link_name, wanted in helpers:
        linked = _linked_node(graph, settings.get(link_name))
        if linked is None:
            continue
        helper = linked[1]
        for name in wanted:
            if name in helper.inputs:
                settings.setdefault(name, helper.inputs[name])
        if link_name == "sigmas" and helper.class_type in _SCHEDULERS_BY_SIGMA_NODE:
            settings.setdefault("scheduler", _SCHEDULERS_BY_SIGMA_NODE[helper.class_type])
    if "positive" not in settings and "conditioning" in settings:  # BasicGuider: one conditioning
        settings["positive"] = settings["conditioning"]
    if "seed" not in settings and "noise_seed" in settings:
        settings["seed"] = settings["noise_seed"]
    return settings


def _linked_node(graph: _Graph, value: object) -> tuple[str, _Node] | None:
    """The node a link (``[node_id, output_index]``) points to; None for plain values and dangling links."""
    if not (isinstance(value, list) and len(value) == 2 and _is_id(value[0])):
        return None
    if not isinstance(value[1], int) or isinstance(value[1], bool):
        return None
    node_id = str(value[0])
    node = graph.get(node_id)
    return None if node is None else (node_id, node)


def _resolve(graph: _Graph, value: object, name: str) -> object:
    """A plain value, following links through primitive, string and seed nodes; None if it leads nowhere."""
    seen: set[str] = set()
    for _ in range(_MAX_HOPS):
        linked = _linked_node(graph, value)
        if linked is None:
            return None if isinstance(value, list) else value  # a dangling link is no value
        node_id, node = linked
        if node_id in seen:
            return None
        seen.add(node_id)
        value = _value_input(node, name)
    return None


def _value_input(node: _Node, name: str) -> object:
    for candidate in (name, *_VALUE_INPUTS):
        if candidate in node.inputs:
            return node.inputs[candidate]
    if len(node.inputs) == 1:  # reroutes and one-input helpers
        return next(iter(node.inputs.values()))
    return None


def _text(graph: _Graph, value: object, name: str) -> str:
    resolved = _resolve(graph, value, name)
    return resolved if isinstance(resolved, str) else ""


def _conditioning_text(graph: _Graph, value: object, role: str) -> str:
    """The prompt text that reaches a sampler's ``role`` ("positive"/"negative") input.

    Follows the conditioning back through combine, area, ControlNet and similar nodes to every
    text encoder it came from; several texts are joined by newlines, each once.
    """
    texts: list[str] = []
    _collect_texts(graph, value, role, set(), 0, texts)
    return "\n".join(dict.fromkeys(texts))


def _collect_texts(graph: _Graph, value: object, role: str, seen: set[str], depth: int, texts: list[str]) -> None:
    linked = _linked_node(graph, value)
    if linked is None:
        if isinstance(value, str) and value.strip():  # nodes like "Efficient Loader" take the text itself
            texts.append(value)
        return
    node_id, node = linked
    if node_id in seen or depth >= _MAX_HOPS:
        return
    seen.add(node_id)
    if "TextEncode" in node.class_type or any(name in node.inputs for name in _TEXT_INPUTS):
        for name in (*_TEXT_INPUTS, "value"):
            text = _text(graph, node.inputs.get(name), name)
            if text.strip():
                texts.append(text)
                return
        return
    followed = [name for name in (role, *_CONDITIONING_INPUTS) if name in node.inputs]
    if not followed and len(node.inputs) == 1:
        followed = list(node.inputs)  # a reroute
    for name in followed:
        _collect_texts(graph, node.inputs[name], role, seen, depth + 1, texts)


def _model_name(graph: _Graph, value: object) -> str:
    """The checkpoint at the start of the sampler's model chain (through LoRA loaders and patches)."""
    seen: set[str] = set()
    for _ in range(_MAX_HOPS):
        linked = _linked_node(graph, value)
        if linked is None or linked[0] in seen:
            return ""
        node_id, node = linked
        seen.add(node_id)
        for name in _CHECKPOINT_INPUTS:
            name_text = _text(graph, node.inputs.get(name), name)
            if name_text.strip():
                return _model_stem(name_text)
        value = node.inputs.get("model")
        if value is None and len(node.inputs) == 1:
            value = next(iter(node.inputs.values()))  # a reroute
    return ""


def _any_checkpoint(graph: _Graph, order: list[str]) -> str:
    for node_id in order:
        for name in ("ckpt_name", "unet_name"):
            name_text = _text(graph, graph[node_id].inputs.get(name), name)
            if name_text.strip():
                return _model_stem(name_text)
    return ""


def _latent_size(graph: _Graph, value: object) -> tuple[object, object]:
    linked = _linked_node(graph, value)
    if linked is None:
        return None, None
    inputs = linked[1].inputs
    return _resolve(graph, inputs.get("width"), "width"), _resolve(graph, inputs.get("height"), "height")


# --- InvokeAI --------------------------------------------------------------------------------


def _invokeai(texts: Mapping[str, str], width: int, height: int) -> ImageMetadata | None:
    data = _json_object(texts.get("invokeai_metadata", ""))
    if data is not None:
        return _from_invokeai(data, texts["invokeai_metadata"], width, height)
    data = _json_object(texts.get("sd-metadata", ""))
    if data is not None:
        return _from_invokeai_2(data, texts["sd-metadata"], width, height)
    dream = texts.get("Dream", "")
    if dream.strip():
        return _from_dream(dream, width, height)
    return None


def _from_invokeai(data: Mapping[str, object], raw: str, width: int, height: int) -> ImageMetadata:
    """InvokeAI 3 and later: flat JSON with a model object ({name} in 4.x, {model_name} in 3.x)."""
    sampler, schedule = a1111_sampler_name(_str(data.get("scheduler")))
    clip_skip = _int(data.get("clip_skip"))
    strength = _value_text(data.get("strength"))
    params = {
        "Steps": data.get("steps"),
        "Sampler": sampler,
        "Schedule type": schedule,
        "CFG scale": data.get("cfg_scale"),
        "Seed": data.get("seed"),
        "Size": _size_text(data.get("width"), data.get("height")) or _size_text(width, height),
        "Model": _model_label(data.get("model")),
        "VAE": _model_label(data.get("vae")),
        "Denoising strength": strength if _below_one(strength) else "",
        # InvokeAI counts the layers skipped (0 = none); A1111 counts from 1 (1 = none).
        "Clip skip": clip_skip + 1 if clip_skip is not None and clip_skip > 0 else None,
    }
    prompt, negative = _str(data.get("positive_prompt")), _str(data.get("negative_prompt"))
    return _metadata("invokeai", prompt, negative, params, raw, width, height)


def _from_invokeai_2(data: Mapping[str, object], raw: str, width: int, height: int) -> ImageMetadata:
    """InvokeAI 2 ``sd-metadata``: settings under "image"; the prompt a string or weighted parts."""
    image = data.get("image")
    image = image if isinstance(image, dict) else {}
    prompt = image.get("prompt")
    if isinstance(prompt, list):
        prompt = " ".join(_str(part.get("prompt")) for part in prompt if isinstance(part, dict))
    sampler, schedule = a1111_sampler_name(_str(image.get("sampler")))
    strength = _value_text(image.get("strength"))
    params = {
        "Steps": image.get("steps"),
        "Sampler": sampler,
        "Schedule type": schedule,
        "CFG scale": image.get("cfg_scale"),
        "Seed": image.get("seed"),
        "Size": _size_text(image.get("width"), image.get("height")) or _size_text(width, height),
        "Model": _str(data.get("model_weights")),
        "Denoising strength": strength if _below_one(strength) else "",
    }
    return _metadata("invokeai", _str(prompt), "", params, raw, width, height)


_DREAM_OPTIONS = MappingProxyType(
    {"-s": "Steps", "-S": "Seed", "-C": "CFG scale", "-A": "Sampler", "-W": "width", "-H": "height", "-f": "strength"}
)
_DREAM_QUOTED_PROMPT = re.compile(r'\s*"(.*?)"(?:\s+|$)(.*)', re.DOTALL)


def _from_dream(text: str, width: int, height: int) -> ImageMetadata:
    """InvokeAI 1-2 ``Dream``: a command line, ``"a cat" -s 50 -S 42 -W 512 -H 512 -C 7.5 -A k_lms``."""
    quoted = _DREAM_QUOTED_PROMPT.match(text)
    prompt, options = (quoted.group(1), quoted.group(2)) if quoted else ("", text)
    words = options.split()
    if not quoted:  # unquoted: the prompt runs up to the first option
        first_option = next((index for index, word in enumerate(words) if word in _DREAM_OPTIONS), len(words))
        prompt, words = " ".join(words[:first_option]), words[first_option:]
    values = {_DREAM_OPTIONS[word]: value for word, value in zip(words, words[1:]) if word in _DREAM_OPTIONS}
    sampler, schedule = a1111_sampler_name(values.get("Sampler", ""))
    strength = values.get("strength", "")
    params = {
        "Steps": values.get("Steps"),
        "Sampler": sampler,
        "Schedule type": schedule,
        "CFG scale": values.get("CFG scale"),
        "Seed": values.get("Seed"),
        "Size": _size_text(values.get("width"), values.get("height")) or _size_text(width, height),
        "Denoising strength": strength if _below_one(strength) else "",
    }
    return _metadata("invokeai", prompt, "", params, text, width, height)


# --- NovelAI ---------------------------------------------------------------------------------


def _novelai(texts: Mapping[str, str], width: int, height: int) -> ImageMetadata | None:
    """NovelAI: the prompt in ``Description`` (as A1111 reads it), settings in ``Comment`` JSON."""
    if not (texts.get("Software", "").startswith("NovelAI") or texts.get("Source", "").startswith("NovelAI")):
        return None
    comment = _json_object(texts.get("Comment", "")) or {}
    prompt = texts.get("Description", "") or _str(comment.get("prompt")) or _v4_caption(comment.get("v4_prompt"))
    negative = _str(comment.get("uc")) or _v4_caption(comment.get("v4_negative_prompt"))
    noise_schedule = _str(comment.get("noise_schedule"))
    sampler, schedule = a1111_sampler_name(_str(comment.get("sampler")), "" if noise_schedule == "native" else noise_schedule)
    strength = _value_text(comment.get("strength"))
    params = {
        "Steps": comment.get("steps"),
        "Sampler": sampler,
        "Schedule type": schedule,
        "CFG scale": comment.get("scale"),
        "Seed": comment.get("seed"),
        "Size": _size_text(comment.get("width"), comment.get("height")) or _size_text(width, height),
        "Model": texts.get("Source", ""),
        "Denoising strength": strength if _below_one(strength) else "",
    }
    raw = texts.get("Comment") or texts.get("Description", "")
    return _metadata("novelai", prompt, negative, params, raw, width, height)


def _v4_caption(value: object) -> str:
    """NovelAI V4's prompt object: {"caption": {"base_caption": ...}}."""
    caption = value.get("caption") if isinstance(value, dict) else None
    return _str(caption.get("base_caption")) if isinstance(caption, dict) else ""


# --- Draw Things -----------------------------------------------------------------------------

_XMP_FIELDS = MappingProxyType(
    {
        "{http://ns.adobe.com/exif/1.0/}UserComment": "UserComment",
        "{http://purl.org/dc/elements/1.1/}description": "description",
        "{http://ns.adobe.com/xap/1.0/}CreatorTool": "CreatorTool",
    }
)


def _drawthings(texts: Mapping[str, str], width: int, height: int) -> ImageMetadata | None:
    """Draw Things: XMP with JSON settings in exif:UserComment ({c, uc, seed, steps, scale, ...}).

    Without that JSON, an XMP that names Draw Things as its creator tool is read for the A1111-like
    text in dc:description. Any other XMP (Photoshop, Lightroom) is not claimed.
    """
    xmp = texts.get(XMP_KEY, "")
    if not xmp:
        return None
    fields = _xmp_fields(xmp)
    data = _json_object(fields.get("UserComment", ""))
    by_draw_things = "draw things" in fields.get("CreatorTool", "").lower()
    if data is not None and ("c" in data or by_draw_things):
        sampler, schedule = a1111_sampler_name(_str(data.get("sampler")))
        strength = _value_text(data.get("strength"))
        size = _str(data.get("size")).replace(" ", "")
        params = {
            "Steps": data.get("steps"),
            "Sampler": sampler,
            "Schedule type": schedule,
            "CFG scale": data.get("scale"),
            "Seed": data.get("seed"),
            "Size": size or _size_text(data.get("width"), data.get("height")) or _size_text(width, height),
            "Model": _model_stem(_str(data.get("model"))),
            "Denoising strength": strength if _below_one(strength) else "",
        }
        prompt, negative = _str(data.get("c")), _str(data.get("uc"))
        return _metadata("drawthings", prompt, negative, params, fields["UserComment"], width, height)
    description = fields.get("description", "")
    if by_draw_things and description.strip():
        return _from_infotext("drawthings", description, width, height)
    return None


def _xmp_fields(xmp: str) -> dict[str, str]:
    """UserComment, description and CreatorTool of an XMP packet, as elements or attributes."""
    if "<!DOCTYPE" in xmp or "<!ENTITY" in xmp:
        return {}  # XMP never declares entities; refusing them rules out entity expansion bombs
    try:
        root = ElementTree.fromstring(xmp.strip().strip("\0"))
    except (ElementTree.ParseError, ValueError):
        return {}
    fields: dict[str, str] = {}
    for element in root.iter():
        name = _XMP_FIELDS.get(element.tag)
        if name is not None and name not in fields:
            fields[name] = "".join(element.itertext()).strip()
        for attribute, value in element.attrib.items():
            name = _XMP_FIELDS.get(attribute)
            if name is not None:
                fields.setdefault(name, value.strip())
    return fields


_TOOL_READERS: tuple[_ToolReader, ...] = (_a1111, _invokeai, _comfyui, _novelai, _drawthings, _a1111_comment)


# --- sampler and schedule names --------------------------------------------------------------

_A1111_SAMPLERS = MappingProxyType({name.lower(): name for name in SAMPLER_NAMES})
_A1111_SCHEDULES = MappingProxyType({name.lower(): name for name in SCHEDULE_NAMES})
# Other tools' names for A1111's samplers: ComfyUI (k-diffusion function names), InvokeAI
# (diffusers scheduler names), NovelAI and InvokeAI 2 (the same with a "k_" prefix, handled below).
_SAMPLER_ALIASES = MappingProxyType(
    {
        "euler": "Euler",
        "euler_ancestral": "Euler a",
        "euler_a": "Euler a",
        "heun": "Heun",
        "dpm_2": "DPM2",
        "kdpm_2": "DPM2",
        "dpm_2_ancestral": "DPM2 a",
        "dpm_2_a": "DPM2 a",
        "kdpm_2_a": "DPM2 a",
        "lms": "LMS",
        "dpm_fast": "DPM fast",
        "dpm_adaptive": "DPM adaptive",
        "dpmpp_2s_ancestral": "DPM++ 2S a",
        "dpmpp_sde": "DPM++ SDE",
        "dpmpp_sde_gpu": "DPM++ SDE",
        "dpmpp_2m": "DPM++ 2M",
        "dpmpp_2m_sde": "DPM++ 2M SDE",
        "dpmpp_2m_sde_gpu": "DPM++ 2M SDE",
        "dpmpp_2m_sde_heun": "DPM++ 2M SDE Heun",
        "dpmpp_2m_sde_heun_gpu": "DPM++ 2M SDE Heun",
        "dpmpp_3m_sde": "DPM++ 3M SDE",
        "dpmpp_3m_sde_gpu": "DPM++ 3M SDE",
        "ddim": "DDIM",
        "plms": "PLMS",
        "pndm": "PLMS",
        "uni_pc": "UniPC",
        "unipc": "UniPC",
        "lcm": "LCM",
        "restart": "Restart",
    }
)
_SCHEDULE_ALIASES = MappingProxyType(
    {
        "sgm_uniform": "SGM Uniform",
        "ddim_uniform": "DDIM",
        "kl_optimal": "KL Optimal",
        "align_your_steps": "Align Your Steps",
        "ays": "Align Your Steps",
    }
)
# Names that carry their schedule: Draw Things' "DPM++ 2M Karras", InvokeAI's "dpmpp_2m_k".
_SCHEDULE_SUFFIXES = ((" karras", "Karras"), ("_karras", "Karras"), ("_k", "Karras"), (" ays", "Align Your Steps"))


def a1111_sampler_name(sampler: str, scheduler: str = "") -> tuple[str, str]:
    """``(Sampler, Schedule type)`` in A1111's names for another tool's sampler (and scheduler) name.

    Names with no clear A1111 equivalent are kept as they are.

    >>> a1111_sampler_name("dpmpp_2m", "karras")
    ('DPM++ 2M', 'Karras')
    >>> a1111_sampler_name("k_euler_ancestral"), a1111_sampler_name("DPM++ 2M Karras")
    (('Euler a', ''), ('DPM++ 2M', 'Karras'))
    >>> a1111_sampler_name("dpmpp_2m_k"), a1111_sampler_name("my_custom_sampler", "weird")
    (('DPM++ 2M', 'Karras'), ('my_custom_sampler', 'weird'))
    """
    name = sampler.strip()
    key = name.lower()
    schedule = _a1111_schedule(scheduler)
    known = _known_sampler(key)
    if known:
        return known, schedule
    for suffix, implied in _SCHEDULE_SUFFIXES:
        if key.endswith(suffix) and (known := _known_sampler(key[: -len(suffix)])):
            return known, schedule or implied
    return name, schedule


def _known_sampler(key: str) -> str:
    if key.startswith("k_"):
        key = key[2:]
    return _A1111_SAMPLERS.get(key) or _SAMPLER_ALIASES.get(key) or ""


def _a1111_schedule(scheduler: str) -> str:
    name = scheduler.strip()
    key = name.lower()
    return _A1111_SCHEDULES.get(key) or _SCHEDULE_ALIASES.get(key) or name


# --- small helpers ---------------------------------------------------------------------------


def _json_object(text: str) -> dict[str, object] | None:
    """``text`` parsed as a JSON object; None for anything else (other JSON, invalid, too deep)."""
    if not text.lstrip().startswith("{"):
        return None
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):  # ValueError also covers integers beyond Python's digit limit
        return None
    return data if isinstance(data, dict) else None


def _value_text(value: object) -> str:
    """A parameter value as A1111 writes it: numbers plainly (7.0 as 7), text stripped, others ""."""
    if isinstance(value, bool) or value is None:
        return ""
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return ""
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, str):
        return value.strip()
    return ""


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _int(value: object) -> int | None:
    text = _value_text(value)
    return int(text) if text.lstrip("-").isdecimal() and len(text) < 20 else None


def _below_one(text: str) -> bool:
    """Whether a denoise/strength value says "less than the full image" (worth writing down)."""
    try:
        return 0 <= float(text) < 1
    except ValueError:
        return False


def _size_text(width: object, height: object) -> str:
    width_text, height_text = _value_text(width), _value_text(height)
    for text in (width_text, height_text):
        if not (text.isdecimal() and len(text) < 10) or int(text) == 0:
            return ""
    return f"{int(width_text)}x{int(height_text)}"


_MODEL_SUFFIXES = frozenset({".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".sft"})


def _model_stem(name: str) -> str:
    """A checkpoint's name as A1111 writes it: no folders, no extension ("sdxl\\\\juggernaut.safetensors" -> "juggernaut").

    >>> _model_stem("SDXL\\\\juggernautXL_v9.safetensors"), _model_stem("flux1-dev-Q4.gguf"), _model_stem("v1.5")
    ('juggernautXL_v9', 'flux1-dev-Q4', 'v1.5')
    """
    base = name.strip().replace("\\", "/").rsplit("/", 1)[-1]
    stem, dot, suffix = base.rpartition(".")
    return stem if dot and f".{suffix.lower()}" in _MODEL_SUFFIXES else base


def _model_label(value: object) -> str:
    """InvokeAI's model field: an object with "name" (4.x) or "model_name" (3.x), or a plain name."""
    if isinstance(value, dict):
        return _str(value.get("name")) or _str(value.get("model_name"))
    return _str(value)
