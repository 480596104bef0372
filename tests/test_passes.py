"""Every method states its passes per image before running (``Explainer.expected_passes``), so that a
run can be priced without running it: the statement must equal what ``explain`` then counts in
``last_passes`` (docs/derivations.md, section 5), on both tiny models and under the options that
change the count."""
from __future__ import annotations

import inspect
from contextlib import nullcontext

import pytest
import torch
from omegaconf import DictConfig

from baselines import METHODS, create_explainer, method_class
from benchmarks import zoo
from cluscam.base import Explainer, PassCount
from cluscam.cluscam import ClusCAM

# model name -> hooks: every method on the paper's layer, and on tiny_vit also each method's own
# layer (tokens layouts with a class token: GradCAM on blocks.-1.norm1, ReciproCAM inside blocks.-2)
SETUPS = {"tiny_cnn": ("tiny_cnn", "paper"), "tiny_vit": ("tiny_vit", "paper"),
          "tiny_vit/method_specific": ("tiny_vit", "method_specific")}


@pytest.fixture(scope="module")
def models() -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    return {name: zoo.create_model(name) for name in ("tiny_cnn", "tiny_vit")}


def config(setup: str) -> DictConfig:
    name, hooks = SETUPS[setup]
    cfg = zoo.model_config(name)
    cfg.hooks = hooks
    return cfg


def declared_shape(cfg: DictConfig, method: str) -> tuple[int, int, int]:
    """The [C, h, w] the config declares for the layer ``method`` hooks (what a planner reads)."""
    spec = cfg.method_layers.get(method) if cfg.hooks == "method_specific" else None
    return tuple((cfg.layer if spec is None else spec).shape)


def measured(model, cfg: DictConfig, method: str, **extra) -> tuple[PassCount, tuple[int, int, int]]:
    """``last_passes`` of ``method`` on 2 random images, and the maps [C, h, w] its layer gave."""
    layer = zoo.layer_spec(cfg, method)
    cam = create_explainer(method, model, layer, **{**zoo.method_options(cfg, method), **extra})
    seen = []
    handle = layer.module(model).register_forward_hook(lambda _m, _i, out: seen.append(layer.maps(out).shape[1:]))
    try:
        x = torch.randn(2, 3, *cfg.input.size, generator=torch.Generator().manual_seed(0))
        cam(x)
    finally:
        handle.remove()
    return cam.last_passes, tuple(seen[0])


def expected(cfg: DictConfig, method: str, **extra) -> PassCount:
    return method_class(method).expected_passes(declared_shape(cfg, method),
                                                **{**zoo.method_options(cfg, method), **extra})


CASES = [(setup, m) for setup in SETUPS for m in METHODS
         if method_class(m).supports(zoo.model_config(SETUPS[setup][0]).family)]


@pytest.mark.parametrize(("setup", "method"), CASES, ids=[f"{s}-{m}" for s, m in CASES])
def test_expected_passes_are_the_counted_ones(models, setup, method):
    cfg = config(setup)
    # OptiCAM's early stopping makes its count an upper bound: here the exact count, without it
    extra = {"early_stop": False} if method == "opticam" else {}
    got, shape = measured(models[cfg.name], cfg, method, **extra)
    assert shape == declared_shape(cfg, method)  # the declaration the statement is computed from
    assert got == expected(cfg, method, **extra)


@pytest.mark.parametrize(("setup", "method", "options", "count"), [
    # ClusCAM: K clamped to the representations: C = 32 channels, h*w = 64 tokens; 'none' groups each one
    ("tiny_cnn", "cluscam", {"k": 5}, PassCount(6)),
    ("tiny_cnn", "cluscam", {"k": 100}, PassCount(33)),
    ("tiny_cnn", "cluscam", {"clustering": "none"}, PassCount(33)),
    ("tiny_vit", "cluscam", {"k": 12, "grouping": "tokens"}, PassCount(13)),
    ("tiny_vit", "cluscam", {"k": 100, "grouping": "tokens"}, PassCount(65)),
    ("tiny_vit", "cluscam", {"grouping": "tokens", "clustering": "none", "chunk_size": 7}, PassCount(65)),
    ("tiny_vit", "cluscam", {"k": 5, "metric": "lowres", "weighting": "logit"}, PassCount(6)),
    # AblationCAM: C ablated copies after the layer (partial) or of the whole input (forward), any chunking
    ("tiny_cnn", "ablationcam", {"copies": "layer", "chunk_size": 5}, PassCount(1, 32)),
    ("tiny_cnn", "ablationcam", {"copies": "input", "ablation": "zero", "chunk_size": 5}, PassCount(33)),
    ("tiny_vit", "ablationcam", {"copies": "input"}, PassCount(33)),
    ("tiny_vit/method_specific", "ablationcam", {"ablation": "zero", "chunk_size": 48}, PassCount(1, 32)),
    # OptiCAM: the capture + one forward and one backward per Adam step
    ("tiny_cnn", "opticam", {"max_iter": 3, "early_stop": False}, PassCount(4, 0, 3)),
    ("tiny_vit", "opticam", {"preset": "official", "early_stop": False, "chunk_size": 1}, PassCount(51, 0, 50)),
    # ReciproCAM and ScoreCAM under chunks that split an image's copies
    ("tiny_cnn", "reciprocam", {"chunk_size": 10}, PassCount(1, 64)),
    ("tiny_vit/method_specific", "reciprocam", {"chunk_size": 10, "kernel": "onehot"}, PassCount(1, 64)),
    ("tiny_cnn", "scorecam", {"chunk_size": 7, "align_corners": False}, PassCount(33)),
], ids=lambda v: "-".join(f"{k}={x}" for k, x in v.items()) if isinstance(v, dict) else None)
def test_options_that_change_the_count(models, setup, method, options, count):
    cfg = config(setup)
    assert expected(cfg, method, **options) == count
    with pytest.warns(UserWarning, match="exceeds") if options.get("k") == 100 else nullcontext():
        got, _ = measured(models[cfg.name], cfg, method, **options)
    assert got == count


@pytest.mark.parametrize(("method", "options"), [
    ("opticam", {"max_iter": 20}),  # early stopping: at most 1 + 20 forward, at least the first check
    ("cluscam", {"clustering": "spectral"}),
    ("cluscam", {"clustering": "hdbscan"}),
])
def test_data_dependent_counts_are_upper_bounds(models, method, options):
    cfg = config("tiny_cnn")
    bound = expected(cfg, method, **options)
    got, _ = measured(models["tiny_cnn"], cfg, method, **options)
    assert 2 <= got.forward <= bound.forward and got.partial == bound.partial == 0
    if method == "opticam":  # the first check that can stop a chunk is after step max(1, 20 // 10)
        assert bound == PassCount(21, 0, 20) and 4 <= got.forward and got.backward == got.forward - 1
    else:
        assert got.backward == bound.backward == 0


# -- the paper's setup, without building a model ----------------------------------------------------------
def test_known_answers_of_the_paper_setup():
    resnet50, resnet18 = zoo.model_config("resnet50"), zoo.model_config("resnet18")
    assert tuple(resnet50.layer.shape) == (2048, 7, 7) and tuple(resnet18.layer.shape) == (512, 7, 7)
    assert method_class("scorecam").expected_passes((2048, 7, 7)) == PassCount(forward=2049)
    # README: ResNet-50 ClusCAM (Table 3, K = 45) costs PassCount(forward=46.0, partial=0.0, backward=0.0)
    assert method_class("cluscam").expected_passes(tuple(resnet50.layer.shape), **zoo.method_options(resnet50, "cluscam")) \
        == PassCount(forward=46.0, partial=0.0, backward=0.0)
    assert method_class("reciprocam").expected_passes(tuple(resnet18.layer.shape)) == PassCount(forward=1, partial=49)
    assert method_class("ablationcam").expected_passes((2048, 7, 7)) == PassCount(forward=1, partial=2048)
    assert method_class("gradcam").expected_passes((2048, 7, 7)) == PassCount(forward=1, backward=1)
    assert method_class("gradcampp").expected_passes((2048, 7, 7)) == PassCount(forward=1, backward=1)
    assert method_class("shapleycam").expected_passes((2048, 7, 7)) == PassCount(forward=1, backward=2)
    assert method_class("agcam").expected_passes((768, 14, 14)) == PassCount(forward=1, backward=1)
    assert method_class("opticam").expected_passes((2048, 7, 7)) == PassCount(forward=51, backward=50)
    # ViT-B/16's patch embedding [768, 14, 14]: ClusCAM's tokens grouping clamps K to the 196 patches
    assert ClusCAM.expected_passes((768, 14, 14), k=40) == PassCount(forward=41)
    assert ClusCAM.expected_passes((768, 14, 14), k=400, grouping="tokens") == PassCount(forward=197)
    assert ClusCAM.expected_passes((768, 14, 14), k=400) == PassCount(forward=401)


def test_missing_options_take_the_constructor_defaults():
    default_k = inspect.signature(ClusCAM.__init__).parameters["k"].default
    assert ClusCAM.expected_passes((2048, 7, 7)) == PassCount(forward=1 + default_k)
    # the runner's options (the Explainer's own included) are accepted and change nothing
    run = dict(baseline="mean", pixel_mean=[0.5] * 3, pixel_std=[0.2] * 3, chunk_size="auto", precision="bf16")
    for name in METHODS:
        assert method_class(name).expected_passes((64, 7, 7), **run) == method_class(name).expected_passes((64, 7, 7))


def test_bad_shapes_and_options_are_refused():
    class Unstated(Explainer):
        def saliency(self, cap):
            return cap.maps.mean(1)

    with pytest.raises(NotImplementedError, match="Unstated"):
        Unstated.expected_passes((8, 2, 2))
    with pytest.raises(ValueError, match="ScoreCAM has no option chunks; its options are"):
        method_class("scorecam").expected_passes((8, 2, 2), chunks=4)
    with pytest.raises(ValueError, match=r"shape must be the hooked layer's maps \[C, h, w\]"):
        method_class("gradcam").expected_passes((8, 4))
    with pytest.raises(ValueError, match="k \\(number of groups\\) must be an integer >= 1"):
        ClusCAM.expected_passes((8, 2, 2), k=0)
    with pytest.raises(ValueError, match="max_iter must be a positive integer"):
        method_class("opticam").expected_passes((8, 2, 2), max_iter=0)
    with pytest.raises(ValueError, match="unknown copies"):
        method_class("ablationcam").expected_passes((8, 2, 2), copies="inputs")
