"""ShapleyCAM (Cai, "CAMs as Shapley Value-based Explainers", arXiv:2501.06261, 2025)."""
from __future__ import annotations

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from cluscam.base import Capture, PassCount

from ._weighted import WeightedCAM


class ShapleyCAM(WeightedCAM):
    """Weights from a second-order Taylor expansion of the Shapley value of each channel:
    w_k = mean_ij (g - 1/2 H A)_k(i, j), g and H the gradient and Hessian of the utility with
    respect to the layer output A, H A a Hessian-vector product, and the utility the paper's ReST
    score u_c(z) = z_c - CE(z, c) = z_c + log softmax(z)_c (as pytorch-grad-cam's ShapleyCAM
    with its ClassifierOutputReST target).  One forward and two backward passes per image
    (the gradient, kept differentiable, and the Hessian-vector product)."""

    display_name = "ShapleyCAM"
    uses_gradients = True

    def capture(self, images: torch.Tensor, targets=None) -> Capture:
        # The fused attention kernels have no double backward: record the math kernel's graph.
        with sdpa_kernel(SDPBackend.MATH):
            return super().capture(images, targets)

    create_graph = True  # the Hessian-vector product differentiates the gradient again

    def target_score(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        # The ReST utility z_c - CE(z, c) = z_c + log softmax(z)_c.
        return super().target_score(logits + logits.log_softmax(dim=1), targets)

    @classmethod
    def expected_passes(cls, shape: tuple[int, int, int], **options) -> PassCount:
        """1 forward (the capture) + 2 backward (the gradient and the Hessian-vector product)."""
        cls._dims(shape)
        cls._options(options)
        return PassCount(forward=1.0, backward=2.0)

    def channel_weights(self, cap: Capture) -> torch.Tensor:
        g = cap.gradient
        # H A = d(g . A)/dA with A held fixed in the product (the double-backward trick)
        hvp = self.gradient((g * cap.activation.detach()).sum(), cap.activation, create_graph=False)
        return (cap.grad_maps - 0.5 * self.layer.maps(hvp)).mean(dim=(2, 3))
