"""Representation layouts and the upsampling identities ClusCAM's clustering relies on."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cluscam.layers import LayerSpec
from cluscam.ops import mask_input, minmax, normalize_upsampled, upsample, upsampled_range, upsampling_metric_root


def test_layouts_give_the_same_channel_maps():
    maps = torch.randn(2, 5, 3, 4)
    nhwc = maps.permute(0, 2, 3, 1)
    tokens = maps.flatten(2).transpose(1, 2)
    cls = torch.randn(2, 1, 5)
    with_cls = torch.cat([cls, tokens], 1)
    specs = {
        "nchw": (LayerSpec("x"), maps),
        "nhwc": (LayerSpec("x", "nhwc"), nhwc),
        "tokens": (LayerSpec("x", "tokens", grid=(3, 4)), tokens),
        "cls": (LayerSpec("x", "tokens", prefix_tokens=1, grid=(3, 4)), with_cls),
    }
    for spec, act in specs.values():
        assert torch.equal(spec.maps(act), maps)
        assert torch.equal(spec.tokens(act), tokens)
        assert torch.equal(spec.from_maps(spec.maps(act), act), act)
    # Several modified copies per image keep each image's prefix tokens.
    spec, act = specs["cls"]
    copies = maps.repeat_interleave(3, 0)
    back = spec.from_maps(copies, act)
    assert back.shape == (6, 13, 5) and torch.equal(back[3, 0], cls[1, 0])


def test_square_grid_inferred_and_errors_are_clear():
    spec = LayerSpec("x", "tokens", prefix_tokens=1)
    assert spec.maps(torch.randn(1, 197, 8)).shape == (1, 8, 14, 14)
    with pytest.raises(ValueError, match="not a square grid"):
        LayerSpec("x", "tokens").maps(torch.randn(1, 197, 8))
    with pytest.raises(ValueError, match="expects 4 dimensions"):
        LayerSpec("x").maps(torch.randn(1, 197, 8))
    with pytest.raises(ValueError, match="unknown layout"):
        LayerSpec("x", "nwhc")


def test_module_paths_with_negative_indices():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Sequential(nn.ReLU(), nn.Conv2d(4, 4, 1)))
    assert LayerSpec("-1.-1").module(model) is model[1][1]
    assert LayerSpec.of({"path": "0"}).module(model) is model[0]
    with pytest.raises(ValueError, match="no child 'layer4'"):
        LayerSpec("layer4").module(model)


def test_metric_root_reproduces_upsampled_distances():
    grid, size = (7, 5), (56, 37)
    root = upsampling_metric_root(grid, size)
    a, b = torch.randn(2, 10, *grid).double().unbind(0)
    explicit = (upsample(a, size) - upsample(b, size)).flatten(1).pow(2).sum(1)
    lowres = ((a - b).flatten(1) @ root.double()).pow(2).sum(1)
    torch.testing.assert_close(lowres, explicit, rtol=1e-5, atol=1e-6)


def test_normalize_upsampled_equals_normalizing_the_upsampled_map():
    maps = torch.randn(3, 6, 7, 7)
    maps[0, 0] = 2.5  # a constant map is kept as it is
    size = (224, 224)
    expected = minmax(upsample(maps, size), constant="keep")
    torch.testing.assert_close(upsample(normalize_upsampled(maps, size), size), expected, atol=1e-5, rtol=1e-5)
    # The range of the upsampled map differs from the low-resolution range: normalizing before
    # upsampling would not be the paper's Normalize(Upsample(F)).
    assert not torch.allclose(upsample(minmax(maps), size), expected, atol=1e-3)


def test_mask_input_baselines():
    x = torch.randn(2, 3, 4, 4)
    m = torch.zeros(2, 4, 4)
    assert torch.equal(mask_input(x, m), torch.zeros_like(x))
    black = torch.tensor([-1.0, -2.0, -3.0]).view(1, 3, 1, 1)
    torch.testing.assert_close(mask_input(x, m, black), black.expand_as(x))
    torch.testing.assert_close(mask_input(x, torch.ones(2, 4, 4), black), x)
    half = F.interpolate(torch.ones(1, 1, 2, 2), size=(4, 4))[0].expand(2, 4, 4) * 0.5
    torch.testing.assert_close(mask_input(x, half, black), 0.5 * x + 0.5 * black)


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("grid, size", [((7, 7), (224, 224)), ((5, 9), (37, 64)), ((14, 14), (224, 200)), ((9, 9), (6, 7))])
def test_upsampled_range_is_exact(grid, size, align_corners):
    maps = torch.randn(3, 17, *grid, dtype=torch.float64)
    full = upsample(maps, size, align_corners).flatten(-2)
    lo, hi = upsampled_range(maps, size, align_corners)
    torch.testing.assert_close(lo, full.amin(-1), rtol=0, atol=1e-12)
    torch.testing.assert_close(hi, full.amax(-1), rtol=0, atol=1e-12)
