"""Writing generated images: A1111 file names, metadata in the PNG, atomic and never overwriting."""

from __future__ import annotations

import io
import os
import re
import tempfile
from pathlib import Path

from PIL import Image, PngImagePlugin

from desktop.core.errors import DesktopError

_NUMBERED = re.compile(r"^(\d{5})-")


class OutputError(DesktopError):
    code = "output"


def next_image_number(folder: Path) -> int:
    """A1111 numbers images in a folder 00000, 00001, ...: one more than the highest there."""
    highest = -1
    if folder.is_dir():
        for entry in os.scandir(folder):
            match = _NUMBERED.match(entry.name)
            if match:
                highest = max(highest, int(match.group(1)))
    return highest + 1


def png_bytes(image: Image.Image, infotext: str | None = None) -> bytes:
    """The image as PNG, with the A1111 ``parameters`` text chunk when an infotext is given."""
    info = PngImagePlugin.PngInfo()
    if infotext is not None:
        info.add_text("parameters", infotext)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def save_png(image: Image.Image, infotext: str, folder: Path, seed: int) -> Path:
    """Save as ``NNNNN-seed.png`` with the ``parameters`` text chunk; returns the final path.

    The image is written to a temporary file in the same folder and then linked to its final
    name, which fails instead of overwriting if another process took that name first: a crash
    leaves either no file or a complete one, and two writers never clobber each other.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"cannot create the output folder {folder}: {error.strerror}", path=str(folder)) from error
    handle, temp_name = tempfile.mkstemp(prefix=".saving-", suffix=".png", dir=folder)
    temp = Path(temp_name)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(png_bytes(image, infotext))
            stream.flush()
            os.fsync(stream.fileno())
        number = next_image_number(folder)
        while True:
            final = folder / f"{number:05d}-{seed}.png"
            try:
                os.link(temp, final)
                break
            except FileExistsError:
                number += 1
            except OSError:  # file systems without hard links (exFAT): check, then rename
                if final.exists():
                    number += 1
                    continue
                os.replace(temp, final)
                break
        return final
    except OSError as error:
        raise OutputError(f"could not save the image in {folder}: {error.strerror or error}", path=str(folder)) from error
    finally:
        temp.unlink(missing_ok=True)
