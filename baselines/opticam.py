"""Opti-CAM (Zhang et al., CVIU 2024): a saliency map that is a combination of the hooked feature maps,
with per-image weights optimized so that the masked image keeps the target logit.

Per image (paper Sec. 3, official ``Basic_OptCAM``): u = 0.5 * ones(C), alpha = softmax(u),
S(u) = sum_k alpha_k ReLU(F_k), mask = MinMax(Upsample(S(u))) (bilinear, align_corners=False), and u
is optimized with Adam on the logit f_c(x (.) mask).  All images of a chunk are optimized together:
the loss is a sum over images and Adam is elementwise, so each image's weights see only its own
gradient and a batch equals each image alone.

Settings (``preset``; explicit ``max_iter``/``lr``/``loss`` override it):
- ``cluscam``: what the ClusCAM paper's comparison ran: 50 iterations, lr 0.1, loss ``norm``.
- ``official``: the defaults of the official script ``generate_opticam.py`` and the paper's objective
  (maximize the masked logit): 50 iterations, lr 0.1, loss ``plain``.
  (The official class's own defaults, 100 iterations at lr 0.01 with ``norm``, are not used by its script.)
Losses: ``plain`` = f_c(x) - f_c(x (.) mask), i.e. maximize the masked logit (paper); ``norm`` =
|f_c(x) - f_c(x (.) mask)| (official code), the masked logit pulled towards the original one.

The official code masks the image in pixel space (masked pixels black): ``baseline='black'`` with the
model's pixel_mean/pixel_std reproduces that; the default ``mean`` baseline multiplies the normalized input.
Early stopping (official code): every max_iter // 10 steps, an image whose loss rose since the last
check stops and keeps the map of that step; decided per image here (the official code decides for its
whole batch, which equals per image at batch size 1).  Passes per image: 1 forward, then per iteration
1 forward and 1 backward.
"""
from __future__ import annotations

import math
from typing import Literal

import torch

from cluscam.base import Capture, Explainer, PassCount
from cluscam.ops import baseline_value, mask_input, minmax, upsample

Loss = Literal["norm", "plain"]
LOSSES: tuple[str, ...] = ("norm", "plain")
PRESETS: dict[str, dict] = {
    "cluscam": {"max_iter": 50, "lr": 0.1, "loss": "norm"},
    "official": {"max_iter": 50, "lr": 0.1, "loss": "plain"},
}


class OptiCAM(Explainer):
    """Opti-CAM for a batch; see the module docstring for ``preset``, ``loss`` and ``early_stop``."""

    display_name = "OptiCAM"

    def __init__(
        self,
        model,
        layer,
        *,
        preset: str = "cluscam",
        max_iter: int | None = None,
        lr: float | None = None,
        loss: Loss | None = None,
        early_stop: bool = True,
        **kwargs,
    ) -> None:
        super().__init__(model, layer, **kwargs)
        self.max_iter, self.lr, self.loss = self.settings(preset, max_iter, lr, loss)
        self.early_stop = early_stop

    @staticmethod
    def settings(preset: str, max_iter: int | None, lr: float | None, loss: Loss | None) -> tuple[int, float, Loss]:
        """(max_iter, lr, loss): the preset's, overridden by the explicit ones that are not None."""
        if preset not in PRESETS:
            raise ValueError(f"unknown OptiCAM preset {preset!r}; use one of {sorted(PRESETS)}")
        given = {"max_iter": max_iter, "lr": lr, "loss": loss}
        cfg = {**PRESETS[preset], **{k: v for k, v in given.items() if v is not None}}
        if int(cfg["max_iter"]) != cfg["max_iter"] or cfg["max_iter"] < 1:
            raise ValueError(f"max_iter must be a positive integer, got {cfg['max_iter']}")
        if not cfg["lr"] > 0:
            raise ValueError(f"lr (Adam learning rate) must be > 0, got {cfg['lr']}")
        if cfg["loss"] not in LOSSES:
            raise ValueError(f"unknown OptiCAM loss {cfg['loss']!r}; use one of {LOSSES}")
        return int(cfg["max_iter"]), float(cfg["lr"]), cfg["loss"]

    @classmethod
    def expected_passes(cls, shape: tuple[int, int, int], **options) -> PassCount:
        """1 + max_iter forward and max_iter backward: the capture, then per Adam step one masked input
        and its gradient (max_iter from ``preset`` unless given).  With ``early_stop`` (the default) an
        upper bound: a chunk of images runs until all of them have stopped, at the earliest after
        max(1, max_iter // 10) + 1 steps."""
        cls._dims(shape)
        opts = cls._options(options)
        steps, _, _ = cls.settings(opts["preset"], opts["max_iter"], opts["lr"], opts["loss"])
        return PassCount(forward=1.0 + steps, backward=float(steps))

    def saliency(self, cap: Capture) -> torch.Tensor:
        feats = cap.maps.float().relu()  # official: ReLU on the hooked features
        f0 = cap.logits.gather(1, cap.targets[:, None])[:, 0].float()  # f_c(x)
        parts = zip(cap.images.split(self.chunk_size), feats.split(self.chunk_size),
                    cap.targets.split(self.chunk_size), f0.split(self.chunk_size))
        with torch.enable_grad():
            return torch.cat([self._optimize(*part) for part in parts])

    @staticmethod
    def combine(u: torch.Tensor, feats: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """MinMax(Upsample(sum_k softmax(u)_k F_k)) [B, H, W] for weights u [B, C], maps [B, C, h, w]."""
        sal = (u.softmax(1)[:, :, None, None] * feats).sum(1)  # elementwise: stays float32 under autocast
        return minmax(upsample(sal, size))

    def _optimize(self, images: torch.Tensor, feats: torch.Tensor, targets: torch.Tensor,
                  f0: torch.Tensor) -> torch.Tensor:
        """The optimized masks [B, H, W] of one chunk of images."""
        b, size = images.shape[0], tuple(images.shape[-2:])
        base = baseline_value(self.baseline, self.pixel_mean, self.pixel_std, images)
        u = torch.full(feats.shape[:2], 0.5, device=feats.device, requires_grad=True)  # official init
        opt = torch.optim.Adam([u], lr=self.lr)
        every = max(1, self.max_iter // 10)
        prev = torch.full((b,), math.inf, device=feats.device)
        stopped = torch.zeros(b, dtype=torch.bool, device=feats.device)
        kept = torch.zeros(b, *size, device=feats.device)
        for step in range(self.max_iter):
            mask = self.combine(u, feats, size)
            f = self.logits(mask_input(images, mask, base)).gather(1, targets[:, None])[:, 0].float()
            loss = (f0 - f).abs() if self.loss == "norm" else f0 - f
            u.grad = self.gradient(loss.sum(), u)
            opt.step()
            if self.early_stop and step % every == 0:
                loss = loss.detach()
                worse = ~stopped & (loss > prev)
                kept = torch.where(worse[:, None, None], mask.detach(), kept)
                stopped |= worse
                prev = loss
                if bool(stopped.all()):
                    break
        return torch.where(stopped[:, None, None], kept, self.combine(u, feats, size).detach())
