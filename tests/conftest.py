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


class Invariants:
    """Checks every explainer must pass on ``images`` (3 x 32 x 32, models of 5 classes)."""

    @staticmethod
    def batch(exp, images: torch.Tensor, tol: float) -> None:
        """Maps of the input's size in [0, 1] with maximum 1; a batch gives each image's map alone."""
        out = exp(images)
        assert out.shape == (3, 32, 32) and out.min() >= 0 and out.max() <= 1
        assert torch.allclose(out.amax((1, 2)), torch.ones(3))
        singles = torch.cat([exp(images[b:b + 1]) for b in range(3)])
        torch.testing.assert_close(out, singles, atol=tol, rtol=tol)

    @staticmethod
    def targets(exp, images: torch.Tensor) -> None:
        """Another class gives another map; the predicted class is the default target."""
        predicted = exp(images)
        pred = exp.model(images).argmax(1)
        other = exp(images, (pred + 1) % 5)
        assert (predicted - other).abs().amax((1, 2)).min() > 1e-3
        torch.testing.assert_close(exp(images, pred), predicted)


@pytest.fixture
def invariants() -> type[Invariants]:
    return Invariants
