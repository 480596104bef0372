"""The paper's figures (scripts/figures.py): each drawing function writes a PNG of the expected
size from small inputs; the loaders read the runner's cells and compute what they promise."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from baselines import create_explainer
from benchmarks import zoo
from benchmarks.api import cell_method_options, cell_model_config, cell_store, compose, run_cell
from cluscam.ops import minmax, upsample
from scripts.figures import CELL, PANELS, ablation_rows, dataset_images, fig2, fig5, fig6, fig8, fig9, main, \
    overlay_grid, qualitative, runtime_summary, sample_ids, temperature_maps

DPI = 40
RUN = ["model=tiny_cnn", "dataset=synthetic", "dataset.options.n=3", "run.batch_size=3", "run.workers=0",
       "run.chunk_size=16", "run.device=cpu"]


def png_size(path) -> tuple[int, int]:
    with Image.open(path) as im:
        assert im.format == "PNG"
        return im.size


def panels(dpi: int = DPI) -> tuple[int, int]:
    return round(PANELS[0] * dpi), round(PANELS[1] * dpi)


def grid(rows: int, cols: int, dpi: int = DPI) -> tuple[int, int]:
    return round(CELL * cols * dpi), round(CELL * rows * dpi)


@pytest.fixture(scope="module")
def table1_rows():
    """Groups and members of 3 images x 5 groups of 2-4 members."""
    rng = np.random.default_rng(0)
    groups, members = [], []
    for i in range(3):
        n = 0
        for group, rank in enumerate(rng.permutation(5)):
            shifts = rng.normal(0, 1, 2 + group % 3)
            members += [{"id": f"img{i}", "group": group, "member": n + j, "s_member": s} for j, s in enumerate(shifts)]
            n += len(shifts)
            groups.append({"id": f"img{i}", "group": group, "rank": rank, "size": len(shifts),
                           "s_meta": shifts.mean() + rng.normal(0.5, 0.2), "s_members_mean": shifts.mean()})
    return pd.DataFrame(groups), pd.DataFrame(members)


def test_fig2_and_fig9(tmp_path, table1_rows):
    groups, members = table1_rows
    assert png_size(fig2(groups, tmp_path / "fig2.png", dpi=DPI)) == panels()
    equal = groups.assign(s_meta=groups["s_members_mean"])  # no clustering: every difference is 0
    assert png_size(fig2(equal, tmp_path / "fig2b.png", dpi=DPI)) == panels()
    ids = sample_ids(groups, 2, seed=0)
    assert len(set(ids)) == 2 and set(ids) <= set(groups["id"])
    assert png_size(fig9(groups, members, ids, tmp_path / "fig9.png", dpi=DPI)) == panels()
    with pytest.raises(ValueError, match="not in Table 1"):
        fig9(groups, members, ["nope"], tmp_path / "x.png")


def test_cli_finds_members_beside_the_groups(tmp_path, table1_rows):
    groups, members = table1_rows
    for kind, rows in (("groups", groups), ("members", members)):
        (tmp_path / kind / "abc").mkdir(parents=True)
        rows.to_csv(tmp_path / kind / "abc" / "rows.csv", index=False)
    [path] = main(["fig9", "--table1-csv", str(tmp_path / "groups" / "abc" / "rows.csv"), "--out", str(tmp_path / "f")])
    assert path == tmp_path / "f" / "fig9.png" and png_size(path) == panels(100)


def test_overlay_grid_and_fig8(tmp_path):
    images = np.random.default_rng(0).random((2, 16, 16, 3))
    maps = np.random.default_rng(1).random((3, 2, 16, 16))
    assert png_size(overlay_grid(images, {"a": maps[0], "b": maps[1]}, tmp_path / "g.png", dpi=DPI)) == grid(2, 3)
    assert png_size(fig8(images, maps, (1.0, 0.5, 0.1), tmp_path / "fig8.png", ["x", "y"], dpi=DPI)) == grid(2, 4)


def test_temperature_maps_follow_tau(tmp_path):
    """tau -> 0 makes the softmax one-hot on the best group (Eq. 6): the map is that group's
    meta-representation, min-maxed; each tau's map is ClusCAM's with that tau."""
    cfg = compose(["method=cluscam", *RUN, f"run.out_dir={tmp_path}"])
    _, images, _ = dataset_images(cfg, n=2)
    maps = temperature_maps(cfg, images, (1.0, 1e-7))
    assert maps.shape == (2, 2, 64, 64) and maps.min() >= 0 and maps.max() <= 1
    torch.manual_seed(int(cfg.run.seed))
    model = zoo.create_model(cell_model_config(cfg))
    cam = create_explainer("cluscam", model, zoo.layer_spec(cell_model_config(cfg), "cluscam"), **cell_method_options(cfg))
    scores, meta = cam.group_scores(images)
    best = scores.masked_fill(~meta.valid, -float("inf")).argmax(1)
    expected = minmax(upsample(meta.maps[torch.arange(2), best], (64, 64)))
    np.testing.assert_allclose(maps[1], expected.numpy(), atol=1e-5)
    assert np.abs(maps[0] - maps[1]).max() > 1e-3


def test_qualitative_grid_from_saved_maps(tmp_path):
    overrides = [*RUN, f"run.out_dir={tmp_path}"]
    path = qualitative(overrides, tmp_path / "fig3.png", methods=["cluscam", "gradcam"], run=True, dpi=DPI)
    assert png_size(path) == grid(3, 3)
    ids, _, _ = dataset_images(compose(overrides), n=3)
    assert set(ids) <= set(cell_store(compose([*overrides, "method=gradcam"])).maps())
    # A cell run without save_maps has rows but no maps: a clear error, not a blank panel.
    run_cell(compose([*overrides, "method=scorecam"]), progress=False)
    with pytest.raises(ValueError, match="save_maps"):
        qualitative(overrides, tmp_path / "x.png", methods=["scorecam"])
    with pytest.raises(ValueError, match="--run"):
        qualitative(overrides, tmp_path / "x.png", methods=["ablationcam"])


def test_ablation_rows_and_fig5(tmp_path):
    overrides = [*RUN, f"run.out_dir={tmp_path}"]
    variants = {"ClusCAM (full)": (), "No clustering": ("method.options.clustering=none",),
                "Only temp-softmax": ("method.options.r=0",)}
    summary = ablation_rows(overrides, variants, run=True)
    assert list(summary["variant"]) == list(variants) and (summary["n"] == 3).all()
    for name, variant in variants.items():
        rows = cell_store(compose([*overrides, "method=cluscam", *variant])).rows()
        got = summary.set_index("variant").loc[name]
        assert (got["ad"], got["ic"]) == pytest.approx((100 * rows["ad"].mean(), 100 * rows["ic"].mean()))
    dirs = {cell_store(compose([*overrides, "method=cluscam", *v])).dir for v in variants.values()}
    assert len(dirs) == 3  # one cell per variant
    assert png_size(fig5(summary, tmp_path / "fig5.png", dpi=DPI)) == panels()
    two = pd.concat([summary, summary.assign(model="other", ad=summary["ad"] + 1)])
    assert png_size(fig5(two, tmp_path / "fig5b.png", dpi=DPI)) == panels()
    with pytest.raises(ValueError, match="--run"):
        ablation_rows(overrides, {"Discarding softmax": ("method.options.tau=1",)})


def timed_rows(with_phase: bool) -> pd.DataFrame:
    """Two CNNs and a ViT; cluscam takes 1 s per image on resnet18 (0.4 s clustering), 3 s on resnet34
    (0.6 s), 5 s on vit_b_16 (1 s); gradcam 0.1 s everywhere."""
    rows = []
    for model, cell, date, seconds, clustering in (
            ("resnet18", "new", "2025-01-01", 1.0, 0.4),
            ("resnet34", "c", "2025-01-01", 3.0, 0.6), ("vit_b_16", "v", "2025-01-01", 5.0, 1.0)):
        for i in range(2):
            rows.append({"dataset": "ilsvrc", "model": model, "method": "cluscam", "cell": cell, "date": date,
                         "id": str(i), "seconds": seconds + (0.1 if i else -0.1), "phase_clustering": clustering})
            rows.append({"dataset": "ilsvrc", "model": model, "method": "gradcam", "cell": "g" + model,
                         "date": date, "id": str(i), "seconds": 0.1, "phase_clustering": np.nan})
    frame = pd.DataFrame(rows)
    return frame if with_phase else frame.drop(columns="phase_clustering")


def test_runtime_summary_and_fig6(tmp_path):
    s = runtime_summary(timed_rows(True)).set_index(["family", "method"])
    assert s.loc[("cnn", "cluscam"), "seconds"] == pytest.approx(2.0)  # mean of resnet18 (1 s) and resnet34 (3 s)
    assert s.loc[("cnn", "cluscam"), "clustering"] == pytest.approx(0.5)
    assert s.loc[("vit", "cluscam"), "seconds"] == pytest.approx(5.0)
    assert np.isnan(s.loc[("cnn", "gradcam"), "clustering"])
    assert png_size(fig6(s.reset_index(), tmp_path / "fig6.png", dpi=DPI)) == panels()
    plain = runtime_summary(timed_rows(False))
    assert plain["clustering"].isna().all()
    assert png_size(fig6(plain, tmp_path / "fig6b.png", log=True, dpi=DPI)) == panels()
    older = timed_rows(True).query("model == 'resnet18' and method == 'cluscam'").assign(cell="old", seconds=9.0)
    with pytest.raises(ValueError, match="ilsvrc/resnet18/cluscam: new, old"):  # never chosen by date
        runtime_summary(pd.concat([timed_rows(True), older]))


def test_cli_errors_name_the_fix(tmp_path):
    with pytest.raises(SystemExit, match="scripts.table1"):
        main(["fig2", *RUN, f"run.out_dir={tmp_path}", "--out", str(tmp_path)])
