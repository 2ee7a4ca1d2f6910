"""The training window's view of a dataset: the real scan (:func:`scan_dataset`), reduced to a summary.

Headers only (no pixel checks), so a folder of a few hundred photos is summarised in well under a
second; the trainer checks every image again when it starts. The captions shown are the caption
files' own text (what the user edits), not the trigger-word-prefixed training captions.
"""

from __future__ import annotations

from pathlib import Path

from desktop.training.config import TrainingConfig
from desktop.training.dataset import DatasetError, options_from_config, read_caption_file, scan_dataset
from desktop.training.estimate import DatasetImage, DatasetSummary


def summarize_dataset(config: TrainingConfig) -> DatasetSummary:
    """What the window shows for ``config``'s dataset; a dataset that cannot be used becomes a warning."""
    if not config.train_data_dir:
        return DatasetSummary()
    try:
        dataset = scan_dataset(options_from_config(config), check_pixels=False)
    except DatasetError as error:
        return DatasetSummary(warnings=(error.message,))
    training = [item for item in dataset.items if not item.is_reg]
    images = tuple(
        DatasetImage(
            Path(item.path), read_caption_file(item.caption_file) if item.caption_file else None, item.repeats, item.folder
        )
        for item in training
    )
    buckets: dict[tuple[int, int], int] = {}
    for item in training:
        buckets[item.bucket] = buckets.get(item.bucket, 0) + item.repeats
    return DatasetSummary(
        image_count=dataset.image_count,
        repeated_count=sum(item.repeats for item in training),
        steps_per_epoch=dataset.steps_per_epoch(1),
        images=images,
        warnings=dataset.warnings,
        bucket_sizes=tuple(buckets.values()),
        regularisation_count=dataset.reg_image_count,
    )
