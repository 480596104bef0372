"""The model-parameter randomization check (Adebayo et al. 2018) for one model and method over a cell's images.

    python -m scripts.randomization model=efficientnet_lite0 method=cluscam dataset=ilsvrc \
        dataset.root=/data/ilsvrc run.n_images=20 [--stages classifier blocks.6 ...]

Any ``key=value`` argument is a Hydra override of ``conf/config.yaml`` (the runner's).  ``--stages``: the
module paths randomized cascading from the first (default: the model's top-level stages from the logits
down, :func:`benchmarks.faithfulness.default_stages`).  Rows (one per image and stage: spearman, ssim and
the method's passes) go to ``<run.out_dir>/randomization/<dataset>/<model>/<method>/<hash>/rows.csv``
(:mod:`benchmarks.randomization`); a rerun skips the finished images.  Prints the mean per stage.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from benchmarks.api import compose, one_line_errors
from benchmarks.randomization import randomization_store, run_randomization


def main(argv: Sequence[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", nargs="+", help="module paths, randomized cascading from the first")
    parser.add_argument("--no-progress", action="store_true")
    args, overrides = parser.parse_known_args(argv)
    with one_line_errors():
        cfg = compose(overrides)
        rows = run_randomization(cfg, args.stages, progress=not args.no_progress)
        stages = list(dict.fromkeys(rows["stage"]))
        print(rows.groupby("stage", sort=False)[["spearman", "ssim"]].mean().loc[stages].round(3).to_string())
        print(randomization_store(cfg, stages).dir / "rows.csv")


if __name__ == "__main__":
    main()
