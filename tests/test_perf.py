"""The performance benchmark end to end on the tiny models (CPU): every method is measured with the
passes its algorithm costs, against the forward roofline, beside the reference implementations,
and in bf16 with its map difference to fp32.  (Speeds themselves are not asserted.)"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from baselines import METHODS, method_class
from benchmarks import perf, zoo

CHANNELS = 32  # both tiny models hook a 32 x 8 x 8 layer for the masking methods
K = 8  # their ClusCAM K


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> pd.DataFrame:
    out = tmp_path_factory.mktemp("perf")
    perf.main(["--models", "tiny_cnn", "tiny_vit", "--batch", "2", "--device", "cpu", "--bf16",
               "--reference-images", "1", "--out", str(out), "--tag", "test run"])
    files = list(out.iterdir())
    assert len(files) == 1 and files[0].name.startswith("cpu-") and files[0].name.endswith("-test-run.csv")
    return pd.read_csv(files[0])


def ours(table: pd.DataFrame, model: str, precision: str = "fp32") -> pd.DataFrame:
    rows = table[(table.model == model) & (table.impl == "ours") & (table.precision == precision)]
    return rows.set_index("method")


@pytest.mark.parametrize("model", ["tiny_cnn", "tiny_vit"])
def test_every_method_is_measured_in_both_precisions(table, model):
    family = zoo.model_config(model).family
    expected = {m for m in METHODS if method_class(m).supports(family)}  # AG-CAM: ViTs only
    for precision in ("fp32", "bf16"):
        rows = ours(table, model, precision)
        assert set(rows.index) == expected
        assert (rows.images_per_s > 0).all() and np.isfinite(rows.images_per_s).all()
        masking = rows.drop(index="agcam", errors="ignore")  # AG-CAM has no masked passes, no chunk
        assert (masking.chunk == 64).all() and rows.chunk.drop(masking.index).isna().all()  # the CPU chunk
    bf16 = ours(table, model, "bf16")
    assert ((bf16.max_abs_diff_vs_fp32 <= 1) & (bf16.mean_abs_diff_vs_fp32 <= bf16.max_abs_diff_vs_fp32)).all()
    assert (bf16.mean_abs_diff_vs_fp32 >= 0).all()  # maps lie in [0, 1]


@pytest.mark.parametrize("model", ["tiny_cnn", "tiny_vit"])
def test_passes_are_the_algorithms_costs(table, model):
    rows = ours(table, model)
    assert rows.passes["cluscam"] == 1 + K
    assert rows.passes["scorecam"] == 1 + CHANNELS
    assert rows.passes["ablationcam"] == 1 + CHANNELS  # the masked passes are partial ones
    assert rows.passes["gradcam"] == rows.passes["gradcampp"] == 1 + 2  # a backward pass priced as two
    assert 0 < rows.kmeans_fraction["cluscam"] < 1


def test_photo_inputs_cycle_through_the_five_photographs():
    x = perf.bench_inputs(zoo.model_config("tiny_cnn"), "photos", 7, (64, 64))
    assert x.shape == (7, 3, 64, 64)
    torch.testing.assert_close(x[5:], x[:2])
    assert min((x[i] - x[j]).abs().max() for i in range(5) for j in range(i)) > 0.1  # five different images
    assert -3 < x.mean() < 3 and x.std() > 0.3  # normalized pixels, not [0, 255]


def test_no_weight_matrix_left_at_zero():
    model = perf.bench_model(zoo.model_config("vit_b_16"), torch.device("cpu"))
    assert model.heads.head.weight.abs().sum() > 0  # torchvision zero-initializes the ViT head
    assert all(p.any() for p in model.parameters() if p.dim() > 1)


def test_roofline_fraction_is_passes_over_forward_throughput(table):
    assert set(table.precision) == {"fp32", "bf16"}
    for _, rows in table.groupby(["model", "precision"]):  # bf16 rows against the bf16 forward
        forward = rows[rows.method == "forward"].images_per_s.item()
        np.testing.assert_allclose(rows.roofline_fraction, rows.passes * rows.images_per_s / forward, rtol=1e-9)


@pytest.mark.parametrize("model", ["tiny_cnn", "tiny_vit"])
def test_references_beside_ours(table, model):
    rows = table[table.model == model]
    assert len(rows[(rows.method == "cluscam") & (rows.impl == "author-style")]) == 1
    for method in ("gradcam", "scorecam"):
        lib = rows[(rows.method == method) & (rows.impl == "pytorch-grad-cam")]
        mine = ours(table, model).loc[method]
        assert lib.passes.item() == mine.passes
        np.testing.assert_allclose(lib.ours_speedup.item(), mine.images_per_s / lib.images_per_s.item(), rtol=1e-9)
