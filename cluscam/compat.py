"""pytorch-grad-cam's calling convention for this package's explainers: a pipeline switches by one import.

    from cluscam.compat import ClusCAM            # instead of: from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    with ClusCAM(model=model, target_layers=[model.layer4]) as cam:
        grayscale = cam(input_tensor=x, targets=[ClassifierOutputTarget(281)])   # numpy [B, H, W] in [0, 1]

``target_layers`` is a list of one module of ``model`` (or its dotted path); ``reshape_transform`` is
pytorch-grad-cam's function from the layer's output to channel maps [B, C, h, w], e.g. a ViT's (drop the
class token, tokens to a grid): the adapter reads from it the layer's layout (:class:`LayerSpec`) on the
first batch and checks that the two agree on that batch.  ``targets``: None (the predicted class) or
objects with a ``category`` (pytorch-grad-cam's ``ClassifierOutputTarget`` and kin); the explainers explain
a class, not an arbitrary function of the output.  Other keyword arguments go to the explainer (e.g.
``k``, ``r``, ``tau`` for ClusCAM).  :func:`adapter` wraps any :class:`Explainer` subclass.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from .base import Explainer, as_logits
from .cluscam import ClusCAM as _ClusCAM
from .layers import LayerSpec


class CAMAdapter:
    """An explainer with pytorch-grad-cam's constructor, call and context manager."""

    explainer: type[Explainer]

    def __init__(self, model: nn.Module, target_layers: Sequence[nn.Module | str],
                 reshape_transform: Callable[[torch.Tensor], torch.Tensor] | None = None, **options) -> None:
        if len(target_layers) != 1:
            raise ValueError(f"{type(self).__name__} explains at one layer; got {len(target_layers)} target_layers: "
                             f"pass a list of one module")
        self.model, self.reshape_transform, self.options = model.eval(), reshape_transform, options
        self.path = _path(model, target_layers[0])
        self._method: Explainer | None = None

    def __call__(self, input_tensor: torch.Tensor, targets: Sequence | None = None, aug_smooth: bool = False,
                 eigen_smooth: bool = False) -> np.ndarray:
        if aug_smooth or eigen_smooth:
            raise ValueError("aug_smooth and eigen_smooth are pytorch-grad-cam's; these explainers have neither: "
                             "leave them False")
        if self._method is None:
            self._method = self.explainer(self.model, self._layer(input_tensor), **self.options)
        classes = None if targets is None else [_category(t) for t in targets]
        return self._method(input_tensor, classes).detach().cpu().numpy()

    def _layer(self, x: torch.Tensor) -> LayerSpec:
        """The layer's spec: NCHW without a ``reshape_transform``; else the layout that reproduces it on ``x``."""
        if self.reshape_transform is None:
            return LayerSpec(self.path)
        act = _output(self.model, LayerSpec(self.path).module(self.model), x)
        want = self.reshape_transform(act)
        if act.dim() == 4 and want.dim() == 4:
            candidates = [LayerSpec(self.path, "nhwc"), LayerSpec(self.path)]
        elif act.dim() == 3 and want.dim() == 4 and want.shape[2] * want.shape[3] <= act.shape[1]:
            prefix = act.shape[1] - want.shape[2] * want.shape[3]
            candidates = [LayerSpec(self.path, "tokens", prefix, tuple(want.shape[2:]))]
        else:
            candidates = []
        for spec in candidates:
            if spec.maps(act).shape == want.shape and torch.equal(spec.maps(act), want):
                return spec
        raise ValueError(f"reshape_transform maps the output {tuple(act.shape)} of {self.path!r} to {tuple(want.shape)} "
                         f"in a way these explainers cannot read back; pass no reshape_transform and a "
                         f"LayerSpec-described layer to the explainer itself")

    def __enter__(self) -> "CAMAdapter":
        return self

    def __exit__(self, *exc) -> None:
        self._method = None  # the explainers hold no hooks between calls


def _path(model: nn.Module, layer: nn.Module | str) -> str:
    if isinstance(layer, str):
        return layer
    for name, module in model.named_modules():
        if module is layer:
            return name
    raise ValueError("the target layer is not a module of the model: pass one of model's modules (e.g. model.layer4)")


def _category(target) -> int:
    if isinstance(target, (int, np.integer)) or (isinstance(target, torch.Tensor) and target.numel() == 1):
        return int(target)
    if hasattr(target, "category"):
        return int(target.category)
    raise ValueError(f"target {target!r} has no category: pass class indices or pytorch-grad-cam's "
                     f"ClassifierOutputTarget(category)")


@torch.no_grad()
def _output(model: nn.Module, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    store = {}
    handle = module.register_forward_hook(lambda _m, _i, out: store.__setitem__("out", out))
    try:
        as_logits(model(x))
    finally:
        handle.remove()
    return store["out"]


def adapter(explainer: type[Explainer]) -> type[CAMAdapter]:
    """The pytorch-grad-cam-style class of ``explainer``."""
    return type(explainer.__name__, (CAMAdapter,), {"explainer": explainer, "__doc__": explainer.__doc__})


ClusCAM = adapter(_ClusCAM)

__all__ = ["CAMAdapter", "ClusCAM", "adapter"]
