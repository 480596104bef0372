"""Table 10, beyond the paper: ClusCAM's lead under Deletion/Insertion, ROAD and the randomization check.

    python -m scripts.beyond --runs results/runs-faithfulness --out results/tables [--threshold 0.5]
                             [--resamples 2000] [--seed 0] [--where KEY=VALUE ...]

Reads the runner's cells run with ``metrics.faithfulness=[deletion,insertion,road]`` under ``--runs`` and the
randomization cells under ``<runs>/randomization`` (scripts/randomization.py); writes ``table10.md``, ``.tex``,
``.csv`` and ``.meta.json`` to ``--out`` and prints the Markdown.  The statistics are :mod:`benchmarks.beyond`;
``scripts/claims.py --faithfulness-runs`` puts the same comparisons in REPRODUCTION.md.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Sequence

from benchmarks.beyond import THRESHOLD, comparisons, randomization_summary, read_randomization, table10
from benchmarks.provenance import git_commit
from benchmarks.results import add_row_arguments, load_rows, where_argument
from benchmarks.stats import cell_stats
from benchmarks.tables import render_csv, render_latex, render_markdown, table_meta


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_row_arguments(parser)
    parser.add_argument("--out", type=Path, default=Path("results/tables"), help="folder of table10.*")
    parser.add_argument("--threshold", type=float, default=THRESHOLD,
                        help="Spearman correlation above which a method's maps do not change under randomization")
    args = parser.parse_args(argv)
    where = where_argument(parser, args)
    rows = load_rows(args.runs, where=where)
    if rows.empty:
        raise SystemExit(f"error: no rows under {args.runs}: run the runner with metrics.faithfulness=[deletion,"
                         f"insertion,road] and run.out_dir={args.runs}")
    results = comparisons(rows, resamples=args.resamples, seed=args.seed)
    random = randomization_summary(read_randomization(Path(args.runs) / "randomization"), args.threshold,
                                   args.resamples, args.seed)
    table = table10(results, random, args.threshold)
    if table is None:
        raise SystemExit(f"error: the rows under {args.runs} have no ClusCAM cell beside a baseline with the tests")
    meta = table_meta(table, cell_stats(rows, args.resamples, args.seed), git_commit(), where)
    args.out.mkdir(parents=True, exist_ok=True)
    for suffix, text in ((".md", render_markdown(table, meta)), (".tex", render_latex(table, meta)),
                         (".csv", render_csv(table)), (".meta.json", json.dumps(meta, indent=2) + "\n")):
        (args.out / f"table10{suffix}").write_text(text)
    print((args.out / "table10.md").read_text())


if __name__ == "__main__":
    main()
