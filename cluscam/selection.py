"""Data-driven choice of ClusCAM's K, r and tau (paper Sec. 3.4, Appendix B: Alg. 2, Alg. 3, Eq. 10)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np
import torch
from sklearn.mixture import GaussianMixture

from .cluscam import ClusCAM


def elbow(ks: Sequence[int], proxy: Sequence[float]) -> tuple[int, np.ndarray]:
    """Alg. 2: K* = argmax_j C(K_j) over j = 3..M, with S(K_j) = dP/dK (lines 7-11) and the
    discrete curvature C(K_j) = (S(K_j) - S(K_{j-1})) / (K_j - K_{j-1}) (line 13).

    Returns K* and C aligned with ``ks`` (NaN where undefined, j = 1, 2)."""
    k = np.asarray(ks, dtype=float)
    p = np.asarray(proxy, dtype=float)
    if k.ndim != 1 or k.shape != p.shape or len(k) < 3:
        raise ValueError("elbow needs at least 3 candidate K values with one proxy value each")
    if np.any(np.diff(k) <= 0):
        raise ValueError(f"candidate K values must be strictly ascending, got {list(ks)}")
    dk = np.diff(k)  # Delta K(K_j), j = 2..M
    slope = np.diff(p) / dk  # S(K_j), j = 2..M
    curvature = np.full(len(k), np.nan)
    curvature[2:] = np.diff(slope) / dk[1:]  # C(K_j), j = 3..M
    return int(k[2 + int(np.argmax(curvature[2:]))]), curvature


def discard_ratio(scores: np.ndarray | torch.Tensor, seed: int = 0) -> float:
    """Alg. 3 / Eq. 9: fit a 2-component Gaussian mixture to all validation scores and return the
    mean posterior probability of the component with the lower mean (the non-salient one)."""
    s = torch.as_tensor(scores).detach().cpu().double().reshape(-1, 1).numpy()
    s = s[np.isfinite(s[:, 0])]
    if len(s) < 2:
        raise ValueError("discard_ratio needs at least two finite scores")
    gmm = GaussianMixture(n_components=2, random_state=seed).fit(s)
    non_salient = int(np.argmin(gmm.means_[:, 0]))  # Alg. 3 line 4: salient = argmax mean
    return float(gmm.predict_proba(s)[:, non_salient].mean())


def temperature(r: float, k: int) -> float:
    """Eq. 10: tau = 1 / log(1 + r K)."""
    if not (r > 0 and k >= 1):
        raise ValueError(f"Eq. 10 needs r > 0 and K >= 1, got r={r}, K={k}")
    return 1.0 / math.log1p(r * k)


@dataclass
class Selection:
    """The chosen (k, r, tau) and the curves behind them: the candidate ks, the proxy P(K) (Eq. 8),
    the curvature C(K) (Alg. 2) and the flattened validation scores at K* (Alg. 3's input)."""

    k: int
    r: float
    tau: float
    ks: list[int]
    proxy: list[float]
    curvature: list[float]
    scores: np.ndarray = field(repr=False)


def _batches(images) -> Iterable[tuple[torch.Tensor, torch.Tensor | None]]:
    if isinstance(images, torch.Tensor):
        yield images, None
        return
    for batch in images:
        if isinstance(batch, torch.Tensor):
            yield batch, None
        else:
            yield batch[0], batch[1]


def select_hyperparameters(
    model,
    layer,
    images,
    ks: Sequence[int] = tuple(range(5, 101, 5)),
    *,
    seed: int = 0,
    **cluscam_options,
) -> Selection:
    """Choose K by Alg. 2, r by Alg. 3 and tau by Eq. 10 on validation ``images``: a tensor
    [N, 3, H, W] or an iterable of batches (tensors or (images, targets) pairs; a generator is
    consumed once, the batches are kept for every K).  ``cluscam_options`` go to :class:`ClusCAM`
    (grouping, metric, chunk_size, ...).  P(K) (Eq. 8) averages the logit differences of all
    non-empty groups over all images."""
    batches = list(_batches(images))
    if not batches:
        raise ValueError("select_hyperparameters needs at least one validation image")
    proxy, all_scores = [], []
    for k in ks:
        cam = ClusCAM(model, layer, k=k, seed=seed, **cluscam_options)
        scores = []
        for x, t in batches:
            s, meta = cam.group_scores(x, t)
            scores.append(s[meta.valid])
        flat = torch.cat(scores)
        proxy.append(float(flat.double().mean()))  # Eq. 8
        all_scores.append(flat)
    k_star, curvature = elbow(ks, proxy)
    chosen = all_scores[list(ks).index(k_star)].cpu().numpy()
    r = discard_ratio(chosen, seed=seed)
    return Selection(k_star, r, temperature(r, k_star), list(ks), proxy, curvature.tolist(), chosen)
