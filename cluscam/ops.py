"""Tensor operations shared by every explainer: upsampling, normalization and input masking."""
from __future__ import annotations

from typing import Literal, Sequence

import torch
import torch.nn.functional as F

Baseline = Literal["mean", "black"]


def upsample(maps: torch.Tensor, size: tuple[int, int], align_corners: bool = False) -> torch.Tensor:
    """Bilinear resize of [..., h, w] maps to ``size`` (the paper's Upsample, Eq. 4)."""
    lead = maps.shape[:-2]
    flat = maps.reshape(-1, 1, *maps.shape[-2:])
    if tuple(flat.shape[-2:]) != tuple(size):
        flat = F.interpolate(flat, size=size, mode="bilinear", align_corners=align_corners)
    return flat.reshape(*lead, *size)


def minmax(maps: torch.Tensor, constant: Literal["keep", "zero"] = "zero") -> torch.Tensor:
    """Per-map min-max scaling of [..., h, w] to [0, 1] (the paper's Normalize).

    A constant map has no range: ``keep`` leaves it as it is (the public ClusCAM code's rule for
    feature maps), ``zero`` returns zeros (pytorch-grad-cam's rule for saliency maps)."""
    flat = maps.flatten(-2)
    lo = flat.amin(-1, keepdim=True)
    span = flat.amax(-1, keepdim=True) - lo
    flat_const = span <= 0
    scaled = (flat - lo) / torch.where(flat_const, torch.ones_like(span), span)
    fallback = flat if constant == "keep" else torch.zeros_like(flat)
    return torch.where(flat_const, fallback, scaled).reshape(maps.shape)


def upsampled_range(maps: torch.Tensor, size: tuple[int, int], align_corners: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact min and max of each [..., h, w] map after bilinear upsampling to ``size``, without
    forming the upsampled maps.

    Each output pixel interpolates one 2x2 cell of the input with weights (lambda, mu); a bilinear
    function of (lambda, mu) takes its extremes at the corners of the rectangle of weights that the
    output grid samples in the cell, i.e. at the first and last output row and column of each
    cell.  Evaluating only those rows and columns gives the range of the full upsampled map
    (docs/derivations.md, section 2)."""
    h, w = maps.shape[-2:]
    rows = _critical(interpolation_matrix(h, size[0], maps.device, maps.dtype, align_corners))
    cols = _critical(interpolation_matrix(w, size[1], maps.device, maps.dtype, align_corners))
    sampled = torch.einsum("rh,...hw,cw->...rc", rows, maps, cols).flatten(-2)
    return sampled.amin(-1), sampled.amax(-1)


def _critical(u: torch.Tensor) -> torch.Tensor:
    """The rows of a 1-d interpolation matrix [n_out, n_in] that are the first or last output of
    their input cell (the cell: the first input with a non-zero weight)."""
    cell = (u > 0).to(torch.uint8).argmax(1)
    edge = torch.ones_like(cell, dtype=torch.bool)
    edge[1:-1] = (cell[1:-1] != cell[:-2]) | (cell[1:-1] != cell[2:])
    return u[edge]


def normalize_upsampled(maps: torch.Tensor, size: tuple[int, int], constant: Literal["keep", "zero"] = "keep",
                        align_corners: bool = False) -> torch.Tensor:
    """Low-resolution maps ``m`` with Upsample(m) == Normalize(Upsample(maps)) (Eq. 4).

    Bilinear upsampling U is linear and keeps constants (its weights sum to one), so
    Normalize(U F) = (U F - lo) / (hi - lo) = U((F - lo) / (hi - lo)) with lo, hi the range of U F:
    the min-max of the full-resolution map is applied at low resolution.  A constant map is kept
    as it is (``keep``, the public ClusCAM code) or zeroed (``zero``, pytorch-grad-cam's masks)."""
    lo, hi = upsampled_range(maps, size, align_corners)
    span = hi - lo
    const = span <= 0
    scaled = (maps - lo[..., None, None]) / torch.where(const, torch.ones_like(span), span)[..., None, None]
    fallback = maps if constant == "keep" else torch.zeros_like(maps)
    return torch.where(const[..., None, None], fallback, scaled)


def interpolation_matrix(n_in: int, n_out: int, device=None, dtype=torch.float32,
                         align_corners: bool = False) -> torch.Tensor:
    """The [n_out, n_in] matrix of 1-d linear interpolation, taken from ``F.interpolate`` itself so
    that it matches the upsampling used for the masks (bilinear = this along each axis)."""
    eye = torch.eye(n_in, device=device, dtype=dtype).unsqueeze(1)  # [n_in, 1, n_in]
    return F.interpolate(eye, size=n_out, mode="linear", align_corners=align_corners)[:, 0].T


def upsampling_metric_root(grid: tuple[int, int], size: tuple[int, int], device=None) -> torch.Tensor:
    """R with R R^T = U^T U for the bilinear upsampling U of ``grid`` maps to ``size``.

    ||U a - U b||^2 = ||R^T (a - b)||^2, so K-means on the low-resolution vectors ``a @ R`` is
    K-means on the upsampled maps (docs/derivations.md, section 3).  U = U_h (x) U_w, hence
    U^T U = (U_h^T U_h) (x) (U_w^T U_w) and R = R_h (x) R_w with each factor from a symmetric
    eigendecomposition (valid also where U^T U is only semi-definite)."""
    roots = []
    for n_in, n_out in zip(grid, size):
        u = interpolation_matrix(n_in, n_out, device=device, dtype=torch.float64)
        evals, evecs = torch.linalg.eigh(u.T @ u)
        roots.append(evecs * evals.clamp_min(0).sqrt())
    return torch.kron(roots[0], roots[1]).float()


def baseline_value(kind: Baseline, mean: Sequence[float] | None, std: Sequence[float] | None, like: torch.Tensor) -> torch.Tensor | None:
    """The normalized-space value that masked pixels take: None for the dataset mean colour (0 after
    normalization, the paper's code), or the normalized value of a black pixel."""
    if kind == "mean":
        return None
    if kind != "black":
        raise ValueError(f"unknown mask baseline {kind!r}; use 'mean' or 'black'")
    if mean is None or std is None:
        raise ValueError("the 'black' mask baseline needs the model's pixel_mean and pixel_std")
    m = torch.as_tensor(mean, dtype=like.dtype, device=like.device)
    s = torch.as_tensor(std, dtype=like.dtype, device=like.device)
    return (-m / s).view(1, -1, 1, 1)


def mask_input(images: torch.Tensor, masks: torch.Tensor, baseline: torch.Tensor | None = None) -> torch.Tensor:
    """x (.) M in normalized input space (Eq. 5): images [N, 3, H, W], masks [N, H, W].

    With a baseline value b the masked-out part becomes b: M x + (1 - M) b."""
    m = masks.unsqueeze(1).to(images.dtype)
    out = images * m
    if baseline is not None:
        out = out + (1 - m) * baseline
    return out


def descending_rank(scores: torch.Tensor) -> torch.Tensor:
    """Rank [B, K] of each score in its row, 0 for the largest; ties rank the lower index first."""
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices
    return torch.empty_like(order).scatter_(1, order, torch.arange(scores.shape[1], device=scores.device).expand_as(order))
