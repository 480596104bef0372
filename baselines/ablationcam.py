"""Ablation-CAM (Desai and Ramaswamy, WACV 2020)."""
from __future__ import annotations

import warnings
from typing import Callable, Literal

import torch

from cluscam.base import Capture, PassCount

from ._weighted import WeightedCAM

Ablation = Literal["zero", "min_offset"]
Copies = Literal["auto", "layer", "input"]
ABLATIONS: tuple[str, ...] = ("zero", "min_offset")
COPIES: tuple[str, ...] = ("auto", "layer", "input")


class AblationCAM(WeightedCAM):
    """Weights from the drop of the target logit when one channel map is ablated:
    w_k = (y_c - y_c^k) / y_c (Sec. 3, the "slope"), y_c^k the logit with A_k removed.

    ablation: the value an ablated map takes.  ``min_offset`` (default) is the rule of
    pytorch-grad-cam 1.5.7, which the ClusCAM paper ran (``ablation_layer.AblationLayer.__call__``):
    0 when the image's smallest activation at the layer is 0, else that minimum - 1e7 (layers whose
    outputs can be negative: SiLU / GELU, every ViT patch embedding).  Its loop takes the minimum of
    copies already ablated, so copy i of a chunk gets min - (i + 1) 1e7; this uses min - 1e7 for
    every copy, as the library does with ``batch_size=1``.  ``zero`` sets A_k to 0 as the AblationCAM
    paper does.  For token layouts only the patch tokens of channel k are ablated
    (pytorch-grad-cam's ViT layer also ablates the class token's channel k).

    copies: where the C ablated copies of an image are made.  ``layer``: at the layer's output,
    the network after the layer runs on them (1 forward + C partial passes per image); this needs
    the layer's output to be the only path to the logits (a CNN's last block).  ``input``: the whole
    model runs on C copies of the image and the hook ablates one channel in each (1 + C forward
    passes), which also works when a residual connection bypasses the layer (a ViT block's
    ``norm1``), as pytorch-grad-cam does.  ``auto``: ``layer``, switching to ``input`` (with a
    warning) if the network cannot run after the layer on the copies.  At most ``chunk_size``
    copies run at a time."""

    display_name = "AblationCAM"

    def __init__(self, model, layer, *, ablation: Ablation = "min_offset", copies: Copies = "auto", **kwargs) -> None:
        super().__init__(model, layer, **kwargs)
        if ablation not in ABLATIONS:
            raise ValueError(f"unknown ablation {ablation!r}; use one of {ABLATIONS}")
        if copies not in COPIES:
            raise ValueError(f"unknown copies {copies!r}; use one of {COPIES}")
        self.ablation, self.copies = ablation, copies

    def ablated_value(self, maps: torch.Tensor) -> torch.Tensor:
        """The value [B, 1, 1, 1, 1] an ablated map of each image [B, C, h, w] takes."""
        if self.ablation == "zero":
            return maps.new_zeros(maps.shape[0], 1, 1, 1, 1)
        low = maps.amin(dim=(1, 2, 3)).view(-1, 1, 1, 1, 1)
        return torch.where(low == 0, torch.zeros_like(low), low - 1e7)

    def _ablate(self, chans: torch.Tensor, b: int) -> Callable[[torch.Tensor], torch.Tensor]:
        """The layer-output replacement for ``b`` images: copy j of each image has the channel of
        the one-hot row ``chans[j]`` ([n, C]) ablated; batch b * n, image-major.  The layer's output
        holds one (layer copies) or n (input copies) entries per image."""

        def replace(act: torch.Tensor) -> torch.Tensor:
            maps = self.layer.maps(act)
            maps = maps.reshape(b, -1, *maps.shape[1:])  # [b, 1 or n, C, h, w]
            copies = torch.where(chans[None, :, :, None, None], self.ablated_value(maps[:, 0]), maps)
            return self.layer.from_maps(copies.flatten(0, 1), act)

        return replace

    def _ablated_logits(self, images: torch.Tensor, chans: torch.Tensor) -> torch.Tensor:
        """Logits [b * n] of the n ablated copies of each image."""
        replace = self._ablate(chans, images.shape[0])
        if self.copies != "input":
            try:
                return self.replaced_logits(images, replace)
            except RuntimeError as err:
                if self.copies == "layer" or isinstance(err, torch.OutOfMemoryError):
                    raise
                warnings.warn(f"AblationCAM: the network cannot run after layer {self.layer.path!r} on "
                              f"ablated copies ({err}); a residual connection may bypass it. Using copies='input'.")
                self.copies = "input"
        with self.hooked(replace):
            return self.logits(images.repeat_interleave(len(chans), dim=0))

    @classmethod
    def expected_passes(cls, shape: tuple[int, int, int], **options) -> PassCount:
        """The capture, then one ablated copy per channel: 1 forward + C partial with copies ``layer``
        or ``auto``, 1 + C forward with ``input`` (``ablation`` and ``chunk_size`` change nothing).
        ``auto`` switches to ``input`` at the first call if the network cannot run after the layer
        on the copies (a residual bypass): the C passes are then forward ones, the same total."""
        c, _, _ = cls._dims(shape)
        copies = cls._options(options)["copies"]
        if copies not in COPIES:
            raise ValueError(f"unknown copies {copies!r}; use one of {COPIES}")
        if copies == "input":
            return PassCount(forward=1.0 + c)
        return PassCount(forward=1.0, partial=float(c))

    def channel_weights(self, cap: Capture) -> torch.Tensor:
        b, c = cap.maps.shape[:2]
        # Each call runs the network before the layer on its images once, then the rest on
        # images x n copies (<= chunk_size): as many channels per call as fit, so that the part
        # before the layer runs C / n times per image, and whole images fill the rest.
        n = min(c, self.chunk_size)
        per_call = max(1, self.chunk_size // n)
        eye = torch.eye(c, dtype=torch.bool, device=cap.images.device)
        rows = []
        for imgs in torch.arange(b, device=cap.images.device).split(per_call):
            targets = cap.targets[imgs]
            cols = []
            for chans in eye.split(n):  # one-hot rows [n, C]: which channel each copy ablates
                out = self._ablated_logits(cap.images[imgs], chans)
                cols.append(out.gather(1, targets.repeat_interleave(len(chans))[:, None]).view(len(imgs), -1))
            rows.append(torch.cat(cols, dim=1))
        ablated = torch.cat(rows).float()
        orig = cap.logits.gather(1, cap.targets[:, None]).float()
        return (orig - ablated) / orig  # Sec. 3: the relative drop of the target logit
