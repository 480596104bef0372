"""The evaluation metrics (paper Appendix C, Eqs. 11-15) against hand-computed values."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image, ImageDraw
from scipy import ndimage
from torch import nn

from benchmarks.data import Preprocess
from benchmarks.metrics import (
    average_drop, average_gain, box_masks, confidence_change, connected_components, drop_terms, energy_pointing,
    gain_terms, image_metrics, increase_in_confidence, increase_terms, largest_component, localization_error,
    predicted_boxes, summarize,
)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


# -- AD, IC, AG ---------------------------------------------------------------------------------------
P = torch.tensor([0.8, 0.5, 0.6, 1.0, 0.3])
PM = torch.tensor([0.4, 0.6, 0.7, 1.0, 0.3])


def test_confidence_terms_by_hand():
    # drops: 0.4/0.8, then none; increases: images 2 and 3; gains: 0.1/0.5, 0.1/0.4, p = 1 -> 0
    assert drop_terms(P, PM).tolist() == pytest.approx([0.5, 0, 0, 0, 0])
    assert increase_terms(P, PM).tolist() == [0, 1, 1, 0, 0]
    assert gain_terms(P, PM).tolist() == pytest.approx([0, 0.2, 0.25, 0, 0])
    assert average_drop(P, PM) == pytest.approx(10.0)
    assert increase_in_confidence(P, PM) == pytest.approx(40.0)
    assert average_gain(P, PM) == pytest.approx(100 * 0.45 / 5)
    # the public code's variant divides by p: 0.1/0.5, 0.1/0.6
    assert gain_terms(P, PM, "public_code").tolist() == pytest.approx([0, 0.2, 0.1 / 0.6, 0, 0])
    assert average_gain(P, PM, "public_code") == pytest.approx(100 * (0.2 + 0.1 / 0.6) / 5)
    with pytest.raises(ValueError, match="AG variant"):
        gain_terms(P, PM, "other")


def test_gain_and_drop_when_p_is_one_or_zero():
    p = torch.tensor([1.0, 1.0, 0.0])
    pm = torch.tensor([1.0, 0.5, 0.2])
    gain = gain_terms(p, pm)
    assert torch.isfinite(gain).all() and gain[:2].tolist() == [0, 0]  # no gain possible from p = 1
    assert drop_terms(p, pm).tolist() == pytest.approx([0, 0.5, 0])  # p = 0: nothing to drop


class SumPerChannel(nn.Module):
    """logits = (sum of channel 0, sum of channel 1) of a [B, 3, H, W] input."""

    def forward(self, x):
        return x[:, :2].sum((2, 3))


def sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-z))


def test_confidence_change_by_hand():
    x = torch.zeros(1, 3, 2, 2)
    x[0, 0] = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    x[0, 1] = torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    x[0, 2] = 7.0
    e = torch.tensor([[[1.0, 0.0], [0.5, 0.0]]])
    # logits on x: (10, 2), predicted class 0; on x * E: (1 + 1.5, 0)
    p, pm = confidence_change(SumPerChannel(), x, e)
    assert p.item() == pytest.approx(sigmoid(8), rel=1e-6)
    assert pm.item() == pytest.approx(sigmoid(2.5), rel=1e-6)
    p1, pm1 = confidence_change(SumPerChannel(), x, e[:, None], targets=[1])  # [B, 1, H, W] maps accepted
    assert p1.item() == pytest.approx(sigmoid(-8), rel=1e-5) and pm1.item() == pytest.approx(sigmoid(-2.5), rel=1e-6)
    # black baseline: masked pixels move towards -mean/std = -2: channel 0 sums to 1 - 2 + 0.5 - 2,
    # channel 1 to 0 - 2 - 1 - 2
    _, pb = confidence_change(SumPerChannel(), x, e, baseline="black", pixel_mean=[0.5] * 3, pixel_std=[0.25] * 3)
    assert pb.item() == pytest.approx(sigmoid(-2.5 + 5), rel=1e-6)
    with pytest.raises(ValueError, match="upsample"):
        confidence_change(SumPerChannel(), x, torch.ones(1, 4, 4))


def test_saturated_softmax_gives_finite_gain():
    x = torch.zeros(2, 3, 2, 2)
    x[:, 0] = 100.0  # logits (400, 0): the softmax is exactly 1 in float32
    p, pm = confidence_change(SumPerChannel(), x, torch.full((2, 2, 2), 0.5))
    assert p.tolist() == [1.0, 1.0] and pm.tolist() == [1.0, 1.0]
    assert gain_terms(p, pm).tolist() == [0.0, 0.0]


# -- EP ------------------------------------------------------------------------------------------------
E = torch.tensor([[0, 1, 0, 0], [0, 2, 3, 0], [0, 0, 4, 0], [1, 0, 0, 0]], dtype=torch.float32)  # total 11


@pytest.mark.parametrize("device", DEVICES)
def test_energy_pointing_by_hand(device):
    maps = E[None].to(device)
    # box (1,1)-(3,3): rows 1-2, columns 1-2 -> 2 + 3 + 0 + 4
    assert energy_pointing(maps, torch.tensor([[1.0, 1, 3, 3]])).item() == pytest.approx(9 / 11)
    # fractional box: centres x = 1.5 only (0.5 < 0.6, 2.5 >= 2.4), y = 1.5, 2.5 -> E[1,1] + E[2,1]
    assert energy_pointing(maps, torch.tensor([[0.6, 0.6, 2.4, 3.1]])).item() == pytest.approx(2 / 11)
    # several boxes: their union, overlaps counted once; padding rows beyond counts ignored
    two = torch.tensor([[[1.0, 1, 3, 3], [0, 3, 1, 4]]])
    assert energy_pointing(maps, two).item() == pytest.approx(10 / 11)
    assert energy_pointing(maps, torch.tensor([[[1.0, 1, 3, 3], [2, 1, 3, 3]]])).item() == pytest.approx(9 / 11)
    assert energy_pointing(maps, two, counts=[1]).item() == pytest.approx(9 / 11)
    # image without a box -> NaN
    assert math.isnan(energy_pointing(maps, two, counts=[0]).item())


def test_energy_pointing_of_an_all_zero_map_is_zero_and_counted():
    """A map with no energy puts none on the object (Eq. 14's 0 / 0 read as 0): the image stays in
    the method's mean instead of being dropped from it."""
    maps = torch.stack([E, torch.zeros(4, 4)])
    ep = energy_pointing(maps, torch.tensor([[1.0, 1, 3, 3], [0, 0, 2, 2]]))
    assert ep.tolist() == pytest.approx([9 / 11, 0.0])
    table = summarize({"ep": ep})
    assert table["n_ep"] == 2 and table["ep"] == pytest.approx(100 * 9 / 22)


def test_box_mask_integer_boxes_match_slicing():
    boxes = torch.tensor([[2.0, 1, 5, 4], [0, 0, 7, 6]])
    masks = box_masks(boxes, (6, 7))
    ref = torch.zeros(2, 6, 7, dtype=torch.bool)
    ref[0, 1:4, 2:5] = True  # the public code's E[y1:y2, x1:x2]
    ref[1] = True
    assert torch.equal(masks, ref)


# -- LE ------------------------------------------------------------------------------------------------
def blobs() -> torch.Tensor:
    """6x6 map: a 2-pixel blob at row 1, columns 1-2, and a 1-pixel blob at (4, 4); mean 3/36."""
    m = torch.zeros(1, 6, 6)
    m[0, 1, 1] = m[0, 1, 2] = m[0, 4, 4] = 1.0
    return m


@pytest.mark.parametrize("device", DEVICES)
def test_localization_error_by_hand(device):
    m = blobs().to(device)
    gt = torch.tensor([[1.0, 1, 3, 2]])  # exactly the 2-pixel blob
    # mean_box: the box around all three pixels is (1,1)-(5,5), area 16; IoU with gt = 2/16
    box, ok = predicted_boxes(m)
    assert box.tolist() == [[1, 1, 5, 5]] and ok.tolist() == [True]
    assert localization_error(m, gt).item() == pytest.approx(1 - 2 / 16)
    # largest component: the 2-pixel blob itself
    assert localization_error(m, gt, region="largest_component").item() == pytest.approx(0.0)
    # best of several boxes: IoU 16/36 with the whole image beats 1/16 with (4,4)-(5,5)
    several = torch.tensor([[[4.0, 4, 5, 5], [0, 0, 6, 6]]])
    assert localization_error(m, several).item() == pytest.approx(1 - 16 / 36)
    # public code's energy IoU: inside 2, box pixels 2, total 3 -> 2 / (2 + 3 - 2)
    assert localization_error(m, gt, region="public_energy").item() == pytest.approx(1 / 3)
    # constant map: nothing above the mean -> empty B_p -> LE 1; no box -> NaN
    assert localization_error(torch.full((1, 6, 6), 0.3), gt).item() == 1.0
    assert math.isnan(localization_error(m, several, counts=[0]).item())
    with pytest.raises(ValueError, match="region"):
        predicted_boxes(m, "other")


def test_components_match_scipy_8_connectivity():
    torch.manual_seed(0)
    masks = torch.rand(5, 37, 53) > 0.55
    labels = connected_components(masks)
    for mask, lab in zip(masks.numpy(), labels.numpy()):
        ref, n = ndimage.label(mask, structure=np.ones((3, 3)))
        assert (lab[~mask] == 0).all()
        pairs = set(zip(lab[mask].tolist(), ref[mask].tolist()))
        assert len(pairs) == n == len(set(lab[mask].tolist()))  # the same partition
        sizes = np.bincount(ref[mask])
        best = largest_component(torch.from_numpy(mask)[None])[0].numpy()
        assert best.sum() == sizes.max() and len(set(ref[best].tolist())) == 1


def test_diagonal_pixels_form_one_component():
    m = blobs()
    m[0, 2, 3] = 1.0  # touches (1, 2) diagonally
    fg = m > 0
    assert len(set(connected_components(fg)[fg].tolist())) == 2
    assert predicted_boxes(m, "largest_component")[0].tolist() == [[1, 1, 4, 3]]


def test_localization_follows_the_stretch_transform():
    """A 227x227 image with an object at a known box, stretched to 224: the boxes rescaled through
    the transform match the object seen in the transformed image; unscaled boxes do not."""
    box = (150.0, 60.0, 227.0, 200.0)
    src = Image.new("RGB", (227, 227))
    ImageDraw.Draw(src).rectangle([150, 60, 226, 199], fill=(255, 255, 255))  # PIL's inclusive corners
    image, boxes = Preprocess()(src, torch.tensor([box]))
    assert boxes.tolist()[0] == pytest.approx([b * 224 / 227 for b in box])
    saliency = (image[0] > 0).float()[None]  # the object's pixels, read from the transformed image
    raw = torch.tensor([box])
    assert energy_pointing(saliency, boxes).item() > 0.995
    assert energy_pointing(saliency, raw).item() < 0.98
    assert localization_error(saliency, boxes).item() < 0.02
    assert localization_error(saliency, raw).item() > 0.05


# -- rows and tables -----------------------------------------------------------------------------------
def test_rows_and_summary():
    m = torch.cat([blobs(), torch.zeros(1, 6, 6)])
    boxes = torch.tensor([[[1.0, 1, 3, 2]], [[0.0, 0, 0, 0]]])
    rows = image_metrics(torch.tensor([0.8, 0.5]), torch.tensor([0.4, 0.6]), m, boxes, counts=[1, 0])
    assert set(rows) == {"p", "p_masked", "ad", "ic", "ag", "ep", "le"}
    table = summarize(rows)
    assert table["ad"] == pytest.approx(25.0) and table["ic"] == pytest.approx(50.0)
    assert table["ag"] == pytest.approx(100 * 0.2 / 2)
    assert table["ep"] == pytest.approx(100 * 2 / 3) and table["n_ep"] == 1  # the box-less row is NaN
    frame = pd.DataFrame({k: v.numpy() for k, v in rows.items()})
    assert summarize(frame) == pytest.approx(table)
    assert "ep" not in summarize(frame.iloc[1:])  # no image with a box
    with pytest.raises(ValueError, match="saliency"):
        image_metrics(torch.ones(1), torch.ones(1), None, torch.zeros(1, 4))
