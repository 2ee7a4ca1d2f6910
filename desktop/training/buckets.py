"""Aspect-ratio buckets and the order of an epoch, as kohya sd-scripts does them (pure Python).

Images of different shapes cannot share a batch, so each image goes to the bucket (a width x
height, multiple of ``step``) whose aspect ratio is closest to its own; it is resized to cover the
bucket and centre-cropped. An epoch visits every image ``repeats`` times, in batches that hold one
bucket each. Everything here is plain Python because the UI imports it (via the dataset) to show
buckets and steps per epoch; the random draws come from generators seeded from ``(seed, epoch)``, so
a resumed run sees the same batches as an uninterrupted one.

kohya's bucket list for 512 x 512 (steps of 64, sides 256..1024):

>>> make_buckets((512, 512))[:5]
((256, 832), (256, 896), (256, 960), (256, 1024), (320, 704))
>>> assign_bucket(768, 512, make_buckets((512, 512)))
(640, 384)
>>> crop_plan((768, 512), (640, 384))
CropPlan(resized_size=(640, 427), bucket=(640, 384), left=0, top=21, flip=False)
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from desktop.training.dataset import Dataset

Size = tuple[int, int]
"""(width, height) in pixels, kohya's order."""


def make_buckets(resolution: Size, min_reso: int = 256, max_reso: int = 1024, step: int = 64) -> tuple[Size, ...]:
    """kohya's ``make_bucket_resolutions``: every (w, h) in steps of ``step`` with w*h <= the resolution's area.

    For each width from ``min_reso`` to ``max_reso`` the tallest height (a multiple of ``step``, at
    most ``max_reso``) that keeps the area, both ways round, plus the square of the same area.
    Sorted, so the list (and the tie-break of :func:`assign_bucket`) is kohya's.
    """
    max_area = resolution[0] * resolution[1]
    side = int(math.sqrt(max_area) // step) * step
    buckets = {(side, side)}
    for width in range(min_reso, max_reso + 1, step):
        height = min(max_reso, int((max_area // width) // step) * step)
        if height >= min_reso:
            buckets.add((width, height))
            buckets.add((height, width))
    return tuple(sorted(buckets))


def assign_bucket(width: int, height: int, buckets: Sequence[Size]) -> Size:
    """The bucket with the aspect ratio closest to the image's (kohya's ``select_bucket``).

    A bucket of exactly the image's size wins; on a tie the first in the (sorted) list, as numpy's
    ``argmin`` picks it in kohya.
    """
    if not buckets:
        raise ValueError("no buckets to choose from")
    if (width, height) in buckets:
        return (width, height)
    aspect = width / height
    errors = [abs(bucket_width / bucket_height - aspect) for bucket_width, bucket_height in buckets]
    return buckets[errors.index(min(errors))]


def assign_bucket_no_upscale(width: int, height: int, max_area: int, step: int = 64) -> Size:
    """kohya's ``bucket_no_upscale``: a bucket no larger than the image, so it is only ever shrunk.

    An image over ``max_area`` is first scaled down (keeping its aspect) to that area, rounding the
    side that keeps the aspect best to ``step``; then the bucket is that size rounded down to
    ``step`` (cropped, never padded). Sides never go below one ``step``.
    """
    resized = (width, height)
    if width * height > max_area:
        resized = _shrink_to_area(width, height, max_area, step)
    return (max(step, resized[0] - resized[0] % step), max(step, resized[1] - resized[1] % step))


def _shrink_to_area(width: int, height: int, max_area: int, step: int) -> Size:
    aspect = width / height
    resized_width = math.sqrt(max_area * aspect)
    resized_height = max_area / resized_width

    def round_to_step(value: float) -> int:
        rounded = int(value + 0.5)
        return rounded - rounded % step

    width_rounded = round_to_step(resized_width)
    height_for_width = round_to_step(width_rounded / aspect)
    height_rounded = round_to_step(resized_height)
    width_for_height = round_to_step(height_rounded * aspect)
    error_by_width = abs(width_rounded / max(height_for_width, 1) - aspect)
    error_by_height = abs(width_for_height / max(height_rounded, 1) - aspect)
    if error_by_width < error_by_height:
        return (width_rounded, int(width_rounded / aspect + 0.5))
    return (int(height_rounded * aspect + 0.5), height_rounded)


@dataclass(frozen=True)
class CropPlan:
    """How an image becomes its ``bucket``: resized to ``resized_size`` (covering it), cropped at ``(left, top)``.

    ``left``/``top`` are where the crop starts in the resized, not yet flipped image. The image is
    flipped after cropping, so SDXL's crop conditioning, which describes the image the model sees,
    uses the mirrored left edge then (:attr:`crop_top_left`).
    """

    resized_size: Size
    bucket: Size
    left: int
    top: int
    flip: bool = False

    @property
    def box(self) -> tuple[int, int, int, int]:
        """(left, top, right, bottom) of the crop in the resized image, for ``Image.crop``."""
        return (self.left, self.top, self.left + self.bucket[0], self.top + self.bucket[1])

    @property
    def crop_top_left(self) -> tuple[int, int]:
        """(top, left) as SDXL's ``crops_coords_top_left`` wants it, measured in the image after any flip."""
        left = self.resized_size[0] - self.bucket[0] - self.left if self.flip else self.left
        return (self.top, left)


def crop_plan(image_size: Size, bucket: Size, flip: bool = False) -> CropPlan:
    """Scale ``image_size`` to cover ``bucket`` (kohya's rounding), then centre the crop."""
    width, height = image_size
    bucket_width, bucket_height = bucket
    scale = max(bucket_width / width, bucket_height / height)
    resized = (max(bucket_width, int(width * scale + 0.5)), max(bucket_height, int(height * scale + 0.5)))
    left = (resized[0] - bucket_width) // 2
    top = (resized[1] - bucket_height) // 2
    return CropPlan(resized_size=resized, bucket=bucket, left=left, top=top, flip=flip)


@dataclass(frozen=True)
class ItemRef:
    """One image visit in an epoch: ``dataset.items[item]``, its ``repeat``-th copy, flipped or not."""

    item: int
    repeat: int
    flip: bool = False


def seeded_random(*parts: object) -> random.Random:
    """A generator of its own, seeded from ``parts`` (e.g. ``(seed, epoch)``), the same in every process.

    ``random.Random`` hashes a string seed with SHA-512, so this does not depend on PYTHONHASHSEED.
    """
    return random.Random(":".join(str(part) for part in parts))


def epoch_batches(dataset: Dataset, epoch: int, batch_size: int, seed: int) -> list[list[ItemRef]]:
    """Every item ``repeats`` times, grouped by bucket, shuffled, cut into one-bucket batches, batch order shuffled.

    kohya's order (``BucketManager.shuffle`` then shuffled bucket batches); the last batch of a bucket
    may be short. With ``flip_aug`` each visit is flipped or not by a draw in batch order from a
    generator of ``(seed, epoch)``. The same arguments always give the same list.
    """
    if batch_size < 1:
        raise ValueError(f"batch size must be at least 1, not {batch_size}")
    order = seeded_random(seed, epoch, "order")
    batches: list[list[tuple[int, int]]] = []
    for _, visits in sorted(_visits_by_bucket(dataset).items()):
        order.shuffle(visits)
        batches.extend(visits[start : start + batch_size] for start in range(0, len(visits), batch_size))
    order.shuffle(batches)
    return _with_flips(batches, dataset.options.flip_aug, seeded_random(seed, epoch, "flip"))


def _visits_by_bucket(dataset: Dataset) -> dict[Size, list[tuple[int, int]]]:
    by_bucket: dict[Size, list[tuple[int, int]]] = {}
    for index, item in enumerate(dataset.items):
        by_bucket.setdefault(item.bucket, []).extend((index, repeat) for repeat in range(item.repeats))
    return by_bucket


def _with_flips(batches: Iterable[list[tuple[int, int]]], flip_aug: bool, flips: random.Random) -> list[list[ItemRef]]:
    return [
        [ItemRef(item=item, repeat=repeat, flip=flip_aug and flips.random() < 0.5) for item, repeat in batch]
        for batch in batches
    ]


def batch_count(visits_per_bucket: Iterable[int], batch_size: int) -> int:
    """How many batches :func:`epoch_batches` makes from buckets holding these many visits."""
    if batch_size < 1:
        raise ValueError(f"batch size must be at least 1, not {batch_size}")
    return sum(math.ceil(visits / batch_size) for visits in visits_per_bucket)
