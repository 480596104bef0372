"""The comparators of the ClusCAM paper, built on the explainer machinery of :mod:`cluscam`, and the
one registry that knows every method by name.

A method is its :class:`~cluscam.base.Explainer` subclass (which states its display name, the model
families and layer layouts it reads, whether it needs attention or gradients), one line in
:data:`METHODS` and its ``conf/method/<name>.yaml``; the tables, demo, figures, perf, runner and the
Makefile's sweeps (``python -m baselines``) read the rest from here."""
from __future__ import annotations

import collections.abc
import difflib
import importlib
import inspect
import numbers
import types
import typing
from typing import Any, Literal, Mapping, Sequence, Union

from cluscam.base import Explainer

# name -> "module:Class", in the order of the tables' rows and the figures' columns; imported on first
# use so that one broken optional method cannot break the rest.
METHODS: dict[str, str] = {
    "gradcam": "baselines.gradcam:GradCAM",
    "gradcampp": "baselines.gradcampp:GradCAMPlusPlus",
    "scorecam": "baselines.scorecam:ScoreCAM",
    "ablationcam": "baselines.ablationcam:AblationCAM",
    "reciprocam": "baselines.reciprocam:ReciproCAM",
    "opticam": "baselines.opticam:OptiCAM",
    "shapleycam": "baselines.shapleycam:ShapleyCAM",
    "cluscam": "cluscam.cluscam:ClusCAM",
    "agcam": "baselines.agcam:AGCAM",
}


def method_class(name: str) -> type[Explainer]:
    """The explainer class registered as ``name``."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; known methods: {', '.join(sorted(METHODS))}")
    module, cls = METHODS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def method_names(supports: Sequence[str] = (), lacks: Sequence[str] = ()) -> list[str]:
    """The registered methods, in order, that explain every model family in ``supports`` and none in
    ``lacks`` (e.g. ``supports=("cnn", "vit")``: the methods of the cross-family sweeps and tables)."""
    return [name for name in METHODS
            if all(method_class(name).supports(f) for f in supports)
            and not any(method_class(name).supports(f) for f in lacks)]


def display_name(name: str) -> str:
    """The method's name in tables and figures (its class's ``display_name``, else ``name``)."""
    return method_class(name).display_name or name


def create_explainer(name: str, model, layer, **options) -> Explainer:
    """Build the method registered as ``name``.

    Args:
        name: a key of :data:`METHODS`, e.g. ``"cluscam"`` or ``"gradcampp"``.
        model: the classifier to explain (put in eval mode).
        layer: the hooked layer, a :class:`~cluscam.layers.LayerSpec`, dotted path or mapping of its fields.
        **options: the method's keyword options (see :func:`method_parameters`) and the
            :class:`~cluscam.base.Explainer` ones (``baseline``, ``chunk_size``, ``precision``, ...).

    Returns:
        The explainer; call it on images [B, 3, H, W] (and optional targets [B]) for maps [B, H, W].

    Raises:
        ValueError: an unknown method, an option it does not take or of the wrong type, or an
            option value its constructor rejects.

    Example:
        >>> cam = create_explainer("scorecam", model, "layer4", chunk_size=32)
        >>> maps = cam(images, targets)
    """
    check_options(name, options)
    return method_class(name)(model, layer, **options)


def method_parameters(name: str) -> dict[str, inspect.Parameter]:
    """The keyword options of method ``name``'s constructor and of the constructors it passes ``**kwargs`` to."""
    params: dict[str, inspect.Parameter] = {}
    for cls in method_class(name).__mro__:
        init = vars(cls).get("__init__")
        if init is None or not issubclass(cls, Explainer):
            continue
        hints = typing.get_type_hints(init)
        for p in inspect.signature(init).parameters.values():
            if p.kind == p.KEYWORD_ONLY and p.name not in params:
                params[p.name] = p.replace(annotation=hints.get(p.name, Any))
    return params


def check_options(name: str, options: Mapping[str, Any], prefix: str = "") -> None:
    """Raise a one-line ValueError for an option that method ``name`` does not take or of the wrong type;
    ``prefix`` is where the options were set (e.g. ``method.options.``), named in the message."""
    params = method_parameters(name)
    for key, value in options.items():
        if key not in params:
            close = difflib.get_close_matches(key, list(params), n=1)
            guess = f"did you mean {prefix}{close[0]}? " if close else ""
            raise ValueError(f"{name} has no option {prefix}{key}; {guess}its options are {', '.join(params)}")
        hint, default = params[key].annotation, params[key].default
        if not _fits(value, hint):
            example = f", e.g. {prefix}{key}={default}" if default not in (None, inspect.Parameter.empty) else ""
            raise ValueError(f"{name} option {prefix}{key}={value!r} must be {_describe(hint)}{example}")


def _fits(value: Any, hint: Any) -> bool:
    """Whether ``value`` is of the annotated type (integers are numbers, booleans are not; other types pass)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        return any(value == a and type(value) is type(a) for a in args)
    if origin in (Union, types.UnionType):
        return any(_fits(value, a) for a in args)
    if origin is collections.abc.Sequence:
        return isinstance(value, (list, tuple)) and all(_fits(v, args[0]) for v in value)
    if hint in (int, float):
        return isinstance(value, numbers.Integral if hint is int else numbers.Real) and not isinstance(value, bool)
    if hint in (bool, str, type(None)):
        return isinstance(value, hint)
    return True


def _describe(hint: Any) -> str:
    """The annotated type in words."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if origin is collections.abc.Sequence:
        return f"a list of {_describe(args[0]).split(' ', 1)[-1]}s"
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string", type(None): "null"}
    return names.get(hint, getattr(hint, "__name__", str(hint)))


__all__ = ["METHODS", "check_options", "create_explainer", "display_name", "method_class", "method_names",
           "method_parameters"]
