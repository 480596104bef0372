"""The runner: every method end to end on the synthetic set, resumption, and its errors."""
import json
import os
import pickle
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from baselines import METHODS, method_class
from benchmarks import api as runner
from benchmarks import zoo
from benchmarks.provenance import resolve_device
from benchmarks.store import read_sessions
from benchmarks.api import compose, run_cell

STABLE = ["id", "status", "label", "pred", "p", "p_masked", "ad", "ic", "ag", "ep", "le", "n_boxes", "forward",
          "partial", "backward"]


def cfg_for(tmp_path, *overrides):
    return compose(["dataset=synthetic", "dataset.options.n=6", "run.batch_size=2", "run.workers=0",
                    "run.chunk_size=16", f"run.out_dir={tmp_path}", *overrides])


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_runs_end_to_end(tmp_path, method):
    model = "tiny_cnn" if method_class(method).supports("cnn") else "tiny_vit"
    rows = run_cell(cfg_for(tmp_path, f"model={model}", f"method={method}"), progress=False)
    assert len(rows) == 6 and (rows["status"] == "ok").all()
    for col in ["p", "p_masked", "ad", "ag", "ep"]:
        assert rows[col].between(0, 1).all(), col
    assert set(rows["ic"]) <= {0.0, 1.0}
    assert (rows["forward"] >= 1).all() and (rows["seconds"] > 0).all()
    assert (tmp_path / "synthetic" / model / method).is_dir()


def test_vit_token_grouping(tmp_path):
    rows = run_cell(cfg_for(tmp_path, "model=tiny_vit", "method=cluscam", "method.options.grouping=tokens",
                            "model.layer.path=blocks.-1", "model.layer.layout=tokens", "model.layer.prefix_tokens=1"),
                    progress=False)
    assert len(rows) == 6 and (rows["forward"] == 1 + 8).all()


def spy_layouts(monkeypatch) -> list[bool]:
    """Whether each explainer the runner creates gets a channels-last CNN."""
    layouts = []
    real = runner.create_explainer

    def spy(name, model, *args, **kwargs):
        conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
        layouts.append(conv.weight.is_contiguous(memory_format=torch.channels_last))
        return real(name, model, *args, **kwargs)

    monkeypatch.setattr(runner, "create_explainer", spy)
    return layouts


def test_a_cnn_runs_channels_last_in_bf16_and_on_a_cpu(tmp_path, monkeypatch):
    layouts = spy_layouts(monkeypatch)
    bf16 = run_cell(cfg_for(tmp_path / "bf16", "model=tiny_cnn", "method=gradcam", "run.precision=bf16"), progress=False)
    fp32 = run_cell(cfg_for(tmp_path / "fp32", "model=tiny_cnn", "method=gradcam", "run.device=cpu"), progress=False)
    assert layouts == [True, True]
    assert (bf16["status"] == "ok").all()
    np.testing.assert_allclose(bf16["ep"], fp32["ep"], atol=0.05)  # the same maps up to bf16 rounding
    assert zoo.memory_format("tiny_cnn", "fp32", "cuda") == torch.contiguous_format
    assert zoo.memory_format("tiny_vit", "bf16", "cpu") == torch.contiguous_format


@pytest.mark.parametrize("method", ["gradcam", "scorecam"])
def test_the_cpu_layout_leaves_the_rows_unchanged(tmp_path, monkeypatch, method):
    layouts = spy_layouts(monkeypatch)
    overrides = ("model=tiny_cnn", f"method={method}", "run.device=cpu")
    nhwc = run_cell(cfg_for(tmp_path / "nhwc", *overrides), progress=False)
    monkeypatch.setattr(zoo, "memory_format", lambda *args: torch.contiguous_format)
    nchw = run_cell(cfg_for(tmp_path / "nchw", *overrides), progress=False)
    assert layouts == [True, False]
    pd.testing.assert_frame_equal(nhwc[STABLE], nchw[STABLE], check_exact=False, rtol=1e-4, atol=1e-5)


def test_interrupted_run_resumes_to_the_same_rows(tmp_path, monkeypatch):
    overrides = ("model=tiny_cnn", "method=cluscam")
    reference = run_cell(cfg_for(tmp_path / "a", *overrides), progress=False)
    real = runner.evaluate_batch
    calls = {"n": 0}

    def dies_on_second_batch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(runner, "evaluate_batch", dies_on_second_batch)
    with pytest.raises(KeyboardInterrupt):
        run_cell(cfg_for(tmp_path / "b", *overrides), progress=False)
    monkeypatch.setattr(runner, "evaluate_batch", real)
    counted = []
    monkeypatch.setattr(runner, "evaluate_batch", lambda *a, **k: counted.append(1) or real(*a, **k))
    resumed = run_cell(cfg_for(tmp_path / "b", *overrides), progress=False)
    assert len(counted) == 2  # the first batch was kept, the other two were run
    pd.testing.assert_frame_equal(resumed[STABLE], reference[STABLE])
    # A finished cell is not recomputed; a larger range only computes the new images.
    counted.clear()
    run_cell(cfg_for(tmp_path / "b", *overrides), progress=False)
    assert not counted
    first = run_cell(cfg_for(tmp_path / "c", *overrides, "run.n_images=4"), progress=False)
    more = run_cell(cfg_for(tmp_path / "c", *overrides, "run.n_images=6"), progress=False)
    assert len(counted) == 3 and len(first) == 4 and len(more) == 6
    pd.testing.assert_frame_equal(more[STABLE], reference[STABLE])


def test_unreadable_images_become_reported_rows(tmp_path):
    root = tmp_path / "alz"
    for split in ["train", "test"]:
        for cls in ["MildDemented", "ModerateDemented", "NonDemented", "VeryMildDemented"]:
            (root / split / cls).mkdir(parents=True)
    from PIL import Image
    Image.new("L", (40, 48), 90).save(root / "test" / "NonDemented" / "good (1).jpg")
    (root / "test" / "MildDemented" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    rows = run_cell(compose(["model=tiny_cnn", "method=gradcam", "dataset=alzheimer", f"dataset.root={root}",
                             "run.workers=0", f"run.out_dir={tmp_path / 'runs'}"]), progress=False)
    assert sorted(rows["status"].str.split(":").str[0]) == ["ok", "skipped"]
    assert rows.loc[rows["status"] != "ok", "path"].str.endswith("broken.jpg").all()


def test_configuration_errors_are_clear(tmp_path):
    with pytest.raises(ValueError, match="dataset.root is not set"):
        run_cell(compose(["model=tiny_cnn", "dataset=ilsvrc", "dataset.root=null", f"run.out_dir={tmp_path}"]))
    with pytest.raises(ValueError, match="model.checkpoint"):
        run_cell(compose(["model=resnet18", "dataset=alzheimer", f"dataset.root={tmp_path}", f"run.out_dir={tmp_path}"]))
    with pytest.raises(Exception, match="Could not find 'method/magic'"):
        compose(["method=magic"])
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device("cuda")


def test_excluded_ids_are_left_out(tmp_path):
    ids = tmp_path / "val_ids.txt"
    ids.write_text("synthetic_000001\nsynthetic_000004\n")
    rows = run_cell(cfg_for(tmp_path, "model=tiny_cnn", "method=gradcam", f"+dataset.exclude={ids}"), progress=False)
    assert list(rows["id"]) == ["synthetic_000000", "synthetic_000002", "synthetic_000003", "synthetic_000005"]
    three = run_cell(cfg_for(tmp_path, "model=tiny_cnn", "method=gradcam", f"+dataset.exclude={ids}", "run.n_images=3"),
                     progress=False)  # the range counts the images left after the exclusion
    assert list(three["id"]) == ["synthetic_000000", "synthetic_000002", "synthetic_000003"]
    with pytest.raises(FileNotFoundError, match="dataset.exclude"):
        run_cell(cfg_for(tmp_path, "model=tiny_cnn", "method=gradcam", f"+dataset.exclude={tmp_path / 'nope.txt'}"))


def test_a_shuffled_listing_samples_images_of_the_same_cell(tmp_path):
    """dataset.shuffle picks which images a range holds, not their rows: the cell (hash) is the same."""
    by_id = run_cell(cfg_for(tmp_path, "model=tiny_cnn", "method=gradcam", "run.n_images=3"), progress=False)
    shuffled = run_cell(cfg_for(tmp_path, "model=tiny_cnn", "method=gradcam", "run.n_images=3", "+dataset.shuffle=0"),
                        progress=False)
    assert list(by_id["id"]) == ["synthetic_000000", "synthetic_000001", "synthetic_000002"]
    assert list(shuffled["id"]) != list(by_id["id"])
    assert len(list((tmp_path / "synthetic" / "tiny_cnn" / "gradcam").iterdir())) == 1
    common = by_id.merge(shuffled, on="id", suffixes=("", "_again"))
    np.testing.assert_array_equal(common["p_masked"], common["p_masked_again"])
    with pytest.raises(ValueError, match="single_box_only"):
        runner.cell_dataset(compose(["dataset=ilsvrc", f"dataset.root={tmp_path}", "dataset.shuffle=0",
                                     "dataset.options.single_box_only=true"]))


def alzheimer_folder(root, broken: bool = True):
    """A tiny Alzheimer image folder: one readable test image and (``broken``) one unreadable."""
    from PIL import Image

    for split in ["train", "test"]:
        for cls in ["MildDemented", "ModerateDemented", "NonDemented", "VeryMildDemented"]:
            (root / split / cls).mkdir(parents=True, exist_ok=True)
    Image.new("L", (40, 48), 90).save(root / "test" / "NonDemented" / "good (1).jpg")
    if broken:
        (root / "test" / "MildDemented" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    return root


def test_skipped_images_are_retried_and_paths_stored_relative(tmp_path, capsys):
    root = alzheimer_folder(tmp_path / "alz")
    cfg = compose(["model=tiny_cnn", "method=gradcam", "dataset=alzheimer", f"dataset.root={root}",
                   "run.workers=0", f"run.out_dir={tmp_path / 'runs'}"])
    first = run_cell(cfg, progress=False)
    assert sorted(first["status"].str.split(":").str[0]) == ["ok", "skipped"]
    assert "retrying" not in capsys.readouterr().out
    from PIL import Image
    Image.new("L", (40, 48), 30).save(root / "test" / "MildDemented" / "broken.jpg", format="JPEG")  # repaired
    again = run_cell(cfg, progress=False)
    assert "tiny_cnn / gradcam: retrying 1 image(s) skipped as unreadable before" in capsys.readouterr().out
    assert list(again["status"]) == ["ok", "ok"]
    on_disk = runner.cell_store(cfg).rows()
    assert sorted(on_disk["path"]) == ["test/MildDemented/broken.jpg", "test/NonDemented/good (1).jpg"]
    assert len(pd.read_csv(runner.cell_store(cfg).dir / "rows.csv")) == 2


def test_absolute_paths_of_older_rows_read_relative(tmp_path):
    from benchmarks.results import load_rows

    root = alzheimer_folder(tmp_path / "alz", broken=False)
    cfg = compose(["model=tiny_cnn", "method=gradcam", "dataset=alzheimer", f"dataset.root={root}",
                   "run.workers=0", f"run.out_dir={tmp_path / 'runs'}"])
    run_cell(cfg, progress=False)
    rows_csv = runner.cell_store(cfg).dir / "rows.csv"
    old = pd.read_csv(rows_csv)
    old["path"] = [str(root / p) for p in old["path"]]  # as rows were written before
    old.to_csv(rows_csv, index=False)
    assert list(load_rows(tmp_path / "runs")["path"]) == ["test/NonDemented/good (1).jpg"]


def test_another_spelling_of_the_dataset_root_resumes_its_cell(tmp_path, monkeypatch):
    """A relative and an absolute dataset.root naming the same folder are one cell (no recomputation);
    another folder with a copy of the data starts a new cell and warns of the one beside it."""
    root = alzheimer_folder(tmp_path / "alz", broken=False)
    base = ["model=tiny_cnn", "method=gradcam", "dataset=alzheimer", "run.workers=0", f"run.out_dir={tmp_path / 'runs'}"]
    absolute = compose([*base, f"dataset.root={root}"])
    run_cell(absolute, progress=False)
    cell = runner.cell_store(absolute).dir
    monkeypatch.chdir(tmp_path)
    relative = compose([*base, "dataset.root=alz"])
    with warnings.catch_warnings():  # resuming says nothing
        warnings.simplefilter("error")
        run_cell(relative, progress=False)
        run_cell(compose([*base, "dataset.root=./alz/../alz"]), progress=False)
        run_cell(compose([*base, "dataset.root=alz", "method=gradcampp"]), progress=False)
    assert runner.cell_store(relative).dir == cell and len(read_sessions(cell)) == 1  # nothing recomputed
    assert [p.parent for p in (tmp_path / "runs" / "alzheimer" / "tiny_cnn" / "gradcam").glob("*/config.json")] == [cell]
    shutil.copytree(root, tmp_path / "copy")
    with pytest.warns(UserWarning, match=r"holds the same configuration with \{'root': '.*alz'\}: pass those dataset"):
        run_cell(compose([*base, "dataset.root=copy"]), progress=False)


def test_a_cell_has_one_writer_and_one_row_per_id(tmp_path):
    from benchmarks.results import load_rows
    from benchmarks.store import CellLocked

    cfg = cfg_for(tmp_path, "model=tiny_cnn", "method=gradcam")
    store = runner.cell_store(cfg)
    with store.locked():  # another writer of the same cell (e.g. another run.batch_size)
        with pytest.raises(CellLocked, match=f"cell {store.dir} is being written by another process .pid "):
            run_cell(cfg, progress=False)
        other = subprocess.run([sys.executable, "-c", "import sys; from benchmarks.store import CellStore\n"
                                f"with CellStore({str(store.dir.parent)!r}, {store.identity!r}).locked(): sys.exit(0)"],
                               capture_output=True, text=True)
        assert other.returncode != 0 and f"another process (pid {os.getpid()}" in other.stderr
    assert not store.dir.exists() and not store.lock_path.exists()
    rows = run_cell(cfg, progress=False)
    assert len(rows) == 6
    # a part copied under another name with other values (as two writers with different batch sizes wrote)
    part = sorted(store.parts.glob("*.csv"))[0]
    copy = pd.read_csv(part, dtype={"id": str}).assign(ad=0.5)
    copy.to_csv(store.parts / "ffffcopy.csv", index=False)  # after the original in part order
    with pytest.warns(UserWarning, match="2 duplicate rows for 2 image ids"):
        again = store.finish()
    pd.testing.assert_frame_equal(again, rows)  # one row per id, the first part's
    doubled = pd.concat([rows, rows])
    doubled.to_csv(store.dir / "rows.csv", index=False)  # a rows.csv with two rows per id
    with pytest.warns(UserWarning, match="6 duplicate rows"):
        assert load_rows(tmp_path)["id"].is_unique


def test_a_failed_run_leaves_no_cell(tmp_path):
    weights = tmp_path / "weights.pth"
    weights.write_text("not a checkpoint")
    with pytest.raises(ValueError, match="checkpoint"):
        run_cell(cfg_for(tmp_path / "runs", "model=tiny_cnn", "method=gradcam", f"model.checkpoint={weights}"),
                 progress=False)
    assert not list((tmp_path / "runs").rglob("config.json")) and not list((tmp_path / "runs").rglob("*.lock"))


@pytest.mark.parametrize("override, message", [
    ("method.options.k=2.5", r"^cluscam option method.options.k=2.5 must be an integer, e.g. method.options.k=30$"),
    ("method.options.k=abc", r"^cluscam option method.options.k='abc' must be an integer"),
    ("method.options.grouping=chanels", r"option method.options.grouping='chanels' must be one of 'channels', 'tokens'"),
    ("+method.options.kk=3", r"^cluscam has no option method.options.kk; did you mean method.options.k\? its options"),
    ("+run.batchsize=4", r"^unknown option run.batchsize; did you mean run.batch_size\? run takes device, batch_size"),
    ("+metrics.le_regoin=mean_box", r"^unknown option metrics.le_regoin; did you mean metrics.le_region\?"),
    ("run.n_images=0", r"^no images to run: synthetic has none in run.start=0, run.n_images=0"),
    ("run.start=6", r"^start=6 \(run.start\) is past the end of the 6 images; give a start below 6$"),
])
def test_bad_options_fail_with_one_line_before_any_work(tmp_path, override, message):
    with pytest.raises(ValueError, match=message) as err:
        run_cell(cfg_for(tmp_path, "model=tiny_cnn", "method=cluscam", override), progress=False)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "synthetic").exists()


def test_every_excluded_image_is_an_error(tmp_path):
    ids = tmp_path / "val_ids.txt"
    ids.write_text("".join(f"synthetic_{i:06d}\n" for i in range(6)))
    with pytest.raises(ValueError, match="no images to run: .* less dataset.exclude"):
        run_cell(cfg_for(tmp_path, "model=tiny_cnn", "method=gradcam", f"+dataset.exclude={ids}"), progress=False)


def test_cell_identity_is_what_changes_the_method_rows(tmp_path):
    """A cell's hash ignores the model's settings for other methods and where its checkpoint lives,
    and follows the layer its method hooks and the checkpoint's content."""
    def dir_of(*overrides):
        return runner.cell_store(cfg_for(tmp_path, *overrides)).dir

    vit = ["model=tiny_vit", "method=gradcam"]
    assert dir_of(*vit) == dir_of(*vit, "model.cluscam.k=7", "model.method_layers={}")
    assert dir_of(*vit) != dir_of(*vit, "model.hooks=method_specific")  # its own block hook
    assert dir_of("model=tiny_vit", "method=cluscam") == dir_of("model=tiny_vit", "method=cluscam",
                                                                "model.hooks=method_specific")
    weights = torch.nn.Linear(2, 2).state_dict()
    a, b = tmp_path / "a.pth", tmp_path / "b" / "a.pth"
    b.parent.mkdir()
    torch.save(weights, a)
    torch.save(weights, b)
    assert dir_of(*vit, f"model.checkpoint={a}") == dir_of(*vit, f"model.checkpoint={b}")
    torch.save({k: v + 1 for k, v in weights.items()}, b)
    assert dir_of(*vit, f"model.checkpoint={a}") != dir_of(*vit, f"model.checkpoint={b}")


# -- the command line: one line per user error, a traceback for bugs -------------------------------
def run_cli(tmp_path, *overrides, env=None):
    """``python -m benchmarks.run`` on the 6 synthetic images with ``overrides``; (exit code, stdout, stderr)."""
    out = [o for o in overrides if o.startswith("run.out_dir=")] or [f"run.out_dir={tmp_path / 'runs'}"]
    flags = [o for o in overrides if o.startswith("-")]
    args = [sys.executable, "-m", "benchmarks.run", *flags, "dataset=synthetic", "dataset.options.n=6", "run.workers=0",
            "run.batch_size=3", *out, *[o for o in overrides if not o.startswith(("run.out_dir=", "-"))]]
    done = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=Path(__file__).parents[1],
                          env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})})
    return done.returncode, done.stdout, done.stderr


def cell_folders(runs) -> list:
    """Every folder under ``runs`` but Hydra's log folders."""
    return sorted(p for p in Path(runs).rglob("*") if p.is_dir() and "hydra" not in p.relative_to(runs).parts)


def test_user_errors_are_one_line_with_exit_2_and_leave_nothing(tmp_path):
    """Each case: its message on one line of stderr after ``error:``, no traceback, exit 2, no cell folder."""
    folder = tmp_path / "ckpts"
    folder.mkdir()
    code = tmp_path / "code.pth"
    code.write_bytes(pickle.dumps({"w": _RunsCode()}, protocol=4))
    afile = tmp_path / "afile"
    afile.write_text("x")
    cases = [
        (["run.n_images=-5"], "run.n_images=-5 must be an integer >= 0 or null"),
        (["run.batch_size=0"], "run.batch_size=0 must be an integer >= 1"),
        (["run.precision=fp8"], "run.precision='fp8' is not one of fp32, bf16"),
        (["run.device=tpu"], "run.device='tpu' is not a device this suite runs on"),
        (["model=tiny_cnn", f"model.checkpoint={folder}"], "is a folder; set model.checkpoint to the state_dict file"),
        (["model=tiny_cnn", f"model.checkpoint={code}"], "was refused: it is a bare pickle"),
        (["model=tiny_cnn", "method.options.k=2.5"], "cluscam option method.options.k=2.5 must be an integer"),
        (["model=tiny_cnn", "method=nosuchcam"], "Could not find 'method/nosuchcam'"),
        ([f"run.out_dir={afile / 'runs'}"], f"run.out_dir='{afile / 'runs'}' cannot be written"),
    ]
    for overrides, message in cases:
        rc, out, err = run_cli(tmp_path, "model=tiny_cnn", *overrides)
        lines = err.strip().splitlines()
        assert rc == 2 and len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], (overrides, err)
        assert "Traceback" not in err and "weights_only=False" not in err
        assert not (tmp_path / "runs").exists() or cell_folders(tmp_path / "runs") == [], overrides
        assert "loaded" not in out


class _RunsCode:
    def __reduce__(self):
        return (print, ("loaded",))


def test_a_locked_cell_is_one_line(tmp_path):
    cfg = cfg_for(tmp_path / "runs", "model=tiny_cnn", "method=gradcam")
    with runner.cell_store(cfg).locked():
        rc, _, err = run_cli(tmp_path, "model=tiny_cnn", "method=gradcam", "run.batch_size=2", "run.chunk_size=16")
    assert rc == 2 and err.count("\n") == 1 and "is being written by another process" in err


def test_full_error_keeps_the_traceback(tmp_path):
    rc, _, err = run_cli(tmp_path, "model=tiny_cnn", "run.batch_size=0", env={"HYDRA_FULL_ERROR": "1"})
    assert rc == 1 and "Traceback" in err and "run.batch_size=0 must be an integer >= 1" in err


def test_a_sweep_reports_each_failed_job_and_runs_the_others(tmp_path):
    rc, out, err = run_cli(tmp_path, "-m", "model=tiny_cnn,tiny_vit", "method=gradcam,agcam")
    failed = [line for line in err.splitlines() if line.startswith("error: tiny_cnn / agcam / synthetic: ")]
    assert len(failed) == 1 and "method agcam explains vit models only" in failed[0]
    assert rc == 2 and err.rstrip().endswith("1 job(s) failed:\n  " + failed[0][len("error: "):])
    assert {"tiny_cnn / gradcam / synthetic: 6 images", "tiny_vit / gradcam / synthetic: 6 images",
            "tiny_vit / agcam / synthetic: 6 images"} <= {line.split(",")[0] for line in out.splitlines()}
    assert not (tmp_path / "runs" / "synthetic" / "tiny_cnn" / "agcam").exists()


def test_k_above_the_layer_is_recorded_as_run(tmp_path):
    """ClusCAM runs a k above the layer's channels as k = C (tiny_cnn: 32): the cell records that, and
    is the cell of k = 32."""
    big = cfg_for(tmp_path, "model=tiny_cnn", "method=cluscam", "method.options.k=100000")
    with pytest.warns(UserWarning, match="k=100000 exceeds the 32 representations"):
        run_cell(big, progress=False)
    store = runner.cell_store(big)
    assert json.loads((store.dir / "config.json").read_text())["method"]["k"] == 32
    assert store.dir == runner.cell_store(cfg_for(tmp_path, "model=tiny_cnn", "method=cluscam", "method.options.k=32")).dir


@pytest.mark.parametrize("script", ["scripts.table1", "scripts.select_hparams"])
def test_the_other_command_lines_give_one_line_too(tmp_path, script):
    done = subprocess.run([sys.executable, "-m", script, "model=tiny_cnn", "dataset=ilsvrc", "run.start=1000",
                           f"run.out_dir={tmp_path}", "--out", str(tmp_path / "tables")], capture_output=True, text=True,
                          timeout=300, cwd=Path(__file__).parents[1])
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: dataset.root is not set"), done.stderr
