"""The registries: every method and dataset states what the suite asks about it on its class, and
the Makefile, tables, demo and runner read it from there (a new one shows up without editing them)."""
from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import baselines
from baselines import METHODS, display_name, method_class, method_names
from baselines.__main__ import main as list_methods
from benchmarks import zoo
from benchmarks.api import cell_dataset, cell_store, compose, run_cell
from benchmarks.data import DATASETS, RecordDataset, SyntheticObjects, build_dataset, dataset_class
from cluscam.base import Explainer
from cluscam.layers import LAYOUTS, LayerSpec
from scripts.demo import demo_methods
from benchmarks.stats import cell_stats
from benchmarks.tables import build_table

ROOT = Path(__file__).resolve().parents[1]
# The cell folders of every method on the tiny models (dataset=synthetic): a refactoring must keep them.
TINY_CELLS = {
    "tiny_cnn/ablationcam": "5d844504c798", "tiny_cnn/agcam": "3f2d267fff99", "tiny_cnn/cluscam": "c63a5e0f8363",
    "tiny_cnn/gradcam": "efe96dd30f09", "tiny_cnn/gradcampp": "1aae9cf3827c", "tiny_cnn/opticam": "1eee02f72f55",
    "tiny_cnn/reciprocam": "8b0749de3b37", "tiny_cnn/scorecam": "520180e7f33a", "tiny_cnn/shapleycam": "a608c325cf86",
    "tiny_vit/ablationcam": "422437d5114d", "tiny_vit/agcam": "add483793ea1", "tiny_vit/cluscam": "4adb65b6fe2c",
    "tiny_vit/gradcam": "467343608379", "tiny_vit/gradcampp": "c0f51347f867", "tiny_vit/opticam": "900c153522c7",
    "tiny_vit/reciprocam": "77c83cb1c633", "tiny_vit/scorecam": "2a72806d634d", "tiny_vit/shapleycam": "b3d919831011",
}


class DummyCAM(Explainer):
    """A method registered only by the tests: the mean channel map."""

    display_name = "DummyCAM"

    def saliency(self, cap):
        return cap.maps.mean(1)


class Scans(RecordDataset):
    """A dataset registered only by the tests: no boxes."""

    display_name = "Scans"


@pytest.fixture
def dummy_method(monkeypatch):
    monkeypatch.setitem(METHODS, "dummycam", f"{__name__}:DummyCAM")
    return "dummycam"


def rows_for(dataset: str, methods: dict[str, float], n_boxes: int = 1) -> pd.DataFrame:
    """Rows of resnet18 on ``dataset``: every method AD ``methods[m]`` on the same three images."""
    return pd.DataFrame([{"dataset": dataset, "model": "resnet18", "method": m, "cell": f"{m}0", "id": f"img{i}",
                          "ad": ad, "ic": 0.5, "ag": 0.1, "ep": 0.3, "le": 0.5, "n_boxes": n_boxes}
                         for m, ad in methods.items() for i in range(3)])


# -- methods ---------------------------------------------------------------------------------------
def test_the_registry_lists_every_explainer_class():
    modules = [importlib.import_module(f"baselines.{m.name}") for m in pkgutil.iter_modules(baselines.__path__)
               if m.name != "__main__"] + [importlib.import_module("cluscam.cluscam")]
    defined = {cls for mod in modules for _, cls in inspect.getmembers(mod, inspect.isclass)
               if issubclass(cls, Explainer) and not inspect.isabstract(cls) and cls.__module__ == mod.__name__}
    assert defined == {method_class(name) for name in METHODS}


def test_every_method_states_its_capabilities():
    classes = [method_class(name) for name in METHODS]
    names = [cls.display_name for cls in classes]
    assert all(names) and len(set(names)) == len(names)
    assert all(set(cls.families) <= set(zoo.FAMILIES) and set(cls.layouts) <= set(LAYOUTS) for cls in classes)
    assert [cls.__name__ for cls in classes if cls.proposed] == ["ClusCAM"]
    assert [cls.__name__ for cls in classes if cls.needs_attention] == ["AGCAM"]
    for name in METHODS:
        assert (name in method_names(["cnn", "vit"])) == all(method_class(name).supports(f) for f in ("cnn", "vit"))
    assert method_names(["vit"], ["cnn"]) == ["agcam"]


def test_a_method_refuses_a_layout_it_does_not_read():
    class MapsOnly(DummyCAM):
        layouts = ("nchw",)

    model = zoo.create_model("tiny_vit")
    with pytest.raises(ValueError, match="layout nchw, not 'tokens'"):
        MapsOnly(model, LayerSpec("blocks.-1", "tokens", 1))


def test_makefile_sweeps_take_the_registrys_methods():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for var, expected in (("METHODS", method_names(["cnn", "vit"])), ("VIT_METHODS", ["agcam"])):
        done = subprocess.run(["make", "-s", "--no-print-directory", "--eval", "print-%: ; @echo $($*)",
                               f"print-{var}", f"PY={sys.executable}"], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=120)
        assert done.stdout.strip() == ",".join(expected), done.stderr


def test_a_registered_method_reaches_the_method_list_tables_and_demo(dummy_method, capsys):
    list_methods(["--supports", "cnn", "vit"])
    assert capsys.readouterr().out.strip().split(",")[-1] == dummy_method
    assert display_name(dummy_method) == "DummyCAM" and dummy_method in demo_methods("tiny_cnn")
    table = build_table("6", cell_stats(rows_for("ilsvrc", {"cluscam": 0.1, dummy_method: 0.2, "gradcam": 0.3}), 10))
    rows = list(dict.fromkeys(c["row"][0] for c in table.blocks[0].cells))
    assert rows == ["GradCAM", "ClusCAM (Ours)", "DummyCAM"]  # the registry's order and display names


def test_demo_lists_the_methods_of_the_models_family_ours_first():
    assert demo_methods("tiny_cnn")[0] == "cluscam"
    assert sorted(demo_methods("tiny_cnn")) == sorted(method_names(["cnn"])) and "agcam" not in demo_methods()
    assert "agcam" in demo_methods("tiny_vit")


def test_the_runner_refuses_a_method_for_another_family(tmp_path):
    with pytest.raises(ValueError, match="agcam explains vit models only; model tiny_cnn is a cnn"):
        run_cell(compose(["model=tiny_cnn", "method=agcam", "dataset=synthetic", f"run.out_dir={tmp_path}"]))


def test_cell_folders_are_unchanged():
    for key, folder in TINY_CELLS.items():
        model, method = key.split("/")
        cfg = compose([f"model={model}", f"method={method}", "dataset=synthetic", "model.pretrained=false"])
        assert cell_store(cfg).dir.name == folder, f"{key}: the cell identity changed"


# -- datasets --------------------------------------------------------------------------------------
def test_every_dataset_is_registered_and_declares_its_root(monkeypatch):
    assert set(DATASETS) == {p.stem for p in (ROOT / "conf" / "dataset").glob("*.yaml")}
    for name, cls in DATASETS.items():
        assert cls.display_name, name
        monkeypatch.setattr(cls, "create", classmethod(lambda c, **options: options))
        built = build_dataset(name, root="/data/x", n=1)
        assert built == ({"n": 1} if cls.root_arg is None else {cls.root_arg: "/data/x", "n": 1}), name
        assert bool(cls.root_help) == (cls.root_arg is not None), name
    assert dataset_class("ilsvrc").has_boxes and not dataset_class("alzheimer").has_boxes
    assert dataset_class("alzheimer").splits == ("train", "test")


def test_the_runners_root_error_is_the_datasets_help(monkeypatch):
    monkeypatch.setattr(DATASETS["ilsvrc"], "root_help", "fetch it from the moon")
    with pytest.raises(ValueError, match="dataset.root is not set for ilsvrc: fetch it from the moon"):
        cell_dataset(compose(["model=tiny_cnn", "dataset=ilsvrc", "dataset.root=null"]))


def test_tables_take_their_datasets_from_the_rows(monkeypatch):
    monkeypatch.setitem(DATASETS, "scans", Scans)
    stats = cell_stats(pd.concat([rows_for("scans", {"gradcam": 0.2}, n_boxes=0),
                                  rows_for("synthetic", {"gradcam": 0.1})]), 10)
    assert build_table("7", stats).title.startswith("Table 7: AD, IC, AG (%) per architecture on the Scans dataset")
    for name in ("4", "6", "9"):
        table = build_table(name, stats)
        assert {d for d, _, _ in table.keys} == {"synthetic"} and f"on {SyntheticObjects.display_name}" in table.title
    assert build_table("6", cell_stats(rows_for("scans", {"gradcam": 0.2}, n_boxes=0), 10)) is None
