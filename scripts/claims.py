"""The claims report: each quantitative claim of the paper beside its measured value, with a verdict.

    python -m scripts.claims --runs results/runs --out results/REPRODUCTION.md [--where KEY=VALUE ...]
                             [--resamples 2000] [--seed 0] [--min-images 10] [--min-architectures 2]
                             [--min-study-images 200]
                             [--tables results/tables] [--ablation-runs results/runs-ablation] [--random-weights]

The claims and their measurement are :mod:`benchmarks.claims`, the paper's studies
:mod:`benchmarks.studies`, the statistics :mod:`benchmarks.stats` and the report :mod:`benchmarks.report`,
which states its rules under "How to read it".  Table 1 is read from
``<runs>/table1/`` (scripts/table1.py), the Table 3 selections from ``<tables>/**/table3/``, Fig. 5's
variants from ``--ablation-runs`` (scripts/figures.py fig5), the section "Beyond the paper" (Table 10's
comparisons, :mod:`benchmarks.beyond`) from ``--faithfulness-runs``.
"""
from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import Sequence

from benchmarks.beyond import comparisons, randomization_summary, read_randomization, section
from benchmarks.claims import MIN_ARCHITECTURES, read_rows
from benchmarks.report import report
from benchmarks.studies import MIN_STUDY_IMAGES, read_ablation
from benchmarks.results import add_row_arguments, load_rows, where_argument


def main(argv: Sequence[str] | None = None) -> None:
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_row_arguments(parser)
    parser.add_argument("--out", default="results/REPRODUCTION.md", help="the report's path")
    parser.add_argument("--min-images", type=int, default=10, help="fewest paired images per architecture")
    parser.add_argument("--min-architectures", type=int, default=MIN_ARCHITECTURES,
                        help="fewest architectures for a family verdict")
    parser.add_argument("--min-study-images", type=int, default=MIN_STUDY_IMAGES,
                        help="fewest images of a verdict on Table 1, App. D.1 and Fig. 5")
    parser.add_argument("--ablation-runs", type=Path, default=None,
                        help="runs folder of Fig. 5's ClusCAM variants (default: the runs folder's sibling "
                             "runs-ablation/)")
    parser.add_argument("--tables", type=Path, default=None,
                        help="folder whose table3/ subfolders hold the Table 3 selections (default: the runs "
                             "folder's sibling tables/)")
    parser.add_argument("--faithfulness-runs", type=Path, default=None,
                        help="runs folder of the cells with the faithfulness tests (metrics.faithfulness) and their "
                             "randomization/ cells: adds the section 'Beyond the paper' (default: the runs folder's "
                             "sibling runs-faithfulness/, when it exists)")
    parser.add_argument("--random-weights", action="store_true",
                        help="the rows ran on random stand-ins for the hub weights (a rehearsal): say so, measure no claim")
    args = parser.parse_args(argv)
    where = where_argument(parser, args)
    try:
        data = read_rows(args.runs, where)
        data.random_weights = args.random_weights
        tables = args.tables or Path(args.runs).parent / "tables"
        text = report(data, args.runs, "python -m scripts.claims " + shlex.join(argv), args.resamples, args.seed,
                      args.min_images, selections=sorted(p for p in tables.glob("**/table3") if p.is_dir()),
                      min_architectures=args.min_architectures,
                      ablation=read_ablation(args.ablation_runs or Path(args.runs).parent / "runs-ablation"),
                      min_study_images=args.min_study_images,
                      beyond=beyond_lines(args.faithfulness_runs or Path(args.runs).parent / "runs-faithfulness",
                                          args.resamples, args.seed, explicit=args.faithfulness_runs is not None))
    except ValueError as err:
        raise SystemExit(f"error: {err}") from err
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(out)


def beyond_lines(runs: Path, resamples: int, seed: int, explicit: bool) -> list[str]:
    """The section "Beyond the paper" from ``runs`` (none when the default folder is absent)."""
    if not runs.is_dir():
        if explicit:
            raise ValueError(f"--faithfulness-runs {runs} is not a folder")
        return []
    random = randomization_summary(read_randomization(runs / "randomization"), resamples=resamples, seed=seed)
    rows = load_rows(runs)
    return section(comparisons(rows, resamples=resamples, seed=seed) if len(rows) else [], random, runs)


if __name__ == "__main__":
    main()
