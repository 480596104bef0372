"""ReciproCAM (Byun & Lee, CVPR-W 2024) and its ViT variant (ViT-ReciproCAM, arXiv 2310.02588).

The hooked layer's output F is replaced by h*w spatially masked copies F (.) M_(i,j); the rest of
the network runs on them and the saliency of cell (i, j) is the target class's softmax probability
for copy (i, j), min-max normalized.  One forward pass plus h*w partial passes per image.

Where to hook (the official code's choices):
- CNNs: the output of the last conv block (e.g. ResNet ``layer4``).  The official CNN code hooks the
  last ReLU of the last block, which fires after the residual addition, i.e. the block's output.
- ViTs (official ``sybyun/vitcam``): the first LayerNorm of the second-to-last block, timm
  ``LayerSpec('blocks.-2.norm1', 'tokens', 1)``.  That LayerNorm sits inside the residual block
  x + Attn(LN(x)): the skip branch still carries one copy per image.  The official code runs one
  image at a time, so its skip branch of batch 1 broadcasts over the copies: every copy adds the
  unmasked x.  Set ``expand_at='blocks.-2'`` to reproduce this for a batch: the block's input is
  repeated once per copy, so each copy's skip branch carries its image's unmasked tokens.  Without
  it, copies of several images cannot meet the skip branch and a clear error says so.
"""
from __future__ import annotations

from contextlib import contextmanager, nullcontext
from typing import Iterator, Literal

import torch
import torch.nn.functional as F

from cluscam.base import Capture, Explainer, PassCount
from cluscam.layers import LayerSpec

Kernel = Literal["onehot", "gaussian"]
KERNELS: tuple[str, ...] = ("onehot", "gaussian")

# The official 3x3 Gaussian spread [[1, 2, 1], [2, 4, 2], [1, 2, 1]] / 16.
GAUSSIAN_3X3 = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]) / 16


def spatial_masks(h: int, w: int, kernel: Kernel, device=None) -> torch.Tensor:
    """The h*w masks M_(i,j) [h*w, h, w] (row-major over the cells): the one-hot of cell (i, j), or
    the 3x3 Gaussian centred on it, cut at the border without renormalizing (as the official ViT code)."""
    onehot = torch.eye(h * w, device=device).view(h * w, 1, h, w)
    if kernel == "onehot":
        return onehot[:, 0]
    return F.conv2d(onehot, GAUSSIAN_3X3.to(device).view(1, 1, 3, 3), padding=1)[:, 0]


class ReciproCAM(Explainer):
    """ReciproCAM for a batch.

    kernel: ``onehot`` keeps only cell (i, j) in copy (i, j); ``gaussian`` weights the 3x3
    neighbourhood of (i, j) by GAUSSIAN_3X3.  None takes the official default of each variant:
    one-hot for conv maps (the CNN code calls its masking with the Gaussian off), Gaussian for tokens
    (ViT-ReciproCAM's ``is_gaussian=True``).  keep_prefix (tokens layout): keep the class token(s) in
    every copy (official ``cls_token=True``) or zero them.  expand_at: dotted path of a module that
    contains the hooked layer; its input is repeated once per copy so that residual branches inside
    it see the copies' batch (see the module docstring)."""

    display_name = "ReciproCAM"

    def __init__(
        self,
        model,
        layer,
        *,
        kernel: Kernel | None = None,
        keep_prefix: bool = True,
        expand_at: str | None = None,
        **kwargs,
    ) -> None:
        super().__init__(model, layer, **kwargs)
        if kernel is None:
            kernel = "gaussian" if self.layer.layout == "tokens" else "onehot"
        if kernel not in KERNELS:
            raise ValueError(f"unknown ReciproCAM kernel {kernel!r}; use one of {KERNELS}")
        self.kernel, self.keep_prefix = kernel, keep_prefix
        self.expand_module = None
        if expand_at is not None:
            self.expand_module = LayerSpec(expand_at).module(model)
            if not any(m is self.module for m in self.expand_module.modules()):
                raise ValueError(
                    f"expand_at={expand_at!r} does not contain the hooked layer {self.layer.path!r}; "
                    "give the block that encloses it (e.g. 'blocks.-2' for 'blocks.-2.norm1')"
                )

    @classmethod
    def expected_passes(cls, shape: tuple[int, int, int], **options) -> PassCount:
        """1 forward + h*w partial: the capture and one masked copy per cell of the h x w grid (prefix
        tokens are not cells; ``kernel``, ``expand_at`` and ``chunk_size`` change nothing)."""
        _, h, w = cls._dims(shape)
        cls._options(options)
        return PassCount(forward=1.0, partial=float(h * w))

    def saliency(self, cap: Capture) -> torch.Tensor:
        b, _, h, w = cap.maps.shape
        n = h * w
        masks = spatial_masks(h, w, self.kernel, cap.images.device).to(cap.maps.dtype)
        # at most chunk_size copies per pass: several images per pass, or one image's copies in parts
        per_pass = max(1, self.chunk_size // n)
        probs = []
        for images, targets in zip(cap.images.split(per_pass), cap.targets.split(per_pass)):
            logits = torch.cat([self._copy_logits(images, part) for part in masks.split(self.chunk_size)], 1)
            p = logits.float().softmax(2)  # cam(i,j) = softmax(f(F (.) M_ij))_c
            probs.append(p.gather(2, targets.view(-1, 1, 1).expand(-1, n, 1))[..., 0])
        return torch.cat(probs).view(b, h, w)

    def _copy_logits(self, images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """Logits [k, m, classes] of the copies of each of the k images under the m masks."""
        k, m = images.shape[0], masks.shape[0]

        def replace(act: torch.Tensor) -> torch.Tensor:
            maps = self.layer.maps(act)
            # [k, 1 or m, C, h, w]: one row per image, or already m rows when expand_at is set
            maps = maps.reshape(k, -1, *maps.shape[1:])
            copies = (maps * masks[None, :, None]).flatten(0, 1)  # F (.) M_(i,j)
            return self.layer.from_maps(copies, act if self.keep_prefix else torch.zeros_like(act))

        with self._expanded(m) if self.expand_module is not None else nullcontext():
            try:
                logits = self.replaced_logits(images, replace)
            except RuntimeError as err:
                raise ValueError(self._propagation_error(k, m, str(err))) from err
        if logits.shape[0] != k * m:
            raise ValueError(self._propagation_error(k, m, f"got {logits.shape[0]} outputs"))
        return logits.view(k, m, -1)

    @contextmanager
    def _expanded(self, n: int) -> Iterator[None]:
        """Repeat the input of ``expand_module`` n times (image-major) during the pass."""
        handle = self.expand_module.register_forward_pre_hook(
            lambda _m, args: (args[0].repeat_interleave(n, dim=0), *args[1:])
        )
        try:
            yield
        finally:
            handle.remove()

    def _propagation_error(self, k: int, n: int, detail: str) -> str:
        return (
            f"ReciproCAM: the {n} masked copies per image made at layer {self.layer.path!r} did not reach "
            f"the output as {k * n} rows ({detail}). The layer probably sits inside a residual block whose "
            "skip branch still carries one row per image: hook the whole block's output (e.g. 'layer4', "
            "'blocks.-2') or set expand_at to the enclosing block (e.g. expand_at='blocks.-2' for the "
            "official ViT hook 'blocks.-2.norm1')"
        )
