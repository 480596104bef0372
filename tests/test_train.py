"""scripts/train.py: a tiny CNN fine-tuned on an Alzheimer-like image folder; the checkpoint reloads
through the zoo and the runner, the report is complete and consistent, the split is stratified."""
from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from benchmarks import zoo
from benchmarks.data import ALZHEIMER_CLASSES, collate
from benchmarks.api import compose, run_cell
from scripts import train as T

PER_CLASS = {"train": 8, "test": 6}
H, W = 52, 44  # portrait grayscale slices like the real 208 x 176 images, stretched to 64 x 64


def pattern(label: int, rng: np.random.Generator) -> np.ndarray:
    """Class 0 horizontal stripes, 1 vertical, 2 diagonal, 3 flat: position-free, learnable by a pooled CNN."""
    y, x = np.mgrid[:H, :W]
    phase = rng.uniform(0, 2 * np.pi)
    wave = {0: np.sin(2 * np.pi * y / 8 + phase), 1: np.sin(2 * np.pi * x / 8 + phase),
            2: np.sin(2 * np.pi * (x + y) / 8 + phase), 3: np.zeros((H, W))}[label]
    return np.clip(128 + 90 * wave + rng.normal(0, 12, (H, W)), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """<root>/{train,test}/<class>/*.jpg, file names with spaces and parentheses as in the real data."""
    root = tmp_path_factory.mktemp("alzheimer")
    rng = np.random.default_rng(0)
    for split, n in PER_CLASS.items():
        for label, name in enumerate(ALZHEIMER_CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(pattern(label, rng), "L").save(folder / f"{name[:4]} ({i}).jpg", quality=95)
    return root


ARGS = ["model.train.epochs=3", "model.train.batch_size=8", "model.train.lr=0.01", "model.train.weight_decay=0",
        "--val-size", "8", "--no-progress"]


@pytest.fixture(scope="module")
def trained(root, tmp_path_factory):
    """main() on the command line; the report and the in-memory model (recovered by a second train call)."""
    out = tmp_path_factory.mktemp("ckpt")
    argv = [*ARGS, "model=tiny_cnn", f"dataset.root={root}", "run.device=cpu", "run.workers=0", "--out", str(out)]
    report = T.main(argv)
    return report, argv, out


def accuracy(model, subset) -> float:
    batches = list(DataLoader(subset, batch_size=16, collate_fn=collate))
    with torch.no_grad():
        return float(np.mean(np.concatenate([(model(b.images).argmax(1) == b.labels).numpy() for b in batches])))


def test_report_fields_and_files(trained, root):
    report, argv, out = trained
    assert (out / "tiny_cnn_alzheimer.pth").is_file() and report["checkpoint"] == str(out / "tiny_cnn_alzheimer.pth")
    assert sorted(p.name for p in out.iterdir()) == ["tiny_cnn_alzheimer.json", "tiny_cnn_alzheimer.pth"]  # no probe
    on_disk = json.loads((out / "tiny_cnn_alzheimer.json").read_text())
    assert on_disk == json.loads(json.dumps(report))
    for key in ("provenance", "command", "seed", "epochs", "best_epoch", "val_acc", "test_acc", "class_counts",
                "val_ids", "history", "options", "config", "init"):
        assert key in on_disk, key
    assert on_disk["command"].startswith("python -m scripts.train ") and f"dataset.root={root}" in on_disk["command"]
    assert on_disk["init"] == "random" and on_disk["seed"] == 0 and on_disk["epochs"] == 3
    assert {"commit", "device", "versions", "date"} <= set(on_disk["provenance"])
    assert [h["epoch"] for h in on_disk["history"]] == [1, 2, 3]
    best = on_disk["history"][on_disk["best_epoch"] - 1]
    assert best["val_acc"] == max(h["val_acc"] for h in on_disk["history"])
    # The reported scores are those of the saved float16 weights: within one image of the epoch's.
    assert abs(on_disk["val_acc"] - best["val_acc"]) <= 1 / 8 and on_disk["saved_dtype"] == "float16"
    for split in ("val", "test"):
        sc = on_disk["scores"][split]
        assert np.sum(sc["confusion"]) == sc["n"] == len(on_disk[f"{split}_ids"])
        assert sc["acc"] == on_disk[f"{split}_acc"] and set(sc["recall"]) == set(ALZHEIMER_CLASSES)
    # The paper's protocol: all of train, the test split cut into validation and test images.
    counts = on_disk["class_counts"]
    assert counts["train"] == dict.fromkeys(ALZHEIMER_CLASSES, PER_CLASS["train"])
    assert counts["val"] == dict.fromkeys(ALZHEIMER_CLASSES, 2)
    assert counts["test"] == dict.fromkeys(ALZHEIMER_CLASSES, PER_CLASS["test"] - 2)
    assert len(on_disk["val_ids"]) == 8 and all(i.startswith("test/") for i in on_disk["val_ids"])


def test_checkpoint_reloads_with_the_reported_accuracies(trained, root):
    """The saved state, loaded by the zoo as the runner does, gives the reported validation and test
    accuracies when recomputed on the images the report names (and it learned the patterns)."""
    report, _, out = trained
    cfg = zoo.model_config("tiny_cnn")
    cfg.num_classes = 4
    model = zoo.create_model(cfg, checkpoint=out / "tiny_cnn_alzheimer.pth")
    splits = T.make_splits(T.compose_config(["model=tiny_cnn", f"dataset.root={root}"]), T.TrainOptions(val_size=8))
    assert T.subset_ids(splits["val"]) == report["val_ids"]
    assert accuracy(model, splits["val"]) == pytest.approx(report["val_acc"])
    assert accuracy(model, splits["test"]) == pytest.approx(report["test_acc"])
    assert report["test_acc"] > 0.5  # four balanced classes: chance is 0.25


def test_saved_state_is_float16(trained):
    _, _, out = trained
    state = torch.load(out / "tiny_cnn_alzheimer.pth", weights_only=True)
    assert {v.dtype for v in state.values() if v.is_floating_point()} == {torch.float16}
    assert any(v.dtype == torch.int64 for v in state.values())  # BatchNorm's counters stay integers


def test_scores_known_confusion():
    """Accuracy counts all images; balanced accuracy averages the recall of the classes present."""
    confusion = np.array([[8, 2, 0], [0, 1, 1], [0, 0, 0]])
    sc = T.scores(confusion, ["a", "b", "c"])
    assert sc["acc"] == pytest.approx(9 / 12)
    assert sc["recall"] == {"a": 0.8, "b": 0.5, "c": None}
    assert sc["balanced_acc"] == pytest.approx(0.65)


def test_batches_cover_each_image_once():
    g = torch.Generator().manual_seed(0)
    parts = T.batches(10, 4, g, drop_last=True)
    assert [len(p) for p in parts] == [4, 4] and len(set(torch.cat(parts).tolist())) == 8
    assert torch.equal(torch.cat(T.batches(10, 4, None, drop_last=False)), torch.arange(10))


def test_returned_model_is_the_saved_state(root, tmp_path):
    cfg = T.compose_config(["model=tiny_cnn", f"dataset.root={root}", "run.device=cpu", "run.workers=0"])
    opts = T.TrainOptions(epochs=1, batch_size=8, val_size=8, augment=False, out=tmp_path, progress=False)
    model, report = T.train(cfg, opts)
    model_cfg = zoo.model_config("tiny_cnn")
    model_cfg.num_classes = 4
    loaded = zoo.create_model(model_cfg, checkpoint=report["checkpoint"])
    state = model.state_dict()
    assert all(torch.equal(v, state[k]) for k, v in loaded.state_dict().items())
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():  # trained on the CPU's layout (channels-last): compare outputs in it
        loaded = loaded.to(memory_format=zoo.memory_format(model_cfg, "fp32", "cpu"))
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


def test_runner_uses_the_checkpoint(trained, root, tmp_path):
    _, _, out = trained
    cfg = compose(["model=tiny_cnn", "method=reciprocam", "dataset=alzheimer", f"dataset.root={root}",
                   f"model.checkpoint={out / 'tiny_cnn_alzheimer.pth'}", "run.device=cpu", "run.workers=0",
                   "run.batch_size=4", "run.n_images=4", f"run.out_dir={tmp_path}"])
    rows = run_cell(cfg, progress=False)
    assert len(rows) == 4 and (rows["status"] == "ok").all()
    assert rows["id"].str.startswith("test/").all() and rows["ad"].between(0, 1).all()


def test_stratified_split_is_proportional_and_deterministic():
    labels = [0] * 40 + [1] * 4 + [2] * 100 + [3] * 56  # imbalanced like the real data
    kept, held = T.stratified_split(labels, 38, seed=3)
    assert len(held) == 38 and sorted(np.concatenate([kept, held]).tolist()) == list(range(200))
    counts = Counter(labels[i] for i in held)
    for c, n in Counter(labels).items():
        assert abs(counts[c] - 38 * n / 200) < 1, (c, counts[c])
    again_kept, again_held = T.stratified_split(labels, 38, seed=3)
    assert np.array_equal(held, again_held) and np.array_equal(kept, again_kept)
    assert not np.array_equal(held, T.stratified_split(labels, 38, seed=4)[1])
    assert len(T.stratified_split(labels, 0.25, seed=0)[1]) == 50


def test_validation_from_train(root):
    cfg = T.compose_config(["model=tiny_cnn", f"dataset.root={root}"])
    splits = T.make_splits(cfg, T.TrainOptions(val_size=0.25, val_from="train"))
    assert {n: len(s) for n, s in splits.items()} == {"train": 24, "val": 8, "test": 24}
    assert set(T.subset_ids(splits["train"])).isdisjoint(T.subset_ids(splits["val"]))
    assert all(i.startswith("train/") for i in T.subset_ids(splits["val"]))
    assert T.class_counts(splits["val"]) == dict.fromkeys(ALZHEIMER_CLASSES, 2)


def test_warp_known_transforms():
    """No transform is the identity, a flip alone mirrors exactly, a full x shift (5 % of 20 px) moves
    the content by one pixel; augment draws reproducibly from its generator."""
    x = torch.randn(3, 2, 20, 20)
    u = torch.tensor([[0, 0, 0, 0, 1.0], [0, 0, 0, 0, -1.0], [0, 0, 1.0, 0, 1.0]])
    out = T.warp(x, u)
    torch.testing.assert_close(out[0], x[0], rtol=0, atol=1e-5)
    torch.testing.assert_close(out[1], x[1].flip(-1), rtol=0, atol=1e-5)
    torch.testing.assert_close(out[2, :, :, :-1], x[2, :, :, 1:], rtol=0, atol=1e-5)
    torch.testing.assert_close(out[2, :, :, -1], x[2, :, :, -1], rtol=0, atol=1e-5)  # border padding
    a = T.augment(x, torch.Generator().manual_seed(5))
    torch.testing.assert_close(a, T.augment(x, torch.Generator().manual_seed(5)), rtol=0, atol=0)


def test_errors(tmp_path):
    with pytest.raises(ValueError, match="dataset.root is not set"):
        T.make_splits(T.compose_config(["model=tiny_cnn"]), T.TrainOptions())
    with pytest.raises(ValueError, match="dataset=alzheimer"):
        T.compose_config(["dataset=synthetic"])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        T.make_splits(T.compose_config([f"dataset.root={tmp_path / 'none'}"]), T.TrainOptions())
    with pytest.raises(ValueError, match="--val-size"):
        T.TrainOptions(val_size=1.5)
    with pytest.raises(ValueError, match="--val-size"):
        T.stratified_split([0, 0, 1, 1], 3, seed=0)
    with pytest.raises(SystemExit):
        T.parse_args(["tiny_cnn"])
    flags, overrides = T.parse_args(["model=resnet18", "--val-size", "0.1", "dataset.root=/x", "model.train.augment=false"])
    assert overrides == ["model=resnet18", "dataset.root=/x", "model.train.augment=false"] and flags["val_size"] == 0.1
    assert T.parse_args(["--val-size", "380"])[0]["val_size"] == 380
    with pytest.raises(SystemExit):  # the recipe is config, not flags
        T.parse_args(["--epochs", "3"])


def test_an_output_folder_that_cannot_be_written_stops_before_any_data(tmp_path):
    """--out under a regular file (a read-only folder does not stop root) is refused in one line naming
    it, before the (here missing) dataset is read; nothing is written."""
    (tmp_path / "afile").write_text("x")
    out = tmp_path / "afile" / "sub"
    with pytest.raises(SystemExit) as stop:
        T.main(["model=tiny_cnn", f"dataset.root={tmp_path / 'none'}", "run.device=cpu", "--out", str(out)])
    assert stop.value.code == (f"error: cannot write the output folder {out} (Not a directory); pass --out a "
                               "folder you can create and write")
    assert [p.name for p in tmp_path.iterdir()] == ["afile"] and (tmp_path / "afile").read_text() == "x"


def test_the_recipe_comes_from_the_model_config():
    """scripts.train takes epochs, batch, rate, warmup and augmentation from the model's ``train`` block:
    the ViT base's lower rate, a command-line override, and a clear error for a key the recipe lacks."""
    vit = T.options(T.compose_config(["model=vit_b_16"]))
    cnn = T.options(T.compose_config(["model=resnet50", "model.train.epochs=4", "model.train.augment=false"]))
    assert (vit.lr, vit.warmup_epochs) == (1e-4, 2.0) and (cnn.lr, cnn.epochs, cnn.augment) == (3e-4, 4, False)
    with pytest.raises(ValueError, match="unknown model.train keys"):
        T.options(T.compose_config(["model=resnet18", "+model.train.epoch=3"]))


def test_interrupted_training_resumes_to_the_same_result(root, tmp_path, monkeypatch):
    """Stopped during epoch 2 of 3, the same command continues from epoch 1's saved state and ends with
    the uninterrupted run's history and weights; the resume file is gone at the end."""
    cfg = T.compose_config(["model=tiny_cnn", f"dataset.root={root}", "run.device=cpu", "run.workers=0"])
    opts = lambda out: T.TrainOptions(epochs=3, batch_size=8, lr=0.01, weight_decay=0, val_size=8,  # noqa: E731
                                      out=out, progress=False)
    _, whole = T.train(cfg, opts(tmp_path / "whole"))

    run_epoch, calls = T.run_epoch, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # epoch 1's training and validation done, epoch 2's training starts
            raise KeyboardInterrupt
        return run_epoch(*args, **kwargs)

    monkeypatch.setattr(T, "run_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        T.train(cfg, opts(tmp_path / "cut"))
    resume = tmp_path / "cut" / "tiny_cnn_alzheimer.resume.pt"
    assert resume.is_file() and not (tmp_path / "cut" / "tiny_cnn_alzheimer.pth").exists()
    assert len(torch.load(resume, weights_only=True)["history"]) == 1
    with pytest.raises(ValueError, match="delete the file to start over"):  # another command: refused
        T.train(cfg, T.TrainOptions(**{**vars(opts(tmp_path / "cut")), "epochs": 4}))
    monkeypatch.setattr(T, "run_epoch", run_epoch)
    _, resumed = T.train(cfg, opts(tmp_path / "cut"))

    assert not resume.exists()
    assert resumed["history"] == whole["history"] and len(whole["history"]) == 3
    assert resumed["scores"] == whole["scores"] and resumed["best_epoch"] == whole["best_epoch"]
    a = torch.load(tmp_path / "whole" / "tiny_cnn_alzheimer.pth", weights_only=True)
    b = torch.load(tmp_path / "cut" / "tiny_cnn_alzheimer.pth", weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
