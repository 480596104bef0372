"""Target layers: where a representation is hooked and how its layout is read.

Every architecture of the paper exposes its hooked representation in one of three layouts:
``nchw`` conv maps (ResNet, EfficientNet, Inception, torchvision ViT ``conv_proj``, timm PVTv2 stages),
``nhwc`` maps (torchvision and timm Swin stages) and ``tokens`` [B, T, D] sequences, with leading
class/distillation tokens (ViT, DeiT) or without (LeViT, CaiT's patch blocks).  A :class:`LayerSpec`
turns any of them into the two views the methods use: channel maps [B, C, h, w] and patch tokens
[B, h*w, C], and maps a modified channel view back into the original layout.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

Layout = Literal["nchw", "nhwc", "tokens"]
LAYOUTS: tuple[str, ...] = ("nchw", "nhwc", "tokens")


@dataclass(frozen=True)
class LayerSpec:
    """A hooked layer: dotted module path (negative indices allowed, e.g. ``blocks.-1.norm1``),
    its output layout, the number of leading non-patch tokens, and the token grid (inferred as a
    square when omitted)."""

    path: str
    layout: Layout = "nchw"
    prefix_tokens: int = 0
    grid: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(f"unknown layout {self.layout!r} for layer {self.path!r}; use one of {LAYOUTS}")
        if self.prefix_tokens < 0:
            raise ValueError(f"prefix_tokens must be >= 0, got {self.prefix_tokens}")
        if self.layout != "tokens" and self.prefix_tokens:
            raise ValueError("prefix_tokens only applies to the 'tokens' layout")

    @classmethod
    def of(cls, spec: "LayerSpec | str | dict") -> "LayerSpec":
        """Accept a spec, a bare path (an NCHW conv layer) or a mapping of the fields; a model config's
        ``shape`` entry (the maps it declares at its input size) is not a field and is dropped."""
        if isinstance(spec, LayerSpec):
            return spec
        if isinstance(spec, str):
            return cls(spec)
        fields = {k: v for k, v in dict(spec).items() if k != "shape"}
        if fields.get("grid") is not None:
            fields["grid"] = tuple(fields["grid"])
        return cls(**fields)

    def module(self, model: nn.Module) -> nn.Module:
        """The hooked sub-module; a clear error lists the children where the path breaks."""
        mod = model
        for part in self.path.split("."):
            children = dict(mod.named_children())
            if part.lstrip("-").isdigit() and isinstance(mod, (nn.Sequential, nn.ModuleList)):
                idx = int(part)
                if not -len(mod) <= idx < len(mod):
                    raise ValueError(f"layer path {self.path!r}: index {idx} out of range for {len(mod)} modules")
                mod = mod[idx]
            elif part in children:
                mod = children[part]
            else:
                raise ValueError(
                    f"layer path {self.path!r}: {type(mod).__name__} has no child {part!r}; "
                    f"children are {sorted(children)}"
                )
        return mod

    def _grid(self, n: int) -> tuple[int, int]:
        if self.grid is not None:
            if self.grid[0] * self.grid[1] != n:
                raise ValueError(f"layer {self.path!r}: grid {self.grid} does not hold {n} tokens")
            return self.grid
        side = math.isqrt(n)
        if side * side != n:
            raise ValueError(
                f"layer {self.path!r}: {n} patch tokens are not a square grid; set grid=(h, w) "
                f"or prefix_tokens (now {self.prefix_tokens})"
            )
        return side, side

    def maps(self, act: torch.Tensor) -> torch.Tensor:
        """Channel view [B, C, h, w] of a hooked output."""
        if self.layout == "nchw":
            self._check_dims(act, 4)
            return act
        if self.layout == "nhwc":
            self._check_dims(act, 4)
            return act.permute(0, 3, 1, 2)
        self._check_dims(act, 3)
        patches = act[:, self.prefix_tokens:]
        h, w = self._grid(patches.shape[1])
        return patches.transpose(1, 2).reshape(act.shape[0], act.shape[2], h, w)

    def tokens(self, act: torch.Tensor) -> torch.Tensor:
        """Patch-token view [B, h*w, C] (row-major over the grid) of a hooked output."""
        return self.maps(act).flatten(2).transpose(1, 2)

    def from_maps(self, maps: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """Put a channel view back into the layout of ``like`` (prefix tokens taken from ``like``,
        repeated when ``maps`` holds several copies per image)."""
        if self.layout == "nchw":
            return maps
        if self.layout == "nhwc":
            return maps.permute(0, 2, 3, 1)
        patches = maps.flatten(2).transpose(1, 2)
        if not self.prefix_tokens:
            return patches
        prefix = like[:, : self.prefix_tokens]
        prefix = prefix.repeat_interleave(maps.shape[0] // like.shape[0], dim=0)
        return torch.cat([prefix, patches], dim=1)

    def _check_dims(self, act: torch.Tensor, dims: int) -> None:
        if act.dim() != dims:
            raise ValueError(
                f"layer {self.path!r} gave a {act.dim()}-d output of shape {tuple(act.shape)}, "
                f"but layout {self.layout!r} expects {dims} dimensions; fix the layer's layout"
            )
