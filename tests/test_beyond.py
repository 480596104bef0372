"""Table 10 (benchmarks.beyond): ClusCAM against the best baseline per test on rows with known answers, the
randomization flag, and the command line end to end on tiny runs."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmarks.beyond import comparisons, randomization_summary, section

IDS = [f"img{i:03d}" for i in range(60)]


def rows_with(values: dict[str, dict[str, float]], noise: float = 0.005) -> pd.DataFrame:
    """Rows of two CNN architectures; ``values[method][metric]``: the per-image mean (fractions), plus noise."""
    rng = np.random.default_rng(0)
    frames = []
    for model in ("resnet18", "resnet34"):
        for method, cols in values.items():
            frame = pd.DataFrame({"dataset": "ilsvrc", "model": model, "method": method, "cell": f"{model}-{method}",
                                  "id": IDS})
            for metric, v in cols.items():
                frame[metric] = v + noise * rng.standard_normal(len(IDS))
            frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def by_metric(results):
    return {c.metric: c for c in results}


def test_the_best_baseline_per_metric_and_the_verdicts():
    rows = rows_with({"cluscam": {"ad": 0.20, "ic": 0.5, "ag": 0.1, "deletion": 0.10, "insertion": 0.40},
                      "gradcam": {"ad": 0.30, "ic": 0.5, "ag": 0.1, "deletion": 0.20, "insertion": 0.60},
                      "scorecam": {"ad": 0.25, "ic": 0.5, "ag": 0.1, "deletion": 0.15, "insertion": 0.50}})
    got = by_metric(comparisons(rows, resamples=500))
    assert got["deletion"].best == "scorecam" and got["insertion"].best == "gradcam"  # lower / higher is better
    assert got["deletion"].diff == pytest.approx(-5.0, abs=0.5)  # in %
    assert got["deletion"].verdict == "holds" and got["ad"].verdict == "holds"
    assert got["insertion"].verdict == "does not hold"
    assert got["ic"].verdict.startswith("not resolved")  # equal means: no side
    assert got["deletion"].images == 60 and got["deletion"].models == ("resnet18", "resnet34")
    text = "\n".join(section(list(got.values()), pd.DataFrame(), "runs"))
    assert "### ILSVRC, CNNs (ResNet-18, ResNet-34)" in text
    assert "Methods, each on the same images of each architecture: GradCAM, ScoreCAM, ClusCAM (Ours)." in text
    assert "ClusCAM leads the best baseline on AD here" in text and "does not hold: Insertion" in text


def test_the_randomization_flag():
    frames = []
    for method, rho in (("gradcam", 0.1), ("edges", 0.95), ("half", 0.5)):
        for depth in (1, 2):
            frames.append(pd.DataFrame({"dataset": "ilsvrc", "model": "resnet18", "method": method, "id": IDS,
                                        "stage": f"s{depth}", "depth": depth,
                                        "spearman": rho + 0.01 * np.random.default_rng(depth).standard_normal(60),
                                        "ssim": 0.5}))
    summary = randomization_summary(pd.concat(frames), threshold=0.5, resamples=500).set_index("method")
    assert summary.loc["gradcam", "changes"] == "yes" and summary.loc["edges", "changes"] == "no (flagged)"
    assert summary.loc["half", "changes"] == "not resolved" and (summary["stage"] == "s2").all()
    assert randomization_summary(pd.DataFrame()).empty  # before any randomization cell
    flat = pd.concat(frames, ignore_index=True).query("method == 'edges'").assign(method="flat")
    flat.loc[flat["depth"] == 2, "spearman"] = np.nan  # constant maps on the fully random model: no ranks
    got = randomization_summary(flat, threshold=0.5, resamples=200).iloc[0]
    assert got["changes"] == "yes" and got["constant"] == 60 and got["spearman"] == 0.0
    assert summary.loc["edges", "constant"] == 0


def test_the_command_line_end_to_end(tmp_path, capsys):
    from benchmarks.api import compose, run_cell
    from benchmarks.randomization import run_randomization
    from scripts import beyond

    runs = tmp_path / "runs"
    base = ["model=tiny_cnn", "dataset=synthetic", "dataset.options.n=4", "run.batch_size=4", "run.workers=0",
            "run.device=cpu", f"run.out_dir={runs}"]
    tests = ["metrics.faithfulness=[deletion,insertion,road]", "metrics.curve_step=512", "metrics.road_percentiles=[50]"]
    for method in ("cluscam", "gradcam"):
        run_cell(compose([*base, f"method={method}", *tests]), progress=False)
        run_randomization(compose([*base, f"method={method}"]), progress=False)
    beyond.main(["--runs", str(runs), "--out", str(tmp_path / "tables"), "--resamples", "200"])
    md = (tmp_path / "tables" / "table10.md").read_text()
    assert "ClusCAM − best baseline" in md and "vs GradCAM" in md and "Deletion (↓)" in md
    assert "Randomization check" in md and "| synthetic | TinyCNN | GradCAM |" in md  # per dataset and model
    assert {p.suffix for p in (tmp_path / "tables").iterdir()} == {".md", ".tex", ".csv", ".json"}
    csv = pd.read_csv(tmp_path / "tables" / "table10.csv", keep_default_na=False)  # the text cells are in the CSV too
    assert csv.loc[csv["Method"] == "ClusCAM − best baseline", "text"].str.contains(r"vs GradCAM: ").all()
    assert set(csv.loc[csv["column"] == "images", "text"]) == {"4"}
    from benchmarks.beyond import randomization_summary, read_randomization
    summary = randomization_summary(read_randomization(runs / "randomization"), resamples=100)
    assert list(summary["stages"]) == [4, 4] and (summary["stage"] == "features.0").all()  # every stage read
    assert (summary["images"] == 4).all() and list(summary["method"]) == ["gradcam", "cluscam"]  # the tables' order
    from scripts import claims
    claims.main(["--runs", str(runs), "--out", str(tmp_path / "REPRODUCTION.md"), "--faithfulness-runs", str(runs),
                 "--resamples", "100"])
    report = (tmp_path / "REPRODUCTION.md").read_text()
    assert "## Beyond the paper: Deletion / Insertion, ROAD and the randomization check" in report
    assert "### The randomization check" in report and "| Deletion (↓) |" in report
    with pytest.raises(ValueError, match="--faithfulness-runs .* is not a folder"):
        claims.beyond_lines(tmp_path / "absent", 100, 0, explicit=True)
    assert claims.beyond_lines(tmp_path / "absent", 100, 0, explicit=False) == []


@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
def test_makefile_runs_every_cell_first_on_a_few_images_then_on_the_common_sets():
    """`make reproduction-beyond`: each model x method on BEYOND_FIRST images before any larger count, then
    Lite0 on BEYOND_LITE0_N ILSVRC images and every other cell on BEYOND_N."""
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(["make", "-n", "-C", str(root), "-o", "install", "reproduction-beyond", f"VENV={sys.prefix}",
                          "BEYOND_FIRST=7", "BEYOND_LITE0_N=30", "BEYOND_N=20"],
                         capture_output=True, text=True, check=True).stdout
    counts: dict[tuple[str, str, str], list[int]] = {}
    for line in out.splitlines():
        sweep = re.search(r"sweep-(\w+) MODELS=(\S+) METHODS=(\S+) N=(\d+)", line)
        if sweep:
            dataset, models, methods, n = sweep.groups()
            for model in models.split(","):
                for method in methods.split(","):
                    counts.setdefault((dataset, model, method), []).append(int(n))
    lites = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
    assert {model for dataset, model, _ in counts if dataset == "ilsvrc"} == set(lites)
    assert {method for *_, method in counts} >= {"cluscam", "scorecam", "gradcam"}
    for (dataset, model, method), ns in counts.items():
        final = 30 if (dataset, model) == ("ilsvrc", "efficientnet_lite0") else 20
        assert ns == [7, final], (dataset, model, method, ns)
