"""Grad-CAM (Selvaraju et al., ICCV 2017)."""
from __future__ import annotations

import torch

from cluscam.base import Capture, PassCount

from ._weighted import WeightedCAM


class GradCAM(WeightedCAM):
    """Weights are the spatially averaged gradients of the target logit (Eq. 1):
    w_k = 1/Z sum_ij d y_c / d A_k(i, j).  One forward and one backward pass per image."""

    display_name = "GradCAM"
    uses_gradients = True

    @classmethod
    def expected_passes(cls, shape: tuple[int, int, int], **options) -> PassCount:
        """1 forward (the capture) + 1 backward (its gradient), whatever the shape."""
        cls._dims(shape)
        cls._options(options)
        return PassCount(forward=1.0, backward=1.0)

    def channel_weights(self, cap: Capture) -> torch.Tensor:
        return cap.grad_maps.mean(dim=(2, 3))
