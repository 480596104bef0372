"""Grad-CAM++ (Chattopadhay et al., WACV 2018; equations numbered as in arXiv:1710.11063)."""
from __future__ import annotations

import torch

from cluscam.base import Capture, PassCount

from ._weighted import WeightedCAM


class GradCAMPlusPlus(WeightedCAM):
    """Weights w_k = sum_ij alpha_k(i, j) ReLU(g_k(i, j)) (Eq. 7) with the closed form of Eq. 19,
    alpha = g^2 / (2 g^2 + sum_ab A_k(a, b) g^3), g the gradient of the target logit (the exp
    of Eq. 19's derivation cancels in alpha and scales w per image only).

    eps: added to the denominator; pytorch-grad-cam (which the ClusCAM paper ran) adds 1e-6, which
    matters when gradients are small; 0 gives Eq. 19 exactly.  alpha = 0 where g = 0 or the
    denominator vanishes.  One forward and one backward pass per image."""

    display_name = "GradCAM++"
    uses_gradients = True

    def __init__(self, model, layer, *, eps: float = 1e-6, **kwargs) -> None:
        super().__init__(model, layer, **kwargs)
        if not eps >= 0:
            raise ValueError(f"eps (added to the Grad-CAM++ denominator) must be >= 0, got {eps}")
        self.eps = eps

    @classmethod
    def expected_passes(cls, shape: tuple[int, int, int], **options) -> PassCount:
        """1 forward (the capture) + 1 backward (its gradient), whatever the shape."""
        cls._dims(shape)
        cls._options(options)
        return PassCount(forward=1.0, backward=1.0)

    def channel_weights(self, cap: Capture) -> torch.Tensor:
        g, a = cap.grad_maps.detach().float(), cap.maps.detach().float()
        g2 = g * g
        denom = 2 * g2 + a.sum(dim=(2, 3), keepdim=True) * g2 * g + self.eps  # Eq. 19
        ok = (g != 0) & (denom != 0)
        alpha = torch.where(ok, g2 / torch.where(ok, denom, torch.ones_like(denom)), torch.zeros_like(g))
        return (alpha * g.relu()).sum(dim=(2, 3))  # Eq. 7
