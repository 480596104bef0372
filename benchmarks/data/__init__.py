"""Dataset loaders of the benchmark: ILSVRC2012 validation images with boxes, the Alzheimer MRI
dataset, a synthetic smoke-test set and a few photographs bundled with scikit-image (the demo).

Every dataset is a ``torch.utils.data.Dataset`` of :class:`Sample` (normalized image [3, H, W],
label, stable unique id, boxes [n, 4] in the preprocessed image's pixel coordinates, file, read
error) sorted by id; batch them with ``DataLoader(ds, batch_size=..., collate_fn=collate)``.  The
:class:`Preprocess` spec gives the size, normalization and resize mode; boxes follow it exactly.
Build one by name with :func:`build_dataset` (the runner's entry point); each registered class
states its root argument, help text and what it offers (boxes, splits)."""
from __future__ import annotations

import os

from .alzheimer import ALZHEIMER_CLASSES, HUB_ID, AlzheimerFolder, AlzheimerHF, AlzheimerMRI, alzheimer_mri
from .base import READ_ERRORS, Batch, Record, RecordDataset, Sample, Skipped, collate, select_records
from .ilsvrc import ILSVRCVal, detect_layout
from .photos import PackagePhotos
from .synthetic import SyntheticObjects
from .transforms import IMAGENET_MEAN, IMAGENET_STD, Preprocess, as_preprocess

# name (conf/dataset/<name>.yaml) -> class, in the order of the tables.
DATASETS: dict[str, type[RecordDataset]] = {
    "ilsvrc": ILSVRCVal,
    "alzheimer": AlzheimerMRI,
    "synthetic": SyntheticObjects,
    "photos": PackagePhotos,
}


def dataset_class(name: str) -> type[RecordDataset]:
    """The dataset class registered as ``name``."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(sorted(DATASETS))}")
    return DATASETS[name]


def build_dataset(name: str, root: str | os.PathLike | None = None, **options) -> RecordDataset:
    """The dataset registered as ``name`` built with ``options`` (its constructor's arguments; a
    ``preprocess`` may be a :class:`Preprocess`, a mapping of its fields or a size); ``root`` fills
    the class's ``root_arg`` (ignored by a dataset without one)."""
    cls = dataset_class(name)
    if cls.root_arg is not None and root is not None:
        options[cls.root_arg] = str(root)
    if "preprocess" in options:
        options["preprocess"] = as_preprocess(options["preprocess"])
    return cls.create(**options)


__all__ = [
    "ALZHEIMER_CLASSES", "AlzheimerFolder", "AlzheimerHF", "AlzheimerMRI", "Batch", "DATASETS", "HUB_ID", "ILSVRCVal", "IMAGENET_MEAN",
    "IMAGENET_STD", "PackagePhotos", "Preprocess", "READ_ERRORS", "Record", "RecordDataset", "Sample", "Skipped", "SyntheticObjects",
    "alzheimer_mri", "as_preprocess", "build_dataset", "collate", "dataset_class", "detect_layout", "select_records",
]
