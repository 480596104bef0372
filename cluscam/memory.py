"""Chunk sizes for batched masked forward passes, chosen from free device memory."""
from __future__ import annotations

import torch
from torch import nn

CPU_CHUNK = 64
MAX_CHUNK = 1024


@torch.no_grad()
def auto_chunk_size(model: nn.Module, sample: torch.Tensor, budget: float = 0.5, probe: int = 4) -> int:
    """Images per forward pass that fit in ``budget`` of the free memory of ``sample``'s device.

    On CUDA the peak memory of an inference pass on ``probe`` copies of ``sample`` [1, 3, H, W] gives
    the cost per image (this probe is not a counted pass); elsewhere a fixed chunk of 64."""
    if sample.device.type != "cuda":
        return CPU_CHUNK
    device = sample.device
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    model(sample.expand(probe, -1, -1, -1).contiguous())
    torch.cuda.synchronize(device)
    per_image = max(1, (torch.cuda.max_memory_allocated(device) - before) // probe)
    free, _ = torch.cuda.mem_get_info(device)
    return int(max(1, min(MAX_CHUNK, budget * free // per_image)))
