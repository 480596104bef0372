"""Does a lower precision move a method's table values?  A paired comparison of one method's cells
at two precisions (``run.precision``, recorded as ``method.precision`` in each cell's config).

    python -m scripts.precision --runs results/runs-precision results/runs --dataset ilsvrc \\
        --model efficientnet_lite0 --method scorecam --out results/tables

On the image ids both cells have, per metric (AD, IC, AG; EP and LE over the single-box images, as
the tables compute them): the reference (fp32) value and the half-width of its 95% bootstrap
interval, the other precision's value, and their paired difference with its 95% interval (the same
bootstrap draws of images for both).  The lower precision is admissible for a metric when the
difference is smaller in size than the reference's half-width: it moves the value by less than the
value's own sampling uncertainty.  Writes ``precision_<dataset>_<model>_<method>.md`` and ``.csv``.
"""
from __future__ import annotations

import argparse
import zlib
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from benchmarks.provenance import git_commit
from benchmarks.results import load_rows
from benchmarks.stats import CONFIDENCE, LOCALIZATION, bootstrap_means, interval, metric_values
from benchmarks.tables import LABELS

METRICS = CONFIDENCE + LOCALIZATION


def rows_by_precision(runs: Sequence[str | Path], dataset: str, model: str, method: str) -> dict[str, pd.DataFrame]:
    """The rows of each precision's cell of (dataset, model, method) across ``runs``; an error when a
    precision has several cells."""
    out: dict[str, pd.DataFrame] = {}
    for folder in runs:
        rows = load_rows(folder)
        rows = rows[(rows["dataset"] == dataset) & (rows["model"] == model) & (rows["method"] == method)]
        for _, g in rows.groupby("cell"):
            precision = g["precision"].iloc[0]  # load_rows: the cell config's method.precision
            if precision in out:
                raise ValueError(f"two {precision} cells of {dataset}/{model}/{method}; keep one in the runs folders")
            out[precision] = g
    return out


def compare(reference: pd.DataFrame, other: pd.DataFrame, resamples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Per metric: both values in %, the reference's 95% half-width, the paired difference and its
    95% interval, and whether the difference is within the half-width; over the ids both have."""
    ids = sorted(set(reference["id"]) & set(other["id"]))
    if not ids:
        raise ValueError("the two cells have no image id in common; run both on the same range")
    a, b = (df.set_index("id").loc[ids] for df in (reference, other))
    va = metric_values(a)[0]
    vb = metric_values(b.assign(n_boxes=a.get("n_boxes")))[0]  # the reference's boxes select both
    boot = bootstrap_means(np.hstack([va, vb, vb - va]), resamples, seed + zlib.crc32(",".join(ids).encode()))
    k, records = len(METRICS), []
    for j, metric in enumerate(METRICS):
        if np.isnan(va[:, j]).all():
            continue
        lo, hi = interval(boot[:, j])
        dlo, dhi = interval(boot[:, 2 * k + j])
        diff = float(np.nanmean(vb[:, j] - va[:, j]))
        records.append({"metric": metric, "n": int((~np.isnan(va[:, j])).sum()), "reference": float(np.nanmean(va[:, j])),
                        "half_width": (hi - lo) / 2, "other": float(np.nanmean(vb[:, j])), "difference": diff,
                        "diff_lo": dlo, "diff_hi": dhi, "within": abs(diff) < (hi - lo) / 2})
    return pd.DataFrame(records)


def render(table: pd.DataFrame, title: str, footer: Sequence[str]) -> str:
    """The comparison as a Markdown table with a verdict line."""
    lines = [f"### {title}", "", "| metric | images | fp32 | 95% half-width | other | difference [95% CI] | within |",
             "|---|---|---|---|---|---|---|"]
    for r in table.itertuples():
        lines.append(f"| {LABELS[r.metric]} | {r.n} | {r.reference:.2f} | {r.half_width:.2f} | {r.other:.2f} | "
                     f"{r.difference:+.2f} [{r.diff_lo:+.2f}, {r.diff_hi:+.2f}] | {'yes' if r.within else 'no'} |")
    conf = table[table["metric"].isin(CONFIDENCE)]
    ok = bool(len(conf) == len(CONFIDENCE) and conf["within"].all())
    lines += ["", f"**{'Admissible' if ok else 'Not admissible'}**: AD, IC and AG move by "
              f"{'less' if ok else 'not less'} than the half-widths of their 95% intervals.", "", *footer]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> pd.DataFrame:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", nargs="+", required=True, help="runs folders holding the two cells")
    p.add_argument("--dataset", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--method", required=True)
    p.add_argument("--reference", default="fp32")
    p.add_argument("--other", default="bf16")
    p.add_argument("--out", default="results/tables")
    args = p.parse_args(argv)
    cells = rows_by_precision(args.runs, args.dataset, args.model, args.method)
    missing = [x for x in (args.reference, args.other) if x not in cells]
    if missing:
        p.error(f"no {' or '.join(missing)} cell of {args.dataset}/{args.model}/{args.method} in {' '.join(args.runs)}")
    table = compare(cells[args.reference], cells[args.other])
    name = f"precision_{args.dataset}_{args.model}_{args.method}"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / f"{name}.csv", index=False)
    devices = sorted({d for g in cells.values() for d in g["device"].astype(str)})
    footer = [f"Cells: {args.reference} {cells[args.reference]['cell'].iloc[0]}, {args.other} "
              f"{cells[args.other]['cell'].iloc[0]} ({' '.join(args.runs)}); devices: {', '.join(devices)}; "
              f"rendered at commit {git_commit()}."]
    text = render(table, f"{args.method} on {args.model} ({args.dataset}): {args.other} against {args.reference}", footer)
    (out / f"{name}.md").write_text(text)
    print(text)
    return table


if __name__ == "__main__":
    main()
