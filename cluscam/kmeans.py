"""Batched K-means++ on the device (paper Sec. 3.4: "We adopt K-means++ clustering").

One call clusters B independent problems [B, N, d] at once.  The initialization is scikit-learn's
greedy k-means++ (2 + log K candidates per step, keep the one that lowers the potential most),
followed by Lloyd iterations with scikit-learn's stopping rule.  Random draws are the same for
every problem in the batch and come from a seeded CPU generator, so a batch gives the same
partition as each of its problems alone, on any device.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass
class KMeansResult:
    """labels [B, N]; centroids [B, K, d] (the means of their members); counts [B, K];
    inertia [B] (sum of squared distances to the assigned centroid); n_iter (Lloyd steps run)."""

    labels: torch.Tensor
    centroids: torch.Tensor
    counts: torch.Tensor
    inertia: torch.Tensor
    n_iter: int


def _sq_dist(x: torch.Tensor, x_sq: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Squared distances [B, N, K] between points x [B, N, d] and centers c [B, K, d]."""
    d = torch.baddbmm(x_sq.unsqueeze(-1), x, c.transpose(1, 2), alpha=-2.0)
    return (d + (c * c).sum(-1).unsqueeze(1)).clamp_min_(0)


def _kmeanspp(x: torch.Tensor, x_sq: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
    """Greedy k-means++ seeding (Arthur & Vassilvitskii 2007; scikit-learn's variant)."""
    b, n, d = x.shape
    trials = 2 + int(math.log(k))
    draws = torch.rand(1 + (k - 1) * trials, generator=gen, dtype=torch.float64).to(x.device)
    batch = torch.arange(b, device=x.device)
    first = (draws[0] * n).long().clamp_max(n - 1).expand(b)
    centers = x.new_empty(b, k, d)
    centers[:, 0] = x[batch, first]
    closest = _sq_dist(x, x_sq, centers[:, :1]).squeeze(-1)  # [B, N]
    for step in range(1, k):
        u = draws[1 + (step - 1) * trials: 1 + step * trials]
        cum = closest.double().cumsum(1)
        total = cum[:, -1:]
        # D^2 sampling by inverse CDF; a problem with zero potential (all points already centers)
        # falls back to uniform sampling.
        uniform = (u * n).long().clamp_max(n - 1).expand(b, trials)
        picked = torch.searchsorted(cum, u.unsqueeze(0) * total).clamp_max(n - 1)
        cand = torch.where(total > 0, picked, uniform)  # [B, trials]
        cand_pts = x[batch.unsqueeze(1), cand]  # [B, trials, d]
        cand_d = torch.minimum(_sq_dist(x, x_sq, cand_pts), closest.unsqueeze(-1))  # [B, N, trials]
        best = cand_d.sum(1).argmin(1)  # [B]
        centers[:, step] = cand_pts[batch, best]
        closest = cand_d[batch, :, best]
    return centers


def _means(x: torch.Tensor, labels: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    onehot = torch.zeros(*labels.shape, k, device=x.device, dtype=x.dtype)
    onehot.scatter_(2, labels.unsqueeze(-1), 1.0)
    counts = onehot.sum(1)  # [B, K]
    sums = torch.bmm(onehot.transpose(1, 2), x)
    return sums / counts.clamp_min(1).unsqueeze(-1), counts


def kmeans(
    x: torch.Tensor,
    k: int,
    *,
    seed: int = 0,
    n_init: int = 1,
    max_iter: int = 300,
    tol: float = 1e-4,
    n_features: int | None = None,
) -> KMeansResult:
    """Cluster each of the B problems in ``x`` [B, N, d] into ``k`` groups (k <= N).

    ``tol`` is relative to the mean per-feature variance of each problem, as in scikit-learn
    (``_tolerance``: tol * mean(var(X, axis=0))).  ``n_features``: the dimension of the space the
    points are an isometric image of, whose mean variance that is (total variance / n_features; the
    H*W pixels for upsampled maps clustered as ``maps @ R``, docs/derivations.md section 4); default
    d.  ``n_init`` runs that many seedings and keeps the lowest inertia per problem."""
    if x.dim() != 3:
        raise ValueError(f"kmeans expects [B, N, d] points, got shape {tuple(x.shape)}")
    b, n, _ = x.shape
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, N={n}], got {k}")
    x = x.float()
    gen = torch.Generator().manual_seed(seed)
    x_sq = (x * x).sum(-1)
    centers = torch.cat([_kmeanspp(x, x_sq, k, gen) for _ in range(n_init)])
    xs, xs_sq = x.repeat(n_init, 1, 1), x_sq.repeat(n_init, 1)  # the seedings run as one batch
    features = x.shape[-1] if n_features is None else n_features
    thresh = (tol * x.var(1, unbiased=False).sum(-1) / features).repeat(n_init)  # [B * n_init]
    labels = _sq_dist(xs, xs_sq, centers).argmin(-1)
    done = torch.zeros(xs.shape[0], dtype=torch.bool, device=x.device)
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        new_centers, counts = _means(xs, labels, k)
        dist = _sq_dist(xs, xs_sq, new_centers)
        empty = counts == 0
        if bool(empty.any()):
            new_centers, dist = _relocate_empty(xs, xs_sq, new_centers, dist, labels, empty)
        new_labels = dist.argmin(-1)
        shift = ((new_centers - centers) ** 2).sum((1, 2))
        keep = done.view(-1, 1, 1)
        centers = torch.where(keep, centers, new_centers)
        stable = (new_labels == labels).all(1) | (shift <= thresh)
        labels = torch.where(done.unsqueeze(1), labels, new_labels)
        done = done | stable
        if bool(done.all()):
            break
    centers, counts = _means(xs, labels, k)
    inertia = (xs - centers.gather(1, labels.unsqueeze(-1).expand_as(xs))).pow(2).sum((1, 2))
    if n_init > 1:
        best = inertia.view(n_init, b).argmin(0) * b + torch.arange(b, device=x.device)
        labels, centers, counts, inertia = labels[best], centers[best], counts[best], inertia[best]
    return KMeansResult(labels, centers, counts, inertia, n_iter)


def _relocate_empty(x, x_sq, centers, dist, labels, empty):
    """Move each empty cluster onto one of the points farthest from their current centroid
    (scikit-learn's rule), the farthest point going to the first empty cluster."""
    b = x.shape[0]
    own = dist.gather(2, labels.unsqueeze(-1)).squeeze(-1)  # [B, N]
    far = torch.argsort(own, dim=1, descending=True, stable=True)  # [B, N]
    rank = (empty.long().cumsum(1) - 1).clamp_min(0)  # e-th empty cluster -> e-th farthest point
    pts = x[torch.arange(b, device=x.device).unsqueeze(1), far.gather(1, rank)]  # [B, K, d]
    centers = torch.where(empty.unsqueeze(-1), pts, centers)
    return centers, _sq_dist(x, x_sq, centers)
