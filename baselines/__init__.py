"""The comparators of the ClusCAM paper, built on the explainer machinery of :mod:`cluscam`, and the
one registry that knows every method by name."""
from __future__ import annotations

import importlib

from cluscam.base import Explainer

# name -> "module:Class"; imported on first use so that one broken optional method cannot break the rest.
METHODS: dict[str, str] = {
    "cluscam": "cluscam.cluscam:ClusCAM",
    "gradcam": "baselines.gradcam:GradCAM",
    "gradcampp": "baselines.gradcampp:GradCAMPlusPlus",
    "scorecam": "baselines.scorecam:ScoreCAM",
    "ablationcam": "baselines.ablationcam:AblationCAM",
    "shapleycam": "baselines.shapleycam:ShapleyCAM",
    "reciprocam": "baselines.reciprocam:ReciproCAM",
    "opticam": "baselines.opticam:OptiCAM",
    "agcam": "baselines.agcam:AGCAM",
}


def method_class(name: str) -> type[Explainer]:
    """The explainer class registered as ``name``."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; known methods: {', '.join(sorted(METHODS))}")
    module, cls = METHODS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def create_explainer(name: str, model, layer, **options) -> Explainer:
    """Build the method ``name`` for ``model`` hooked at ``layer`` (a LayerSpec, path or mapping)."""
    return method_class(name)(model, layer, **options)


__all__ = ["METHODS", "create_explainer", "method_class"]
