"""The claims report (scripts/claims.py) on synthetic cells whose verdicts are known by construction."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scripts import paper
from scripts.claims import FAILS, HOLDS, NA, TIE, main, verdict

N = 20
OFFSETS = np.linspace(-0.05, 0.05, N)
EVEN = (np.arange(N) % 2 == 0).astype(float)
PASSES = {"gradcam": (1, 0, 1), "gradcampp": (1, 0, 1), "scorecam": (513, 0, 0), "ablationcam": (1, 512, 0),
          "reciprocam": (1, 49, 0), "opticam": (51, 0, 50), "shapleycam": (1, 0, 2), "cluscam": (31, 0, 0)}
SECONDS = {"gradcam": 0.01, "scorecam": 0.3, "opticam": 0.5, "cluscam": 0.2}


def terms(method: str, cluscam: str) -> dict[str, np.ndarray]:
    """Per-image AD, IC, AG: OptiCAM the best baseline on AD and AG; ClusCAM ``win``s (AD 10 points
    lower, IC 100% against 50%, AG 10 points higher), ``lose``s or equals OptiCAM (``tie``)."""
    j = paper.ORDER.index(method)
    if method == "opticam" or (method == "cluscam" and cluscam == "tie"):
        return {"ad": 0.20 + OFFSETS, "ic": EVEN, "ag": 0.30 + OFFSETS}
    if method == "cluscam":
        return ({"ad": 0.10 + OFFSETS, "ic": np.ones(N), "ag": 0.40 + OFFSETS} if cluscam == "win" else
                {"ad": 0.60 + OFFSETS, "ic": np.zeros(N), "ag": np.zeros(N)})
    return {"ad": 0.30 + 0.01 * j + OFFSETS, "ic": EVEN, "ag": 0.10 + 0.01 * j + OFFSETS}


def write_cell(runs: Path, dataset: str, model: str, method: str, cluscam: str, n: int = N, fp: int | None = None,
               model_cfg: dict | None = None) -> None:
    """One cell as benchmarks/store.py leaves it: rows.csv, config.json, provenance.jsonl."""
    forward, partial, backward = PASSES[method]
    rows = pd.DataFrame({"id": [f"img{i:03d}" for i in range(N)], "path": "x.jpg", "status": "ok", "label": 0,
                         "pred": 0, "p": 0.5, "p_masked": 0.5, **terms(method, cluscam), "ep": 0.5 + OFFSETS,
                         "le": 0.5 + OFFSETS, "n_boxes": 1, "seconds": SECONDS.get(method, 0.1),
                         "forward": forward if fp is None else fp, "partial": partial, "backward": backward,
                         "device": "Test GPU"}).iloc[:n]
    cell = runs / dataset / model / method / "c0ffee000000"
    cell.mkdir(parents=True)
    rows.to_csv(cell / "rows.csv", index=False)
    config = {"dataset": {"name": dataset}, "model": model_cfg or {"name": model, "pretrained": True},
              "method": {"name": method, "precision": "bf16" if method == "scorecam" and model != "vit_b_16" else "fp32",
                         **({"k": 30} if method == "cluscam" else {})}}
    (cell / "config.json").write_text(json.dumps(config))
    (cell / "provenance.jsonl").write_text(json.dumps({"commit": "abc1234", "device": "Test GPU",
                                                       "date": "2026-01-01T00:00:00+00:00"}) + "\n")


def md_rows(text: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip().strip("|").split("|")] for line in text.splitlines()
            if line.startswith("| ") and not line.startswith("| Dataset |")]


def verdicts(text: str) -> dict[tuple[str, str, str, str], str]:
    """{(dataset, scope, metric, claim): verdict} of the report's comparison tables."""
    return {tuple(r[:4]): r[-1] for r in md_rows(text) if len(r) == 10}


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> str:
    """ILSVRC: ClusCAM wins on two CNNs and ties OptiCAM on ViT-B; Alzheimer's: it loses on ResNet-18
    (whose ClusCAM made 40 passes for K = 30); no Alzheimer ViT, no AG-CAM, no Table 1 rows."""
    runs = tmp_path_factory.mktemp("claims") / "runs"
    for method in paper.ORDER:
        for model in ("resnet18", "resnet34"):
            write_cell(runs, "ilsvrc", model, method, "win")
        write_cell(runs, "ilsvrc", "vit_b_16", method, "tie")
        write_cell(runs, "alzheimer", "resnet18", method, "lose", fp=40 if method == "cluscam" else None)
    out = runs.parent / "REPRODUCTION.md"
    main(["--runs", str(runs), "--out", str(out), "--resamples", "200"])
    return out.read_text()


CNNS = "CNNs (ResNet-18, ResNet-34)"


def test_a_method_built_to_win_holds_one_built_to_lose_does_not(report):
    v = verdicts(report)
    for metric in ("AD (↓)", "IC (↑)", "AG (↑)"):
        assert v["ILSVRC", CNNS, metric, "ClusCAM (Ours) ahead of the best baseline"] == HOLDS
        assert v["ILSVRC", "ResNet-34", metric, "ClusCAM (Ours) ahead of the best baseline"] == HOLDS
    for metric in ("IC (↑)", "AG (↑)"):
        assert v["Alzheimer's", "CNNs (ResNet-18)", metric, "ClusCAM (Ours) ahead of the best baseline"] == FAILS
    # the paper puts ClusCAM behind OptiCAM in AD on Alzheimer's CNNs (-1.74 points): losing confirms that
    assert v["Alzheimer's", "CNNs (ResNet-18)", "AD (↓)", "ClusCAM (Ours) behind OptiCAM"] == HOLDS
    best = "ClusCAM (Ours) ahead of the best baseline"
    row = next(r for r in md_rows(report) if r[:4] == ["ILSVRC", CNNS, "AD (↓)", best])
    assert row[4] == "7.82 vs OptiCAM 8.75 (Δ -0.93)"  # Table 2
    assert row[5] == "10.00 vs OptiCAM 20.00" and row[6] == "-10.00 [-10.00, -10.00]" and row[8] == "40"
    ic = next(r for r in md_rows(report) if r[:4] == ["ILSVRC", CNNS, "IC (↑)", "ClusCAM (Ours) ahead of OptiCAM"])
    assert ic[6].startswith("+50.00 [") and ic[6].endswith("stated margin outside the CI") and float(ic[7]) < 1e-3


def test_an_exact_tie_is_not_resolved_and_missing_rows_cannot_be_measured(report):
    v = verdicts(report)
    vit = "ViTs (ViT-B)"
    assert v["ILSVRC", vit, "AD (↓)", "ClusCAM (Ours) behind the best baseline"] == TIE
    assert v["ILSVRC", vit, "IC (↑)", "ClusCAM (Ours) ahead of OptiCAM"] == TIE
    row = next(r for r in md_rows(report) if r[:3] == ["ILSVRC", vit, "AG (↑)"])
    assert row[6] == "+0.00 [0.00, 0.00]" and row[7] == "1"
    for metric in ("AD (↓)", "IC (↑)", "AG (↑)"):
        assert v["Alzheimer's", "ViTs", metric, "ClusCAM (Ours) ahead of the best baseline"] == \
            f"{NA}: no rows for ViTs on Alzheimer's"
    assert v["ILSVRC", "ViT-B", "AD (↓)", "AG-CAM ahead of GradCAM / GradCAM++ / ScoreCAM"].startswith(
        f"{NA}: no AG-CAM rows on a ViT in these rows")
    assert "cannot be measured from these rows: no Table 1 rows under" in report


def test_runtime_and_passes(report):
    v = verdicts(report)
    assert v["ILSVRC", "ViTs", "seconds/image (↓)", "ClusCAM (Ours) ahead of ScoreCAM / OptiCAM"] == HOLDS
    passes = {(r[0], r[1], r[2]): r[3:] for r in md_rows(report) if len(r) == 8}
    assert passes["ILSVRC", "ResNet-18", "ClusCAM (Ours)"] == ["K", "31", "31", "0", HOLDS]
    assert passes["ILSVRC", "ResNet-18", "ScoreCAM"] == ["N", "513", "513", "0", HOLDS]
    assert passes["Alzheimer's", "ResNet-18", "ClusCAM (Ours)"] == ["K", "31", "40", "0", FAILS]
    factors = {tuple(r[:4]): r[4:] for r in md_rows(report) if len(r) == 7}
    assert factors["ILSVRC", "CNNs", "seconds/image (↓)", "ClusCAM (Ours)"] == ["×44.24", "×20.00", FAILS]
    # ScoreCAM's CNN cells ran in bf16, GradCAM's and ClusCAM's in fp32: their seconds are not compared
    mixed = f"{NA}: seconds not comparable across precisions: "
    assert factors["ILSVRC", "CNNs", "seconds/image (↓)", "ScoreCAM"][2] == mixed + "GradCAM fp32, ScoreCAM bf16"
    assert factors["ILSVRC", "CNNs", "AD (↓)", "ScoreCAM"][2] in (HOLDS, FAILS)
    magnitude = {tuple(r[:2]): r[2:] for r in md_rows(report) if len(r) == 4 and r[1].startswith("ClusCAM / ")}
    assert magnitude["ILSVRC", "ClusCAM / ScoreCAM"][1] == mixed + "ClusCAM (Ours) fp32, ScoreCAM bf16"
    assert magnitude["ILSVRC", "ClusCAM / OptiCAM"] == ["×0.40", HOLDS]  # both fp32: measured, 0.2 s / 0.5 s
    assert factors["ILSVRC", "CNNs", "AD (↓)", "ClusCAM (Ours)"] == ["×2.42", "×3.00", HOLDS]  # GradCAM 30 / 10
    assert factors["ILSVRC", "CNNs", "AG (↑)", "ClusCAM (Ours)"] == ["×1.92", "×4.00", FAILS]  # 40 / 10: over x2


def test_header_states_provenance_and_the_images_compared(report):
    assert "- Command: `python -m scripts.claims --runs " in report and "- Commit: " in report
    assert "- Runs folder: `" in report and "- Date: 20" in report
    line = next(r for r in md_rows(report) if r[:2] == ["ILSVRC", "ResNet-18"] and len(r) == 9)
    assert line[2:4] == ["CNNs", "20"] and line[5:] == ["none", "Test GPU", "fp32; bf16: ScoreCAM", "pretrained"]


def test_cannot_measure_reasons(tmp_path):
    """Random weights, a missing method and too few images each make a claim unmeasurable."""
    runs = tmp_path / "runs"
    for method in paper.ORDER:
        write_cell(runs, "ilsvrc", "resnet18", method, "win", model_cfg={"pretrained": False, "checkpoint": None})
        if method != "opticam":
            write_cell(runs, "ilsvrc", "resnet34", method, "win")
        write_cell(runs, "alzheimer", "resnet18", method, "win", n=5)
    main(["--runs", str(runs), "--out", str(tmp_path / "r.md"), "--resamples", "50"])
    v = verdicts((tmp_path / "r.md").read_text())
    claim = "ClusCAM (Ours) ahead of the best baseline"
    assert v["ILSVRC", "ResNet-18", "IC (↑)", claim] == f"{NA}: no trained model: ResNet-18 ran on random weights"
    assert v["ILSVRC", "ResNet-34", "IC (↑)", claim] == \
        f"{NA}: no rows for OptiCAM on ResNet-34 (the claim compares with every one)"
    assert v["Alzheimer's", "ResNet-18", "AG (↑)", claim] == f"{NA}: too few images (fewer than 10): ResNet-18 5"
    assert v["ILSVRC", "CNNs (ResNet-18, ResNet-34)", "IC (↑)", claim].startswith(f"{NA}: no rows for OptiCAM")


def test_no_verdict_of_any_table_below_the_minimum_of_images(tmp_path):
    """Two images per architecture (and a Table 1 cell of two): every section, Tables 1, 8 and 9
    included, says too few images instead of a verdict."""
    runs = tmp_path / "runs"
    for method in paper.ORDER:
        for model in ("resnet18", "vit_b_16"):
            write_cell(runs, "ilsvrc", model, method, "win", n=2)
    groups = runs / "table1" / "ilsvrc" / "resnet18" / "groups" / "abc"
    groups.mkdir(parents=True)
    pd.DataFrame({"id": np.repeat(["img000", "img001"], 5), "group": np.tile(range(5), 2),
                  "rank": np.tile(range(5), 2), "size": 2, "s_meta": 1.0 + OFFSETS[:10],
                  "s_members_mean": OFFSETS[:10] ** 2}).to_csv(groups / "rows.csv", index=False)
    main(["--runs", str(runs), "--out", str(tmp_path / "r.md"), "--resamples", "50"])
    report = (tmp_path / "r.md").read_text()
    few = f"{NA}: too few images (fewer than 10): "
    summary = [r for r in md_rows(report) if len(r) == 5 and r[0] != "Claims" and not r[1].startswith("ClusCAM /")]
    assert len(summary) == 6 and all(r[1:4] == ["0", "0", "0"] for r in summary), summary
    factors = {tuple(r[:4]): r[4:] for r in md_rows(report) if len(r) == 7}
    assert factors["ILSVRC", "CNNs", "seconds/image (↓)", "ClusCAM (Ours)"][2] == few + "ResNet-18 2"
    assert factors["ILSVRC", "ViTs", "AD (↓)", "OptiCAM"][2] == few + "ViT-B 2"
    magnitude = {tuple(r[:2]): r[2:] for r in md_rows(report) if len(r) == 4 and r[1].startswith("ClusCAM / ")}
    assert magnitude["ILSVRC", "ClusCAM / OptiCAM"][1] == few + "ResNet-18 2"
    passes = {(r[0], r[1], r[2]): r[-1] for r in md_rows(report) if len(r) == 8}
    assert passes["ILSVRC", "ViT-B", "ClusCAM (Ours)"] == few + "ViT-B 2"
    table1 = next(r for r in md_rows(report) if r[0] == "table1/ilsvrc/resnet18/groups/abc")
    assert table1[1] == "2" and table1[-1] == few + "ResNet-18 2"


def test_a_checkpoint_trained_here_is_a_trained_model(tmp_path):
    """Cells record a checkpoint by its sha256: from scratch (pretrained false) it still counts as trained."""
    runs = tmp_path / "runs"
    for method in paper.ORDER:
        write_cell(runs, "alzheimer", "resnet18", method, "win",
                   model_cfg={"pretrained": False, "checkpoint_sha256": "82df98204444270e36393b0c"})
    main(["--runs", str(runs), "--out", str(tmp_path / "r.md"), "--resamples", "50"])
    report = (tmp_path / "r.md").read_text()
    assert verdicts(report)["Alzheimer's", "ResNet-18", "AG (↑)", "ClusCAM (Ours) ahead of the best baseline"] == HOLDS
    line = next(r for r in md_rows(report) if r[:2] == ["Alzheimer's", "ResNet-18"] and len(r) == 9)
    assert line[-1] == "checkpoint (sha256 82df98204444)"


def test_verdict_rule_orientation_and_significance():
    assert verdict(-3, -1, 0.01, "ad", "better") == HOLDS  # lower AD is better
    assert verdict(-3, -1, 0.01, "ic", "better") == FAILS
    assert verdict(1, 3, 0.01, "ad", "worse") == HOLDS
    assert verdict(1, 3, 0.2, "ic", "better") == TIE  # the interval alone is not enough
    assert verdict(-1, 3, 0.01, "ic", "better") == TIE


def test_stated_margins_are_points_against_opticam():
    table2 = paper.parse(paper.TABLE2)
    for (d, f, metric), margin in paper.MARGINS.items():
        row = table2[f"{d}/{f}", metric]
        assert row["cluscam"] - row["opticam"] == pytest.approx(margin, abs=0.005)
        assert 100 * (row["cluscam"] / row["opticam"] - 1) != pytest.approx(margin, abs=0.5)
