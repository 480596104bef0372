"""Table 1 with the data of Fig. 2 and Fig. 9 (paper Sec. 4.1, App. D.1): meta-representations
against the mean of their members.

For each image, ClusCAM's meta-representation scores s_j = f_c(x ⊙ M_j) − f_c(x) (Eq. 5) and, for
each member F_i of group j alone, f_c(x ⊙ NormalizeUpsample(F_i)) − f_c(x) (N masked forward passes
per image); the group's member mean is the paper's baseline "obtained by averaging the internal
representations".  c is the predicted class.

    python -m scripts.table1 model=resnet18 dataset=ilsvrc dataset.root=/data/ilsvrc run.n_images=2000
    python -m scripts.table1 --groups-csv runs/table1/ilsvrc/resnet18/groups/<hash>/rows.csv  # table only

Options: ``--out DIR`` (the tables' folder, default results/tables), ``--top N`` (the ranks Table 1's ranges run
over, default 10).  Any ``key=value`` argument is a Hydra override of ``conf/config.yaml`` (the
runner's: model, dataset, dataset.root, run.n_images, run.device, run.batch_size, method.options.*).

Rows go to ``<run.out_dir>/table1/<dataset>/<model>/{groups,members}/<config hash>/rows.csv``, written
batch by batch with the runner's :class:`~benchmarks.store.CellStore` (a rerun skips finished images):
``groups`` has one row per (image, non-empty group): id, label, pred, group, rank (by s_meta, 0 =
highest), size, s_meta, s_members_mean; ``members`` one row per (image, representation): id, group,
member, s_member.  The table goes to ``<out>/table1.md``, ``.tex``, ``.csv`` (per-rank
statistics) and ``.meta.json``.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

import pandas as pd

from benchmarks.api import compose, one_line_errors
from benchmarks.table1 import TOP, read_provenance, run_table1, split_overrides, table1_stores, write_table1


def main(argv: Sequence[str] | None = None) -> None:
    import sys

    options, overrides = split_overrides(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups-csv", type=Path, help="render the table from these groups rows (no experiment)")
    parser.add_argument("--out", type=Path, default=Path("results/tables"), help="folder of table1.*")
    parser.add_argument("--top", type=int, default=TOP, help="ranks the ranges run over")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(options)
    if args.groups_csv is not None:
        groups = pd.read_csv(args.groups_csv, dtype={"id": str})
        cell_dir = args.groups_csv.parent
    else:
        cfg = compose(["method=cluscam", *overrides])
        groups, members = run_table1(cfg, progress=not args.no_progress)
        cell_dir = table1_stores(cfg)[0].dir
        print(f"groups: {cell_dir / 'rows.csv'}\nmembers: {table1_stores(cfg)[1].dir / 'rows.csv'}")
    prov, model = read_provenance(cell_dir)
    try:
        paths = write_table1(groups, args.out, args.top, model, prov)
    except ValueError as err:
        raise SystemExit(f"error: {err}") from err
    print(paths[0].read_text())
    print("\n".join(map(str, paths)))


if __name__ == "__main__":
    with one_line_errors():
        main()
