"""benchmarks.pipeline / scripts.reproduce: the plan's arithmetic on known cells, the train step's skip rule,
the problems named before any work, and (where the shared data is here) the offline rehearsal of the whole
run: two architectures in CI, all twelve on request (CLUSCAM_FULL_REHEARSAL=1)."""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torchvision

from benchmarks import cost, hubcache, pipeline, zoo
from cluscam.base import PassCount

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
ILSVRC, ALZ = SHARED / "ilsvrc_val", SHARED / "alzheimer_mri"


def settings(tmp_path: Path, *overrides: str):
    return pipeline.load("paper", [f"out={tmp_path / 'out'}", *overrides])


# -- the plan's arithmetic ------------------------------------------------------------------------
@pytest.mark.parametrize("model,weights", [("resnet18", torchvision.models.ResNet18_Weights),
                                           ("resnet50", torchvision.models.ResNet50_Weights),
                                           ("vit_b_16", torchvision.models.ViT_B_16_Weights)])
def test_forward_flops_agree_with_torchvision(model, weights) -> None:
    """torchvision publishes each model's multiply-accumulates (meta['_ops'], in G); a FLOP is half of one."""
    assert cost.flops(model).forward == pytest.approx(2e9 * weights.IMAGENET1K_V1.meta["_ops"], rel=1e-3)


def test_a_partial_pass_after_resnet50s_layer4_is_its_classifier() -> None:
    assert cost.flops("resnet50").partial == 2 * 2048 * 1000  # average pooling, then a 2048 x 1000 linear layer


def test_scorecam_on_resnet50_at_1000_images(tmp_path: Path) -> None:
    """ScoreCAM (Wang et al.): one forward pass, then one per channel of layer4 (2,048 on ResNet-50); the
    runner adds the prediction and the masked input of AD/IC/AG. At 100 images/s: 1000 * 2051 / 100 s."""
    s = settings(tmp_path, "models=resnet50", "methods=scorecam", "ilsvrc.images=1000")
    (job,) = pipeline.cell_jobs(s, "ilsvrc", "ilsvrc", tmp_path / "runs", 1000, ["scorecam"])
    assert job.passes == PassCount(forward=2049) and job.extra == 2 and job.images == 1000 and not job.done
    rate = {"resnet50": cost.Throughput("resnet50", 100.0, "test")}
    assert job.seconds(rate["resnet50"]) == pytest.approx(20510.0)
    assert job.seconds(rate["resnet50"], extra=False) == pytest.approx(20490.0)
    text = pipeline.render_plan(pipeline.plan_rows([pipeline.Step("ilsvrc", [job])], rate), rate, s)
    assert "| ilsvrc resnet50 scorecam | to do | 1,000 | 2049 / 0 / 0 (+2) | 5.70 h |" in text
    assert "**5.70 h**" in text


def test_ablationcam_and_gradcam_price_partial_and_backward_passes(tmp_path: Path) -> None:
    """AblationCAM: 1 forward + 2,048 partial passes (each 4.096 MFLOP on ResNet-50); Grad-CAM: 1 forward + 1
    backward, a backward pass priced as two forward ones."""
    s = settings(tmp_path, "models=resnet50")
    abl, grad = pipeline.cell_jobs(s, "ilsvrc", "ilsvrc", tmp_path / "runs", 10, ["ablationcam", "gradcam"])
    assert abl.passes == PassCount(forward=1, partial=2048) and grad.passes == PassCount(forward=1, backward=1)
    f = cost.flops("resnet50").forward
    rate = cost.Throughput("resnet50", 50.0, "test")  # 50 * f FLOP/s
    assert abl.seconds(rate, extra=False) == pytest.approx(10 * (f + 2048 * 4.096e6) / (50 * f))
    assert grad.seconds(rate, extra=False) == pytest.approx(10 * 3 / 50)


def test_agcam_only_on_vit_b_16_and_every_method_elsewhere(tmp_path: Path) -> None:
    s = settings(tmp_path, "models=resnet18,vit_b_16")
    jobs = pipeline.cell_jobs(s, "ilsvrc", "ilsvrc", tmp_path / "runs", 5, pipeline.methods(s))
    by_model = {m: sorted(j.method for j in jobs if j.model == m) for m in ("resnet18", "vit_b_16")}
    assert len(by_model["resnet18"]) == 8 and "agcam" not in by_model["resnet18"]
    assert by_model["vit_b_16"] == sorted([*by_model["resnet18"], "agcam"])
    alz = pipeline.cell_jobs(s, "alzheimer", "alzheimer", tmp_path / "runs", None, pipeline.methods(s),
                             extra_methods=False)
    assert all(j.images == 900 for j in alz)  # App. B: 1,280 test images less the 380 validation ones
    assert "agcam" not in {j.method for j in alz}


def test_selection_is_disjoint_from_the_evaluated_images(tmp_path: Path) -> None:
    s = settings(tmp_path, "models=resnet18", "ilsvrc.images=300", "select.images=40")
    ilsvrc, alzheimer = pipeline.select_jobs(s, ("ilsvrc", "alzheimer"))
    assert "run.start=300" in ilsvrc.argv and "--evaluated" in ilsvrc.argv and ilsvrc.images == 40
    ck = pipeline.checkpoint(s, "resnet18")
    assert alzheimer.argv[alzheimer.argv.index("--val-ids") + 1] == str(ck.with_suffix(".json"))


# -- training: a missing checkpoint is fine-tuned, an existing one is not --------------------------
def test_missing_checkpoint_triggers_fine_tuning_an_existing_one_does_not(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    ck = tmp_path / "ck"
    ck.mkdir()
    (ck / "resnet18_alzheimer.pth").write_bytes(b"present")
    s = settings(tmp_path, "models=resnet18,levit_192", f"checkpoints={ck}", "alzheimer_root=/data/alz",
                 "train_overrides=[model.train.epochs=3]")
    steps = pipeline.build(s, ["table7"])
    assert [st.name for st in steps] == ["train", "alzheimer", "render"]
    train = {j.model: j for j in steps[0].jobs}
    assert train["resnet18"].done and not train["levit_192"].done
    assert train["levit_192"].passes.backward == 3  # the override reached the recipe
    # the alzheimer cells read the checkpoint the train step writes, and leave its validation ids out
    cell = next(j for j in steps[1].jobs if j.model == "levit_192")
    assert f"model.checkpoint={ck / 'levit_192_alzheimer.pth'}" in cell.argv
    assert f"dataset.exclude={ck / 'levit_192_alzheimer.json'}" in cell.argv

    ran: list[list[str]] = []
    monkeypatch.setattr(pipeline, "_run", lambda argv, *a: ran.append(argv) or 0)
    pipeline.execute(steps[:1], s, {}, stream=open(os.devnull, "w"))
    assert len(ran) == 1 and ran[0][1:4] == ["-m", "scripts.train", "model=levit_192"]
    assert "model.train.epochs=3" in ran[0] and ran[0][ran[0].index("--out") + 1] == str(ck)
    assert ran[0][ran[0].index("--val-size") + 1] == "380"
    times = list(csv.DictReader((tmp_path / "out" / "logs" / "times.csv").open()))
    assert [(t["step"], t["status"]) for t in times] == [("train", "ok")]

    ran.clear()
    (ck / "levit_192_alzheimer.pth").write_bytes(b"present")
    pipeline.execute(pipeline.build(s, ["table7"])[:1], s, {}, stream=open(os.devnull, "w"))
    assert ran == []


def test_a_failing_job_stops_the_run_with_its_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = settings(tmp_path, "models=resnet18,levit_192", "alzheimer_root=/data/alz")
    ran: list[list[str]] = []
    monkeypatch.setattr(pipeline, "_run", lambda argv, *a: ran.append(argv) or 1)
    with pytest.raises(SystemExit, match=r"step train: resnet18 .* failed \(exit 1\).*train\.log"):
        pipeline.execute(pipeline.build(s, ["table7"]), s, {}, stream=open(os.devnull, "w"))
    assert len(ran) == 1


def test_training_recipes_come_from_the_model_configs(tmp_path: Path) -> None:
    s = settings(tmp_path, "models=resnet18,vit_b_16")
    jobs = {j.model: j for j in pipeline.train_jobs(s)}
    for m, job in jobs.items():
        recipe = zoo.model_config(m).train
        assert job.passes.backward == recipe.epochs and f"lr {recipe.lr:g}" in job.label
    assert zoo.model_config("vit_b_16").train.lr != zoo.model_config("resnet18").train.lr


# -- before the work -----------------------------------------------------------------------------
@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Empty hub caches in tmp_path, the hubs unreachable."""
    for var in ("TORCH_HOME", "HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hubcache, "host_reachable", lambda host: False)


def _save(model: str, num_classes: int, path: Path) -> None:
    torch.save(zoo._build(zoo.model_config(model), num_classes).state_dict(), path)


def test_preflight_names_every_problem_before_the_work(tmp_path: Path, offline: None) -> None:
    ck = tmp_path / "ck"
    ck.mkdir()
    _save("resnet18", 1000, ck / "resnet18_alzheimer.pth")  # ImageNet's head, not the 4 Alzheimer classes
    _save("resnet18", 4, ck / "levit_192_alzheimer.pth")  # another architecture's weights
    s = settings(tmp_path, "models=resnet18,levit_192", f"checkpoints={ck}", "alzheimer_root=/nowhere/alz")
    steps = pipeline.build(s, ["paper"])
    problems = pipeline.preflight(s, steps, disk_needed=1e18)
    text = "\n".join(problems)
    assert any(p.startswith("ilsvrc_root is not set") for p in problems), text
    assert any(p.startswith("alzheimer_root=/nowhere/alz") for p in problems), text
    for m in ("resnet18", "levit_192"):  # hub weights: the architecture and the file its loader reads
        path = str(hubcache.expected_weight_file(m).path)
        assert any(p.startswith(f"{m}:") and path in p for p in problems), (m, text)
    assert any(p.startswith("resnet18:") and "does not fit" in p and "num_classes" in p for p in problems), text
    assert any(p.startswith("levit_192:") and "does not fit" in p for p in problems), text
    assert any(p.startswith("too little disk") for p in problems), text


@pytest.mark.skipif(not ALZ.is_dir(), reason=f"shared Alzheimer MRI data not found at {ALZ}")
def test_preflight_passes_when_everything_is_there(tmp_path: Path, offline: None) -> None:
    ck = tmp_path / "ck"
    ck.mkdir()
    _save("resnet18", 4, ck / "resnet18_alzheimer.pth")
    hubcache.fill_random("resnet18")
    s = settings(tmp_path, "models=resnet18", f"checkpoints={ck}", f"alzheimer_root={ALZ}")
    steps = pipeline.build(s, ["table7"])
    assert pipeline.preflight(s, steps, disk_needed=1e6) == []


def test_bad_settings_are_refused_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown setting.*ilsvrc.imgs"):
        settings(tmp_path, "ilsvrc.imgs=3")
    with pytest.raises(ValueError, match="unknown model.*resnet19"):
        settings(tmp_path, "models=resnet18,resnet19")
    with pytest.raises(ValueError, match="unknown target.*table10"):
        pipeline.build(settings(tmp_path), ["table10"])
    with pytest.raises(ValueError, match="table5 .* vit_b_16"):
        pipeline.build(settings(tmp_path, "models=resnet18"), ["table5"])
    with pytest.raises(ValueError, match="no pipeline settings 'papers'"):
        pipeline.load("papers")


def test_makefile_targets_call_the_pipeline() -> None:
    out = subprocess.run(["make", "-n", "-C", str(ROOT), "table2", "OUT=/o", "ILSVRC_ROOT=/i", "ALZ_ROOT=/a", "PLAN=1",
                          f"VENV={sys.prefix}", "MODELS=resnet18,vit_b_16"], capture_output=True, text=True,
                         check=True).stdout
    line = next(x for x in out.splitlines() if "scripts.reproduce" in x)
    for part in ("table2", "out=/o", "ilsvrc_root=/i", "alzheimer_root=/a", "--plan", "models=resnet18,vit_b_16"):
        assert part in line.split(), line
    # issue 28: RUNS names the run's folder as OUT does (never results/), N its images per cell; the selection
    # targets write beside the run too
    out = subprocess.run(["make", "-n", "-C", str(ROOT), "table2", "select-ilsvrc", "RUNS=/tmp/x", "N=2",
                          "ILSVRC_ROOT=/i", f"VENV={sys.prefix}", "MODELS=efficientnet_lite0"],
                         capture_output=True, text=True, check=True).stdout
    line = next(x for x in out.splitlines() if "scripts.reproduce" in x).split()
    assert {"out=/tmp/x", "ilsvrc.images=2", "alzheimer.images=2"} <= set(line), line
    assert "--out /tmp/x/tables" in out and "results/" not in out, out


def _tree(folder: Path) -> dict[str, float]:
    return {str(f.relative_to(folder)): f.stat().st_mtime_ns for f in folder.rglob("*") if f.is_file()}


@pytest.mark.skipif(not (ILSVRC.is_dir() and ALZ.is_dir()), reason=f"shared data not found under {SHARED}")
def test_make_table2_offline_names_the_missing_weights_at_once_and_writes_nothing(tmp_path: Path,
                                                                                 offline: None) -> None:
    """Issue 28's first probe: ``make table2 ... N=2 RUNS=/tmp/x`` on a machine without the hubs stops before
    any cell with one line per architecture lacking weights (the file and the fixes), and writes nothing
    under results/ nor into the run's folder."""
    env = {**os.environ, "https_proxy": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9", "no_proxy": "",
           "NO_PROXY": ""}  # the offline fixture's empty caches; a closed proxy port: no hub reachable
    before = _tree(ROOT / "results")
    runs = tmp_path / "x"
    done = subprocess.run(["make", "-s", "-C", str(ROOT), "table2", f"ILSVRC_ROOT={ILSVRC}", f"ALZ_ROOT={ALZ}", "N=2",
                           f"RUNS={runs}", f"VENV={sys.prefix}", "MODELS=resnet18,levit_192", f"CHECKPOINTS={tmp_path}"],
                          capture_output=True, text=True, timeout=600, env=env)
    text = done.stdout + done.stderr
    assert done.returncode != 0 and "Traceback" not in text and "Downloading" not in text, text
    assert "jobs to do" not in text  # stopped before the throughput measurement and the plan
    for model in ("resnet18", "levit_192"):
        path = str(hubcache.expected_weight_file(model).path)
        line = next(x for x in text.splitlines() if f"{model}: pretrained" in x)
        assert path in line and "model.checkpoint=" in line and "MODELS=" in line, line
    assert "HF_HUB_OFFLINE is set" in text
    assert _tree(ROOT / "results") == before
    assert not [f for f in runs.rglob("*") if f.is_file()] if runs.exists() else True


# -- the rehearsal -------------------------------------------------------------------------------
TABLES = ["table1.md", "table2.md", "table2_ci.md", "table3.md", "table4.md", "table6.md", "table7.md", "table8.md",
          "table9.md", "alzheimer/table3.md"]
FIGURES = ["fig2", "fig3", "fig4", "fig5", "fig6", "fig8", "fig9"]


def _rehearse(work: Path, *overrides: str) -> Path:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TORCH_HOME"))}
    subprocess.run([sys.executable, "-m", "scripts.rehearse", "--work", str(work), "--ilsvrc-root", str(ILSVRC),
                    "--alzheimer-root", str(ALZ), *overrides], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return work / "out"


def _check_rehearsal(out: Path, models: list[str]) -> None:
    times = list(csv.DictReader((out / "logs" / "times.csv").open()))
    assert {t["status"] for t in times} == {"ok"}
    assert [s for s in pipeline.STEPS if s in {t["step"] for t in times}] == list(pipeline.STEPS)
    assert sorted(p.stem.removesuffix("_alzheimer") for p in (out / "checkpoints").glob("*.pth")) == sorted(models)
    for table in TABLES:
        assert (out / "tables" / table).is_file(), table
    from benchmarks.tables import MODELS as DISPLAY

    for table in ("table6.md", "table7.md"):  # each architecture on each dataset
        listed = next(line for line in (out / "tables" / table).read_text().splitlines() if "Models: " in line)
        assert all(DISPLAY[m] in listed for m in models), (table, listed)
    for fig in FIGURES:
        assert (out / "figures" / f"{fig}.png").is_file(), fig
    report = (out / "REPRODUCTION.md").read_text()
    assert "**Random weights.**" in report


@pytest.mark.skipif(not (ILSVRC.is_dir() and ALZ.is_dir()), reason=f"shared data not found at {SHARED}")
def test_rehearsal_of_two_architectures(tmp_path: Path) -> None:
    """The whole run offline with random hub weights: a torchvision CNN and a timm ViT, the methods of few passes;
    then the same command again finds every job done."""
    models = ["resnet18", "levit_192"]
    overrides = [f"models={','.join(models)}", "methods=gradcam,gradcampp,shapleycam,reciprocam,cluscam",
                 "figures.vit_model=levit_192"]
    out = _rehearse(tmp_path, *overrides)
    _check_rehearsal(out, models)
    plan = (out / "plan.csv").read_text()
    assert "to do" in plan
    subprocess.run([sys.executable, "-m", "scripts.reproduce", "paper", "--settings", "rehearsal", "--plan",
                    "--plan-out", str(tmp_path / "again"), f"out={out}", f"ilsvrc_root={ILSVRC}",
                    f"alzheimer_root={tmp_path / 'alzheimer'}", *overrides], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL, env={**os.environ, "TORCH_HOME": str(tmp_path / "torch"),
                                                   "HF_HUB_CACHE": str(tmp_path / "huggingface" / "hub"),
                                                   "HF_HUB_OFFLINE": "1"})
    again = list(csv.DictReader((tmp_path / "again.csv").open()))
    assert {r["step"] for r in again if r["state"] == "to do"} == {"render"}  # the renderers always rerun
    assert all(r["state"] == "done" for r in again if r["step"] != "render")


@pytest.mark.skipif(os.environ.get("CLUSCAM_FULL_REHEARSAL") != "1",
                    reason="the twelve-architecture rehearsal takes about an hour on 2 cores: CLUSCAM_FULL_REHEARSAL=1")
@pytest.mark.skipif(not (ILSVRC.is_dir() and ALZ.is_dir()), reason=f"shared data not found at {SHARED}")
def test_rehearsal_of_all_twelve_architectures(tmp_path: Path) -> None:
    out = _rehearse(tmp_path)
    _check_rehearsal(out, list(pipeline.load("rehearsal").models))
    assert (out / "tables" / "table5.md").is_file()
