"""Fixtures shared by the tests of the baselines against hand-written re-computations."""
from __future__ import annotations

from typing import Callable

import pytest
import torch
import torch.nn.functional as F


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    """Three random 32 x 32 RGB inputs."""
    return torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def _finish(cam: torch.Tensor, size=(32, 32)) -> torch.Tensor:
    up = F.interpolate(cam[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
    lo = up.amin((1, 2), keepdim=True)
    return (up - lo) / (up.amax((1, 2), keepdim=True) - lo)


@pytest.fixture
def finish() -> Callable[[torch.Tensor], torch.Tensor]:
    """The explainers' post-processing written out: bilinear upsampling, per-map min-max."""
    return _finish
