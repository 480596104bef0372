"""Grad-CAM (Selvaraju et al., ICCV 2017)."""
from __future__ import annotations

import torch

from cluscam.base import Capture

from ._weighted import WeightedCAM


class GradCAM(WeightedCAM):
    """Weights are the spatially averaged gradients of the target logit (Eq. 1):
    w_k = 1/Z sum_ij d y_c / d A_k(i, j).  One forward and one backward pass per image."""

    display_name = "GradCAM"
    uses_gradients = True

    def channel_weights(self, cap: Capture) -> torch.Tensor:
        return cap.grad_maps.mean(dim=(2, 3))
