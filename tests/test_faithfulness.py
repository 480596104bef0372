"""Deletion / Insertion, ROAD and the randomization check (benchmarks.faithfulness): parity with independent
implementations (pytorch-grad-cam 1.5.7's ROAD, Quantus 0.6.0's PixelFlipping and MPRT, scipy, scikit-image)
and known answers on toy models."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from baselines import create_explainer
from benchmarks import faithfulness as fa
from test_baselines_oracle import tiny_cnn


@pytest.fixture(scope="module")
def case():
    model = tiny_cnn()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        targets = model(x).argmax(1)
    maps = create_explainer("gradcam", model, "6")(x, targets)
    assert bool((maps.flatten(1).std(1) > 0.05).all())  # informative maps: the comparisons are not vacuous
    return model, x, targets, maps


# -- ROAD against pytorch-grad-cam 1.5.7 --------------------------------------------------------------------
def pgc_road(model, x, maps, targets, order, percentiles, noise):
    from pytorch_grad_cam.metrics.perturbation_confidence import (AveragerAcrossThresholds, PerturbationConfidenceMetric,
                                                                  RemoveLeastRelevantFirst, RemoveMostRelevantFirst)
    from pytorch_grad_cam.metrics.road import NoisyLinearImputer
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    remove = RemoveMostRelevantFirst if order == "morf" else RemoveLeastRelevantFirst
    metric = AveragerAcrossThresholds(lambda q: PerturbationConfidenceMetric(remove(q, NoisyLinearImputer(noise=noise))),
                                      percentiles)
    return metric(x, maps.numpy(), [ClassifierOutputSoftmaxTarget(int(t)) for t in targets], model)


@pytest.mark.parametrize("solver", ["sparse", "cg"])
@pytest.mark.parametrize("order", ["morf", "lerf"])
def test_road_equals_pytorch_grad_cam_without_noise(case, order, solver, monkeypatch):
    model, x, targets, maps = case
    real = fa.impute
    monkeypatch.setattr(fa, "impute", lambda *a, **k: real(*a, **{**k, "solver": solver}))
    ours = fa.road(model, x, maps, targets, order=order, percentiles=(20, 50, 80), noise=0)
    ref = pgc_road(model, x, maps, targets, order, [20, 50, 80], noise=0)
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-5)
    assert float(ours.abs().max()) > 1e-3  # the imputation changed the predictions


def test_road_noise_is_pytorch_grad_cams_draw(case):
    # One image, one percentile: the same seed gives the same noise (drawn per removed pixel, row-major).
    model, x, targets, maps = case
    torch.manual_seed(7)
    ref = pgc_road(model, x[:1], maps[:1], targets[:1], "morf", [70], noise=0.01)
    ours = fa.road(model, x[:1], maps[:1], targets[:1], order="morf", percentiles=(70,), noise=0.01, seed=7)
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-5)
    without = fa.road(model, x[:1], maps[:1], targets[:1], order="morf", percentiles=(70,), noise=0)
    assert float((ours - without).abs().max()) > 0  # the noise mattered


def test_road_combined_is_pytorch_grad_cams(case, monkeypatch):
    from pytorch_grad_cam.metrics import road as pgc
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    model, x, targets, maps = case
    monkeypatch.setattr(pgc.torch, "randn_like", torch.zeros_like)  # its fixed noise off: no shared stream
    ref = pgc.ROADCombined(percentiles=[30, 60])(x, maps.numpy(), [ClassifierOutputSoftmaxTarget(int(t)) for t in targets],
                                                 model)
    lerf, morf = (fa.road(model, x, maps, targets, order=o, percentiles=(30, 60), noise=0) for o in ("lerf", "morf"))
    np.testing.assert_allclose(((lerf - morf) / 2).numpy(), ref, atol=1e-5)


def test_imputation_keeps_pixels_and_averages_neighbours():
    x = torch.randn(1, 2, 12, 12, generator=torch.Generator().manual_seed(0))
    keep = torch.rand(1, 12, 12, generator=torch.Generator().manual_seed(1)) > 0.5
    for solver in ("sparse", "cg"):
        out = fa.impute(x, keep, noise=0, solver=solver)
        assert torch.equal(out[:, :, keep[0]], x[:, :, keep[0]])
        mean = fa._neighbour_sum(out.double().reshape(2, 1, 12, 12)) / fa._neighbour_sum(torch.ones(1, 1, 12, 12).double())
        torch.testing.assert_close(out.double().reshape(2, 1, 12, 12)[..., ~keep[0]], mean[..., ~keep[0]])


# -- Deletion against Quantus 0.6.0 ------------------------------------------------------------------------
def test_deletion_curve_equals_quantus_pixel_flipping(case):
    import quantus

    model, x, targets, _ = case
    x = x[..., :24, :24]  # Quantus's steps must divide H x W; ours are whole pixels: 3 x step | 24 x 24
    maps = torch.rand(2, 24, 24, generator=torch.Generator().manual_seed(3))  # no ties: one order in both
    step = 16
    ours = fa.causal_curve(model, x, maps, targets, mode="deletion", step=step)
    # Quantus flips input features (channel x pixel); 3 x step features with the map broadcast over the
    # channels is `step` whole pixels, the channels of a pixel being consecutive in its descending order.
    metric = quantus.PixelFlipping(features_in_step=3 * step, perturb_baseline=0.0, normalise=False, abs=False,
                                   disable_warnings=True)
    ref = metric(model=model, x_batch=x.numpy(), y_batch=targets.numpy(),
                 a_batch=maps[:, None].expand_as(x).numpy(), device="cpu", softmax=True, channel_first=True)
    np.testing.assert_allclose(ours[:, 1:].numpy(), np.asarray(ref), atol=1e-5)  # Quantus's curve omits the start
    assert ours.shape == (2, fa.curve_steps(24 * 24, step) + 1)


class RegionModel(nn.Module):
    """A toy classifier whose class 0 logit is 8 x the mean of channel 0 over a square region: the true
    occlusion ranking puts that region first."""

    def __init__(self, region: slice = slice(8, 16)):
        super().__init__()
        self.region = region

    def forward(self, x):
        evidence = 8 * x[:, 0, self.region, self.region].mean((1, 2))
        return torch.stack([evidence, torch.zeros_like(evidence)], 1)


def test_the_true_ranking_wins_deletion_and_insertion_and_a_constant_map_sits_at_random():
    model = RegionModel()
    x = torch.zeros(1, 3, 24, 24)
    x[:, 0, 8:16, 8:16] = 1.0
    truth = torch.zeros(1, 24, 24)
    truth[:, 8:16, 8:16] = 1.0
    truth = truth + 0.01 * torch.rand(1, 24, 24, generator=torch.Generator().manual_seed(0))
    reverse, constant = 1 - truth, torch.full((1, 24, 24), 0.5)
    target = torch.tensor([0])

    def auc(m, mode, seed=0):
        base = torch.zeros_like(x)  # the mean colour for both: the toy model has no use for a blur
        return float(fa.curve_auc(fa.causal_curve(model, x, m, target, mode=mode, step=16, base=base, seed=seed)))

    randoms = [auc(torch.rand(1, 24, 24, generator=torch.Generator().manual_seed(s)), "deletion") for s in range(20)]
    assert auc(truth, "deletion") < min(randoms) and auc(reverse, "deletion") > max(randoms)
    assert auc(truth, "insertion") > auc(constant, "insertion") > auc(reverse, "insertion")
    constants = [auc(constant, "deletion", seed=s) for s in range(20)]  # ties in random order: a random ranking
    assert abs(np.mean(constants) - np.mean(randoms)) < 2 * np.std(randoms) / np.sqrt(20) + 0.01


def test_insertion_is_deletion_from_the_substrate(case):
    model, x, targets, maps = case
    blur = fa.gaussian_blur(x)
    insertion = fa.causal_curve(model, x, maps, targets, mode="insertion", step=32, base=blur)
    deletion = fa.causal_curve(model, blur, maps, targets, mode="deletion", step=32, base=x)
    torch.testing.assert_close(insertion, deletion)
    np.testing.assert_allclose(fa.curve_auc(torch.tensor([[1.0, 0.5, 0.0]])).numpy(), [0.5])  # RISE's trapezoid


# -- randomization: Quantus 0.6.0's MPRT, scipy, scikit-image -------------------------------------------
def test_randomization_spearman_equals_quantus_mprt(case):
    import quantus

    model, x, targets, _ = case
    layer = "6"  # ReciproCAM: maps of positive scores, never all zero (Quantus refuses an all-zero map)

    def explain(m):
        return create_explainer("reciprocam", m, layer)(x, targets)

    def quantus_explain(model, inputs, targets, **kwargs):
        return create_explainer("reciprocam", model, layer)(torch.as_tensor(inputs), torch.as_tensor(targets))[:, None].numpy()

    stages = [name for name, m in model.named_modules() if hasattr(m, "reset_parameters")][::-1]  # Quantus's layers
    ours = fa.randomization_check(explain, model, stages, seed=42)
    metric = quantus.MPRT(similarity_func=quantus.similarity_func.correlation_spearman, layer_order="top_down", seed=42,
                          abs=False, normalise=False, disable_warnings=True)
    ref = metric(model=model, x_batch=x.numpy(), y_batch=targets.numpy(), a_batch=explain(model)[:, None].numpy(),
                 explain_func=quantus_explain, device="cpu")
    assert list(ref)[1:] == stages
    for stage in stages:
        np.testing.assert_allclose(ours[stage]["spearman"].numpy(), ref[stage], atol=1e-6)
    assert float(ours[stages[-1]]["spearman"].mean()) < 0.9  # the maps change with the weights
    assert all(p.equal(q) for p, q in zip(model.parameters(), tiny_cnn().parameters()))  # the model is untouched


def test_spearman_and_ssim_equal_scipy_and_scikit_image():
    from scipy.stats import spearmanr
    from skimage.metrics import structural_similarity

    g = torch.Generator().manual_seed(0)
    a = torch.rand(3, 20, 24, generator=g)
    b = (a + 0.5 * torch.rand(3, 20, 24, generator=g)).clamp_max(1.0)  # ties at 1.0
    a[0, :5] = 0.0  # ties at 0
    for i in range(3):
        assert float(fa.spearman(a, b)[i]) == pytest.approx(spearmanr(a[i].flatten(), b[i].flatten())[0], abs=1e-12)
        rng = float(torch.maximum(a[i].max(), b[i].max()) - torch.minimum(a[i].min(), b[i].min()))
        ref = structural_similarity(a[i].double().numpy(), b[i].double().numpy(), data_range=rng)
        assert float(fa.ssim(a, b)[i]) == pytest.approx(ref, abs=1e-10)


def test_a_map_computed_without_the_model_passes_no_randomization_check(case):
    model, x, targets, _ = case

    def edges(_model):  # the image's gradient magnitude: no use of the model at all
        gray = x.mean(1)
        return (gray.diff(dim=2, append=gray[..., -1:]).abs() + gray.diff(dim=1, append=gray[:, -1:]).abs())

    checks = fa.randomization_check(edges, model, fa.default_stages(model))
    assert all(bool((c["spearman"] > 1 - 1e-9).all()) and bool((c["ssim"] > 1 - 1e-9).all()) for c in checks.values())


def test_default_stages_run_from_the_logits_down():
    import torchvision

    assert fa.default_stages(torchvision.models.resnet18()) == ["fc", "layer4", "layer3", "layer2", "layer1", "bn1", "conv1"]
    assert fa.default_stages(tiny_cnn()) == ["10", "6", "3", "0"]
    with pytest.raises(ValueError, match="randomization stage 'head' is not a module of the model"):
        next(fa.cascading_randomization(tiny_cnn(), ["head"]))


def test_randomization_copies_a_levit_explained_with_gradients():
    """timm's LeViT caches its attention biases in eval mode; a forward that tracked gradients (any gradient
    method) leaves a tensor in the cache that copy.deepcopy refuses.  The check still copies the model, leaves
    the original's modes as they were, and its copy computes the original's logits until a stage is reset."""
    import copy

    import timm

    model = timm.create_model("levit_128s", pretrained=False, num_classes=4).eval()
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    model(x).sum().backward()  # eval mode with gradients: the cache holds a non-leaf tensor
    with pytest.raises(RuntimeError, match="deepcopy"):
        copy.deepcopy(model)
    with torch.no_grad():
        before = model(x)
        stage, random = next(fa.cascading_randomization(model, ["head"]))
        assert stage == "head" and not any(m.training for m in (*model.modules(), *random.modules()))
        assert torch.equal(random.forward_features(x), model.forward_features(x))  # below the head: untouched
        assert not torch.allclose(random(x), before)
        assert torch.equal(model(x), before)


# -- in the runner's rows ---------------------------------------------------------------------------------
def test_the_runner_writes_the_tests_beside_the_papers_metrics(tmp_path):
    from benchmarks.api import cell_store, compose, run_cell

    base = ["model=tiny_cnn", "method=gradcam", "dataset=synthetic", "dataset.options.n=3", "run.batch_size=2",
            "run.workers=0", "run.device=cpu", f"run.out_dir={tmp_path}"]
    tests = ["metrics.faithfulness=[deletion,insertion,road]", "metrics.curve_step=256", "metrics.road_percentiles=[25,75]"]
    rows = run_cell(compose([*base, *tests]), progress=False)
    for col in ("deletion", "insertion"):
        assert rows[col].between(0, 1).all()
    assert ((rows["road_lerf"] - rows["road_morf"]) / 2 - rows["road_combined"]).abs().max() < 1e-12
    steps = 64 * 64 // 256  # the synthetic images are 64 x 64
    assert (rows["faithfulness_forward"] == 2 * (steps + 1) + 2 * (1 + 2)).all()
    assert (rows["forward"] == 1).all()  # the method's own passes are counted apart
    plain = cell_store(compose(base)).identity["metrics"]
    assert sorted(plain) == ["ag_variant", "le_region"]  # without tests, cells keep the identity they had
    with pytest.raises(ValueError, match="metrics.faithfulness: unknown test.s. rise; use any of deletion, insertion, road"):
        run_cell(compose([*base, "metrics.faithfulness=[rise]"]), progress=False)


def test_the_randomization_experiment_writes_a_row_per_image_and_stage_and_resumes(tmp_path):
    from benchmarks.api import cell_dataset, cell_explainer, cell_model, compose
    from benchmarks.data import collate
    from benchmarks.randomization import run_randomization

    cfg = compose(["model=tiny_cnn", "method=reciprocam", "dataset=synthetic", "dataset.options.n=3", "run.batch_size=3",
                   "run.workers=0", "run.device=cpu", f"run.out_dir={tmp_path}"])
    rows = run_randomization(cfg, progress=False)
    model = cell_model(cfg, torch.device("cpu"))
    stages = fa.default_stages(model)
    assert len(rows) == 3 * len(stages) and list(dict.fromkeys(rows["stage"])) == sorted(stages, key=stages.index)
    assert set(rows["depth"]) == set(range(1, len(stages) + 1))
    batch = collate([cell_dataset(cfg)[i] for i in range(3)])
    with torch.no_grad():
        targets = model(batch.images).argmax(1)
    direct = fa.randomization_check(lambda m: cell_explainer(cfg, m)(batch.images, targets), model, stages)
    for stage in stages:  # the experiment's rows are the library's check on the same images
        got = rows[rows["stage"] == stage].sort_values("id")
        np.testing.assert_allclose(got["spearman"], direct[stage]["spearman"].numpy(), atol=1e-6)
        np.testing.assert_allclose(got["ssim"], direct[stage]["ssim"].numpy(), atol=1e-6)
    parts = sorted(tmp_path.rglob("parts/*.csv"))
    again = run_randomization(cfg, progress=False)
    assert sorted(tmp_path.rglob("parts/*.csv")) == parts
    pd.testing.assert_frame_equal(again, rows)
