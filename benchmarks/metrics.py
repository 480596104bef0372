"""The paper's evaluation metrics (Appendix C, Eqs. 11-15), per image and batched on the device.

Every function returns one value per image, so each table is an average of raw rows
(:func:`percent`, :func:`summarize`); aggregates are in percent, as in the paper's tables.

Confidence (AD, IC, AG): p = softmax probability of class c on the input x, p~ = the same on
x (.) E, the saliency map E [B, H, W] repeated over channels and applied in normalized input space
with the explainers' mask baseline (:func:`cluscam.ops.mask_input`).

Localization (EP, LE) conventions.  Boxes are (x_min, y_min, x_max, y_max) in continuous pixel
coordinates of the saliency map's image (see :mod:`benchmarks.data.transforms`): pixel (i, j) covers
[j, j+1) x [i, i+1), and it belongs to a box when its centre (j + 0.5, i + 0.5) lies in
[x_min, x_max) x [y_min, y_max) (for integer boxes: columns x_min .. x_max - 1, as the public code's
``E[y1:y2, x1:x2]``).  Several boxes of one image: EP uses their union and LE the best-matching box
(Appendix C: "maximum overlap ... with any ground truth bounding box"); the paper keeps images with a
single box.  Boxes come as [B, 4] or padded [B, n, 4] with ``counts`` [B] valid rows; an image with
no box gets NaN.
"""
from __future__ import annotations

from typing import Literal, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cluscam.base import Explainer, as_logits
from cluscam.ops import Baseline, baseline_value, mask_input

GainVariant = Literal["paper", "public_code"]
Region = Literal["mean_box", "largest_component", "public_energy"]
METRICS: tuple[str, ...] = ("ad", "ic", "ag", "ep", "le")


def _maps(saliency: torch.Tensor) -> torch.Tensor:
    """Saliency maps as float [B, H, W] (a [B, 1, H, W] stack is accepted)."""
    if saliency.dim() == 4 and saliency.shape[1] == 1:
        saliency = saliency[:, 0]
    if saliency.dim() != 3:
        raise ValueError(f"saliency maps must be [B, H, W], got shape {tuple(saliency.shape)}")
    return saliency.float()


def _ratio(num: torch.Tensor, den: torch.Tensor, empty: float = 0.0) -> torch.Tensor:
    """num / den where den > 0, ``empty`` elsewhere."""
    ok = den > 0
    return torch.where(ok, num / torch.where(ok, den, torch.ones_like(den)), torch.full_like(num, empty))


# -- confidence: AD, IC, AG ---------------------------------------------------------------------------
@torch.no_grad()
def confidence_change(model: nn.Module, images: torch.Tensor, saliency: torch.Tensor, targets=None,
                      baseline: Baseline | torch.Tensor | None = None, *, pixel_mean: Sequence[float] | None = None,
                      pixel_std: Sequence[float] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(p, p~) [B]: the target class's softmax probability on ``images`` and on ``images (.) saliency``.

    targets: class indices [B]; None means the predicted class on ``images``.  baseline: what masked
    pixels become, as for the explainers: None or ``"mean"`` (0 in normalized space), ``"black"``
    (needs pixel_mean and pixel_std), or a normalized value from :func:`cluscam.ops.baseline_value`.
    Two forward passes of ``model`` (put it in eval mode) on the batch, on the images' device."""
    maps = _maps(saliency).to(images.device)
    if images.dim() != 4 or maps.shape != (images.shape[0], *images.shape[-2:]):
        raise ValueError(f"saliency {tuple(maps.shape)} does not match images {tuple(images.shape)}: "
                         f"upsample the maps to the input size first")
    if isinstance(baseline, str):
        baseline = baseline_value(baseline, pixel_mean, pixel_std, images)
    logits = as_logits(model(images)).float()
    t = Explainer.resolve_targets(logits, targets)
    masked = as_logits(model(mask_input(images, maps, baseline))).float()
    pick = lambda z: z.softmax(1).gather(1, t[:, None]).squeeze(1)  # noqa: E731
    return pick(logits), pick(masked)


def drop_terms(p: torch.Tensor, p_masked: torch.Tensor) -> torch.Tensor:
    """max(0, p - p~) / p per image (Eq. 11); 0 where p = 0 (nothing to drop)."""
    return _ratio((p - p_masked).clamp_min(0), p)


def increase_terms(p: torch.Tensor, p_masked: torch.Tensor) -> torch.Tensor:
    """1[p~ > p] per image (Eq. 12)."""
    return (p_masked > p).float()


def gain_terms(p: torch.Tensor, p_masked: torch.Tensor, variant: GainVariant = "paper") -> torch.Tensor:
    """max(0, p~ - p) / (1 - p) per image (Eq. 13, as in Opti-CAM); ``public_code`` divides by p instead
    (the public ClusCAM code's variant).  Where the denominator is 0 the term is 0: with p = 1 no gain
    is possible (p~ <= 1 = p)."""
    if variant not in ("paper", "public_code"):
        raise ValueError(f"unknown AG variant {variant!r}; use 'paper' (divide by 1 - p) or 'public_code' (divide by p)")
    return _ratio((p_masked - p).clamp_min(0), 1 - p if variant == "paper" else p)


def percent(terms: torch.Tensor) -> float:
    """100 x the mean of per-image terms, ignoring NaN (the aggregate of Eqs. 11-15)."""
    return float(100 * torch.nanmean(terms.float()))


def average_drop(p: torch.Tensor, p_masked: torch.Tensor) -> float:
    """AD in % (Eq. 11)."""
    return percent(drop_terms(p, p_masked))


def increase_in_confidence(p: torch.Tensor, p_masked: torch.Tensor) -> float:
    """IC in % (Eq. 12)."""
    return percent(increase_terms(p, p_masked))


def average_gain(p: torch.Tensor, p_masked: torch.Tensor, variant: GainVariant = "paper") -> float:
    """AG in % (Eq. 13)."""
    return percent(gain_terms(p, p_masked, variant))


# -- boxes -------------------------------------------------------------------------------------------
def _boxes(boxes: torch.Tensor, counts: torch.Tensor | Sequence[int] | None, batch: int,
           device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Boxes as [B, n, 4] on ``device`` and which rows are valid [B, n]."""
    boxes = torch.as_tensor(boxes, dtype=torch.float32, device=device)
    if boxes.dim() == 2:
        boxes = boxes[:, None]
    if boxes.dim() != 3 or boxes.shape[0] != batch or boxes.shape[2] != 4:
        raise ValueError(f"boxes must be [B, 4] or [B, n, 4] for B = {batch}, got shape {tuple(boxes.shape)}")
    n = boxes.shape[1]
    if counts is None:
        return boxes, torch.ones(batch, n, dtype=torch.bool, device=device)
    counts = torch.as_tensor(counts, device=device).reshape(-1)
    return boxes, torch.arange(n, device=device)[None] < counts[:, None]


def box_masks(boxes: torch.Tensor, size: tuple[int, int], counts=None) -> torch.Tensor:
    """[B, H, W] masks of the pixels whose centre lies in any valid box (module docstring convention)."""
    boxes, valid = _boxes(boxes, counts, boxes.shape[0], boxes.device)
    h, w = size
    xs = torch.arange(w, device=boxes.device) + 0.5
    ys = torch.arange(h, device=boxes.device) + 0.5
    in_x = (xs >= boxes[..., 0:1]) & (xs < boxes[..., 2:3])  # [B, n, W]
    in_y = (ys >= boxes[..., 1:2]) & (ys < boxes[..., 3:4])  # [B, n, H]
    return (in_y[..., :, None] & in_x[..., None, :] & valid[..., None, None]).any(1)


def box_iou(box: torch.Tensor, others: torch.Tensor) -> torch.Tensor:
    """IoU [B, n] of boxes [B, 4] with boxes [B, n, 4] (continuous coordinates; 0 when both are empty)."""
    lo = torch.maximum(box[:, None, :2], others[..., :2])
    hi = torch.minimum(box[:, None, 2:], others[..., 2:])
    inter = (hi - lo).clamp_min(0).prod(-1)
    area = lambda b: (b[..., 2:] - b[..., :2]).clamp_min(0).prod(-1)  # noqa: E731
    return _ratio(inter, area(box)[:, None] + area(others) - inter)


def mask_box(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The tight box [B, 4] around the True pixels of masks [B, H, W] (edges: first column .. last + 1)
    and whether a mask has any (an empty mask gets the empty box 0, 0, 0, 0)."""
    b, h, w = mask.shape
    rows, cols = mask.any(2), mask.any(1)
    r = torch.arange(h, device=mask.device)
    c = torch.arange(w, device=mask.device)
    box = torch.stack([torch.where(cols, c, w).amin(1), torch.where(rows, r, h).amin(1),
                       torch.where(cols, c, -1).amax(1) + 1, torch.where(rows, r, -1).amax(1) + 1], 1).float()
    nonempty = rows.any(1)
    return torch.where(nonempty[:, None], box, torch.zeros_like(box)), nonempty


def _run_max(lab: torch.Tensor, fg: torch.Tensor) -> torch.Tensor:
    """Each foreground pixel of rows [N, L] gets the largest label of its horizontal run of foreground."""
    start = fg & ~F.pad(fg[:, :-1], (1, 0), value=False)
    run = start.flatten().cumsum(0)
    best = torch.zeros(run.numel() + 1, dtype=lab.dtype, device=lab.device).scatter_reduce(0, run, lab.flatten(), "amax")
    return best[run].view_as(lab) * fg


def connected_components(mask: torch.Tensor) -> torch.Tensor:
    """8-connected components of masks [B, H, W]: each True pixel gets 1 + the largest flat index in its
    component, background 0.  Label propagation to a fixed point: the largest label of each row run
    and column run, then of each 3x3 neighbourhood (diagonal links), then pointer jumping."""
    b, h, w = mask.shape
    dtype = torch.float32 if h * w < 2 ** 24 else torch.float64  # labels must be exact
    fg = mask.to(dtype)
    cols = mask.transpose(1, 2).reshape(b * w, h)
    lab = torch.arange(1, h * w + 1, device=mask.device, dtype=dtype).view(1, h, w) * fg
    while True:
        new = _run_max(lab.reshape(b * h, w), mask.reshape(b * h, w)).view(b, h, w)
        new = _run_max(new.transpose(1, 2).reshape(b * w, h), cols).view(b, w, h).transpose(1, 2)
        new = (F.max_pool2d(new[:, None], 3, 1, 1)[:, 0] * fg).reshape(b, -1)
        # label q + 1 at a pixel names pixel q of the same component, whose label is at least as large
        new = torch.maximum(new, new.gather(1, (new.long() - 1).clamp_min(0)) * (new > 0)).view(b, h, w)
        if torch.equal(new, lab):
            return lab.long()
        lab = new


def largest_component(mask: torch.Tensor) -> torch.Tensor:
    """The largest 8-connected component of each mask [B, H, W] (ties: the smallest label)."""
    b = mask.shape[0]
    lab = connected_components(mask).view(b, -1)
    sizes = torch.zeros(b, lab.shape[1] + 1, dtype=torch.long, device=mask.device)
    sizes.scatter_add_(1, lab, torch.ones_like(lab))
    sizes[:, 0] = 0
    best = sizes.argmax(1, keepdim=True)
    return ((lab == best) & (best > 0)).view_as(mask)


def predicted_boxes(saliency: torch.Tensor, region: Region = "mean_box") -> tuple[torch.Tensor, torch.Tensor]:
    """B_p [B, 4] of Eq. 15 and whether it is non-empty: the map binarized at its mean value (pixels
    strictly above it, Appendix C), then the box around all of them (``mean_box``, the paper's text)
    or around the largest 8-connected group of them (``largest_component``, the CAM / WSOL convention)."""
    maps = _maps(saliency).double()  # an exact mean: a constant map has no pixel above it
    fg = maps > maps.mean((1, 2), keepdim=True)
    if region == "largest_component":
        fg = largest_component(fg)
    elif region != "mean_box":
        raise ValueError(f"unknown predicted-box region {region!r}; use 'mean_box' or 'largest_component'")
    return mask_box(fg)


# -- localization: EP, LE ----------------------------------------------------------------------------
def energy_pointing(saliency: torch.Tensor, boxes: torch.Tensor, counts=None) -> torch.Tensor:
    """EP per image (Eq. 14): saliency energy inside the ground-truth box(es) / total energy, for
    non-negative maps.  A map with no energy (all zero, e.g. a ReLU that kills the whole CAM) puts
    none on the object: EP 0, and the image counts in the mean.  NaN where the image has no box."""
    maps = _maps(saliency)
    boxes, valid = _boxes(boxes, counts, maps.shape[0], maps.device)
    inside = box_masks(boxes, maps.shape[-2:], valid.sum(1))
    ep = _ratio((maps * inside).sum((1, 2)), maps.sum((1, 2)), empty=0.0)  # Eq. 14, 0 / 0 := 0
    return torch.where(valid.any(1), ep, torch.full_like(ep, float("nan")))


def localization_error(saliency: torch.Tensor, boxes: torch.Tensor, counts=None, region: Region = "mean_box") -> torch.Tensor:
    """LE per image (Eq. 15): 1 - max over ground-truth boxes B of IoU(B, B_p), B_p from
    :func:`predicted_boxes`.  A map with no pixel above its mean (a constant map) has an empty B_p:
    IoU 0, LE 1.  ``public_energy`` is the public ClusCAM code's ``Local_Error`` instead: 1 - energy
    inside the box / (box pixels + total energy - energy inside).  NaN where the image has no box."""
    maps = _maps(saliency)
    boxes, valid = _boxes(boxes, counts, maps.shape[0], maps.device)
    if region == "public_energy":
        inside = box_masks(boxes, maps.shape[-2:], valid.sum(1))
        inter = (maps * inside).sum((1, 2))
        union = inside.sum((1, 2)) + maps.sum((1, 2)) - inter
        le = 1 - _ratio(inter, union, empty=float("nan"))
    else:
        pred, _ = predicted_boxes(maps, region)
        iou = torch.where(valid, box_iou(pred, boxes), torch.zeros(1, device=maps.device))
        le = 1 - iou.amax(1) if iou.shape[1] else torch.ones(maps.shape[0], device=maps.device)
    return torch.where(valid.any(1), le, torch.full_like(le, float("nan")))


# -- rows and tables ---------------------------------------------------------------------------------
def image_metrics(p: torch.Tensor, p_masked: torch.Tensor, saliency: torch.Tensor | None = None,
                  boxes: torch.Tensor | None = None, counts=None, *, ag_variant: GainVariant = "paper",
                  le_region: Region = "mean_box") -> dict[str, torch.Tensor]:
    """Per-image rows {p, p_masked, ad, ic, ag[, ep, le]} (fractions, not %); EP and LE when boxes
    are given (pass a batch's padded_boxes and num_boxes)."""
    rows = {"p": p, "p_masked": p_masked, "ad": drop_terms(p, p_masked), "ic": increase_terms(p, p_masked),
            "ag": gain_terms(p, p_masked, ag_variant)}
    if boxes is not None:
        if saliency is None:
            raise ValueError("EP and LE need the saliency maps with the boxes")
        rows["ep"] = energy_pointing(saliency, boxes, counts)
        rows["le"] = localization_error(saliency, boxes, counts, le_region)
    return rows


def summarize(rows: Mapping[str, Sequence[float] | torch.Tensor]) -> dict[str, float]:
    """Table values from per-image rows (a dict of columns or a DataFrame): each metric of
    :data:`METRICS` with at least one value as a NaN-ignoring mean in %, and ``n_<metric>``, the rows
    it averages (EP and LE are absent for a dataset without boxes)."""
    out: dict[str, float] = {}
    for name in METRICS:
        if name in rows:
            col = rows[name]
            values = col.detach().double().cpu() if isinstance(col, torch.Tensor) else torch.from_numpy(
                np.array(col, dtype=np.float64))
            n = int((~values.isnan()).sum())
            if n:
                out[name], out[f"n_{name}"] = percent(values), n
    return out
