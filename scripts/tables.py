"""The paper's result tables (Tables 2, 4-9) from the per-image rows, as Markdown, LaTeX and CSV.

    python -m scripts.tables --runs runs --out results/tables [--tables 2 2ci 4 5 6 7 8 9]
                             [--where dataset.options.layout=auto ...]

Each table becomes ``<out>/table<name>.md``, ``.tex``, ``.csv`` (one line per cell, with its value,
spread, 95% bootstrap interval, the count of images its mean averaged and rank) and ``.meta.json``
(images per cell and metric, models, commits, devices, missing cells, the common image set, the
``--where`` selection, also named in each footer).
Every table uses one cell per (dataset, model, method), chosen by its config (``--where``), never by
date, and compares the methods of each (dataset, architecture) on the image ids all its cells have
(a footer names the cells whose other images were left out, and the cells left out because a run
has not yet joined their rows into ``rows.csv``; a ``rows.csv`` that is not whole stops it, exit
status 2).  An architecture's value is the mean of its per-image terms in % (Appendix C, Eqs. 11-15;
EP and LE over the images with one box, a filter on the same rows); a family's value is the mean ± sample standard deviation of its architectures'
values (Table 2; e.g. the paper's CNN GradCAM AD 18.93 ± 4.82 is that of Table 6's six CNN values).
Bootstrap intervals resample each architecture's images (fixed seed per dataset and architecture,
so every method of an architecture sees the same draws; EP and LE average the single-box images of
each draw), and a family mean's image ids jointly across its architectures.
Every table is a list of blocks, each a matrix of cells drawn by one renderer per format.
Methods and datasets are named and ordered by their registries (:mod:`baselines`, :mod:`benchmarks.data`):
Tables 4-6, 8 and 9 are on the first dataset of the rows whose class has boxes (ILSVRC), Table 7 on the
first without (Alzheimer's); methods that explain one family only (AG-CAM) appear in Table 5 alone.
"""
from __future__ import annotations

import argparse
from typing import Sequence

from benchmarks.results import add_row_arguments, load_rows, partial_cells, where_argument
from benchmarks.tables import TABLES, method_label, write_tables


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_row_arguments(parser)
    parser.add_argument("--out", default="results/tables", help="folder for the tables")
    parser.add_argument("--tables", nargs="+", default=list(TABLES), choices=TABLES)
    parser.add_argument("--methods", nargs="+", default=None,
                        help="only these methods' cells (e.g. to compare the others on more images than a slow "
                             "method has run on); the footer names the methods left out")
    args = parser.parse_args(argv)
    where = where_argument(parser, args)
    try:
        every = load_rows(args.runs, where=where)
        rows = every[every["method"].isin(args.methods)] if args.methods else every
        if rows.empty:
            selection = f" with {' '.join(args.where)}" if args.where else ""
            raise ValueError(f"no result rows under {args.runs}{selection}: run benchmarks.run first")
        left_out = sorted(set(every["method"]) - set(rows["method"]))
        partial = partial_cells(args.runs, where)
        notes = []
        if left_out:
            notes.append(f"Left out of this rendering (--methods): {', '.join(map(method_label, left_out))}.")
        if partial:
            notes.append("Cells left out, their rows not yet joined into rows.csv (a run under way or stopped; rerun "
                         "the cell, the runner resumes): "
                         + ", ".join(f"{cell} ({n} images in its parts)" for cell, n in partial.items()) + ".")
        paths = write_tables(rows, args.out, args.tables, resamples=args.resamples, seed=args.seed, notes=notes,
                             where=where)
    except ValueError as err:
        parser.exit(2, f"error: {err}\n")
    print("\n".join(map(str, paths)))


if __name__ == "__main__":
    main()
