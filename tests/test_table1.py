"""Table 1's experiment (benchmarks.table1, scripts/table1.py): member logit changes against a by-hand computation,
the statistics against scipy and by-hand values, p-value formatting and the rendered table."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from scipy import stats

from benchmarks import zoo
from benchmarks.api import cell_dataset, cell_model_config, compose
from benchmarks import table1
from benchmarks.table1 import format_p, paired_tests, run_table1, t_log10_sf, table1_statistics, wilcoxon_z, write_table1
from scripts.table1 import main

RUN = ["method=cluscam", "dataset=synthetic", "dataset.options.n=4", "run.batch_size=2", "run.workers=0",
       "run.chunk_size=16", "run.device=cpu"]
TOKENS = ["model=tiny_vit", "method.options.grouping=tokens", "model.layer.path=blocks.-1", "model.layer.layout=tokens",
          "model.layer.prefix_tokens=1"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return tmp_path_factory.mktemp("runs")


def experiment(runs, *overrides):
    cfg = compose([*RUN, f"run.out_dir={runs}", *overrides])
    return cfg, *run_table1(cfg, progress=False)


@pytest.fixture(scope="module")
def cnn(runs):
    return experiment(runs, "model=tiny_cnn")


def by_hand(cfg, layer_maps):
    """Ids, predicted classes, the representations' low-resolution maps (``layer_maps`` of the hooked
    layer's output) and ``shift(i, mask)`` = f_c(x_i (.) mask) - f_c(x_i) for a full-size mask, by hand."""
    torch.manual_seed(int(cfg.run.seed))  # the runner's random init
    model = zoo.create_model(cell_model_config(cfg)).eval()
    dataset = cell_dataset(cfg)
    images = torch.stack([dataset[i].image for i in range(len(dataset))])
    store = {}
    handle = zoo.layer_spec(cell_model_config(cfg), "cluscam").module(model).register_forward_hook(
        lambda _m, _i, out: store.__setitem__("act", out))
    with torch.no_grad():
        logits = model(images)
    handle.remove()
    pred = logits.argmax(1)

    def shift(i: int, mask: torch.Tensor) -> float:
        with torch.no_grad():
            return float(model(images[i:i + 1] * mask)[0, pred[i]] - logits[i, pred[i]])

    return dataset.ids, pred, layer_maps(store["act"]), shift


def normalize_upsample(low: torch.Tensor) -> torch.Tensor:
    """NormalizeUpsample of maps [n, h, w] to 64 x 64: bilinear, then per-map min-max (constant kept)."""
    up = F.interpolate(low[:, None].float(), size=(64, 64), mode="bilinear", align_corners=False)[:, 0]
    lo, hi = up.amin((1, 2), keepdim=True), up.amax((1, 2), keepdim=True)
    return torch.where(hi > lo, (up - lo) / torch.where(hi > lo, hi - lo, torch.ones_like(hi)), up)


def channel_meta(low: torch.Tensor) -> torch.Tensor:
    """Eq. 4: M_j = the mean of the members' NormalizeUpsample maps."""
    return normalize_upsample(low).mean(0)


def token_meta(low: torch.Tensor) -> torch.Tensor:
    """A token group's map: NormalizeUpsample of the indicator of its grid cells."""
    return normalize_upsample(low.sum(0, keepdim=True))[0]


def check_groups(groups, members, ids, pred, maps, shift, n_groups, meta=channel_meta):
    """For the top ``n_groups`` groups of each image: each member's shift, their mean, and the
    meta-representation's score s_j = f_c(x (.) M_j) - f_c(x) (Eq. 5) with ``meta`` giving M_j."""
    for i, id_ in enumerate(ids):
        g = groups[groups["id"] == id_].set_index("group")
        m = members[members["id"] == id_].set_index("member")
        assert (g["pred"] == int(pred[i])).all()
        for group in g.sort_values("rank").index[:n_groups]:
            who = m.index[m["group"] == group].to_numpy()
            low = maps[i, torch.tensor(who)]
            full = normalize_upsample(low)
            hand = [shift(i, f) for f in full]
            np.testing.assert_allclose(m.loc[who, "s_member"], hand, atol=2e-6)
            assert g.loc[group, "s_members_mean"] == pytest.approx(np.mean(hand), abs=2e-6)
            assert g.loc[group, "s_meta"] == pytest.approx(shift(i, meta(low)), abs=2e-6)


def test_member_shifts_match_a_by_hand_computation(cnn):
    cfg, groups, members = cnn
    ids, pred, maps, shift = by_hand(cfg, lambda act: act)
    assert len(members) == 4 * 32 and set(groups["id"]) == set(ids)
    check_groups(groups, members, ids, pred, maps, shift, n_groups=2)


def test_rows_are_consistent(cnn):
    _, groups, members = cnn
    for _, g in groups.groupby("id"):
        assert g["size"].sum() == 32  # every channel in one group (K-means leaves none out)
        ordered = g.sort_values("rank")
        assert list(ordered["rank"]) == list(range(len(g)))
        assert (np.diff(ordered["s_meta"].to_numpy()) <= 0).all()  # rank 0 = highest s_j
    mean = members.groupby(["id", "group"])["s_member"].agg(["mean", "size"])
    joined = groups.join(mean, on=["id", "group"], rsuffix="_members")
    np.testing.assert_allclose(joined["s_members_mean"], joined["mean"], atol=1e-9)
    assert (joined["size"] == joined["size_members"]).all()


def test_token_grouping_members_are_grid_cells(runs):
    cfg, groups, members = experiment(runs, *TOKENS)
    indicator = lambda act: torch.eye(64).view(1, 64, 8, 8).expand(act.shape[0], -1, -1, -1)  # noqa: E731
    ids, pred, maps, shift = by_hand(cfg, indicator)
    assert len(members) == 4 * 64
    check_groups(groups, members, ids[:1], pred, maps, shift, n_groups=2, meta=token_meta)


def test_a_finished_experiment_is_not_recomputed(runs, cnn, monkeypatch):
    _, groups, members = cnn
    monkeypatch.setattr(table1, "member_shifts", lambda *a, **k: pytest.fail("recomputed a finished image"))
    _, again_groups, again_members = experiment(runs, "model=tiny_cnn")
    pd.testing.assert_frame_equal(again_groups, groups)
    pd.testing.assert_frame_equal(again_members, members)


def test_other_methods_are_refused(runs):
    with pytest.raises(ValueError, match="method=cluscam"):
        run_table1(compose([*RUN, "method=gradcam", "model=tiny_cnn", f"run.out_dir={runs}"]), progress=False)


# -- statistics ------------------------------------------------------------------------------------------
def synthetic_groups(n_images: int = 40, k: int = 12, seed: int = 0, scale: float = 1.0) -> pd.DataFrame:
    """Rows with known differences: rank r's difference ~ N(scale (0.5 + 0.1 r), 0.3 + 0.02 r)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_images):
        for group, r in enumerate(rng.permutation(k)):
            base = rng.normal()
            rows.append({"id": f"img{i:03d}", "group": group, "rank": int(r), "size": 3, "s_members_mean": base,
                         "s_meta": base + rng.normal(scale * (0.5 + 0.1 * r), 0.3 + 0.02 * r)})
    return pd.DataFrame(rows)


def test_statistics_against_numpy_and_scipy():
    groups = synthetic_groups()
    st = table1_statistics(groups, top=10)
    d = (groups["s_meta"] - groups["s_members_mean"]).to_numpy()
    means = np.array([d[groups["rank"] == r].mean() for r in range(10)])
    sds = np.array([d[groups["rank"] == r].std(ddof=1) for r in range(10)])
    np.testing.assert_allclose(st["ranks"]["mean_diff"], means)
    np.testing.assert_allclose(st["ranks"]["cohen_d"], means / sds)
    assert list(st["ranks"]["n_pairs"]) == [40] * 10
    for key, values in (("mean_diff", means), ("cohen_d", means / sds)):
        assert st[key]["mean"] == pytest.approx(values.mean())
        assert st[key]["std"] == pytest.approx(values.std(ddof=1))
        assert (st[key]["min"], st[key]["max"]) == pytest.approx((values.min(), values.max()))
    t = stats.ttest_rel(groups["s_meta"], groups["s_members_mean"], alternative="greater")
    w = stats.wilcoxon(groups["s_meta"], groups["s_members_mean"], alternative="greater")
    tests = st["tests"]
    assert tests["p_t"] == pytest.approx(t.pvalue) and 10 ** tests["log10_p_t"] == pytest.approx(t.pvalue, rel=1e-9)
    assert 10 ** tests["log10_p_wilcoxon"] == pytest.approx(w.pvalue, rel=1e-9)
    assert st["n_pairs"] == 40 * 12 and st["n_images"] == 40  # the tests use every pair, ranks 10 and 11 too


def test_t_survival_function_in_and_beyond_float_range():
    for t, df in ((2.0, 5), (5.0, 30), (12.0, 400), (38.0, 20000)):  # scipy's own values where it has them
        assert t_log10_sf(t, df) == pytest.approx(stats.t.logsf(t, df) / math.log(10), rel=1e-9)
    # p ~ 1e-545 underflows; with df = 1e9 the t tail is the normal tail (scipy's log_ndtr is exact there)
    assert stats.t.sf(50.0, 1e9) == 0.0
    assert t_log10_sf(50.0, 1e9) == pytest.approx(stats.norm.logsf(50.0) / math.log(10), rel=1e-5)


def test_wilcoxon_z_reproduces_scipy_approx_with_ties_and_zeros():
    rng = np.random.default_rng(1)
    diff = np.round(rng.normal(0.2, 1.0, 300), 1)  # many ties and some zeros
    assert (diff == 0).any()
    ref = stats.wilcoxon(diff, alternative="greater", method="approx")
    assert stats.norm.sf(wilcoxon_z(diff)) == pytest.approx(ref.pvalue, rel=1e-9)


def test_underflowing_p_values_become_finite_bounds():
    rng = np.random.default_rng(2)
    a = rng.normal(1.5, 1.0, 20000)
    b = np.zeros_like(a)
    tests = paired_tests(a, b)
    assert tests["p_t"] == 0.0 and tests["p_wilcoxon"] == 0.0  # scipy underflows
    assert -1e5 < tests["log10_p_t"] < -308 and -1e5 < tests["log10_p_wilcoxon"] < -308
    assert tests["log10_p_wilcoxon"] == pytest.approx(stats.norm.logsf(wilcoxon_z(a - b)) / math.log(10))


@pytest.mark.parametrize("log10_p, md, tex", [
    (math.log10(0.0123), "0.012", "0.012"),
    (math.log10(3.2e-5), "3.2e-05", r"$3.2 \times 10^{-5}$"),
    (-202.7, "< 1e-202", "$< 10^{-202}$"),
    (-202.0, "< 1e-201", "$< 10^{-201}$"),  # p = 1e-202 exactly is not below 1e-202
    (float("nan"), "–", "--"),
])
def test_format_p(log10_p, md, tex):
    assert format_p(log10_p) == {"md": md, "tex": tex}


def test_rendered_table_has_the_papers_layout(tmp_path):
    groups = synthetic_groups(n_images=100, scale=0.3)
    paths = write_table1(groups, tmp_path, model="resnet18", prov=[{"commit": "abc", "device": "Test GPU",
                                                                   "date": "2025-01-01T00:00:00+00:00"}])
    assert sorted(p.name for p in paths) == ["table1.csv", "table1.md", "table1.meta.json", "table1.tex"]
    md = (tmp_path / "table1.md").read_text()
    header, _, row = [line for line in md.splitlines() if line.startswith("|")]
    assert [c.strip() for c in header.strip("|").split("|")] == [
        "", "Mean Difference (range)", "Cohen’s d (range)", "p (t-test)", "p (Wilcoxon)"]
    cells = [c.strip() for c in row.strip("|").split("|")]
    d = groups["s_meta"] - groups["s_members_mean"]
    means = np.array([d[groups["rank"] == r].mean() for r in range(10)])
    assert cells[0] == "Across all clusters"
    assert cells[1] == f"{means.mean():.2f} ± {means.std(ddof=1):.2f} ({means.min():.2f}–{means.max():.2f})"
    log_t = stats.t.logsf(stats.ttest_rel(groups["s_meta"], groups["s_members_mean"]).statistic,
                          len(groups) - 1) / math.log(10)
    assert -300 < log_t < -10 and cells[3] == f"< 1e-{math.ceil(-log_t) - 1}"
    assert "Test GPU" in md and "ResNet-18" in md and "100 images" in md
    tex = (tmp_path / "table1.tex").read_text()
    assert r"$\pm$" in tex and "$< 10^{-" in tex
    ranks = pd.read_csv(tmp_path / "table1.csv")
    np.testing.assert_allclose(ranks["mean_diff"], means, rtol=1e-5)


def test_cli_renders_the_experiments_rows(runs, cnn, tmp_path, capsys):
    main([*RUN[1:], "model=tiny_cnn", f"run.out_dir={runs}", "--out", str(tmp_path), "--no-progress", "--top", "5"])
    assert "Across all clusters" in (tmp_path / "table1.md").read_text()
    assert "TinyCNN" in (tmp_path / "table1.md").read_text()  # the model name from the store's config
    assert len(pd.read_csv(tmp_path / "table1.csv")) == 5
