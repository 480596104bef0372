"""ClusCAM (paper Sec. 3, Alg. 1): clustered meta-representations scored by logit differences."""
from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from .base import Capture, Explainer, PassCount
from .kmeans import kmeans
from .ops import descending_rank, normalize_upsampled, upsampling_metric_root

Grouping = Literal["channels", "tokens"]
Metric = Literal["upsampled", "lowres"]
Clustering = Literal["kmeans", "none", "spectral", "hdbscan"]
Weighting = Literal["softmax", "logit"]
CLUSTERINGS: tuple[str, ...] = ("kmeans", "none", "spectral", "hdbscan")
WEIGHTINGS: tuple[str, ...] = ("softmax", "logit")


@dataclass
class MetaRepresentations:
    """K groups per image: low-resolution maps [B, K, h, w] whose bilinear upsampling is M_j
    (Eq. 4), which groups are non-empty [B, K], and each representation's group [B, N]."""

    maps: torch.Tensor
    valid: torch.Tensor
    labels: torch.Tensor


class ClusCAM(Explainer):
    """ClusCAM for a batch (Alg. 1): the hooked layer's representations clustered into K groups, each
    group's meta-representation scored by the logit change it causes, the top groups softmax-weighted.

    Args:
        model, layer: as for :class:`Explainer` (and its keyword options, e.g. ``chunk_size``).
        k, r, tau: number of groups, discarding ratio in [0, 1) and softmax temperature (Table 3).
        grouping: ``channels`` clusters the C maps of the hooked layer (each a p*q vector; CNNs and
            the public code's ViT hooks), ``tokens`` clusters its patch tokens (each a D vector; a
            token group's map is the indicator of its grid cells).
        metric: (channels only) ``upsampled`` clusters the normalized, upsampled maps as the public
            code does, computed exactly at low resolution; ``lowres`` clusters the raw p*q vectors
            as Alg. 1 line 2 reads.
        final_relu: the public code's ReLU before the last min-max.
        seed, n_init: K-means++ seeding.
        clustering: ``kmeans``, or the ablations of Fig. 5, ``none`` / ``spectral`` / ``hdbscan``
            (see :meth:`partition`).
        weighting: ``softmax`` (discarding + Eq. 6), or ``logit``: the raw scores as weights (the
            paper's "only logit").  "Only softmax" is r=0, tau=1; "discarding softmax" tau=1; "only
            temperature softmax" r=0.

    Returns:
        Called on images [B, 3, H, W] (and optional targets [B]): saliency maps [B, H, W] in [0, 1],
        at a cost of 1 + K forward passes per image (``last_passes``).

    Raises:
        ValueError: an option out of range (k < 1, r outside [0, 1), tau <= 0) or an unknown
            grouping, metric, clustering or weighting.

    Example:
        >>> from cluscam import ClusCAM
        >>> cam = ClusCAM(model, "layer4", k=30, r=0.3712, tau=0.4)
        >>> maps = cam(images)  # [B, H, W]
    """

    display_name = "ClusCAM"
    proposed = True

    def __init__(
        self,
        model,
        layer,
        *,
        k: int = 30,
        r: float = 0.3712,
        tau: float = 0.40,
        grouping: Grouping = "channels",
        metric: Metric = "upsampled",
        final_relu: bool = False,
        seed: int = 0,
        n_init: int = 1,
        clustering: Clustering = "kmeans",
        weighting: Weighting = "softmax",
        **kwargs,
    ) -> None:
        super().__init__(model, layer, **kwargs)
        self._check(k, r, tau, grouping, metric, clustering, weighting)
        self.clustering, self.weighting = clustering, weighting
        self.k, self.r, self.tau = k, r, tau
        self.grouping, self.metric, self.final_relu = grouping, metric, final_relu
        self.seed, self.n_init = seed, n_init
        self._roots: dict[tuple, torch.Tensor] = {}

    @staticmethod
    def _check(k, r, tau, grouping, metric, clustering, weighting) -> None:
        """Raise a ValueError for an option out of range or unknown."""
        if not isinstance(k, numbers.Integral) or isinstance(k, bool) or k < 1:
            raise ValueError(f"k (number of groups) must be an integer >= 1, got {k!r}")
        if not 0 <= r < 1:
            raise ValueError(f"r (discarding ratio) must be in [0, 1), got {r}; Table 3 gives percents, divide by 100")
        if not tau > 0:
            raise ValueError(f"tau (temperature) must be > 0, got {tau}")
        if grouping not in ("channels", "tokens"):
            raise ValueError(f"unknown grouping {grouping!r}; use 'channels' or 'tokens'")
        if metric not in ("upsampled", "lowres"):
            raise ValueError(f"unknown clustering metric {metric!r}; use 'upsampled' or 'lowres'")
        if clustering not in CLUSTERINGS:
            raise ValueError(f"unknown clustering {clustering!r}; use one of {CLUSTERINGS}")
        if weighting not in WEIGHTINGS:
            raise ValueError(f"unknown weighting {weighting!r}; use one of {WEIGHTINGS}")

    @classmethod
    def expected_passes(cls, shape: tuple[int, int, int], **options) -> PassCount:
        """1 + K forward: the capture and one masked input per group (empty groups included), for N
        representations (C channel maps with grouping ``channels``, h*w patch tokens with ``tokens``)
        and K = min(k, N) (:meth:`partition`), K = N with clustering ``none``.  Upper bounds where the
        clustering decides K: ``spectral`` (the batch's largest label + 1, at most min(k, N)) and
        ``hdbscan`` (at most N // 2 groups of >= 2, or N when it finds none: N)."""
        c, h, w = cls._dims(shape)
        o = cls._options(options)
        cls._check(o["k"], o["r"], o["tau"], o["grouping"], o["metric"], o["clustering"], o["weighting"])
        n = h * w if o["grouping"] == "tokens" else c
        return PassCount(forward=1.0 + (n if o["clustering"] in ("none", "hdbscan") else min(o["k"], n)))

    @classmethod
    def effective_options(cls, shape: tuple[int, int, int], **options) -> dict[str, Any]:
        """A given k above the N representations runs as k = N (:meth:`_k_for`): recorded so."""
        o = cls._options(options)
        c, h, w = cls._dims(shape)
        n = h * w if o["grouping"] == "tokens" else c
        clamp = "k" in options and o["clustering"] not in ("none", "hdbscan") and options["k"] > n
        return {**options, "k": n} if clamp else options

    # -- Alg. 1 lines 1-6: grouping ------------------------------------------------------------------
    def meta_representations(self, cap: Capture) -> MetaRepresentations:
        """The groups of each image and their meta-representations M_j (Eq. 4), as low-resolution
        maps whose bilinear upsampling is M_j."""
        if self.grouping == "tokens":
            tokens = cap.tokens.float()  # [B, T, D]
            b, (h, w) = tokens.shape[0], cap.maps.shape[-2:]
            labels, k = self.partition(tokens)
            indicator = self._one_hot(labels, k).transpose(1, 2).reshape(b, k, h, w)  # a group's grid cells
            return MetaRepresentations(normalize_upsampled(indicator, cap.size), indicator.flatten(2).any(2), labels)
        maps = cap.maps.float()  # [B, C, h, w]
        b, _, h, w = maps.shape
        normed = normalize_upsampled(maps, cap.size)  # Upsample(normed) = Normalize(Upsample(F))
        if self.metric == "upsampled":
            # ||U a - U b|| = ||(a - b) R||: clustering normed @ R is clustering the upsampled maps,
            # with scikit-learn's tolerance of that H*W-pixel space (docs/derivations.md, sections 3-4).
            points = normed.flatten(2) @ self._root((h, w), cap.size, maps.device)
            labels, k = self.partition(points, n_features=cap.size[0] * cap.size[1])
        else:
            labels, k = self.partition(maps.flatten(2))  # Alg. 1 line 2: the flattened p x q maps
        onehot = self._one_hot(labels, k)  # [B, C, K]
        counts = onehot.sum(1)
        meta = torch.bmm(onehot.transpose(1, 2), normed.flatten(2)) / counts.clamp_min(1).unsqueeze(-1)  # Eq. 4
        return MetaRepresentations(meta.view(b, k, h, w), counts > 0, labels)

    def partition(self, points: torch.Tensor, n_features: int | None = None) -> tuple[torch.Tensor, int]:
        """Group labels [B, N] of the representations (-1: in no group) and the number of groups.

        ``kmeans``: K-means++ on the device (Sec. 3.4), its tolerance scaled to ``n_features``
        (:func:`cluscam.kmeans.kmeans`).  The ablations of Fig. 5: ``none`` (each
        representation its own group), ``spectral`` and ``hdbscan`` (scikit-learn on the CPU, one
        image at a time, with the public code's settings; HDBSCAN decides the number of groups and
        leaves noise points out, or makes every point a group when it finds none)."""
        b, n, _ = points.shape
        if self.clustering == "none":
            return torch.arange(n, device=points.device).expand(b, n), n
        k = self._k_for(n)
        if self.clustering == "kmeans":
            return kmeans(points, k, seed=self.seed, n_init=self.n_init, n_features=n_features).labels, k
        labels = [self._sklearn_labels(x, k) for x in points.detach().cpu().double().numpy()]
        k = max(int(lab.max()) + 1 for lab in labels)
        return torch.as_tensor(np.stack(labels), dtype=torch.long, device=points.device), k

    def _sklearn_labels(self, x: np.ndarray, k: int) -> np.ndarray:
        from sklearn.cluster import HDBSCAN, SpectralClustering
        from sklearn.preprocessing import StandardScaler

        if self.clustering == "spectral":
            return SpectralClustering(n_clusters=k, affinity="nearest_neighbors", n_neighbors=min(len(x) - 1, max(10, 2 * k)),
                                      assign_labels="kmeans", random_state=self.seed).fit_predict(StandardScaler().fit_transform(x))
        try:
            labels = HDBSCAN(min_cluster_size=2, cluster_selection_epsilon=0.05, copy=True).fit_predict(x)
        except TypeError as err:  # scikit-learn#33219: the epsilon merge fails on NumPy >= 2.4
            raise RuntimeError(f"scikit-learn's HDBSCAN with cluster_selection_epsilon failed ({err}): a known bug of "
                               f"scikit-learn <= 1.9.1 with NumPy >= 2.4 (scikit-learn#33219, NumPy {np.__version__} "
                               "here); install numpy<2.4 as pyproject.toml pins it") from err
        return labels if labels.max() >= 0 else np.arange(len(x))

    @staticmethod
    def _one_hot(labels: torch.Tensor, k: int) -> torch.Tensor:
        """[B, N, K] membership; label -1 belongs to no group."""
        return F.one_hot(labels + 1, k + 1)[..., 1:].float()

    def _k_for(self, n: int) -> int:
        if self.k > n:
            warnings.warn(f"ClusCAM: k={self.k} exceeds the {n} representations; using k={n} (one group each)")
        return min(self.k, n)

    def _root(self, grid: tuple[int, int], size: tuple[int, int], device) -> torch.Tensor:
        key = (grid, size, str(device))
        if key not in self._roots:
            self._roots[key] = upsampling_metric_root(grid, size, device)
        return self._roots[key]

    # -- Alg. 1 lines 7-10: scoring ------------------------------------------------------------------
    def scores(self, cap: Capture, meta: MetaRepresentations) -> torch.Tensor:
        """s_j = f_c(x (.) M_j) - f_c(x) (Eq. 5), raw logits, [B, K]."""
        masked = self.masked_target_logits(cap.images, meta.maps, cap.targets)
        return masked - cap.logits.gather(1, cap.targets[:, None]).float()

    @torch.no_grad()
    def group_scores(self, images: torch.Tensor, targets=None) -> tuple[torch.Tensor, MetaRepresentations]:
        """Scores s_j [B, K] of each image's meta-representations (Eq. 5) with the groups themselves;
        the raw material of the hyperparameter selection (Alg. 2-3) and of Table 1."""
        cap = self.capture(images.to(self.device), targets)
        meta = self.meta_representations(cap)
        return self.scores(cap, meta), meta

    # -- Alg. 1 lines 11-14: discarding and temperature softmax -------------------------------------
    def weights(self, scores: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """alpha [B, K]: drop the floor(r K) lowest-scoring groups (Sec. 3.3), temperature softmax
        over the rest (Eq. 6).  Empty groups count as neither kept nor discarded; ties keep the
        lower group index."""
        if self.weighting == "logit":
            return scores.float().masked_fill(~valid, 0.0)
        s = scores.float().masked_fill(~valid, -math.inf)
        n_valid = valid.sum(1)
        n_keep = n_valid - torch.floor(self.r * n_valid.double()).long()
        kept = (descending_rank(s) < n_keep.unsqueeze(1)) & valid
        return torch.softmax((s / self.tau).masked_fill(~kept, -math.inf), dim=1)

    # -- Alg. 1 lines 15-16 ----------------------------------------------------------------------------
    def saliency(self, cap: Capture) -> torch.Tensor:
        with self.phase("clustering"):
            meta = self.meta_representations(cap)
        return self.combine(self.scores(cap, meta), meta)

    def combine(self, scores: torch.Tensor, meta: MetaRepresentations) -> torch.Tensor:
        """The raw map [B, h, w] from the groups' scores: weights (Eq. 6), weighted sum (Eq. 7)."""
        alpha = self.weights(scores, meta.valid)
        sal = torch.einsum("bk,bkhw->bhw", alpha, meta.maps)  # Eq. 7 (Upsample is linear)
        return sal.relu() if self.final_relu else sal
