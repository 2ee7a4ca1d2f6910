"""One training image as the VAE wants it: oriented, RGB, resized to cover its bucket, centre-cropped.

Memory stays bounded for huge files: a JPEG is decoded at the smallest 1/2, 1/4 or 1/8 scale that
still covers the bucket (``Image.draft``); other formats are decoded once in their own mode (one
byte per pixel for greyscale) and shrunk by an integer factor (``Image.reduce``) before any RGB
conversion, resampling or float copy. Anything over :data:`~desktop.training.dataset.MAX_IMAGE_PIXELS`
is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image

from desktop.training.buckets import CropPlan, Size, crop_plan
from desktop.training.dataset import DatasetError, UnusableImage, exif_orientation, open_image

# ImageOps.exif_transpose's table; applied by hand because a reduced copy no longer carries EXIF.
_ORIENTATION_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# Modes Image.reduce works on; others ("1", "P", "I;16") are converted first.
_REDUCIBLE_MODES = frozenset({"L", "LA", "RGB", "RGBA", "CMYK", "YCbCr", "I", "F", "PA"})
# Keep at least this much more resolution than the target before the final Lanczos resize.
_REDUCING_GAP = 2


class TrainingImage(NamedTuple):
    """The pixels (CHW float32 in [-1, 1]) and SDXL's size conditioning: (top, left) and (height, width)."""

    pixels: torch.Tensor
    crop_top_left: tuple[int, int]
    original_size: tuple[int, int]  # (height, width) as displayed, before any resize


def load_training_image(path: Path, bucket: Size, flip: bool = False) -> TrainingImage:
    """Decode ``path`` into ``bucket`` (width, height): EXIF orientation, alpha on white, cover, centre crop, flip.

    Raises :class:`~desktop.training.dataset.DatasetError` naming the file when it cannot be decoded
    (for example it was replaced or truncated after the dataset was scanned).
    """
    path = Path(path)
    try:
        with open_image(path) as image:
            orientation = exif_orientation(image)
            stored_width, stored_height = image.size
            displayed = (stored_height, stored_width) if orientation >= 5 else (stored_width, stored_height)
            plan = crop_plan(displayed, bucket, flip)
            rgb = _decode_reduced(image, _stored_target(plan.resized_size, orientation))
            cropped = _cover_and_crop(_apply_orientation(rgb, orientation), plan)  # before the file closes
    except UnusableImage as unusable:
        raise DatasetError(f"Training image '{path}' cannot be used: {unusable.reason}", path=str(path)) from None
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise DatasetError(f"Training image '{path}' cannot be decoded: {error}", path=str(path)) from error
    return TrainingImage(
        pixels=to_tensor(cropped),
        crop_top_left=plan.crop_top_left,
        original_size=(displayed[1], displayed[0]),
    )


def _stored_target(resized_size: Size, orientation: int) -> Size:
    """The resize target in the file's own orientation (width and height swap for quarter turns)."""
    return (resized_size[1], resized_size[0]) if orientation >= 5 else resized_size


def _decode_reduced(image: Image.Image, target: Size) -> Image.Image:
    """Decode at the smallest size that still leaves room for a good resize to ``target``, as RGB."""
    if image.format in ("JPEG", "MPO"):
        image.draft(image.mode, (target[0] * _REDUCING_GAP, target[1] * _REDUCING_GAP))
    image.load()
    if image.mode == "1":
        image = image.convert("L")
    factor = int(min(image.width / target[0], image.height / target[1]) / _REDUCING_GAP)
    if factor >= 2 and image.mode in _REDUCIBLE_MODES:
        image = image.reduce(factor)
    return to_rgb(image)


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB with any transparency composited on white; 16-bit greyscale scaled, not clipped."""
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        image = image.convert("I").point(lambda value: value * (1 / 256)).convert("L")
    if _has_transparency(image):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")


def _has_transparency(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info


def _apply_orientation(image: Image.Image, orientation: int) -> Image.Image:
    method = _ORIENTATION_TRANSPOSE.get(orientation)
    return image if method is None else image.transpose(method)


def _cover_and_crop(image: Image.Image, plan: CropPlan) -> Image.Image:
    if image.size != plan.resized_size:
        image = image.resize(plan.resized_size, Image.Resampling.LANCZOS)
    image = image.crop(plan.box)
    return image.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if plan.flip else image


def to_tensor(image: Image.Image) -> torch.Tensor:
    """An RGB image as a CHW float32 tensor in [-1, 1] (what the VAE encoder expects)."""
    array = np.asarray(image, dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div_(127.5).sub_(1.0)
