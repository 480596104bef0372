"""The 4-class Alzheimer MRI dataset, from an image folder or a Hugging Face dataset.

Class order (both sources): 0 MildDemented, 1 ModerateDemented, 2 NonDemented, 3 VeryMildDemented,
the integer labels of the Hugging Face dataset ``Falah/Alzheimer_MRI`` that the paper used.  Class
names are matched ignoring case, spaces, ``_`` and ``-`` ("Mild_Demented" is MildDemented); a
Hugging Face ``ClassLabel`` in another order is remapped by name.  The images have no boxes.

Sources, chosen by :func:`alzheimer_mri` from ``source``:

* image folder (the Kaggle "Alzheimer's Dataset (4 class of Images)"): ``source/<split>/<class>/*.jpg``;
* ``save_to_disk`` output: a folder with ``dataset_dict.json`` (one sub-dataset per split) or a single
  saved split (``state.json``);
* parquet: a ``.parquet`` file (used as the split) or a folder of them, where the split's files are
  those named ``<split>-*.parquet`` / ``<split>.parquet`` or lying in a ``<split>/`` folder (the hub
  repository's ``data/train-00000-of-00001.parquet`` naming);
* a hub id (default ``Falah/Alzheimer_MRI``), loaded with ``datasets.load_dataset``; it needs the
  network once and its cache afterwards.
"""
from __future__ import annotations

import io
import os
import re
from pathlib import Path
from typing import Any, Literal

from PIL import Image

from .base import OnError, Record, RecordDataset, select_records
from .transforms import Preprocess, as_preprocess

ALZHEIMER_CLASSES: tuple[str, ...] = ("MildDemented", "ModerateDemented", "NonDemented", "VeryMildDemented")
HUB_ID = "Falah/Alzheimer_MRI"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
Split = Literal["train", "test"]
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
_EXPECTED = (f"expected an image folder <root>/{{train,test}}/<class>/*.jpg (classes {', '.join(ALZHEIMER_CLASSES)}), "
             f"a save_to_disk folder, parquet files, or a hub id such as {HUB_ID!r}")


def _key(name: str) -> str:
    return re.sub(r"[\s_\-]", "", name).lower()


_CLASS_INDEX = {_key(c): i for i, c in enumerate(ALZHEIMER_CLASSES)}


def class_index(name: str, where: str) -> int:
    """The index of a class name in :data:`ALZHEIMER_CLASSES`."""
    if _key(name) not in _CLASS_INDEX:
        raise ValueError(f"unknown Alzheimer class {name!r} in {where}; expected {', '.join(ALZHEIMER_CLASSES)}")
    return _CLASS_INDEX[_key(name)]


def _check_split(split: str) -> None:
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")


class AlzheimerMRI(RecordDataset):
    """The Alzheimer MRI dataset from any of its sources (:meth:`create`, i.e. :func:`alzheimer_mri`)."""

    classes = ALZHEIMER_CLASSES
    display_name = "Alzheimer's"
    root_arg = "source"
    root_help = ("pass dataset.root= an image folder <root>/{train,test}/<class>/*.jpg, a save_to_disk copy, parquet "
                 "files or the hub id Falah/Alzheimer_MRI (or set ALZHEIMER_ROOT)")
    splits = ("train", "test")

    @classmethod
    def create(cls, **options: Any) -> RecordDataset:
        return alzheimer_mri(**options)


class AlzheimerFolder(AlzheimerMRI):
    """``root/<split>/<class>/<image>`` (all four class folders required), ids ``<split>/<class>/<file>``."""

    def __init__(self, root: str | os.PathLike, split: Split = "test", preprocess: Preprocess | None = None, *,
                 start: int = 0, stop: int | None = None, on_error: OnError = "report") -> None:
        _check_split(split)
        root = Path(root).expanduser()
        folder = root / split
        if not folder.is_dir():
            raise FileNotFoundError(f"Alzheimer MRI split folder {str(folder)!r} does not exist; expected "
                                    f"{root}/{{train,test}}/<class>/*.jpg with classes {', '.join(ALZHEIMER_CLASSES)}")
        found = {class_index(d.name, str(folder)): d for d in folder.iterdir() if d.is_dir()}
        missing = [c for i, c in enumerate(ALZHEIMER_CLASSES) if i not in found]
        if missing:
            raise FileNotFoundError(f"{folder} lacks the class folders {', '.join(missing)}")
        records = [Record(f"{split}/{ALZHEIMER_CLASSES[label]}/{f.name}", label, str(f))
                   for label, d in found.items() for f in d.iterdir()
                   if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES]
        self.root, self.split = root, split
        super().__init__(select_records(records, start, stop), as_preprocess(preprocess), on_error)


class AlzheimerHF(AlzheimerMRI):
    """A Hugging Face dataset with an ``image`` column and an integer ``label`` column; ids
    ``<split>/<row index>``.  Images are decoded here (not by ``datasets``) so that a corrupt one is
    reported like a corrupt file."""

    def __init__(self, dataset, split: Split = "test", preprocess: Preprocess | None = None, *, start: int = 0,
                 stop: int | None = None, on_error: OnError = "report", name: str = "hf") -> None:
        import datasets

        _check_split(split)
        for column in ("image", "label"):
            if column not in dataset.column_names:
                raise ValueError(f"{name} has no {column!r} column (columns: {dataset.column_names})")
        remap = None
        feature = dataset.features["label"]
        if isinstance(feature, datasets.ClassLabel) and feature.names != [str(i) for i in range(feature.num_classes)]:
            remap = [class_index(n, f"{name} ClassLabel") for n in feature.names]
        raw = list(dataset["label"])
        labels = [remap[v] if remap else int(v) for v in raw]
        bad = [v for v in labels if not 0 <= v < len(ALZHEIMER_CLASSES)]
        if bad:
            raise ValueError(f"{name} has labels outside 0..3: {sorted(set(bad))[:5]}")
        self.dataset = dataset.cast_column("image", datasets.Image(decode=False))
        self.split = split
        width = max(5, len(str(len(labels))))
        records = [Record(f"{split}/{i:0{width}d}", lab, f"{name}[{split}][{i}]") for i, lab in enumerate(labels)]
        self._rows = {r.id: i for i, r in enumerate(records)}
        super().__init__(select_records(records, start, stop), as_preprocess(preprocess), on_error)

    def open_image(self, index: int) -> Image.Image:
        cell = self.dataset[self._rows[self.records[index].id]]["image"]
        if cell.get("bytes") is not None:
            return Image.open(io.BytesIO(cell["bytes"]))
        if cell.get("path"):
            return Image.open(cell["path"])
        raise ValueError("image cell holds neither bytes nor a path")


def _parquet_files(folder: Path, split: str) -> list[str]:
    files = sorted(folder.rglob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"no Alzheimer MRI data found in {folder}: {_EXPECTED}")
    chosen = [f for f in files if f.stem == split or f.stem.startswith(f"{split}-") or f.parent.name == split]
    if not chosen:
        raise FileNotFoundError(f"no parquet file of split {split!r} in {folder} (found {[f.name for f in files][:4]}); "
                                f"name them {split}-*.parquet or put them in a {split}/ folder")
    return [str(f) for f in chosen]


def _load_hf(source: str, split: str, cache_dir: str | None):
    """The split of a saved dataset, parquet file(s) or hub dataset, and a name for messages."""
    import datasets

    path = Path(source).expanduser()
    if path.is_file() and path.suffix == ".parquet":
        return datasets.load_dataset("parquet", data_files=[str(path)], split="train", cache_dir=cache_dir)
    if (path / "dataset_dict.json").is_file():
        saved = datasets.load_from_disk(str(path))
        if split not in saved:
            raise ValueError(f"the saved dataset {path} has no split {split!r} (splits: {list(saved)})")
        return saved[split]
    if (path / "state.json").is_file():
        return datasets.load_from_disk(str(path))
    if path.is_dir():
        files = _parquet_files(path, split)
        return datasets.load_dataset("parquet", data_files=files, split="train", cache_dir=cache_dir)
    try:
        return datasets.load_dataset(source, split=split, cache_dir=cache_dir)
    except Exception as e:  # the hub raises ConnectionError, DatasetNotFoundError, ... when offline
        raise RuntimeError(
            f"could not load the Hugging Face dataset {source!r} split {split!r} ({type(e).__name__}: {e}). Offline? "
            f"On a machine with network run `datasets.load_dataset({source!r}).save_to_disk(DIR)` (or copy the "
            f"repository's parquet files into DIR) and pass DIR as the source, or use the image-folder layout "
            f"DIR/{{train,test}}/<class>/*.jpg.") from e


def _is_folder_layout(path: Path) -> bool:
    return any((path / s).is_dir() and any(d.is_dir() and _key(d.name) in _CLASS_INDEX for d in (path / s).iterdir())
               for s in ("train", "test"))


def alzheimer_mri(source: str | os.PathLike = HUB_ID, split: Split = "test", preprocess: Preprocess | None = None, *,
                  start: int = 0, stop: int | None = None, on_error: OnError = "report",
                  cache_dir: str | None = None) -> AlzheimerFolder | AlzheimerHF:
    """The Alzheimer MRI ``split`` from ``source`` (see the module docstring for what it may be)."""
    _check_split(split)
    path = Path(source).expanduser()
    kwargs = dict(start=start, stop=stop, on_error=on_error)
    if path.is_dir() and _is_folder_layout(path):
        return AlzheimerFolder(path, split, preprocess, **kwargs)
    if not path.exists() and not _HUB_ID.match(str(source)):
        raise FileNotFoundError(f"Alzheimer MRI source {str(source)!r} does not exist; {_EXPECTED}")
    if path.exists() and not path.is_dir() and path.suffix != ".parquet":
        raise NotADirectoryError(f"Alzheimer MRI source {str(path)!r} is a file but not a .parquet file; {_EXPECTED}")
    dataset = _load_hf(str(source), split, cache_dir)
    return AlzheimerHF(dataset, split, preprocess, name=str(source), **kwargs)
