"""The form every baseline here shares: a saliency map that is a weighted sum of the hooked
layer's channel maps, CAM = ReLU(sum_k w_k A_k) (Grad-CAM, Selvaraju et al. 2017, Eq. 2); each
method states only its weights w [B, C]."""
from __future__ import annotations

from abc import abstractmethod

import torch

from cluscam.base import Capture, Explainer


class WeightedCAM(Explainer):
    """An explainer whose map is ReLU(sum_k w_k A_k) over the channel view of the hooked layer
    (prefix tokens dropped, as pytorch-grad-cam's ViT ``reshape_transform`` does)."""

    @abstractmethod
    def channel_weights(self, cap: Capture) -> torch.Tensor:
        """The weights w [B, C] of the C channel maps."""

    def saliency(self, cap: Capture) -> torch.Tensor:
        w = self.channel_weights(cap).detach().float()
        return torch.einsum("bc,bchw->bhw", w, cap.maps.detach().float()).relu()
