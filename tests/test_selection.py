"""Hyperparameter selection: Alg. 2 (elbow), Alg. 3 (GMM discard ratio), Eq. 10 (temperature)."""
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cluscam.selection import discard_ratio, elbow, select_hyperparameters, temperature
from test_cluscam import small_cnn


def test_elbow_known_answer_uniform_spacing():
    # S = [.5, .5, 2, .5] for K = 4..10; C(K_j) = [0, .75, -.75] for K = 6, 8, 10 -> K* = 8.
    k, c = elbow([2, 4, 6, 8, 10], [0, 1, 2, 6, 7])
    assert k == 8
    np.testing.assert_allclose(c, [np.nan, np.nan, 0.0, 0.75, -0.75])


def test_elbow_known_answer_uneven_spacing():
    # K = 5, 10, 20, 40: S = 2/5, 6/10, 4/20 = .4, .6, .2; C = (.6-.4)/10, (.2-.6)/20 = .02, -.02.
    k, c = elbow([5, 10, 20, 40], [1.0, 3.0, 9.0, 13.0])
    assert k == 20
    np.testing.assert_allclose(c[2:], [0.02, -0.02])


def test_elbow_rejects_bad_candidates():
    with pytest.raises(ValueError, match="at least 3"):
        elbow([5, 10], [1, 2])
    with pytest.raises(ValueError, match="ascending"):
        elbow([5, 20, 10], [1, 2, 3])


def test_discard_ratio_recovers_the_non_salient_share():
    rng = np.random.default_rng(0)
    for share in (0.15, 0.37, 0.55):
        n = 6000
        low = rng.normal(-3.0, 0.7, int(share * n))
        high = rng.normal(2.0, 1.0, n - len(low))
        r = discard_ratio(np.concatenate([high, low]))
        assert r == pytest.approx(share, abs=0.02)
    # Salience is the higher mean whatever the component order or the sign of the scores.
    assert discard_ratio(-np.concatenate([high, low])) == pytest.approx(1 - share, abs=0.02)


@pytest.mark.parametrize("r, k, tau", [(0.3712, 30, 0.40), (0.3609, 40, 0.37), (0.5171, 45, 0.31),
                                       (0.5417, 50, 0.30), (0.4078, 50, 0.33), (0.1493, 40, 0.51),
                                       (0.1404, 45, 0.50), (0.1952, 50, 0.42), (0.1625, 45, 0.47)])
def test_temperature_reproduces_table3(r, k, tau):
    assert round(temperature(r, k), 2) == tau  # Eq. 10 against the paper's Table 3


def test_select_hyperparameters_end_to_end():
    model = small_cnn(3)
    gen = torch.Generator().manual_seed(0)
    batches = [torch.randn(4, 3, 32, 32, generator=gen) for _ in range(2)]
    sel = select_hyperparameters(model, "6", iter(batches), ks=[2, 4, 6, 8, 12], chunk_size=16)
    assert sel.k in sel.ks and len(sel.proxy) == len(sel.curvature) == 5
    assert sel.k == elbow(sel.ks, sel.proxy)[0]
    assert 0 < sel.r < 1 and sel.tau == pytest.approx(1 / math.log(1 + sel.r * sel.k))
    assert sel.scores.shape == (8 * sel.k,)  # every validation image's K* scores
    assert sel.r == pytest.approx(discard_ratio(sel.scores))


# -- the selection images (scripts/select_hparams.py, Makefile table3) -------------------------------
SYNTHETIC = ["model=tiny_cnn", "dataset=synthetic", "dataset.options.n=8", "run.workers=0"]


def test_selection_images_follow_the_evaluated_range():
    """Alg. 2-3 select on images after the tables' range [0, N), never on it."""
    from benchmarks.api import cell_dataset, compose
    from scripts.select_hparams import selection_dataset

    evaluated = set(cell_dataset(compose([*SYNTHETIC, "run.n_images=5"])).ids)
    chosen = selection_dataset(compose([*SYNTHETIC, "run.start=5"]), evaluated=5).ids
    assert len(chosen) == 3 and not evaluated & set(chosen)
    with pytest.raises(ValueError, match=r"run.start=0 selects on images \[0, 5\).*run.start=5"):
        selection_dataset(compose(SYNTHETIC), evaluated=5)
    with pytest.raises(ValueError, match="past the end"):  # an empty selection is an error
        selection_dataset(compose([*SYNTHETIC, "run.start=8"]), evaluated=5)


def test_a_finished_selection_is_not_run_again(tmp_path, monkeypatch, capsys):
    """Re-running the command (a resumed make reproduction) renders; --force or other arguments select again."""
    import scripts.select_hparams as sh

    calls = []
    monkeypatch.setattr(sh, "select", lambda overrides, ks, val_ids, evaluated: calls.append(ks) or {
        "model": "tiny_cnn", "k": 10, "r": 0.2, "tau": 0.5, "n_images": 2, "overrides": overrides, "ks": ks,
        "val_ids": None, "paper": {"k": 30, "r": 0.3, "tau": 0.4},
        "provenance": {"commit": "abc", "device": "cpu", "date": "2026-01-01"}})
    argv = ["model=tiny_cnn", "dataset=synthetic", "--ks", "5", "10", "--out", str(tmp_path)]
    sh.main(argv)
    sh.main(argv)
    assert calls == [[5, 10]] and "already selected with these arguments" in capsys.readouterr().out
    sh.main([*argv, "--force"])
    sh.main([*argv[:2], "--ks", "5", "10", "15", "--out", str(tmp_path)])
    assert calls == [[5, 10], [5, 10], [5, 10, 15]]
    assert (tmp_path / "table3.md").read_text().count("tiny_cnn") == 1


def test_selection_images_are_a_reports_validation_ids(tmp_path):
    """--val-ids: exactly a training report's val_ids (the Alzheimer images the tables leave out)."""
    import json

    from benchmarks.api import compose
    from scripts.select_hparams import selection_dataset

    report = tmp_path / "report.json"
    report.write_text(json.dumps({"val_ids": ["synthetic_000001", "synthetic_000006"]}))
    assert selection_dataset(compose(SYNTHETIC), report).ids == ["synthetic_000001", "synthetic_000006"]
    # run.start / run.n_images range over the validation ids (a subset of them on a small CPU)
    assert selection_dataset(compose([*SYNTHETIC, "run.n_images=1"]), report).ids == ["synthetic_000001"]
    assert selection_dataset(compose([*SYNTHETIC, "run.start=1", "run.n_images=5"]), report).ids == ["synthetic_000006"]
    report.write_text(json.dumps({"val_ids": ["synthetic_000001", "train/x.jpg"]}))
    with pytest.raises(ValueError, match="1 of the 2 ids .* are not in the synthetic images"):
        selection_dataset(compose(SYNTHETIC), report)


@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
def test_makefile_selects_after_the_evaluated_range():
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(["make", "-n", "-C", str(root), "select-ilsvrc", "select-alzheimer", "ILSVRC_ROOT=/ilsvrc",
                          "ALZ_ROOT=/alz", "N=300", f"VENV={sys.prefix}", "MODELS=resnet18"],
                         capture_output=True, text=True, check=True).stdout
    ilsvrc, alzheimer = [line for line in out.splitlines() if "scripts.select_hparams" in line]
    assert "run.start=300" in ilsvrc and "--evaluated 300" in ilsvrc
    assert "--val-ids results/checkpoints/$m_alzheimer.json" in alzheimer.replace("${m}", "$m")
