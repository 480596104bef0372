"""Dataset loaders: the shared real data, layouts built in tmp_path, preprocessing and bad input."""
from __future__ import annotations

import csv
import os
import shutil
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from torch.utils.data import DataLoader
from torchvision import transforms as T

from benchmarks.data import (
    ALZHEIMER_CLASSES, AlzheimerFolder, AlzheimerHF, ILSVRCVal, Preprocess, Record, RecordDataset, SyntheticObjects,
    alzheimer_mri, build_dataset, collate, select_records,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
ILSVRC = SHARED / "ilsvrc_val"
ALZ = SHARED / "alzheimer_mri"
needs_ilsvrc = pytest.mark.skipif(not ILSVRC.is_dir(), reason=f"shared ILSVRC subset not found at {ILSVRC}")
needs_alz = pytest.mark.skipif(not ALZ.is_dir(), reason=f"shared Alzheimer MRI data not found at {ALZ}")


def unnormalize(image: torch.Tensor, pre: Preprocess) -> torch.Tensor:
    return image * torch.tensor(pre.std).view(3, 1, 1) + torch.tensor(pre.mean).view(3, 1, 1)


def kaggle_solution() -> dict[str, list[tuple[str, list[float]]]]:
    """ImageId -> [(synset, box)], parsed independently of the loader."""
    with open(ILSVRC / "LOC_val_solution.csv", newline="") as f:
        rows = list(csv.reader(f))[1:]
    out = {}
    for image_id, pred in rows:
        t = pred.split()
        out[image_id] = [(t[i], [float(v) for v in t[i + 1:i + 5]]) for i in range(0, len(t), 5)]
    return out


def synset_index() -> dict[str, int]:
    lines = (ILSVRC / "LOC_synset_mapping.txt").read_text().splitlines()
    return {line.split()[0]: i for i, line in enumerate(lines)}


# -- ILSVRC, Kaggle layout (shared subset) -----------------------------------------------------------
@needs_ilsvrc
def test_kaggle_listing_labels_and_single_box_subset():
    ds = ILSVRCVal(ILSVRC)
    solution, index = kaggle_solution(), synset_index()
    files = sorted(f.split(".")[0] for f in os.listdir(ILSVRC / "ILSVRC/Data/CLS-LOC/val"))
    assert ds.layout == "kaggle" and len(ds) == 1000
    assert ds.ids == files and len(set(ds.ids)) == 1000
    assert list(ds.classes) == list(index)
    assert ds.labels == [index[solution[i][0][0]] for i in ds.ids]
    assert all(0 <= lab < 1000 for lab in ds.labels)
    assert ds.num_boxes == [len(solution[i]) for i in ds.ids]

    single = ILSVRCVal(ILSVRC, single_box_only=True)
    assert len(single) == 811 and set(single.num_boxes) == {1}
    part = ILSVRCVal(ILSVRC, start=100, stop=200)
    assert part.ids == ds.ids[100:200]
    part_single = ILSVRCVal(ILSVRC, start=100, stop=200, single_box_only=True)
    assert part_single.ids == [i for i in ds.ids[100:200] if len(solution[i]) == 1]


@needs_ilsvrc
def test_kaggle_item_image_and_rescaled_box():
    ds = ILSVRCVal(ILSVRC, single_box_only=True, stop=20)
    item = ds[0]
    (synset, box), = kaggle_solution()[item.id]
    assert item.label == synset_index()[synset] and item.error is None
    assert item.image.shape == (3, 224, 224)
    # the 227x227 file stretched to 224x224, box scaled by 224/227
    assert item.boxes.tolist()[0] == pytest.approx([v * 224 / 227 for v in box], abs=1e-4)
    src = Image.open(item.path).convert("RGB")
    ref = np.asarray(src.resize((224, 224), Image.Resampling.BILINEAR), dtype=np.float32) / 255
    assert torch.allclose(unnormalize(item.image, ds.preprocess).permute(1, 2, 0), torch.from_numpy(ref), atol=1e-5)
    # timm-style: shorter side to floor(224 / 0.875) = 256, centre crop at offset round(16) = 16
    crop = ILSVRCVal(ILSVRC, Preprocess(mode="resize_crop"), single_box_only=True, stop=20)[0]
    expected = np.clip(np.array(box) * 256 / 227 - 16, 0, 224)
    assert crop.boxes.tolist()[0] == pytest.approx(expected.tolist(), abs=1e-4)


@pytest.fixture
def kaggle_root(tmp_path):
    """A Kaggle layout of two made-up images and classes."""
    ids = ["ILSVRC2012_val_00000001", "ILSVRC2012_val_00000002"]
    (tmp_path / "LOC_synset_mapping.txt").write_text("n00000001 cat\nn00000002 dog\n")
    (tmp_path / "LOC_val_solution.csv").write_text(
        "ImageId,PredictionString\n" + "".join(f"{i},n0000000{k + 1} 1 2 20 30 \n" for k, i in enumerate(ids)))
    val = tmp_path / "ILSVRC/Data/CLS-LOC/val"
    val.mkdir(parents=True)
    for i in ids:
        Image.new("RGB", (40, 40)).save(val / f"{i}.JPEG")
    return tmp_path, ids


def test_kaggle_misnamed_images_are_counted_and_an_empty_folder_is_an_error(kaggle_root):
    root, ids = kaggle_root
    val = root / "ILSVRC/Data/CLS-LOC/val"
    for name in ["ILSVRC2012_val_3.JPEG", "photo.jpg"]:
        Image.new("RGB", (40, 40)).save(val / name)
    (val / "notes.txt").write_text("not an image")
    with pytest.warns(UserWarning, match=r"2 of 4 image files in .* are left out: .*\['ILSVRC2012_val_3.JPEG', 'photo.jpg'\]"):
        assert ILSVRCVal(root).ids == ids
    for f in val.iterdir():
        f.unlink()
    with pytest.raises(FileNotFoundError, match=r"no ILSVRC2012_val_<8 digits>.JPEG images in .*val: the Kaggle download"):
        ILSVRCVal(root)


@pytest.mark.parametrize("boxes", [
    "n00000002 1 2 20 30 n00000002 30 23 195",  # the last box cut short
    "n00000002 1 2 20",  # 4 fields
    "n00000002 30 23 195 n00000002 1 2 20 30 40",  # 10 tokens, but groups of 4 and 6
    "n00000002 1 2 20 x",
])
def test_kaggle_malformed_box_group_is_refused(kaggle_root, boxes):
    root, ids = kaggle_root
    csv_file = root / "LOC_val_solution.csv"
    csv_file.write_text(f"ImageId,PredictionString\n{ids[0]},n00000001 1 2 20 30\n{ids[1]},{boxes}\n")
    with pytest.raises(ValueError, match=r"5 fields per box expected") as err:
        ILSVRCVal(root)
    assert f"{csv_file} line 3 ({ids[1]})" in str(err.value) and "restore the line" in str(err.value)


def test_kaggle_duplicate_row_and_bad_header_are_refused(kaggle_root):
    root, ids = kaggle_root
    csv_file = root / "LOC_val_solution.csv"
    csv_file.write_text(f"ImageId,PredictionString\n{ids[0]},n00000001 1 2 20 30\n{ids[1]},n00000002 1 2 20 30\n"
                        f"{ids[0]},n00000001 5 5 9 9\n")
    with pytest.raises(ValueError, match=rf"lists {ids[0]} twice \(lines 2 and 4\); keep one"):
        ILSVRCVal(root)
    csv_file.write_text(f"id,boxes\n{ids[0]},n00000001 1 2 20 30\n")
    with pytest.raises(ValueError, match="header ImageId,PredictionString"):
        ILSVRCVal(root)


def test_label_rows_without_an_image_are_counted_and_ranges_count_the_images_found(kaggle_root):
    root, ids = kaggle_root
    extra = [f"ILSVRC2012_val_0000000{k}" for k in (3, 4, 5)]
    with open(root / "LOC_val_solution.csv", "a") as f:
        f.writelines(f"{i},n00000001 1 2 20 30\n" for i in extra)
    (root / "ILSVRC/Data/CLS-LOC/val" / f"{ids[0]}.JPEG").unlink()
    with pytest.warns(UserWarning, match=r"4 ids listed in .*LOC_val_solution.csv have no image file in .*val and are "
                                         rf"left out, e.g. \['{ids[0]}', '{extra[0]}', '{extra[1]}'\]; run.start/run.n_images "
                                         r"range over the 1 images found"):
        ds = ILSVRCVal(root, start=0, stop=1)
    assert ds.ids == [ids[1]]


@pytest.fixture
def tiny_standard(tmp_path):
    """A standard layout of two made-up images (val/), their VOC XML boxes (bbox/) and the class order."""
    ids = ["ILSVRC2012_val_00000001", "ILSVRC2012_val_00000002"]
    (tmp_path / "LOC_synset_mapping.txt").write_text("n00000001 cat\nn00000002 dog\n")
    (tmp_path / "val").mkdir()
    (tmp_path / "bbox").mkdir()
    for k, i in enumerate(ids):
        Image.new("RGB", (40, 40)).save(tmp_path / "val" / f"{i}.JPEG")
        write_xml(tmp_path / "bbox" / f"{i}.xml", [(f"n0000000{k + 1}", [1, 2, 20, 30])], (40, 40))
    return tmp_path, ids


def test_standard_layout_label_lines_or_xml_files_without_an_image_are_counted(tiny_standard):
    root, ids = tiny_standard
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ILSVRCVal(root).ids == ids
    write_xml(root / "bbox" / "ILSVRC2012_val_00000007.xml", [("n00000001", [1, 2, 20, 30])], (40, 40))
    with pytest.warns(UserWarning, match=r"1 ids listed in .*bbox have no image file in .*val .*\['ILSVRC2012_val_00000007'\]"):
        assert ILSVRCVal(root).ids == ids
    (root / "val_labels.txt").write_text("0\n1\n0\n")
    with pytest.warns(UserWarning, match=r"1 ids listed in .*val_labels.txt have no image file .*\['ILSVRC2012_val_00000003'\]"):
        assert ILSVRCVal(root).labels == [0, 1]


def test_voc_box_missing_a_coordinate_or_broken_xml_is_refused(tiny_standard):
    root, ids = tiny_standard
    xml = root / "bbox" / f"{ids[1]}.xml"
    xml.write_text(xml.read_text().replace("<xmax>20</xmax>", ""))
    with pytest.raises(ValueError, match=r"object 1 has no number in <bndbox> <xmax>") as err:
        ILSVRCVal(root)
    assert str(xml) in str(err.value) and "ILSVRC2012_bbox_val_v3.tgz" in str(err.value)
    xml.write_text("<annotation><object>")
    with pytest.raises(ValueError, match=r"is not valid XML"):
        ILSVRCVal(root)


# -- ILSVRC, standard layout (fixture from three shared images) --------------------------------------
def write_xml(path: Path, objects: list[tuple[str, list[float]]], size: tuple[int, int]) -> None:
    objs = "".join(f"<object><name>{s}</name><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin><xmax>{b[2]}</xmax>"
                   f"<ymax>{b[3]}</ymax></bndbox></object>" for s, b in objects)
    path.write_text(f"<annotation><filename>{path.stem}</filename><size><width>{size[0]}</width>"
                    f"<height>{size[1]}</height><depth>3</depth></size>{objs}</annotation>")


@pytest.fixture
def standard_root(tmp_path):
    if not ILSVRC.is_dir():
        pytest.skip(f"shared ILSVRC subset not found at {ILSVRC}")
    solution = kaggle_solution()
    multi = next(i for i in sorted(solution) if len(solution[i]) > 1)
    chosen = sorted(sorted(i for i in solution if len(solution[i]) == 1)[:2] + [multi])
    (tmp_path / "val").mkdir()
    (tmp_path / "bbox").mkdir()
    for i in chosen:
        shutil.copy(ILSVRC / "ILSVRC/Data/CLS-LOC/val" / f"{i}.JPEG", tmp_path / "val")
        write_xml(tmp_path / "bbox" / f"{i}.xml", solution[i], (227, 227))
    shutil.copy(ILSVRC / "LOC_synset_mapping.txt", tmp_path)
    return tmp_path, chosen


def kaggle_items(ids: list[str]) -> dict[str, tuple[int, torch.Tensor]]:
    kaggle = ILSVRCVal(ILSVRC)
    pos = {i: k for k, i in enumerate(kaggle.ids)}
    return {i: (kaggle[pos[i]].label, kaggle[pos[i]].boxes) for i in ids}


def assert_same_as_kaggle(ds: ILSVRCVal, ids: list[str]) -> None:
    ref = kaggle_items(ids)
    assert ds.layout == "standard" and ds.ids == ids
    for item in (ds[k] for k in range(len(ds))):
        label, boxes = ref[item.id]
        assert item.label == label
        assert torch.allclose(item.boxes, boxes, atol=1e-4)


def test_standard_layout_labels_from_xml(standard_root):
    root, ids = standard_root
    ds = ILSVRCVal(root)
    assert_same_as_kaggle(ds, ids)
    assert len(ILSVRCVal(root, single_box_only=True)) == 2


def test_standard_layout_label_files(standard_root):
    root, ids = standard_root
    index = synset_index()
    label = {i: index[s[0][0]] for i, s in kaggle_solution().items() if i in ids}
    numbers = {int(i[-8:]): i for i in ids}
    n = max(numbers)
    # 0-based indices, line k for image number k (other lines: any class)
    (root / "val_labels.txt").write_text("".join(f"{label[numbers[k]] if k in numbers else 0}\n" for k in range(1, n + 1)))
    assert_same_as_kaggle(ILSVRCVal(root), ids)
    # a synset per line, named explicitly
    synsets = list(index)
    (root / "val_synsets.txt").write_text("".join(f"{synsets[label[numbers[k]]] if k in numbers else synsets[0]}\n"
                                                 for k in range(1, n + 1)))
    assert_same_as_kaggle(ILSVRCVal(root, labels_file=root / "val_synsets.txt"), ids)


def test_standard_layout_devkit_ids(standard_root):
    from scipy.io import savemat

    root, ids = standard_root
    index = synset_index()
    synsets = list(index)
    devkit_id = {s: 1000 - k for k, s in enumerate(synsets)}  # devkit ids are not the sorted order
    numbers = {int(i[-8:]): i for i in ids}
    gt = {k: devkit_id[kaggle_solution()[i][0][0]] for k, i in numbers.items()}
    (root / "ILSVRC2012_validation_ground_truth.txt").write_text("".join(f"{gt.get(k, 1)}\n" for k in range(1, max(numbers) + 1)))
    with pytest.raises(FileNotFoundError, match="meta.mat"):
        ILSVRCVal(root)
    table = np.zeros(1001, dtype=[("ILSVRC2012_ID", "O"), ("WNID", "O"), ("num_children", "O")])
    for k, s in enumerate(synsets):
        table[k] = (devkit_id[s], s, 0)
    table[1000] = (1001, "n99999999", 3)  # an inner node of the hierarchy: not a class
    (root / "data").mkdir()
    savemat(root / "data" / "meta.mat", {"synsets": table})
    assert_same_as_kaggle(ILSVRCVal(root), ids)
    (root / "LOC_synset_mapping.txt").unlink()  # the class order can come from meta.mat alone
    assert_same_as_kaggle(ILSVRCVal(root), ids)


def test_standard_layout_boxes_rescaled_to_the_file(standard_root):
    root, ids = standard_root
    for i in ids:  # annotations made on a 454x454 version of each image
        write_xml(root / "bbox" / f"{i}.xml", [(s, [2 * v for v in b]) for s, b in kaggle_solution()[i]], (454, 454))
    assert_same_as_kaggle(ILSVRCVal(root), ids)


def test_standard_layout_missing_parts(standard_root):
    root, ids = standard_root
    (root / "bbox" / f"{ids[0]}.xml").unlink()
    with pytest.raises(FileNotFoundError, match="no XML file"):
        ILSVRCVal(root)
    shutil.rmtree(root / "bbox")
    with pytest.raises(FileNotFoundError, match="ILSVRC2012_bbox_val_v3"):
        ILSVRCVal(root)
    (root / "val_labels.txt").write_text("".join(f"{k % 1000}\n" for k in range(50000)))
    ds = ILSVRCVal(root, require_boxes=False)
    assert ds.labels == [(int(i[-8:]) - 1) % 1000 for i in ids] and ds.num_boxes == [0, 0, 0]
    assert ds[0].boxes.shape == (0, 4)


def test_missing_ilsvrc_root(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist") as err:
        ILSVRCVal(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(err.value) and "LOC_val_solution.csv" in str(err.value)
    with pytest.raises(FileNotFoundError, match="lacks LOC_val_solution.csv, LOC_synset_mapping.txt"):
        ILSVRCVal(tmp_path)


# -- Alzheimer MRI -----------------------------------------------------------------------------------
@needs_alz
@pytest.mark.parametrize("split", ["train", "test"])
def test_alzheimer_folder_counts(split):
    ds = alzheimer_mri(ALZ, split)
    assert isinstance(ds, AlzheimerFolder) and ds.classes == ALZHEIMER_CLASSES
    listing = {c: len(os.listdir(ALZ / split / c)) for c in ALZHEIMER_CLASSES}
    counts = Counter(ds.labels)
    assert {c: counts[k] for k, c in enumerate(ALZHEIMER_CLASSES)} == listing
    assert len(ds) == sum(listing.values()) and len(set(ds.ids)) == len(ds) and ds.ids == sorted(ds.ids)
    assert listing["ModerateDemented"] == {"train": 52, "test": 9}[split]  # per data/README.md
    if split == "train":
        assert len(ds) == 5121
    assert all(ds.labels[k] == ALZHEIMER_CLASSES.index(i.split("/")[1]) for k, i in enumerate(ds.ids))


@needs_alz
def test_shuffled_alzheimer_test_images_are_a_random_sample_of_every_class():
    """By id, the first 100 test images are nearly all MildDemented (class folders sort first); the runner's
    shuffled listing (conf/dataset/alzheimer.yaml) gives a sample close to the split's class shares, nested
    in longer ranges, and the same after other images leave the listing."""
    from benchmarks.api import cell_dataset, compose

    cfg = compose(["model=resnet18", "dataset=alzheimer", f"dataset.root={ALZ}", "run.n_images=100"])
    assert cfg.dataset.shuffle is not None
    split = Counter(alzheimer_mri(ALZ, "test").labels)
    by_id = Counter(alzheimer_mri(ALZ, "test", stop=100).labels)
    sample = cell_dataset(cfg)
    shares = Counter(sample.labels)
    assert by_id[0] / 100 > 0.8 and by_id[3] == 0  # MildDemented, VeryMildDemented
    n = sum(split.values())
    for k in (0, 2, 3):  # within 4 binomial standard deviations of the split's share
        p = split[k] / n
        assert abs(shares[k] / 100 - p) < 4 * (p * (1 - p) / 100) ** 0.5, (ALZHEIMER_CLASSES[k], shares, split)
    twenty = cell_dataset(compose(["model=resnet18", "dataset=alzheimer", f"dataset.root={ALZ}", "run.n_images=20"]))
    assert twenty.ids == sample.ids[:20]
    records = list(sample.records)
    assert [r.id for r in select_records(records[::2], shuffle=cfg.dataset.shuffle)] == sample.ids[::2]
    assert select_records(records, shuffle=1) != select_records(records, shuffle=0)


@needs_alz
def test_alzheimer_grayscale_file_with_parentheses():
    ds = AlzheimerFolder(ALZ, "test")
    k = next(k for k, i in enumerate(ds.ids) if "(" in i and " " in i)
    item = ds[k]
    assert item.error is None and item.image.shape == (3, 224, 224) and item.boxes.shape == (0, 4)
    rgb = unnormalize(item.image, ds.preprocess)
    assert torch.allclose(rgb[0], rgb[1], atol=1e-5) and torch.allclose(rgb[1], rgb[2], atol=1e-5)
    assert Image.open(item.path).mode == "L"


def small_images(n: int) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (20, 24), dtype=np.uint8), "L") for _ in range(n)]


def hf_dataset(labels: list[int], names=("Mild_Demented", "Moderate_Demented", "Non_Demented", "Very_Mild_Demented")):
    import datasets

    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=list(names))})
    return datasets.Dataset.from_dict({"image": small_images(len(labels)), "label": labels}, features=features)


def test_alzheimer_hf_save_to_disk_and_parquet(tmp_path):
    import datasets

    train, test = hf_dataset([0, 1, 2, 3, 3]), hf_dataset([2, 0, 1])
    datasets.DatasetDict(train=train, test=test).save_to_disk(str(tmp_path / "saved"))
    ds = alzheimer_mri(tmp_path / "saved", "test")
    assert isinstance(ds, AlzheimerHF) and ds.labels == [2, 0, 1] and ds.ids == ["test/00000", "test/00001", "test/00002"]
    item = ds[1]
    assert item.error is None and item.image.shape == (3, 224, 224) and item.label == 0
    ref = np.asarray(small_images(2)[1].convert("RGB").resize((224, 224), Image.Resampling.BILINEAR), np.float32) / 255
    assert torch.allclose(unnormalize(item.image, ds.preprocess).permute(1, 2, 0), torch.from_numpy(ref), atol=1e-5)
    assert alzheimer_mri(tmp_path / "saved", "train", stop=4).labels == [0, 1, 2, 3]

    (tmp_path / "pq" / "data").mkdir(parents=True)
    train.to_parquet(str(tmp_path / "pq" / "data" / "train-00000-of-00001.parquet"))
    test.to_parquet(str(tmp_path / "pq" / "data" / "test-00000-of-00001.parquet"))
    pq = alzheimer_mri(tmp_path / "pq", "train", cache_dir=str(tmp_path / "cache"))
    assert pq.labels == [0, 1, 2, 3, 3] and pq[4].image.shape == (3, 224, 224)


def test_alzheimer_hf_class_names_remapped():
    names = ("NonDemented", "MildDemented", "ModerateDemented", "VeryMildDemented")
    ds = AlzheimerHF(hf_dataset([0, 1, 2, 3], names), "train")
    assert ds.labels == [2, 0, 1, 3]


def test_alzheimer_hub_offline_error(monkeypatch):
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'Falah/Alzheimer_MRI' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(RuntimeError, match="save_to_disk") as err:
        alzheimer_mri("Falah/Alzheimer_MRI", "test")
    assert "Couldn't reach" in str(err.value)


def test_missing_alzheimer_root(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist") as err:
        alzheimer_mri(tmp_path / "none" / "alzheimer")
    assert str(tmp_path / "none" / "alzheimer") in str(err.value) and "MildDemented" in str(err.value)
    with pytest.raises(FileNotFoundError, match="no Alzheimer MRI data"):
        alzheimer_mri(tmp_path)
    with pytest.raises(FileNotFoundError, match="split folder"):
        AlzheimerFolder(tmp_path, "train")
    (tmp_path / "train" / "MildDemented").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="lacks the class folders ModerateDemented"):
        AlzheimerFolder(tmp_path, "train")
    with pytest.raises(ValueError, match="split"):
        alzheimer_mri(tmp_path, "val")


def test_alzheimer_root_that_is_a_file(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a dataset")
    with pytest.raises(NotADirectoryError, match="is a file but not a .parquet file") as err:
        alzheimer_mri(notes)
    assert repr(str(notes)) in str(err.value) and "<root>/{train,test}/<class>/" in str(err.value)
    assert "Offline" not in str(err.value)
    hf_dataset([2, 0, 1]).to_parquet(str(tmp_path / "test.parquet"))  # a single parquet file is a source
    assert alzheimer_mri(tmp_path / "test.parquet", cache_dir=str(tmp_path / "cache")).labels == [2, 0, 1]


# -- unreadable images -------------------------------------------------------------------------------
@pytest.fixture
def folder_with_corrupt_files(tmp_path):
    rng = np.random.default_rng(1)
    for c in ALZHEIMER_CLASSES:
        (tmp_path / "test" / c).mkdir(parents=True)
        Image.fromarray(rng.integers(0, 255, (40, 48), dtype=np.uint8), "L").save(tmp_path / "test" / c / "ok 1.jpg")
    whole = tmp_path / "test" / "NonDemented" / "ok 1.jpg"
    data = whole.read_bytes()
    (tmp_path / "test" / "NonDemented" / "truncated (2).jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "test" / "MildDemented" / "not an image.jpg").write_bytes(b"this is text")
    return tmp_path


def test_corrupt_images_are_reported(folder_with_corrupt_files):
    ds = AlzheimerFolder(folder_with_corrupt_files, "test", Preprocess(size=32))
    assert len(ds) == 6
    batches = list(DataLoader(ds, batch_size=4, collate_fn=collate, num_workers=2))
    skipped = [s for b in batches for s in b.skipped()]
    assert sorted(Path(s.path).name for s in skipped) == ["not an image.jpg", "truncated (2).jpg"]
    assert all(s.reason.startswith(("OSError", "UnidentifiedImageError")) for s in skipped)
    valid = torch.cat([b.valid for b in batches])
    assert valid.sum() == 4
    bad = next(b for b in batches if not b.valid.all())
    good = bad.select(bad.valid)
    assert len(good) == int(bad.valid.sum()) and all(e is None for e in good.errors)
    assert (bad.images[~bad.valid] == 0).all()
    assert sorted(s.id for s in ds.scan()) == sorted(s.id for s in skipped)
    strict = AlzheimerFolder(folder_with_corrupt_files, "test", on_error="raise")
    k = strict.ids.index("test/NonDemented/truncated (2).jpg")
    with pytest.raises(ValueError, match=r"truncated \(2\)\.jpg"):
        strict[k]


def test_corrupt_bytes_in_hf_dataset():
    import datasets

    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(num_classes=4)})
    good = small_images(1)[0]
    raw = datasets.Dataset.from_dict({"image": [good, {"bytes": b"junk", "path": None}], "label": [1, 2]}, features=features)
    ds = AlzheimerHF(raw, "test")
    assert ds[0].error is None and ds[1].error is not None
    assert [s.id for s in ds.scan()] == ["test/00001"]


def test_high_bit_depth_images_are_scaled_by_their_range_not_clipped(tmp_path):
    gradient = np.tile(np.linspace(0, 65535, 64), (8, 1)).astype(np.uint16)
    dark = (gradient // 16).astype(np.uint16)  # 0..4095: stays dark
    for name, arr in (("gradient", gradient), ("dark", dark)):
        Image.fromarray(arr).save(tmp_path / f"{name}.png")
    nan = np.full((8, 64), 0.5, dtype=np.float32)
    nan[0, 0] = np.nan
    Image.fromarray(nan).save(tmp_path / "nan.tif")
    assert Image.open(tmp_path / "gradient.png").mode == "I;16"
    pre = Preprocess(size=(8, 64))  # no resize: the pixels as loaded
    ds = RecordDataset([Record(n, 0, str(tmp_path / n)) for n in ("dark.png", "gradient.png", "nan.tif")], pre)
    for k, arr in enumerate((dark, gradient)):
        item = ds[k]
        assert item.error is None
        rgb = unnormalize(item.image, pre)
        assert torch.allclose(rgb[0], rgb[2], atol=1e-5) and rgb.max() - rgb.min() > 0.05
        assert (rgb[0].diff(dim=1) >= -1e-5).all()  # the order of the samples is kept
        expected = torch.from_numpy(np.round(arr / 65535 * 255) / 255).float()
        assert torch.allclose(rgb[0], expected, atol=1e-5)
    assert ds[0].image.max() < ds[1].image.max()  # the dark scan is not stretched to white
    assert ds[2].error.startswith("ValueError") and "NaN" in ds[2].error
    # Pillow's 32-bit modes: "I" holding 16-bit samples, and "F" (in [0, 1], or by its min/max outside it)
    f = gradient.astype(np.float32)
    for image, lo, hi in ((Image.fromarray(gradient.astype(np.int32)), 0, 65535), (Image.fromarray(f / 65535 / 2), 0, 1),
                          (Image.fromarray(f - 1000), -1000, 64535)):
        assert image.mode in ("I", "F")
        expected = np.round((np.asarray(image, dtype=np.float64) - lo) / (hi - lo) * 255) / 255
        assert torch.allclose(unnormalize(pre(image)[0], pre)[0], torch.from_numpy(expected).float(), atol=1e-5)


# -- preprocessing ------------------------------------------------------------------------------------
def test_resize_crop_matches_torchvision_and_moves_boxes():
    src = Image.new("RGB", (300, 200), (10, 10, 10))
    ImageDraw.Draw(src).rectangle([100, 50, 219, 149], fill=(250, 250, 250))  # box (100, 50, 220, 150)
    boxes = torch.tensor([[100.0, 50, 220, 150], [0, 0, 300, 200], [0, 0, 10, 200]])
    pre = Preprocess(mode="resize_crop")
    image, out = pre(src, boxes)
    ref = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), T.Normalize(pre.mean, pre.std)])(src)
    assert torch.allclose(image, ref, atol=1e-5)
    # resize 300x200 -> 384x256 (scale 1.28), crop offset (80, 16); the third box is cropped away
    assert torch.allclose(out, torch.tensor([[48.0, 48.0, 201.6, 176.0], [0, 0, 224, 224]]))
    bright = (unnormalize(image, pre)[0] > 0.5).nonzero()
    rows, cols = bright[:, 0], bright[:, 1]
    assert abs(cols.min() - 48) <= 1 and abs(cols.max() + 1 - 201.6) <= 1
    assert abs(rows.min() - 48) <= 1 and abs(rows.max() + 1 - 176) <= 1


def test_preprocess_specs():
    assert Preprocess(size=64).size == (64, 64)
    image, boxes = Preprocess(size=(32, 48))(Image.new("L", (96, 64)), torch.tensor([[48.0, 32, 96, 64]]))
    assert image.shape == (3, 32, 48) and boxes.tolist() == [[24.0, 16.0, 48.0, 32.0]]
    for bad in (dict(mode="crop"), dict(crop_pct=0), dict(std=(1, 0, 1)), dict(size=(0, 4))):
        with pytest.raises(ValueError):
            Preprocess(**bad)


# -- synthetic ----------------------------------------------------------------------------------------
def test_synthetic_is_deterministic_and_boxes_are_tight():
    a, b = SyntheticObjects(n=6, size=48, n_classes=3, seed=3), SyntheticObjects(n=6, size=48, n_classes=3, seed=3)
    late = b[5]
    assert torch.equal(a[5].image, late.image) and torch.equal(a[5].boxes, late.boxes)  # any access order
    assert not torch.equal(SyntheticObjects(n=6, size=48, n_classes=3, seed=4)[5].image, late.image)
    for k in range(len(a)):
        item = a[k]
        assert 0 <= item.label < 3 and item.boxes.shape == (1, 4)
        rgb = (unnormalize(item.image, a.preprocess) * 255).round().permute(1, 2, 0)
        obj = (rgb == torch.tensor(a.colours[item.label], dtype=torch.float32)).all(-1).nonzero()
        x0, y0, x1, y1 = item.boxes[0].tolist()
        assert (obj[:, 1].min(), obj[:, 0].min(), obj[:, 1].max() + 1, obj[:, 0].max() + 1) == (x0, y0, x1, y1)
    batch = collate([a[k] for k in range(4)])
    assert batch.images.shape == (4, 3, 48, 48) and batch.padded_boxes.shape == (4, 1, 4)
    assert batch.num_boxes.tolist() == [1] * 4 and batch.select([True, False, True, False]).ids == [a.ids[0], a.ids[2]]
    half = SyntheticObjects(n=6, size=48, n_classes=3, seed=3, preprocess=Preprocess(size=24))
    assert torch.allclose(half[2].boxes, a[2].boxes / 2)
    part = SyntheticObjects(n=6, size=48, n_classes=3, seed=3, start=2, stop=5)
    assert part.ids == a.ids[2:5] and torch.equal(part[1].image, a[3].image)


def test_build_dataset_by_name():
    ds = build_dataset("synthetic", n=4, size=32, preprocess={"size": [16, 16], "mode": "stretch"})
    assert len(ds) == 4 and ds[0].image.shape == (3, 16, 16)
    with pytest.raises(ValueError, match="unknown dataset"):
        build_dataset("imagenet21k")
