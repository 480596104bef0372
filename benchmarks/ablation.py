"""Fig. 5's ablation variants of ClusCAM (Sec. 4.4), shared by the figure and the pipeline's cost plan."""
from __future__ import annotations

from typing import Sequence

from omegaconf import DictConfig

# Fig. 5's variants (Sec. 4.4) as ClusCAM option overrides: clustering replaced (kmeans is the default),
# or K-Means++ with other weightings: logit (raw scores, no discarding), r = 0 keeps every group, tau = 1
# is the plain softmax.
ABLATION: dict[str, tuple[str, ...]] = {
    "ClusCAM (full)": (),
    "No clustering": ("method.options.clustering=none",),
    "Spectral": ("method.options.clustering=spectral",),
    "HDBSCAN": ("method.options.clustering=hdbscan",),
    "Only logit": ("method.options.weighting=logit",),
    "Only softmax": ("method.options.r=0", "method.options.tau=1"),
    "Discarding softmax": ("method.options.tau=1",),
    "Only temp-softmax": ("method.options.r=0",),
}


def variant_overrides(options: DictConfig, variant: Sequence[str]) -> list[str]:
    """A variant's overrides, with Hydra's '+' for option keys the method config does not declare."""
    return [o if o.split("=", 1)[0].rsplit(".", 1)[-1] in options else f"+{o}" for o in variant]
