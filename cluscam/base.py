"""The explainer machinery every method shares (ClusCAM and the baselines).

:class:`Explainer` owns the hook on the target layer, the forward-pass counter, chunked masked
forward passes and the final upsample + min-max; a method subclasses it and says only what differs:
its :meth:`Explainer.saliency` from a :class:`Capture` of one batched forward pass.
"""
from __future__ import annotations

import functools
import inspect
import time
import warnings
from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Iterator, Literal, Sequence

import torch
from torch import nn

from .layers import LAYOUTS, LayerSpec
from .memory import auto_chunk_size
from .ops import Baseline, baseline_value, mask_input, minmax, upsample

Precision = Literal["fp32", "bf16"]
PRECISIONS: tuple[str, ...] = ("fp32", "bf16")


@functools.lru_cache(maxsize=None)
def native_cpu_bf16() -> bool:
    """Whether this CPU runs bf16 natively (oneDNN with AVX512-BF16 or AMX).  Without it bf16 autocast
    is emulated and slower than fp32: EfficientNet-Lite2 at batch 32 on a 2-core AVX2 CPU ran 1.4
    passes/s in bf16 against 9.3 in fp32."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


@dataclass
class PassCount:
    """Passes per explained image: through the whole model, through the part of the network
    after the hooked layer (ReciproCAM-style partial passes), and backward passes (the counting
    rules: docs/derivations.md, section 5)."""

    forward: float = 0.0
    partial: float = 0.0
    backward: float = 0.0


@dataclass
class Capture:
    """One forward pass of a batch: its logits, the targets, and the hooked layer's output
    (with the gradient of the summed target logits when the method asks for it)."""

    images: torch.Tensor
    targets: torch.Tensor
    logits: torch.Tensor
    activation: torch.Tensor
    layer: LayerSpec
    gradient: torch.Tensor | None = None

    @property
    def maps(self) -> torch.Tensor:
        """Channel maps [B, C, h, w]."""
        return self.layer.maps(self.activation)

    @property
    def tokens(self) -> torch.Tensor:
        """Patch tokens [B, h*w, C]."""
        return self.layer.tokens(self.activation)

    @property
    def grad_maps(self) -> torch.Tensor:
        if self.gradient is None:
            raise RuntimeError("this method did not ask for gradients (set uses_gradients = True)")
        return self.layer.maps(self.gradient)

    @property
    def size(self) -> tuple[int, int]:
        return tuple(self.images.shape[-2:])


def as_logits(out) -> torch.Tensor:
    """Logits from a classifier's output: a tensor, a tuple/namedtuple led by the logits
    (torchvision Inception in training mode), or a mapping with a ``logits`` entry."""
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, dict) and "logits" in out:
        return out["logits"]
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    raise TypeError(f"cannot read logits from a model output of type {type(out).__name__}")


class Explainer(ABC):
    """Base class of every method: ``explain(images [B,3,H,W], targets [B] | None) -> saliency [B,H,W]`` in [0, 1].

    A method subclasses it, states what the suite asks about it in class attributes and implements
    :meth:`saliency` (timm's ``pretrained_cfg`` in spirit: the registry, tables, demo, perf and the
    runner read the attributes, never the method's name).

    Args:
        model: a classifier returning logits; put in eval mode.
        layer: the hooked layer, a :class:`LayerSpec`, its dotted path (an NCHW layer) or a mapping
            of its fields; its layout must be one of :attr:`layouts`.
        baseline: what masked pixels become, ``mean`` (0 in normalized input space, the dataset's
            mean colour, as the paper's code does) or ``black`` (needs ``pixel_mean``/``pixel_std``).
        pixel_mean, pixel_std: the input normalization, for the ``black`` baseline.
        chunk_size: images per forward pass when a method evaluates many masked inputs, or ``auto``
            to size it from free device memory at the first call.
        precision: ``bf16`` runs the model's forward passes under bfloat16 autocast (see
            :meth:`forward_precision`).

    Raises:
        ValueError: a bad ``chunk_size``, ``precision``, ``baseline`` or a layout the method does not read.

    Example:
        >>> from baselines import create_explainer
        >>> cam = create_explainer("gradcam", model, "layer4")  # or GradCAM(model, "layer4")
        >>> maps = cam(images)  # [B, H, W] in [0, 1]; targets default to the predicted classes
        >>> cam.last_passes  # PassCount(forward=1.0, partial=0.0, backward=1.0) per image
        >>> cam.expected_passes((2048, 7, 7))  # the same, known before running (a classmethod)
    """

    display_name: ClassVar[str] = ""  # the name in tables and figures, e.g. "GradCAM++"
    proposed: ClassVar[bool] = False  # the paper's own method ("(Ours)" in the tables)
    families: ClassVar[tuple[str, ...]] = ("cnn", "vit")  # model families it explains (conf/model/*.yaml family)
    layouts: ClassVar[tuple[str, ...]] = LAYOUTS  # hooked-layer layouts it reads (LayerSpec.layout)
    needs_attention: ClassVar[bool] = False  # reads the model's self-attention (a Vision Transformer's)
    uses_gradients: ClassVar[bool] = False  # backpropagates to the hooked layer
    # Keep the graph of the captured gradient (for methods that differentiate it again).
    create_graph: ClassVar[bool] = False

    @classmethod
    def expected_passes(cls, shape: tuple[int, int, int], **options) -> PassCount:
        """The passes per image that :meth:`explain` will count in ``last_passes`` (docs/derivations.md,
        section 5), known before running: a cost planner prices a run from it.

        Args:
            shape: the hooked layer's maps [C, h, w] (a model config's ``layer.shape``; the channel
                view of every layout, prefix tokens excluded).
            **options: the constructor's keyword options (those of ``create_explainer``); options
                that do not change the count are ignored, missing ones take the constructor's defaults.

        Returns:
            The count per image; an upper bound where the method decides it from the data (the
            subclass's docstring says where).

        Raises:
            NotImplementedError: the method does not state its count.
            ValueError: a malformed ``shape`` or an option the constructor does not take.
        """
        raise NotImplementedError(f"{cls.__name__} does not state its passes per image (expected_passes)")

    @classmethod
    def effective_options(cls, shape: tuple[int, int, int], **options) -> dict[str, Any]:
        """``options`` as the method runs them on a hooked layer of maps ``shape`` [C, h, w]: the same,
        unless the method adapts an option to the layer (ClusCAM's k above the layer's N); what a run
        records."""
        return options

    @staticmethod
    def _dims(shape: Sequence[int]) -> tuple[int, int, int]:
        """(C, h, w) of a declared map shape, checked."""
        dims = tuple(shape)
        if len(dims) != 3 or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in dims):
            raise ValueError(f"shape must be the hooked layer's maps [C, h, w] of positive integers, got {shape!r}")
        return dims  # type: ignore[return-value]

    @classmethod
    def _options(cls, options: dict[str, Any]) -> dict[str, Any]:
        """``options`` over the keyword defaults of the constructors of ``cls`` and its bases (the
        signatures are the one place the defaults live)."""
        defaults: dict[str, Any] = {}
        for klass in cls.__mro__:
            init = vars(klass).get("__init__")
            if init is None or not issubclass(klass, Explainer):
                continue
            for p in inspect.signature(init).parameters.values():
                if p.kind == p.KEYWORD_ONLY:
                    defaults.setdefault(p.name, p.default)
        unknown = sorted(set(options) - set(defaults))
        if unknown:
            raise ValueError(f"{cls.__name__} has no option {', '.join(unknown)}; its options are {', '.join(defaults)}")
        return {**defaults, **options}

    @classmethod
    def supports(cls, family: str, model: nn.Module | None = None) -> bool:
        """Whether the method explains models of ``family`` (``cnn`` | ``vit``), and ``model`` when given."""
        return family in cls.families

    def __init__(
        self,
        model: nn.Module,
        layer: LayerSpec | str | dict,
        *,
        baseline: Baseline = "mean",
        pixel_mean: Sequence[float] | None = None,
        pixel_std: Sequence[float] | None = None,
        chunk_size: int | Literal["auto"] = 64,
        precision: Precision = "fp32",
    ) -> None:
        if chunk_size != "auto" and not (isinstance(chunk_size, int) and chunk_size >= 1):
            raise ValueError(f"chunk_size must be a positive integer or 'auto', got {chunk_size!r}")
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}; use 'fp32' or 'bf16'")
        self.model = model.eval()
        self.layer = LayerSpec.of(layer)
        if self.layer.layout not in self.layouts:
            raise ValueError(f"{type(self).__name__} reads layers of layout {', '.join(self.layouts)}, "
                             f"not {self.layer.layout!r} ({self.layer.path})")
        self.module = self.layer.module(model)
        self.baseline, self.pixel_mean, self.pixel_std = baseline, pixel_mean, pixel_std
        baseline_value(baseline, pixel_mean, pixel_std, torch.zeros(1))  # fail early on a bad baseline
        self.chunk_size = chunk_size
        self.precision = precision
        self.last_passes = PassCount()
        self._passes = PassCount()
        self.last_phases: dict[str, float] = {}

    # -- public API -------------------------------------------------------------------------------
    def explain(self, images: torch.Tensor, targets: torch.Tensor | Sequence[int] | None = None) -> torch.Tensor:
        if images.dim() != 4:
            raise ValueError(f"images must be [B, C, H, W], got shape {tuple(images.shape)}")
        images = images.to(self.device)
        self._passes = PassCount()
        self.last_phases = {}
        with torch.set_grad_enabled(self.uses_gradients):
            cap = self.capture(images, targets)
            raw = self.saliency(cap)
        out = self.finish(raw, cap.size)
        b = images.shape[0]
        self.last_passes = PassCount(self._passes.forward / b, self._passes.partial / b, self._passes.backward / b)
        self.last_phases = {name: sec / b for name, sec in self.last_phases.items()}
        return out

    __call__ = explain

    @abstractmethod
    def saliency(self, cap: Capture) -> torch.Tensor:
        """The method's raw map [B, h, w] at any resolution; the base upsamples and min-maxes it."""

    @staticmethod
    def finish(raw: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """The final map [B, H, W] of a raw one: upsampled to the input size, min-maxed."""
        return minmax(upsample(raw.detach().float(), size), constant="zero")

    # -- machinery for subclasses -------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def forward_precision(self, capture: bool = False):
        """The autocast context of the model's forward passes: bf16 when asked, except for the
        capture pass of a method without gradients.  Such a method builds its maps from the captured
        activations and spends its time in the extra passes that score them: the capture stays
        float32, so that e.g. ClusCAM's partition is exactly the fp32 one and only the scores see
        bf16.  Everything else, clustering and map arithmetic included, stays in float32."""
        bf16 = self.precision == "bf16" and (self.uses_gradients or not capture)
        device = self.device.type
        if bf16 and device == "cpu" and not native_cpu_bf16():
            warnings.warn("precision='bf16' on a CPU without native bf16 (AVX512-BF16 or AMX) is emulated and "
                          "several times slower than fp32 here; use precision='fp32' (run.precision=fp32)",
                          RuntimeWarning, stacklevel=2)
        return torch.autocast(device, dtype=torch.bfloat16, enabled=bf16)

    def logits(self, x: torch.Tensor, capture: bool = False) -> torch.Tensor:
        """A counted whole-model forward pass (``capture``: the pass that captures the layer)."""
        self._passes.forward += x.shape[0]
        with self.forward_precision(capture):
            return as_logits(self.model(x))

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time a step of the method into ``last_phases[name]`` (seconds per image after explain;
        synchronized on CUDA, so only for coarse steps)."""
        sync = torch.cuda.synchronize if self.device.type == "cuda" else (lambda: None)
        sync()
        start = time.perf_counter()
        try:
            yield
        finally:
            sync()
            self.last_phases[name] = self.last_phases.get(name, 0.0) + time.perf_counter() - start

    @contextmanager
    def hooked(self, fn: Callable[[torch.Tensor], torch.Tensor | None]) -> Iterator[None]:
        """Call ``fn`` on the target layer's output during forward passes; a non-None return
        replaces the output (and may have a larger batch: the rest of the network then runs on it)."""
        handle = self.module.register_forward_hook(lambda _m, _i, out: fn(out))
        try:
            yield
        finally:
            handle.remove()

    def replaced_logits(self, images: torch.Tensor, replace: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """Logits when the target layer's output ``act`` (batch B) is replaced by ``replace(act)``
        (batch B * n, image-major): the network after the layer runs on the n variants of each image,
        counted as partial passes (AblationCAM, ReciproCAM).  The part before the layer runs once on
        ``images``; pass a chunk of images to bound memory.  The layer's output must be the only
        path from the input to the logits (no residual bypass), or the batches will not match."""
        with self.hooked(replace), self.forward_precision():
            out = as_logits(self.model(images))
        self._passes.partial += out.shape[0]
        return out

    def capture(self, images: torch.Tensor, targets=None) -> Capture:
        """One forward pass with the layer hooked; gradients of the target logits if asked for."""
        if self.chunk_size == "auto":
            self.chunk_size = auto_chunk_size(self.model, images[:1])
        store: dict[str, torch.Tensor] = {}
        if self.uses_gradients:
            images = images.detach().requires_grad_(True)
        with self.hooked(lambda out: store.__setitem__("act", out)):
            logits = self.logits(images, capture=True)
        if "act" not in store:
            raise RuntimeError(f"layer {self.layer.path!r} was not called in the model's forward pass")
        act = store["act"]
        if not isinstance(act, torch.Tensor):
            raise TypeError(f"layer {self.layer.path!r} returns {type(act).__name__}, not a tensor; hook another layer")
        targets = self.resolve_targets(logits, targets)
        grad = None
        if self.uses_gradients:
            grad = self.gradient(self.target_score(logits, targets).sum(), act, self.create_graph)
        else:
            act = act.detach()
        return Capture(images, targets, logits.detach() if grad is None else logits, act, self.layer, grad)

    def target_score(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The score [B] gradient methods differentiate: the target logit."""
        return logits.gather(1, targets[:, None]).squeeze(1)

    def gradient(self, score: torch.Tensor, act: torch.Tensor, create_graph: bool = False) -> torch.Tensor:
        """d score / d act, counted as one backward pass per image."""
        self._passes.backward += act.shape[0]
        (grad,) = torch.autograd.grad(score, act, create_graph=create_graph, retain_graph=create_graph)
        return grad

    @staticmethod
    def resolve_targets(logits: torch.Tensor, targets) -> torch.Tensor:
        if targets is None:
            return logits.argmax(1)
        t = torch.as_tensor(targets, device=logits.device).long().reshape(-1)
        if t.numel() != logits.shape[0]:
            raise ValueError(f"got {t.numel()} targets for a batch of {logits.shape[0]} images")
        if bool(((t < 0) | (t >= logits.shape[1])).any()):
            raise ValueError(f"targets must be class indices in [0, {logits.shape[1]})")
        return t

    def masked_target_logits(self, images: torch.Tensor, masks: torch.Tensor, targets: torch.Tensor,
                             align_corners: bool = False) -> torch.Tensor:
        """Target logits [B, K] of the masked inputs x (.) Upsample(M_k) for masks [B, K, h, w],
        evaluated ``chunk_size`` images at a time (Eq. 5's first term)."""
        b, k = masks.shape[:2]
        size = tuple(images.shape[-2:])
        base = baseline_value(self.baseline, self.pixel_mean, self.pixel_std, images)
        flat = masks.reshape(b * k, *masks.shape[-2:])
        owner = torch.arange(b, device=images.device).repeat_interleave(k)
        out = []
        for idx in torch.arange(b * k, device=images.device).split(self.chunk_size):
            img = owner[idx]
            m = upsample(flat[idx], size, align_corners=align_corners)
            logit = self.logits(mask_input(images[img], m, base))
            out.append(logit.gather(1, targets[img][:, None]).squeeze(1))
        return torch.cat(out).view(b, k)
