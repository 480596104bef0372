"""ILSVRC2012 validation images with their class and ground-truth boxes, in two on-disk layouts.

Kaggle layout (the "ImageNet Object Localization Challenge" download)::

    root/LOC_val_solution.csv          ImageId,PredictionString ("synset x_min y_min x_max y_max" repeated)
    root/LOC_synset_mapping.txt        "synset description", line order = class index 0..999
    root/ILSVRC/Data/CLS-LOC/val/ILSVRC2012_val_<8 digits>.JPEG

Standard layout (image-net.org archives)::

    images: a flat folder of ILSVRC2012_val_<8 digits>.JPEG (root/val, root/ILSVRC2012_img_val or root)
    boxes:  VOC XML files ILSVRC2012_val_<8 digits>.xml (ILSVRC2012_bbox_val_v3.tgz; root/bbox,
            root/bbox_val, root/Annotations, root/xml, the image folder or root)
    labels: a file with one label per line, line k for image number k (see below), or, without
            one, the synset named in each image's XML objects
    class order: LOC_synset_mapping.txt, synset_words.txt or synsets.txt (one synset first on each
            line), or the devkit's meta.mat (ILSVRC2012_devkit_t12/data/meta.mat)

The class index of an image is the index of its synset in the standard order (the sorted synsets,
the line order of LOC_synset_mapping.txt; torchvision's ImageNet order).  Label files: a line holding
a synset (n01440764) is that synset; a line holding an integer is a 0-based index in that order,
except in the devkit's ``ILSVRC2012_validation_ground_truth.txt`` (recognized by name, or
``label_format="devkit"``), whose integers are 1-based ILSVRC2012_IDs mapped to synsets through the
devkit's meta.mat.  Box coordinates are read as given (the Kaggle CSV copies the XML values); XML
boxes refer to the <size> in their file and are rescaled when the image file has another size.
"""
from __future__ import annotations

import csv
import os
import re
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Iterable, Literal

from .base import OnError, Record, RecordDataset, select_records
from .transforms import Preprocess, as_preprocess

KAGGLE_CSV = "LOC_val_solution.csv"
KAGGLE_SYNSETS = "LOC_synset_mapping.txt"
KAGGLE_IMAGES = "ILSVRC/Data/CLS-LOC/val"
DEVKIT_LABELS = "ILSVRC2012_validation_ground_truth.txt"
IMAGE_DIRS = ("val", "ILSVRC2012_img_val", ".")
BOX_DIRS = ("bbox", "bbox_val", "Annotations", "xml", "val", "ILSVRC2012_img_val", ".")
LABEL_FILES = (DEVKIT_LABELS, f"ILSVRC2012_devkit_t12/data/{DEVKIT_LABELS}", "val_labels.txt")
SYNSET_FILES = (KAGGLE_SYNSETS, "synset_words.txt", "synsets.txt")
META_FILES = ("meta.mat", "data/meta.mat", "ILSVRC2012_devkit_t12/data/meta.mat")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")

_IMAGE = re.compile(r"^(ILSVRC2012_val_(\d{8}))\.(jpe?g|png)$", re.IGNORECASE)
_XML = re.compile(r"^ILSVRC2012_val_\d{8}\.xml$", re.IGNORECASE)
_WNID = re.compile(r"^n\d{8}$")
_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")
_CORNERS = ("xmin", "ymin", "xmax", "ymax")
Box = tuple[float, float, float, float]
_HELP = (
    "Expected the Kaggle layout ({csv}, {syn} and {img}/; `kaggle competitions download -c "
    "imagenet-object-localization-challenge`) or the standard layout (a folder of ILSVRC2012_val_*.JPEG "
    "from ILSVRC2012_img_val.tar, VOC XML boxes from ILSVRC2012_bbox_val_v3.tgz, a label file and "
    "LOC_synset_mapping.txt or the devkit's meta.mat)."
).format(csv=KAGGLE_CSV, syn=KAGGLE_SYNSETS, img=KAGGLE_IMAGES)

Layout = Literal["auto", "kaggle", "standard"]
LabelFormat = Literal["auto", "index", "devkit"]


def _list_images(folder: Path) -> dict[str, str]:
    """stem -> file name of the ILSVRC2012_val_* images in ``folder``."""
    if not folder.is_dir():
        return {}
    return {m.group(1): name for name in os.listdir(folder) if (m := _IMAGE.match(name))}


def _images_in(folder: Path) -> dict[str, str]:
    """:func:`_list_images` of the chosen image folder, with a warning that counts the image files it leaves out."""
    images = _list_images(folder)
    names = os.listdir(folder) if folder.is_dir() else []
    left = sorted(set(n for n in names if n.lower().endswith(IMAGE_SUFFIXES)) - set(images.values()))
    if left:
        warnings.warn(f"{len(left)} of {len(left) + len(images)} image files in {folder} are left out: their names are "
                      f"not ILSVRC2012_val_<8 digits>.JPEG or repeat an id, e.g. {left[:3]}; rename them to use them",
                      stacklevel=3)
    return images


def _warn_missing_images(source: Path, listed: Iterable[str], images: dict[str, str], folder: Path) -> None:
    """Warn of the ids that ``source`` lists whose image file is not in ``folder``: they are left out."""
    missing = sorted(set(listed) - set(images))
    if missing:
        warnings.warn(f"{len(missing)} ids listed in {source} have no image file in {folder} and are left out, e.g. "
                      f"{missing[:3]}; run.start/run.n_images range over the {len(images)} images found",
                      stacklevel=3)


def _first_with_images(root: Path, candidates: tuple[str, ...]) -> Path | None:
    return next((root / c for c in candidates if _list_images(root / c)), None)


def detect_layout(root: Path, layout: Layout = "auto") -> str:
    """``kaggle`` or ``standard`` (the one asked for, or the one found); a FileNotFoundError saying what
    is missing otherwise."""
    if not root.is_dir():
        raise FileNotFoundError(f"ILSVRC root {str(root)!r} does not exist or is not a folder. {_HELP}")
    missing = [p for p in (KAGGLE_CSV, KAGGLE_SYNSETS, KAGGLE_IMAGES) if not (root / p).exists()]
    if not missing and layout in ("auto", "kaggle"):
        return "kaggle"
    if layout != "kaggle" and _first_with_images(root, IMAGE_DIRS) is not None:
        return "standard"
    raise FileNotFoundError(
        f"no ILSVRC validation images under {str(root)!r}: the Kaggle layout lacks {', '.join(missing)} and no "
        f"folder of ILSVRC2012_val_*.JPEG was found in {', '.join(str(root / c) for c in IMAGE_DIRS)}. {_HELP}")


def read_synsets(path: Path) -> list[str]:
    """The class order: the first token of each line of a text file, or the devkit meta.mat's order."""
    if path.suffix == ".mat":
        return sorted(read_devkit_ids(path).values())
    synsets = [line.split()[0] for line in path.read_text().splitlines() if line.strip()]
    bad = [s for s in synsets if not _WNID.match(s)]
    if bad or len(set(synsets)) != len(synsets):
        raise ValueError(f"{path} is not a synset list (one WordNet id such as n01440764 first on each line, "
                         f"no repeats); offending entries: {bad[:3]}")
    return synsets


def read_devkit_ids(path: Path) -> dict[int, str]:
    """ILSVRC2012_ID -> synset of the 1,000 leaf classes in the devkit's meta.mat."""
    from scipy.io import loadmat

    table = loadmat(str(path), squeeze_me=True)["synsets"]
    return {int(r["ILSVRC2012_ID"]): str(r["WNID"]) for r in table if int(r["num_children"]) == 0}


def read_voc_xml(path: Path) -> tuple[list[str], list[Box], tuple[int, int] | None]:
    """Object synsets, boxes and the annotated (width, height) of a VOC XML file; a ValueError naming
    the file and object if the XML is malformed or a box lacks a coordinate."""
    try:
        tree = ET.parse(path).getroot()
    except ET.ParseError as e:
        raise ValueError(f"{path} is not valid XML ({e}); restore it from ILSVRC2012_bbox_val_v3.tgz") from e
    names, boxes = [], []
    for k, obj in enumerate(tree.iter("object"), 1):
        values = [(obj.findtext(f"bndbox/{c}") or "").strip() for c in _CORNERS]
        bad = [c for c, v in zip(_CORNERS, values) if not _NUMBER.match(v)]
        if bad:
            raise ValueError(f"{path}: object {k} has no number in <bndbox> <{'>, <'.join(bad)}> (each <object> needs "
                             f"<bndbox> with {', '.join(_CORNERS)}); restore the file from ILSVRC2012_bbox_val_v3.tgz")
        names.append(obj.findtext("name", "").strip())
        boxes.append(tuple(float(v) for v in values))
    w, h = tree.findtext("size/width"), tree.findtext("size/height")
    frame = (int(float(w)), int(float(h))) if w and h and float(w) > 0 and float(h) > 0 else None
    return names, boxes, frame


def _label_lines(path: Path) -> list[str]:
    """The first token of each non-empty line of a label file (line k: image number k)."""
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]


def read_label_file(path: Path, numbers: list[int], synsets: list[str], label_format: LabelFormat = "auto",
                    meta: Path | None = None) -> list[int]:
    """Class indices of the images with 1-based image ``numbers`` from a one-label-per-line file."""
    lines = _label_lines(path)
    if max(numbers) > len(lines):
        raise ValueError(f"{path} has {len(lines)} labels but image number {max(numbers)} needs a line")
    index = {s: i for i, s in enumerate(synsets)}
    devkit = label_format == "devkit" or (label_format == "auto" and path.name == DEVKIT_LABELS)
    id_to_wnid = {}
    if devkit and not _WNID.match(lines[0]):
        if meta is None:
            raise FileNotFoundError(f"{path} holds devkit ILSVRC2012_IDs; they need the devkit's meta.mat (put "
                                    f"ILSVRC2012_devkit_t12/data/meta.mat under the root), or give a 0-based label file")
        id_to_wnid = read_devkit_ids(meta)
    out = []
    for n in numbers:
        token = lines[n - 1]
        if _WNID.match(token):
            label = index.get(token, -1)
        elif devkit:
            label = index.get(id_to_wnid.get(int(token), ""), -1)
        else:
            label = int(token)
        if not 0 <= label < len(synsets):
            raise ValueError(f"line {n} of {path} ({token!r}) is not a class of the {len(synsets)}-class order")
        out.append(label)
    return out


def _first_file(root: Path, names: tuple[str, ...]) -> Path | None:
    return next((root / n for n in names if (root / n).is_file()), None)


def _class_index(synset: str, index: dict[str, int], where: str) -> int:
    if synset not in index:
        raise ValueError(f"unknown synset {synset!r} in {where}")
    return index[synset]


def kaggle_boxes(text: str, where: str) -> tuple[str, tuple[Box, ...]]:
    """The first synset and the boxes of a PredictionString ("synset x_min y_min x_max y_max" per box);
    a ValueError naming ``where`` and the faulty box if a group is cut short or malformed."""
    groups: list[list[str]] = []
    for token in text.split():  # a group starts at each synset
        if _WNID.match(token) or not groups:
            groups.append([token])
        else:
            groups[-1].append(token)
    if not groups:
        raise ValueError(f"{where} has no box; each image needs 'synset x_min y_min x_max y_max'; restore the line "
                         f"from the original {KAGGLE_CSV}")
    for k, g in enumerate(groups, 1):
        if not _WNID.match(g[0]) or len(g) != 5 or not all(_NUMBER.match(v) for v in g[1:]):
            raise ValueError(f"{where}: box {k} of {len(groups)}, {' '.join(g)!r}, is not 'synset x_min y_min x_max "
                             f"y_max' (5 fields per box expected, got {len(g)}); restore the line from the original "
                             f"{KAGGLE_CSV}")
    return groups[0][0], tuple(tuple(float(v) for v in g[1:]) for g in groups)


def kaggle_records(root: Path) -> tuple[list[str], list[Record]]:
    synsets = read_synsets(root / KAGGLE_SYNSETS)
    index = {s: i for i, s in enumerate(synsets)}
    path = root / KAGGLE_CSV
    solution: dict[str, tuple[int, str]] = {}  # ImageId -> (line, PredictionString)
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if not {"ImageId", "PredictionString"} <= set(reader.fieldnames or ()):
            raise ValueError(f"{path} does not start with the header ImageId,PredictionString (found "
                             f"{reader.fieldnames}); restore the file from the Kaggle download")
        for row in reader:
            if row["ImageId"] in solution:
                raise ValueError(f"{path} lists {row['ImageId']} twice (lines {solution[row['ImageId']][0]} and "
                                 f"{reader.line_num}); keep one")
            solution[row["ImageId"]] = (reader.line_num, row["PredictionString"] or "")
    images = _images_in(root / KAGGLE_IMAGES)
    if not images:
        raise FileNotFoundError(f"no ILSVRC2012_val_<8 digits>.JPEG images in {root / KAGGLE_IMAGES}: the Kaggle "
                                f"download is incomplete; extract the val images there. {_HELP}")
    unknown = sorted(set(images) - set(solution))
    if unknown:
        raise ValueError(f"{len(unknown)} images of {root / KAGGLE_IMAGES} have no row in {KAGGLE_CSV}, e.g. {unknown[:3]}")
    _warn_missing_images(path, solution, images, root / KAGGLE_IMAGES)
    records = []
    for stem, name in images.items():
        where = f"{path} line {solution[stem][0]} ({stem})"
        synset, boxes = kaggle_boxes(solution[stem][1], where)
        records.append(Record(stem, _class_index(synset, index, where), str(root / KAGGLE_IMAGES / name), boxes))
    return synsets, records


def standard_records(root: Path, images_dir: Path | None, boxes_dir: Path | None, labels_file: Path | None,
                     synsets_file: Path | None, label_format: LabelFormat, require_boxes: bool) -> tuple[list[str], list[Record]]:
    images_dir = images_dir or _first_with_images(root, IMAGE_DIRS)
    images = _images_in(images_dir) if images_dir else {}
    if not images:
        raise FileNotFoundError(f"no ILSVRC2012_val_*.JPEG images in {images_dir or root}. {_HELP}")
    meta = _first_file(root, META_FILES)
    synsets_file = synsets_file or _first_file(root, SYNSET_FILES) or meta
    if synsets_file is None:
        raise FileNotFoundError(f"no class order under {root}: put {KAGGLE_SYNSETS} (or synset_words.txt) or the devkit's "
                                f"meta.mat there, or pass synsets_file=")
    synsets = read_synsets(synsets_file)
    meta = meta or (synsets_file if synsets_file.suffix == ".mat" else None)
    index = {s: i for i, s in enumerate(synsets)}
    if boxes_dir is None:
        boxes_dir = next((root / c for c in BOX_DIRS
                          if (root / c).is_dir() and any(_XML.match(n) for n in os.listdir(root / c))), None)
    if boxes_dir is None and require_boxes:
        raise FileNotFoundError(f"no VOC XML boxes (ILSVRC2012_val_*.xml from ILSVRC2012_bbox_val_v3.tgz) in "
                                f"{', '.join(str(root / c) for c in BOX_DIRS)}; pass boxes_dir=, or require_boxes=False "
                                f"for confidence metrics only")
    stems = sorted(images)
    parsed = {}
    if boxes_dir is not None:
        missing = [s for s in stems if not (boxes_dir / f"{s}.xml").is_file()]
        if missing:
            raise FileNotFoundError(f"{len(missing)} images have no XML file in {boxes_dir}, e.g. {missing[:3]}")
        parsed = {s: read_voc_xml(boxes_dir / f"{s}.xml") for s in stems}
    labels_file = labels_file or _first_file(root, LABEL_FILES)
    if labels_file is not None:
        listed = (f"ILSVRC2012_val_{n:08d}" for n in range(1, len(_label_lines(labels_file)) + 1))
        _warn_missing_images(labels_file, listed, images, images_dir)
        labels = read_label_file(labels_file, [int(s[-8:]) for s in stems], synsets, label_format, meta)
    elif parsed:
        _warn_missing_images(boxes_dir, (n[:-4] for n in os.listdir(boxes_dir) if _XML.match(n)), images, images_dir)
        labels = [_class_index(next(iter(parsed[s][0]), "(no object)"), index, f"{boxes_dir / s}.xml") for s in stems]
    else:
        raise FileNotFoundError(f"no label file under {root} ({', '.join(LABEL_FILES)}) and no XML boxes to read "
                                f"labels from; pass labels_file=")
    records = [Record(s, lab, str(images_dir / images[s]), tuple(parsed[s][1]) if parsed else (),
                      parsed[s][2] if parsed else None) for s, lab in zip(stems, labels)]
    return synsets, records


class ILSVRCVal(RecordDataset):
    """ILSVRC2012 validation images (layout auto-detected, see the module docstring), sorted by id
    (the file stem, ILSVRC2012_val_<8 digits>).

    start, stop: index range [start, stop) of the sorted listing; single_box_only: then keep the
    images annotated with exactly one box (the EP/LE protocol, Appendix C).  The standard layout's
    parts can be named explicitly: images_dir, boxes_dir, labels_file, synsets_file; label_format
    says how integer labels are read; require_boxes=False allows a standard layout without XML.
    An explicit images_dir selects the standard layout."""

    display_name = "ILSVRC"
    root_arg = "root"
    root_help = ("download the ILSVRC2012 validation images with boxes (e.g. Kaggle's 'ImageNet Object Localization "
                 "Challenge') and pass dataset.root=/path (or set ILSVRC_ROOT)")
    has_boxes = True

    def __init__(self, root: str | os.PathLike, preprocess: Preprocess | None = None, *, start: int = 0,
                 stop: int | None = None, single_box_only: bool = False, layout: Layout = "auto",
                 images_dir: str | os.PathLike | None = None, boxes_dir: str | os.PathLike | None = None,
                 labels_file: str | os.PathLike | None = None, synsets_file: str | os.PathLike | None = None,
                 label_format: LabelFormat = "auto", require_boxes: bool = True, on_error: OnError = "report") -> None:
        root = Path(root).expanduser()
        if layout not in ("auto", "kaggle", "standard"):
            raise ValueError(f"unknown ILSVRC layout {layout!r}; use 'auto', 'kaggle' or 'standard'")
        if label_format not in ("auto", "index", "devkit"):
            raise ValueError(f"unknown label_format {label_format!r}; use 'auto', 'index' or 'devkit'")
        self.layout = "standard" if images_dir is not None and layout != "kaggle" else detect_layout(root, layout)
        if self.layout == "kaggle":
            synsets, records = kaggle_records(root)
        else:
            as_path = lambda p: None if p is None else Path(p).expanduser()  # noqa: E731
            synsets, records = standard_records(root, as_path(images_dir), as_path(boxes_dir), as_path(labels_file),
                                                as_path(synsets_file), label_format, require_boxes)
        self.root = root
        self.classes = tuple(synsets)
        super().__init__(select_records(records, start, stop, single_box_only), as_preprocess(preprocess), on_error)
