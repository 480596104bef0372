"""Dataset loaders of the benchmark: ILSVRC2012 validation images with boxes, the Alzheimer MRI
dataset, a synthetic smoke-test set and a few photographs bundled with scikit-image (the demo).

Every dataset is a ``torch.utils.data.Dataset`` of :class:`Sample` (normalized image [3, H, W],
label, stable unique id, boxes [n, 4] in the preprocessed image's pixel coordinates, file, read
error) sorted by id; batch them with ``DataLoader(ds, batch_size=..., collate_fn=collate)``.  The
:class:`Preprocess` spec gives the size, normalization and resize mode; boxes follow it exactly.
Build one by name with :func:`build_dataset` (the runner's entry point)."""
from __future__ import annotations

from typing import Callable

from .alzheimer import ALZHEIMER_CLASSES, HUB_ID, AlzheimerFolder, AlzheimerHF, alzheimer_mri
from .base import READ_ERRORS, Batch, Record, RecordDataset, Sample, Skipped, collate, select_records
from .ilsvrc import ILSVRCVal, detect_layout
from .photos import PackagePhotos
from .synthetic import SyntheticObjects
from .transforms import IMAGENET_MEAN, IMAGENET_STD, Preprocess, as_preprocess

DATASETS: dict[str, Callable[..., RecordDataset]] = {
    "ilsvrc": ILSVRCVal,
    "alzheimer": alzheimer_mri,
    "synthetic": SyntheticObjects,
    "photos": PackagePhotos,
}


def build_dataset(name: str, **options) -> RecordDataset:
    """The dataset registered as ``name`` built with ``options`` (its constructor's arguments; a
    ``preprocess`` may be a :class:`Preprocess`, a mapping of its fields or a size)."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(sorted(DATASETS))}")
    if "preprocess" in options:
        options["preprocess"] = as_preprocess(options["preprocess"])
    return DATASETS[name](**options)


__all__ = [
    "ALZHEIMER_CLASSES", "AlzheimerFolder", "AlzheimerHF", "Batch", "DATASETS", "HUB_ID", "ILSVRCVal", "IMAGENET_MEAN",
    "IMAGENET_STD", "PackagePhotos", "Preprocess", "READ_ERRORS", "Record", "RecordDataset", "Sample", "Skipped", "SyntheticObjects",
    "alzheimer_mri", "as_preprocess", "build_dataset", "collate", "detect_layout", "select_records",
]
