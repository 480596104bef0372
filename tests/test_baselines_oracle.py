"""Grad-CAM, Grad-CAM++, ShapleyCAM, Score-CAM and Ablation-CAM against pytorch-grad-cam 1.5.7 as a
numerical oracle (ResNet-18 and ViT-B/16, random init, float32 on the CPU), against independent
autograd computations where pytorch-grad-cam is broken, and the explainer invariants.

pytorch-grad-cam min-maxes each low-resolution CAM (with a 1e-7 in the denominator) and resizes it
with cv2 (INTER_LINEAR, the same as bilinear with align_corners=False); our base upsamples first and
min-maxes after.  Min-max is affine and upsampling linear, so both are compared after min-maxing
each map to [0, 1]."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F
import torchvision
from pytorch_grad_cam import AblationCAM as PgcAblationCAM
from pytorch_grad_cam import GradCAM as PgcGradCAM
from pytorch_grad_cam import GradCAMPlusPlus as PgcGradCAMPlusPlus
from pytorch_grad_cam import ScoreCAM as PgcScoreCAM
from pytorch_grad_cam import ShapleyCAM as PgcShapleyCAM
from pytorch_grad_cam.ablation_layer import AblationLayer, AblationLayerVit
from pytorch_grad_cam.utils.model_targets import ClassifierOutputReST, ClassifierOutputTarget
from timm.models.vision_transformer import VisionTransformer
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from baselines import create_explainer
from cluscam.layers import LayerSpec

METHODS = ["gradcam", "gradcampp", "shapleycam", "scorecam", "ablationcam"]
VIT_LAYER = LayerSpec("blocks.-1.norm1", "tokens", prefix_tokens=1)
TOL = 1e-4


# -- helpers -----------------------------------------------------------------------------------------
def unit(maps) -> torch.Tensor:
    """Per-map min-max to [0, 1] of [B, H, W] maps (numpy or torch); constant maps are refused."""
    maps = (maps if isinstance(maps, torch.Tensor) else torch.from_numpy(np.asarray(maps))).float()
    lo, hi = maps.amin((1, 2), keepdim=True), maps.amax((1, 2), keepdim=True)
    assert bool((hi - lo > 1e-3).all()), "degenerate (constant) map: the comparison would be vacuous"
    return (maps - lo) / (hi - lo)


def assert_close_maps(ours: torch.Tensor, ref) -> None:
    ref = unit(ref)
    assert ours.shape == ref.shape
    assert bool((ref.std(dim=(1, 2)) > 0.05).all()), "reference maps are nearly flat"
    err = (unit(ours) - ref).abs().amax(dim=(1, 2))
    assert bool((err <= TOL).all()), f"max abs difference per image {err.tolist()}"


def pgc_maps(cam_cls, model, module, x, targets, reshape=None, rest=False, batch_size=64, **kw) -> np.ndarray:
    """pytorch-grad-cam's maps; ``batch_size``: its Score-CAM and Ablation-CAM chunk (an attribute
    both read; Score-CAM's default 16 triples this file's run time)."""
    target = ClassifierOutputReST if rest else ClassifierOutputTarget
    with cam_cls(model, [module], reshape_transform=reshape, **kw) as cam:
        cam.batch_size = batch_size
        return cam(x, [target(int(c)) for c in targets])


def vit_reshape(grid: int):
    """pytorch-grad-cam's ViT reshape_transform: drop the class token, tokens to a channels-first grid."""

    def reshape(t: torch.Tensor) -> torch.Tensor:
        return t[:, 1:].reshape(t.shape[0], grid, grid, t.shape[2]).permute(0, 3, 1, 2)

    return reshape


class ZeroPatchAblation(AblationLayerVit):
    """pytorch-grad-cam's ViT ablation layer with our ablation rule: channel k of the patch tokens
    set to 0 (the library's own layer also ablates the class token and uses min - 1e7, growing by
    1e7 per copy because it takes the min of the already-ablated batch).  Its batching, scores and
    weights stay the library's."""

    def __call__(self, x):
        out = self.activations
        for i in range(out.size(0)):
            out[i, 1:, self.indices[i]] = 0
        return out


def layer_output(model, module, x) -> tuple[torch.Tensor, torch.Tensor]:
    """The (detached) output of ``module`` and the logits for a batch."""
    store = {}
    handle = module.register_forward_hook(lambda _m, _i, o: store.__setitem__("a", o.detach()))
    with torch.no_grad():
        logits = model(x)
    handle.remove()
    return store["a"], logits


def two_targets(model, x) -> torch.Tensor:
    """Different classes for the two images (top-1 of the first, top-2 of the second)."""
    with torch.no_grad():
        top = model(x).topk(2, dim=1).indices
    return torch.stack([top[0, 0], top[1, 1]])


def tiny_cnn(seed: int = 0, classes: int = 5) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 12, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(12, 16, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, classes),
    ).eval()
    nn.init.normal_(model[10].weight, std=3.0)  # logits of order 1: class-specific weights
    return model


def tiny_vit(seed: int = 0, img_size: int = 32, dim: int = 24) -> nn.Module:
    torch.manual_seed(seed)
    model = VisionTransformer(img_size=img_size, patch_size=8, embed_dim=dim, depth=2, num_heads=2, num_classes=5)
    nn.init.normal_(model.head.weight, std=1.0)  # logits of order 1: class-specific weights
    return model.eval()


# -- fixtures ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    model = torchvision.models.resnet18().eval()
    x = torch.randn(2, 3, 96, 96)
    return model, x, two_targets(model, x)


@pytest.fixture(scope="module")
def vit_b():
    torch.manual_seed(0)
    model = timm.create_model("vit_base_patch16_224", pretrained=False, img_size=64).eval()
    x = torch.randn(2, 3, 64, 64)
    return model, x, two_targets(model, x)


@pytest.fixture(scope="module")
def vit_b_shallow():
    """ViT-B/16 cut to 2 blocks on a 3 x 3 grid: the same layer and layout, for the methods that run
    768 forward passes per image."""
    torch.manual_seed(0)
    model = timm.create_model("vit_base_patch16_224", pretrained=False, img_size=48, depth=2).eval()
    x = torch.randn(2, 3, 48, 48)
    return model, x, two_targets(model, x)


@pytest.fixture(scope="module")
def small():
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    return {"cnn": (tiny_cnn(), "7", x), "vit": (tiny_vit(), VIT_LAYER, x)}


# -- oracle: ResNet-18 layer4 ------------------------------------------------------------------------
PGC = {"gradcam": PgcGradCAM, "gradcampp": PgcGradCAMPlusPlus, "shapleycam": PgcShapleyCAM,
       "scorecam": PgcScoreCAM, "ablationcam": PgcAblationCAM}


@pytest.mark.parametrize("name", METHODS)
def test_resnet18_matches_pytorch_grad_cam(resnet, name):
    model, x, targets = resnet
    ours = create_explainer(name, model, "layer4")(x, targets)
    ref = pgc_maps(PGC[name], model, model.layer4, x, targets, rest=name == "shapleycam")
    assert_close_maps(ours, ref)


# -- oracle: ViT-B/16 blocks[-1].norm1 with the class token dropped ------------------------------------
@pytest.mark.parametrize("name", ["gradcam", "gradcampp"])
def test_vit_b_matches_pytorch_grad_cam(vit_b, name):
    model, x, targets = vit_b
    ours = create_explainer(name, model, VIT_LAYER)(x, targets)
    ref = pgc_maps(PGC[name], model, model.blocks[-1].norm1, x, targets, reshape=vit_reshape(4))
    assert_close_maps(ours, ref)


def test_vit_b_scorecam_matches_pytorch_grad_cam(vit_b_shallow):
    model, x, targets = vit_b_shallow
    ours = create_explainer("scorecam", model, VIT_LAYER)(x, targets)
    ref = pgc_maps(PgcScoreCAM, model, model.blocks[-1].norm1, x, targets, reshape=vit_reshape(3))
    assert_close_maps(ours, ref)


def test_vit_b_ablationcam_matches_pytorch_grad_cam(vit_b_shallow):
    model, x, targets = vit_b_shallow
    # a residual connection bypasses norm1: the copies must be made at the input, as grad-cam does
    ours = create_explainer("ablationcam", model, VIT_LAYER, copies="input", ablation="zero")(x, targets)
    ref = pgc_maps(PgcAblationCAM, model, model.blocks[-1].norm1, x, targets, reshape=vit_reshape(3),
                   ablation_layer=ZeroPatchAblation())
    assert_close_maps(ours, ref)


def test_ablationcam_min_offset_matches_pytorch_grad_cam():
    # Hooked at a conv (outputs of both signs), pytorch-grad-cam's default ablation layer uses
    # min - 1e7 (min - i * 1e7 for copy i, see ZeroPatchAblation); the batch norm + ReLU that follow
    # map all of these to 0, so that quirk does not change the result here.
    torch.manual_seed(3)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1),
        nn.BatchNorm2d(16), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 5),
    ).eval()
    nn.init.uniform_(model[4].bias, 0.2, 1.0)  # a zeroed map becomes positive after the batch norm
    x = torch.randn(2, 3, 32, 32)
    targets = two_targets(model, x)
    ours = create_explainer("ablationcam", model, "3", ablation="min_offset", chunk_size=6)(x, targets)
    ref = pgc_maps(PgcAblationCAM, model, model[3], x, targets, ablation_layer=AblationLayer(), batch_size=5)
    assert_close_maps(ours, ref)
    zero = create_explainer("ablationcam", model, "3", ablation="zero")(x, targets)
    assert (zero - ours).abs().max() > 1e-2  # the option matters at a layer with negative outputs


def silu_cnn() -> nn.Module:
    """A CNN whose last block ends in SiLU (EfficientNet's), so its hooked outputs can be negative."""
    torch.manual_seed(4)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.SiLU(), nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1),
        nn.BatchNorm2d(16), nn.SiLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 5),
    ).eval()
    nn.init.normal_(model[8].weight, std=3.0)
    return model


@pytest.mark.parametrize("case", ["silu", "vit_patch_embedding"])
def test_ablationcam_default_is_pytorch_grad_cams_rule(vit_b_shallow, case):
    """By default an ablated map takes pytorch-grad-cam 1.5.7's value (AblationLayer: min - 1e7 where
    the layer's minimum is not 0) at layers with negative outputs: EfficientNet's SiLU and the ViT
    patch embedding (the paper's ViT hook).  The library's batch_size=1 gives every copy min - 1e7."""
    if case == "silu":
        model, path, x = silu_cnn(), "5", torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(5))
        targets = two_targets(model, x)
    else:
        model, x, targets = vit_b_shallow
        path = "patch_embed.proj"
    module = LayerSpec(path).module(model)
    assert float(layer_output(model, module, x)[0].amin()) < 0
    ours = create_explainer("ablationcam", model, path)(x, targets)
    ref = pgc_maps(PgcAblationCAM, model, module, x, targets, ablation_layer=AblationLayer(), batch_size=1)
    assert_close_maps(ours, ref)
    zero = create_explainer("ablationcam", model, path, ablation="zero")(x, targets)
    assert (zero - ours).abs().max() > 1e-2  # today's constant 0 stays an option, and it differs here


# -- ShapleyCAM on ViTs: pytorch-grad-cam is broken there --------------------------------------------
# pytorch-grad-cam 1.5.7's ShapleyCAM keeps the raw [B, T, D] activations for get_cam_image when a
# reshape_transform is given and raises "Invalid activation shape. Get 3."; on the CPU it also fails
# earlier, differentiating twice through the fused attention kernel.  Test against the definition:
# the gradient and Hessian of the ReST utility u(A) = z_c - CE(z, c) with respect to the layer output.
def rest_function(model, image, c, n_tokens, dim):
    """u(a) for one image, a the flattened output of blocks[-1].norm1 that replaces the real one."""
    module = model.blocks[-1].norm1

    def u(a: torch.Tensor) -> torch.Tensor:
        handle = module.register_forward_hook(lambda _m, _i, _o: a.view(1, n_tokens, dim))
        try:
            z = model(image[None])
        finally:
            handle.remove()
        return z[0, c] - F.cross_entropy(z, torch.tensor([c]))

    return u


def shapley_terms(model, x, targets, explicit_hessian: bool) -> tuple[torch.Tensor, ...]:
    """The layer's patch tokens [B, h*w, D] and the grid means of g and of H A [B, D]."""
    acts, _ = layer_output(model, model.blocks[-1].norm1, x)
    _, t, d = acts.shape
    grads, hvps = [], []
    with sdpa_kernel(SDPBackend.MATH):
        for b in range(x.shape[0]):
            a0 = acts[b].flatten()
            u = rest_function(model, x[b], int(targets[b]), t, d)
            g = torch.autograd.functional.jacobian(u, a0)
            if explicit_hessian:
                hvp = torch.autograd.functional.hessian(u, a0) @ a0  # the whole matrix, then H A
            else:
                hvp = torch.autograd.functional.hvp(u, a0, a0)[1]
            grads.append(g.view(t, d)[1:].mean(0))  # class token dropped
            hvps.append(hvp.view(t, d)[1:].mean(0))
    return acts[:, 1:], torch.stack(grads), torch.stack(hvps)


def weighted_cam(tokens: torch.Tensor, weights: torch.Tensor, size) -> torch.Tensor:
    """ReLU(sum_k w_k A_k) on the token grid, upsampled."""
    grid = int(tokens.shape[1] ** 0.5)
    low = torch.einsum("btd,bd->bt", tokens, weights).relu().view(-1, 1, grid, grid)
    return F.interpolate(low, size=size, mode="bilinear", align_corners=False)[:, 0]


def test_shapleycam_tokens_matches_explicit_hessian():
    model, x = tiny_vit(img_size=24, dim=16), torch.randn(2, 3, 24, 24)
    with torch.no_grad():
        targets = model(x).argmin(1)
    ours = create_explainer("shapleycam", model, VIT_LAYER)(x, targets)
    tokens, g, hvp = shapley_terms(model, x, targets, explicit_hessian=True)
    assert_close_maps(ours, weighted_cam(tokens, g - 0.5 * hvp, x.shape[-2:]))
    # the Hessian term matters here: the gradient alone gives another map
    assert (ours - unit(weighted_cam(tokens, g, x.shape[-2:]))).abs().max() > 1e-3


def test_shapleycam_vit_b_matches_functional_hvp(vit_b):
    model, x, targets = vit_b
    ours = create_explainer("shapleycam", model, VIT_LAYER)(x, targets)
    tokens, g, hvp = shapley_terms(model, x, targets, explicit_hessian=False)
    assert_close_maps(ours, weighted_cam(tokens, g - 0.5 * hvp, x.shape[-2:]))


# -- independent references for the options pytorch-grad-cam does not have ---------------------------
@pytest.mark.parametrize("align_corners", [False, True])
def test_scorecam_matches_per_image_loop(small, align_corners):
    model, layer, x = small["cnn"]
    acts, logits = layer_output(model, model[7], x)
    c = logits.argmax(1)
    refs = []
    for b in range(x.shape[0]):
        scores = []
        for a in acts[b]:
            up = F.interpolate(a[None, None], size=x.shape[-2:], mode="bilinear", align_corners=align_corners)[0, 0]
            mask = (up - up.min()) / (up.max() - up.min()) if up.max() > up.min() else torch.zeros_like(up)
            with torch.no_grad():
                scores.append(model((x[b] * mask)[None])[0, c[b]])
        w = torch.softmax(torch.stack(scores), 0)
        refs.append((w[:, None, None] * acts[b]).sum(0).relu())
    ref = F.interpolate(torch.stack(refs)[:, None], size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    ours = create_explainer("scorecam", model, layer, align_corners=align_corners, chunk_size=7)(x)
    assert_close_maps(ours, ref)


def test_gradcampp_without_eps_matches_eq19(small):
    model, layer, x = small["cnn"]
    store = {}
    handle = model[7].register_forward_hook(lambda _m, _i, o: store.__setitem__("a", o))
    logits = model(x)
    handle.remove()
    c = logits.argmax(1)
    (g,) = torch.autograd.grad(logits[torch.arange(3), c].sum(), store["a"])
    a = store["a"].detach().double()
    g = g.double()
    denom = 2 * g**2 + a.sum((2, 3), keepdim=True) * g**3
    alpha = torch.where(g != 0, g**2 / denom, torch.zeros_like(g))  # Eq. 19 without a guard term
    w = (alpha * g.relu()).sum((2, 3))
    low = (w[:, :, None, None] * a).sum(1).relu().float()
    ref = F.interpolate(low[:, None], size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    assert_close_maps(create_explainer("gradcampp", model, layer, eps=0.0)(x), ref)


def test_gradcam_equals_cam_for_a_linear_head(small):
    # Known answer (Grad-CAM Sec. 3.1): after global average pooling and a linear layer, the
    # Grad-CAM weights are W[c] / (h w), so the map is CAM's ReLU(sum_k W[c, k] A_k).
    model, layer, x = small["cnn"]
    acts, logits = layer_output(model, model[7], x)
    w = model[10].weight[logits.argmax(1)].detach()
    low = torch.einsum("bk,bkhw->bhw", w, acts).relu()
    ref = F.interpolate(low[:, None], size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    assert_close_maps(create_explainer("gradcam", model, layer)(x), ref)


# -- invariants --------------------------------------------------------------------------------------
def options(name: str, arch: str) -> dict:
    return {"copies": "input"} if name == "ablationcam" and arch == "vit" else {}


@pytest.mark.parametrize("arch", ["cnn", "vit"])
@pytest.mark.parametrize("name", METHODS)
def test_batch_equals_single_images(small, name, arch):
    model, layer, x = small[arch]
    cam = create_explainer(name, model, layer, chunk_size=2, **options(name, arch))
    batch = cam(x)
    assert batch.shape == (3, 32, 32)
    assert batch.min() >= 0 and batch.max() <= 1
    assert bool((batch.amax(dim=(1, 2)) == 1).all())  # non-degenerate: each map reaches 1
    single = torch.cat([cam(x[i:i + 1]) for i in range(3)])
    torch.testing.assert_close(batch, single, atol=1e-5, rtol=0)


@pytest.mark.parametrize("arch", ["cnn", "vit"])
@pytest.mark.parametrize("name", METHODS)
def test_targets_are_respected(small, name, arch):
    model, layer, x = small[arch]
    cam = create_explainer(name, model, layer, **options(name, arch))
    with torch.no_grad():
        logits = model(x)
    torch.testing.assert_close(cam(x), cam(x, logits.argmax(1)))  # default: the predicted class
    other = cam(x, logits.argmin(1))
    assert bool(((other - cam(x, logits.argmax(1))).abs().amax(dim=(1, 2)) > 1e-2).all())


@pytest.mark.parametrize(
    "name, opts, passes",
    [
        ("gradcam", {}, (1, 0, 1)),
        ("gradcampp", {}, (1, 0, 1)),
        ("shapleycam", {}, (1, 0, 2)),
        ("scorecam", {}, (17, 0, 0)),
        ("ablationcam", {"copies": "layer"}, (1, 16, 0)),
        ("ablationcam", {"copies": "input"}, (17, 0, 0)),
    ],
)
def test_pass_counts(small, name, opts, passes):
    model, layer, x = small["cnn"]  # 16 channels at the hooked layer
    cam = create_explainer(name, model, layer, chunk_size=5, **opts)
    cam(x)
    p = cam.last_passes
    assert (p.forward, p.partial, p.backward) == passes


@pytest.mark.parametrize(
    "name, opts", [("scorecam", {}), ("ablationcam", {"copies": "layer"}), ("ablationcam", {"copies": "input"})]
)
def test_memory_bounded_by_chunk_size(small, name, opts):
    model, layer, x = small["cnn"]
    seen = []
    handle = model[10].register_forward_hook(lambda _m, inp, _o: seen.append(inp[0].shape[0]))
    try:
        create_explainer(name, model, layer, chunk_size=5, **opts)(x[:2])
    finally:
        handle.remove()
    assert len(seen) > 2 and max(seen) <= 5


def test_ablation_copies_at_layer_and_input_agree(small):
    model, layer, x = small["cnn"]
    at_layer = create_explainer("ablationcam", model, layer, copies="layer", chunk_size=4)(x)
    at_input = create_explainer("ablationcam", model, layer, copies="input", chunk_size=4)(x)
    torch.testing.assert_close(at_layer, at_input, atol=1e-5, rtol=0)


def test_ablation_copies_fall_back_to_input_past_a_residual(small):
    model, layer, x = small["vit"]
    with pytest.raises(RuntimeError):
        create_explainer("ablationcam", model, layer, copies="layer")(x)
    auto = create_explainer("ablationcam", model, layer)
    with pytest.warns(UserWarning, match="copies='input'"):
        first = auto(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the switch is remembered
        torch.testing.assert_close(auto(x), first)
    at_input = create_explainer("ablationcam", model, layer, copies="input")
    torch.testing.assert_close(first, at_input(x))
    # one image: the bypassing residual broadcasts over the copies, which is exact (they share it)
    one = create_explainer("ablationcam", model, layer, copies="layer")
    torch.testing.assert_close(one(x[:1]), at_input(x[:1]), atol=1e-5, rtol=0)
    assert one.last_passes.partial == 24  # the 24 channels, after the layer only


@pytest.mark.parametrize(
    "name, opts, match",
    [
        ("gradcampp", {"eps": -1.0}, "eps"),
        ("ablationcam", {"ablation": "mean"}, "ablation"),
        ("ablationcam", {"copies": "output"}, "copies"),
        ("scorecam", {"align_corners": "yes"}, "align_corners"),
        ("gradcam", {"chunk_size": 0}, "chunk_size"),
    ],
)
def test_bad_options_raise(small, name, opts, match):
    model, layer, _ = small["cnn"]
    with pytest.raises(ValueError, match=match):
        create_explainer(name, model, layer, **opts)


def test_bad_targets_raise(small):
    model, layer, x = small["cnn"]
    with pytest.raises(ValueError, match="targets"):
        create_explainer("scorecam", model, layer)(x, [0, 1])
