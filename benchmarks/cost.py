"""What a run will cost before it runs: the FLOPs of an architecture's passes, its forward throughput on
a device (measured there, or read from a ``results/perf`` CSV), and from them the device seconds of a
number of images at given passes per image.

The price of one image is ``(F * f + P * p + 2 * B * f) / (throughput * f)`` seconds for F forward,
P partial and B backward passes, where f is the FLOPs of a whole forward pass and p those of the part
of the network after the hooked layer (a partial pass), both counted on the meta device; a backward
pass is priced as two forward ones (as :mod:`benchmarks.perf` prices its roofline).  An architecture
without its own throughput row in a perf CSV takes the median FLOP rate of the CSV's architectures.
"""
from __future__ import annotations

import functools
import statistics
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks import zoo
from cluscam.base import PassCount, as_logits

BACKWARD_FACTOR = 2.0  # a backward pass costs two forward ones
# Passes per image outside the explanation, in every runner cell (benchmarks.api.evaluate_batch): the
# prediction that picks the explained class and the masked input of AD, IC and AG.
METRIC_FORWARDS = 2.0


@dataclass(frozen=True)
class Flops:
    """FLOPs per image of a whole forward pass and of a partial pass (after the hooked layer)."""

    forward: float
    partial: float


@functools.cache
def flops(name: str) -> Flops:
    """FLOPs of model ``name`` at its input size, counted on the meta device (nothing is computed).
    The partial pass is the difference between the network run with the hooked layer's output doubled
    along the batch and run plainly, as AblationCAM and ReciproCAM run it; where the network cannot run
    on a doubled output (a ViT that reshapes it by the input's batch), a partial pass is priced as a
    whole one (an upper bound: the hooked patch embedding is the network's first layer)."""
    cfg = zoo.model_config(name)
    with torch.device("meta"):
        model = zoo._build(cfg, int(cfg.num_classes)).eval().requires_grad_(False)
    x = torch.empty(1, 3, *cfg.input.size, device="meta")
    module = zoo.layer_spec(cfg).module(model)

    def counted(copies: int) -> float:
        handle = module.register_forward_hook(lambda _m, _i, out: out.repeat_interleave(copies, 0))
        try:
            with FlopCounterMode(display=False) as counter:
                as_logits(model(x))
        finally:
            handle.remove()
        return float(counter.get_total_flops())

    whole = counted(1)
    try:
        partial = counted(2) - whole
    except RuntimeError:
        partial = whole
    return Flops(forward=whole, partial=partial)


@dataclass(frozen=True)
class Throughput:
    """Forward images per second of one architecture on one device, and where the figure comes from."""

    model: str
    images_per_s: float
    source: str

    @property
    def flops_per_s(self) -> float:
        return self.images_per_s * flops(self.model).forward


def seconds(model: str, passes: PassCount, images: float, throughput: Throughput) -> float:
    """Device seconds of ``images`` images at ``passes`` per image on ``model``."""
    f = flops(model)
    work = passes.forward * f.forward + passes.partial * f.partial + BACKWARD_FACTOR * passes.backward * f.forward
    return images * work / throughput.flops_per_s


def measure(model: str, device: torch.device, precision: str = "fp32", batch: int = 32,
            repeats: int = 2) -> Throughput:
    """Forward throughput of ``model`` (random weights, noise inputs, its runner layout) at ``batch``
    images per pass, after one warm-up pass."""
    from benchmarks.perf import forward_throughput  # measuring needs the benchmark's timing, pricing does not

    cfg = zoo.model_config(model)
    torch.manual_seed(0)
    net = zoo.create_model(cfg, pretrained=False, device=device)
    net = net.to(memory_format=zoo.memory_format(cfg, precision, device))
    x = torch.randn(batch, 3, *cfg.input.size, device=device)
    rate = forward_throughput(net, x, bf16=precision == "bf16", repeats=repeats)
    from benchmarks.provenance import device_name

    return Throughput(model, rate, f"measured: {device_name(device)}, batch {batch}, {precision}")


def from_perf_csv(path: str | Path, models: list[str], precision: str = "fp32") -> dict[str, Throughput]:
    """Throughputs of ``models`` from a ``benchmarks.perf`` CSV (its ``forward`` rows at ``precision``);
    a model without a row gets the median FLOP rate of the CSV's models, and says so."""
    path = Path(path)
    rows = pd.read_csv(path)
    rows = rows[(rows["method"] == "forward") & (rows["precision"] == precision)]
    rows = rows[rows["model"].isin(zoo.MODEL_NAMES)]
    if rows.empty:
        raise ValueError(f"{path} has no {precision} forward rows of a zoo model; run make bench (benchmarks.perf) "
                         "on the device, or plan with a throughput measurement instead")
    device = str(rows["device"].iloc[0])
    own = {m: float(g["images_per_s"].max()) for m, g in rows.groupby("model")}
    rate = statistics.median(own[m] * flops(m).forward for m in own)
    out = {}
    for m in models:
        if m in own:
            out[m] = Throughput(m, own[m], f"{path.name}: {device}, its own forward row")
        else:
            out[m] = Throughput(m, rate / flops(m).forward,
                                f"{path.name}: {device}, scaled by FLOPs from {', '.join(sorted(own))}")
    return out


__all__ = ["BACKWARD_FACTOR", "Flops", "METRIC_FORWARDS", "Throughput", "flops", "from_perf_csv", "measure", "seconds"]
