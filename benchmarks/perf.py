"""Throughput of every method against its forward-pass roofline and against reference implementations.

    python -m benchmarks.perf --models resnet18 resnet50 vit_b_16 --batch 32 --bf16

For each model (random weights and noise inputs unless ``--pretrained`` / ``--inputs photos``; speed
does not depend on them, the bf16 map differences do) on one device, in one run:
* ``forward``: the model's own forward throughput (images/s) at the batch the masked passes use
  (the chunk size), the roofline (with ``--bf16`` also in bf16, the roofline of the bf16 rows);
* every method of ours: images/s, passes per image, and the fraction of its roofline it reaches,
  roofline = forward throughput / (forward + partial + 2 x backward passes per image) (a partial
  pass is priced as a whole one, a backward pass as two forward ones);
* ClusCAM's K-means share of its time (the clustering alone on the same batch);
* ``--bf16``: bf16 autocast (channels-last for CNNs) beside fp32, with the largest and the mean
  difference of the maps (in [0, 1]) over the batch;
* the author-style ClusCAM (scikit-learn K-means on the upsampled maps on the CPU, one image at a
  time, K single-image forward passes) and pytorch-grad-cam 1.5.7's GradCAM and ScoreCAM;
* each method's chunk size (images per masked pass) and, on CUDA, its peak allocated memory.
Rows go to ``results/perf/<device>[-<tag>].csv`` and a Markdown table is printed.
"""
from __future__ import annotations

import argparse
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig

from baselines import METHODS, create_explainer, method_class
from benchmarks import zoo
from benchmarks.data import PackagePhotos, Preprocess, collate
from benchmarks.provenance import device_name, git_commit, resolve_device
from cluscam import ClusCAM
from cluscam.memory import auto_chunk_size
from cluscam.ops import minmax, upsample

TF32 = False  # the throughput anchors (docs/derivations.md, sec. 6) are fp32 without TF32
LIBRARY = {"gradcam": "GradCAM", "scorecam": "ScoreCAM"}  # our method -> pytorch-grad-cam 1.5.7's class


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_gib(device: torch.device, reset: bool = False) -> float | None:
    """Peak allocated CUDA memory (GiB) since the last reset; None elsewhere."""
    if device.type != "cuda":
        return None
    peak = torch.cuda.max_memory_allocated(device) / 2**30
    if reset:
        torch.cuda.reset_peak_memory_stats(device)
    return peak


def timed(fn: Callable[[], object], device: torch.device, repeats: int = 1) -> float:
    """Seconds per call of ``fn`` after one warm-up call of ``fn`` itself, synchronized on CUDA.  The
    warm-up runs the timed shapes: one on a single image left the first calls at the timed batch
    (kernel selection for new shapes) inside the timing, e.g. bf16 GradCAM on an H200 at a fifth of
    GradCAM++'s speed with the same passes (results/README.md)."""
    fn()
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    _sync(device)
    return (time.perf_counter() - start) / repeats


@torch.no_grad()
def forward_throughput(model, x: torch.Tensor, bf16: bool = False, repeats: int = 3) -> float:
    """Images per second of the model's batched forward pass on ``x`` (under bf16 autocast if asked)."""
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
        return x.shape[0] / timed(lambda: model(x), x.device, repeats)


def kmeans_seconds(cam: ClusCAM, x: torch.Tensor) -> float:
    """Seconds per image of ClusCAM's grouping step alone (K-means and Eq. 4) on a captured batch."""
    with torch.no_grad():
        cap = cam.capture(x)
    return timed(lambda: cam.meta_representations(cap), x.device) / x.shape[0]  # clustering is cheap: warm up in full


def author_style_cluscam(model, layer, x: torch.Tensor, k: int, r: float, tau: float) -> torch.Tensor:
    """The public ClusCAM code's procedure, one image at a time: upsample and normalize every map,
    scikit-learn KMeans(k-means++, random_state=0) on the CPU, K single-image forward passes."""
    from sklearn.cluster import KMeans

    store = {}
    handle = layer.module(model).register_forward_hook(lambda m, i, o: store.__setitem__("a", o))
    out = []
    try:
        for img in x:
            with torch.no_grad():
                logits = model(img[None])
            c = int(logits.argmax())
            maps = layer.maps(store["a"])[0].float()
            up = minmax(upsample(maps, img.shape[-2:]), constant="keep").flatten(1).cpu().numpy()
            km = KMeans(n_clusters=k, init="k-means++", random_state=0).fit(up)
            meta = torch.from_numpy(km.cluster_centers_).to(img).view(k, *img.shape[-2:])
            with torch.no_grad():
                s = torch.stack([model(img[None] * m)[0, c] for m in meta]) - logits[0, c]
            s[torch.argsort(s)[: int(r * k)]] = -torch.inf
            out.append(minmax((torch.softmax(s / tau, 0)[:, None, None] * meta).sum(0).relu()))
    finally:
        handle.remove()
    return torch.stack(out)


def library_seconds(name: str, model, layer, x: torch.Tensor) -> float:
    """Seconds per image of pytorch-grad-cam 1.5.7's ``name`` (GradCAM or ScoreCAM) on the same layer
    and inputs, after a warm-up call on the same inputs; its hooks are removed afterwards."""
    import pytorch_grad_cam as pgc

    reshape = None
    if layer.layout != "nchw":
        reshape = lambda a: layer.maps(a)  # noqa: E731  (drops prefix tokens, channels first)
    with getattr(pgc, name)(model=model, target_layers=[layer.module(model)], reshape_transform=reshape) as cam:
        if name == "ScoreCAM":
            cam.batch_size = 128  # the mask chunk of the anchor figures (docs/derivations.md, sec. 6)
        return timed(lambda: cam(input_tensor=x, targets=None), x.device) / x.shape[0]


def bench_model(cfg, device: torch.device, pretrained: bool = False) -> torch.nn.Module:
    """The model with its configured weights if ``pretrained``, else random ones (seed 0).  Random
    weight matrices its builder zero-initializes (torchvision's ViT head) get N(0, 0.02) values:
    with them every logit, gradient and score difference would vanish, and the maps (and OptiCAM's
    early stop) with them."""
    torch.manual_seed(0)
    model = zoo.create_model(cfg, pretrained=pretrained, device=device)
    if not pretrained:
        with torch.no_grad():
            for p in model.parameters():
                if p.dim() > 1 and not p.any():
                    p.normal_(0, 0.02)
    return model


def cycled(x: torch.Tensor, n: int) -> torch.Tensor:
    """The first ``n`` items of ``x`` repeated as often as needed."""
    return x.repeat((n + len(x) - 1) // len(x), *[1] * (x.dim() - 1))[:n]


def bench_inputs(cfg, kind: str, batch: int, size: tuple[int, int]) -> torch.Tensor:
    """``batch`` inputs: N(0, 1) noise, or the five scikit-image photographs (repeated as needed)
    through the model's input transform."""
    if kind == "noise":
        return torch.randn(batch, 3, *size, generator=torch.Generator().manual_seed(0))
    inp = cfg.input
    photos = PackagePhotos(Preprocess(size=size, mean=tuple(inp.mean), std=tuple(inp.std), mode=inp.resize),
                           on_error="raise")
    return cycled(collate([photos[i] for i in range(len(photos))]).images, batch)


@dataclass
class Setup:
    """One model's measurement: its config, model, inputs ``x`` and the forward roofline (images/s)
    of each precision at ``roof`` images per pass."""

    name: str
    cfg: DictConfig
    model: torch.nn.Module
    x: torch.Tensor
    precisions: list[str]
    roofline: dict[str, float]
    roof: int


def setup(name: str, args: argparse.Namespace, device: torch.device) -> Setup:
    """Model ``name``, its inputs and its roofline: forward throughput at the batch the masked passes
    run at (the chunk size), each precision in its memory format."""
    cfg = zoo.model_config(name)
    model = bench_model(cfg, device, args.pretrained)
    # --size rescales CNN inputs; ViTs keep their configured size (position embeddings fix it).
    size = tuple(cfg.input.size) if args.size is None or cfg.family == "vit" else (args.size, args.size)
    x = bench_inputs(cfg, args.inputs, args.batch, size).to(device)
    roof = max(args.batch, args.chunk if args.chunk != "auto" else auto_chunk_size(model, x[:1]))
    precisions = ["fp32", "bf16"] if args.bf16 else ["fp32"]
    roofline = {p: forward_throughput(model.to(memory_format=zoo.memory_format(cfg, p, device)), cycled(x, roof),
                                      bf16=p == "bf16") for p in precisions}
    model = model.to(memory_format=zoo.memory_format(cfg, "fp32", device))
    return Setup(name, cfg, model, x, precisions, roofline, roof)


def forward_rows(s: Setup) -> list[dict]:
    """The roofline rows: the model's own forward throughput in each precision."""
    return [dict(model=s.name, method="forward", impl="torch", precision=p, images_per_s=s.roofline[p], passes=1.0,
                 roofline_fraction=1.0, roofline_batch=s.roof) for p in s.precisions]


def method_rows(s: Setup, method: str, args: argparse.Namespace) -> list[dict]:
    """``method``'s rows, one per precision: throughput, passes, roofline fraction, chunk, peak memory;
    ClusCAM's K-means share; bf16's map difference to fp32's."""
    layer, opts = zoo.layer_spec(s.cfg, method), zoo.method_options(s.cfg, method)
    device = s.x.device
    maps, rows = {}, []  # each precision's maps of the timed call; fp32's are the bf16 reference
    for precision in s.precisions:
        # Module.to(memory_format) converts the model in place: each explainer sets it before use
        model = s.model.to(memory_format=zoo.memory_format(s.cfg, precision, device))
        cam = create_explainer(method, model, layer, chunk_size=args.chunk, precision=precision, **opts)
        peak_gib(device, reset=True)
        seconds = timed(lambda: maps.__setitem__(precision, cam(s.x)), device) / len(s.x)
        p = cam.last_passes
        passes = p.forward + p.partial + 2 * p.backward
        row = dict(model=s.name, method=method, impl="ours", precision=precision, images_per_s=1 / seconds,
                   passes=passes, roofline_fraction=passes / seconds / s.roofline[precision], peak_gib=peak_gib(device),
                   chunk=cam.chunk_size if isinstance(cam.chunk_size, int) else None)  # None: no masked passes
        if isinstance(cam, ClusCAM):
            row["kmeans_fraction"] = kmeans_seconds(cam, s.x) / seconds
        if precision == "bf16":
            diff = (maps["bf16"] - maps["fp32"]).abs()
            row["max_abs_diff_vs_fp32"], row["mean_abs_diff_vs_fp32"] = float(diff.max()), float(diff.mean())
        rows.append(row)
    s.model.to(memory_format=zoo.memory_format(s.cfg, "fp32", device))  # the references run on the fp32 layout
    return rows


def author_style_row(s: Setup, n: int) -> dict | None:
    """The author-style ClusCAM on ``n`` images (channel grouping only, as the public code)."""
    table3 = zoo.method_options(s.cfg, "cluscam")
    if table3.get("grouping", "channels") != "channels":
        return None
    layer, k = zoo.layer_spec(s.cfg, "cluscam"), table3["k"]
    run = lambda m: author_style_cluscam(s.model, layer, s.x[:m], k, table3["r"], table3["tau"])  # noqa: E731
    sec = timed(lambda: run(n), s.x.device) / n
    return dict(model=s.name, method="cluscam", impl="author-style", precision="fp32", images_per_s=1 / sec,
                passes=1 + k, roofline_fraction=(1 + k) / sec / s.roofline["fp32"])


def library_row(s: Setup, method: str, ours: dict, n: int) -> dict:
    """pytorch-grad-cam's ``method`` beside ``ours`` (our fp32 row): GradCAM on the batch, the others on ``n`` images."""
    x = s.x if method == "gradcam" else s.x[:n]
    sec = library_seconds(LIBRARY[method], s.model, zoo.layer_spec(s.cfg, method), x)
    return dict(model=s.name, method=method, impl="pytorch-grad-cam", precision="fp32", images_per_s=1 / sec,
                passes=ours["passes"], roofline_fraction=ours["passes"] / sec / s.roofline["fp32"],
                ours_speedup=ours["images_per_s"] * sec)


def reference_rows(s: Setup, rows: list[dict], n: int) -> list[dict]:
    """The reference implementations of the methods measured in ``rows``, on ``n`` images (0: none)."""
    if not n:
        return []
    ours = {r["method"]: r for r in rows if r["impl"] == "ours" and r["precision"] == "fp32"}
    out = [author_style_row(s, n)] if "cluscam" in ours else []
    out += [library_row(s, m, ours[m], n) for m in LIBRARY if m in ours]
    return [r for r in out if r is not None]


def measure_model(name: str, methods: list[str], args: argparse.Namespace, device: torch.device) -> list[dict]:
    """Every row of model ``name``: its roofline, each method it supports, the references."""
    s = setup(name, args, device)
    rows = forward_rows(s)
    for method in methods:
        if method_class(method).supports(s.cfg.family, s.model):  # e.g. AG-CAM: timm / torchvision ViT attention
            rows += method_rows(s, method, args)
    rows += reference_rows(s, rows, min(args.reference_images, s.x.shape[0]))
    size = f"{s.x.shape[-2]}x{s.x.shape[-1]}"
    weights = "pretrained" if args.pretrained else "random"
    return [{**r, "batch": args.batch, "size": size, "weights": weights, "inputs": args.inputs} for r in rows]


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["resnet18", "resnet50", "vit_b_16"])
    parser.add_argument("--methods", nargs="+", default=sorted(METHODS))
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=None, help="square input side of CNNs (default: the model's)")
    parser.add_argument("--chunk", default="auto", help="images per masked forward pass, or auto")
    parser.add_argument("--bf16", action="store_true", help="also measure bf16 autocast / channels-last")
    parser.add_argument("--pretrained", action="store_true",
                        help="the models' configured weights (must be obtainable) instead of random ones")
    parser.add_argument("--inputs", choices=["noise", "photos"], default="noise",
                        help="N(0, 1) inputs, or the scikit-image photographs through the model's transform")
    parser.add_argument("--reference-images", type=int, default=2,
                        help="images for the author-style ClusCAM and pytorch-grad-cam ScoreCAM (0: skip them)")
    parser.add_argument("--device", default="auto", help="cuda, cpu, ... or auto (CUDA when available)")
    parser.add_argument("--out", default=str(zoo.CONF_DIR.parent / "results" / "perf"))
    parser.add_argument("--tag", default=None, help="suffix of the CSV file name, after the device's name")
    args = parser.parse_args(argv)
    args.chunk = args.chunk if args.chunk == "auto" else int(args.chunk)
    device = resolve_device(args.device, key="--device")
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = TF32
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    slug = "-".join(filter(None, [device_name(device), args.tag]))
    slug = re.sub(r"[^A-Za-z0-9]+", "-", slug).strip("-").lower()
    rows = []
    for name in args.models:  # the CSV is rewritten after each model: a crash keeps what was measured
        rows += measure_model(name, args.methods, args, device)
        table = pd.DataFrame(rows)
        table.insert(0, "device", device_name(device))
        table["commit"], table["date"] = git_commit(), pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds")
        table.to_csv(out / f"{slug}.csv", index=False)
    cols = [c for c in ["model", "method", "impl", "precision", "images_per_s", "passes", "roofline_fraction",
                        "kmeans_fraction", "ours_speedup", "max_abs_diff_vs_fp32", "mean_abs_diff_vs_fp32", "chunk", "peak_gib"] if c in table]
    print(table[cols].to_markdown(index=False, floatfmt=".3g"))
    print(f"\nwritten to {out / f'{slug}.csv'}")
    return table


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
