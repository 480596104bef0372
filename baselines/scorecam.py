"""Score-CAM (Wang et al., CVPR Workshops 2020)."""
from __future__ import annotations

import torch

from cluscam.base import Capture, PassCount
from cluscam.ops import normalize_upsampled

from ._weighted import WeightedCAM


class ScoreCAM(WeightedCAM):
    """Weights from the target logit of the input masked by each channel map (Sec. 3, Def. 1-2):
    H_k = s(Up(A_k)) (bilinear upsampling to the input size, then min-max), score_k = f_c(X (.) H_k)
    (subtracting the baseline's score f_c(X_b) would change nothing after the softmax),
    w = softmax_k(score) over channels, as pytorch-grad-cam does (the code the ClusCAM paper ran).

    align_corners: of the mask upsampling; pytorch-grad-cam uses ``UpsamplingBilinear2d``
    (align_corners=True), the official Score-CAM code align_corners=False.  The masked inputs run
    ``chunk_size`` at a time: 1 + C forward passes per image."""

    display_name = "ScoreCAM"

    def __init__(self, model, layer, *, align_corners: bool = True, **kwargs) -> None:
        super().__init__(model, layer, **kwargs)
        if not isinstance(align_corners, bool):
            raise ValueError(f"align_corners must be True or False, got {align_corners!r}")
        self.align_corners = align_corners

    @classmethod
    def expected_passes(cls, shape: tuple[int, int, int], **options) -> PassCount:
        """1 + C forward: the capture and one masked input per channel map (in any chunking)."""
        c, _, _ = cls._dims(shape)
        cls._options(options)
        return PassCount(forward=1.0 + c)

    def channel_weights(self, cap: Capture) -> torch.Tensor:
        # s(Up(A_k)) applied at low resolution (exact: upsampling is linear and keeps constants)
        masks = normalize_upsampled(cap.maps.float(), cap.size, "zero", self.align_corners)
        scores = self.masked_target_logits(cap.images, masks, cap.targets, align_corners=self.align_corners)
        return scores.float().softmax(dim=1)
