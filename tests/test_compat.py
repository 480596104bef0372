"""pytorch-grad-cam's calling convention (cluscam.compat): the same maps as pytorch-grad-cam's own GradCAM
through the adapter, ViTs through a reshape_transform, and pytorch-grad-cam's image and metric helpers."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from pytorch_grad_cam import GradCAM as PgcGradCAM
from pytorch_grad_cam.metrics.cam_mult_image import CamMultImageConfidenceChange
from pytorch_grad_cam.utils.image import show_cam_on_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from timm.models.vision_transformer import VisionTransformer

from baselines import method_class
from cluscam import ClusCAM as LibraryClusCAM
from cluscam.compat import ClusCAM, adapter

GradCAM = adapter(method_class("gradcam"))


def unit(maps: np.ndarray) -> np.ndarray:
    lo, hi = maps.min((1, 2), keepdims=True), maps.max((1, 2), keepdims=True)
    assert bool((hi - lo > 1e-3).all()), "a constant map: the comparison would be vacuous"
    return (maps - lo) / (hi - lo)


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    model = torchvision.models.resnet18().eval()
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        top = model(x).topk(2, dim=1).indices
    return model, x, [ClassifierOutputTarget(int(top[0, 0])), ClassifierOutputTarget(int(top[1, 1]))]


def vit_reshape(t: torch.Tensor) -> torch.Tensor:
    """pytorch-grad-cam's ViT example: drop the class token, tokens to a 4 x 4 grid, channels first."""
    return t[:, 1:].reshape(t.shape[0], 4, 4, t.shape[2]).permute(0, 3, 1, 2)


def test_gradcam_through_the_adapter_is_pytorch_grad_cams(resnet):
    model, x, targets = resnet
    with GradCAM(model=model, target_layers=[model.layer4]) as cam:
        ours = cam(input_tensor=x, targets=targets)
    with PgcGradCAM(model=model, target_layers=[model.layer4]) as cam:
        ref = cam(input_tensor=x, targets=targets)
    assert isinstance(ours, np.ndarray) and ours.shape == ref.shape == (2, 96, 96)
    np.testing.assert_allclose(unit(ours), unit(ref), atol=1e-4)


def test_a_vit_through_reshape_transform_is_pytorch_grad_cams():
    torch.manual_seed(0)
    model = VisionTransformer(img_size=32, patch_size=8, embed_dim=24, depth=2, num_heads=2, num_classes=5).eval()
    torch.nn.init.normal_(model.head.weight, std=1.0)
    x = torch.randn(2, 3, 32, 32)
    layer = model.blocks[-1].norm1
    with GradCAM(model=model, target_layers=[layer], reshape_transform=vit_reshape) as cam:
        ours = cam(input_tensor=x, targets=None)
        assert cam._method.layer.layout == "tokens" and cam._method.layer.prefix_tokens == 1
    with PgcGradCAM(model=model, target_layers=[layer], reshape_transform=vit_reshape) as cam:
        ref = cam(input_tensor=x, targets=None)
    np.testing.assert_allclose(unit(ours), unit(ref), atol=1e-4)


def test_cluscam_through_the_adapter_with_pytorch_grad_cams_helpers(resnet):
    model, x, targets = resnet
    with ClusCAM(model=model, target_layers=[model.layer4], k=10) as cam:
        maps = cam(input_tensor=x, targets=targets)
    direct = LibraryClusCAM(model, "layer4", k=10)(x, [t.category for t in targets]).numpy()
    np.testing.assert_array_equal(maps, direct)  # the library's maps, as numpy [B, H, W]
    assert maps.dtype == np.float32 and maps.min() >= 0 and maps.max() <= 1
    rgb = (x[0].permute(1, 2, 0).numpy() - x[0].min().item()) / (x[0].max() - x[0].min()).item()
    overlay = show_cam_on_image(rgb.astype(np.float32), maps[0], use_rgb=True)
    assert overlay.shape == (96, 96, 3) and overlay.dtype == np.uint8
    scores = CamMultImageConfidenceChange()(x, maps, targets, model)
    assert scores.shape == (2,) and np.isfinite(scores).all()


def test_adapter_refuses_what_it_cannot_do(resnet):
    model, x, _ = resnet
    with pytest.raises(ValueError, match="explains at one layer; got 2 target_layers"):
        ClusCAM(model=model, target_layers=[model.layer3, model.layer4])
    with pytest.raises(ValueError, match="not a module of the model"):
        ClusCAM(model=model, target_layers=[torch.nn.Conv2d(1, 1, 1)])
    with pytest.raises(ValueError, match="aug_smooth and eigen_smooth are pytorch-grad-cam's"):
        GradCAM(model=model, target_layers=[model.layer4])(x, aug_smooth=True)
    with pytest.raises(ValueError, match="cannot read back"):
        GradCAM(model=model, target_layers=[model.layer4], reshape_transform=lambda t: t.flip(1))(x)
    with pytest.raises(ValueError, match="has no category"):
        GradCAM(model=model, target_layers=[model.layer4])(x, targets=["cat", "dog"])
