"""The paper's result tables (Tables 2, 4-9) from the per-image rows, as Markdown, LaTeX, CSV and
``.meta.json`` (``scripts/tables.py`` is the command line).

Every table uses one cell per (dataset, model, method) and compares the methods of each (dataset,
architecture) on the image ids all its cells have (:mod:`benchmarks.stats`).  An architecture's value
is the mean of its per-image terms in % (Appendix C, Eqs. 11-15; EP and LE over the images with one
box); a family's value is the mean ± sample standard deviation of its architectures' values (Table 2;
e.g. the paper's CNN GradCAM AD 18.93 ± 4.82 is that of Table 6's six CNN values), its interval
resampling image ids jointly across them.  Every table is a list of blocks, each a matrix of cells
drawn by one renderer per format.  Methods and datasets are named and ordered by their registries
(:mod:`baselines`, :mod:`benchmarks.data`): Tables 4-6, 8 and 9 are on the first dataset of the rows
whose class has boxes (ILSVRC), Table 7 on the first without (Alzheimer's); methods that explain one
family only (AG-CAM) appear in Table 5 alone.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from baselines import METHODS, method_class
from benchmarks.data import DATASETS
from benchmarks.stats import (CONFIDENCE, FAMILIES, LEVEL, LOCALIZATION, LOWER_BETTER, Key, Stats, cell_stats, family_bootstrap,
                               family_of, interval)

MODELS = {"resnet18": "ResNet-18", "resnet34": "ResNet-34", "resnet50": "ResNet-50", "resnet101": "ResNet-101",
          "efficientnet_b0": "EfficientNet", "inception_v3": "InceptionV3", "vit_b_16": "ViT-B", "vit_ti_16": "ViT-Ti",
          "swin_b": "Swin-B",
          "levit_192": "LeViT-192", "levit_256": "LeViT-256", "cait_xxs24": "CaiT-XXS-24", "pvt_v2": "PVTv2",
          "efficientnet_lite0": "EfficientNet-Lite0", "efficientnet_lite1": "EfficientNet-Lite1",
          "efficientnet_lite2": "EfficientNet-Lite2", "tiny_cnn": "TinyCNN", "tiny_vit": "TinyViT"}
LABELS = {m: f"{m.upper()} ({'↓' if m in LOWER_BETTER else '↑'})" for m in CONFIDENCE + LOCALIZATION}
TABLES = ("2", "2ci", "4", "5", "6", "7", "8", "9")
DASH = "–"


# -- blocks and tables ------------------------------------------------------------------------------------
@dataclass
class Block:
    """A matrix of cells: dicts with ``row`` and ``col`` (label tuples), ``value`` and optionally ``std``,
    ``lo``, ``hi``, ``n``; ``metric`` and ``group`` rank the cells of one group (1 = best)."""
    title: str
    row_names: tuple[str, ...]
    cells: list[dict]
    emphasis: int = 2  # 2: best bold, second italic; 1: best bold; 0: none
    fmt: Callable[[float], str] = "{:.2f}".format
    prefix: str = ""
    show_ci: bool = False


@dataclass
class Table:
    name: str
    title: str
    blocks: list[Block]
    keys: list[Key]  # every (dataset, model, method) the table needs
    counts: dict[str, str] = field(default_factory=lambda: {"n": "images"})  # count (n or n_<metric>) -> label
    notes: list[str] = field(default_factory=list)


def method_label(name: str) -> str:
    """A method's name in the tables and figures: its class's display name, "(Ours)" after the paper's own."""
    if name not in METHODS:
        return name
    cls = method_class(name)
    return f"{cls.display_name or name}{' (Ours)' if cls.proposed else ''}"


def model_label(name: str) -> str:
    """A model's name in the tables and the claims report (:data:`MODELS`), else its config name."""
    return MODELS.get(name, name)


def dataset_label(name: str) -> str:
    """A dataset's name in the tables: its class's display name."""
    return (DATASETS[name].display_name or name) if name in DATASETS else name


def _cross_family(method: str) -> bool:
    """Whether ``method`` explains every family (unregistered methods are taken to)."""
    return method not in METHODS or all(method_class(method).supports(f) for f in FAMILIES)


def _dataset(stats: Stats, boxes: bool) -> str | None:
    """The first dataset of the rows (in registry order) whose class has boxes (``boxes``) or has none."""
    found = [d for d in registry_sorted({d for d, _, _ in stats.cells}, DATASETS)
             if (d in DATASETS and DATASETS[d].has_boxes) == boxes]
    return found[0] if found else None


def registry_sorted(names, order: Mapping[str, object]) -> list[str]:
    """The distinct ``names`` in the order of the registry ``order`` (models, methods, ...); others after, by name."""
    rank = {k: i for i, k in enumerate(order)}
    return sorted(set(names), key=lambda k: (rank.get(k, len(rank)), k))


def _models(stats: Stats, dataset: str) -> list[str]:
    return registry_sorted((m for d, m, _ in stats.cells if d == dataset), MODELS)


def _methods(stats: Stats, datasets: Sequence[str], single_family: bool = False) -> list[str]:
    """The methods of ``datasets``' rows in registry order; those of one family only if ``single_family``."""
    return [m for m in registry_sorted((m for d, _, m in stats.cells if d in datasets), METHODS)
            if single_family or _cross_family(m)]


def family_groups(models: Sequence[str], families: Mapping[str, str] | None) -> dict[str, list[str]]:
    """``models`` (their order kept) grouped by family, the families in :data:`FAMILIES`' order."""
    groups: dict[str, list[str]] = {}
    for m in models:
        groups.setdefault(family_of(m, families), []).append(m)
    return {f: groups[f] for f in registry_sorted(groups, FAMILIES)}


def _arch_cell(stats: Stats, key: Key, column: str) -> dict:
    rec = stats.cells.get(key)
    if rec is None:
        return {"value": np.nan}
    lo, hi = interval(rec.get("boot_" + column))
    return {"value": rec[column], "lo": lo, "hi": hi, "n": rec.get("n_" + column, rec["n"])}


def _family_cell(stats: Stats, dataset: str, models: Sequence[str], method: str, column: str) -> dict:
    """Mean ± sample std (ddof 1) over architectures, its interval with image ids resampled jointly and the
    distinct images; "–" unless every architecture has the cell."""
    recs = [stats.cells.get((dataset, m, method)) for m in models]
    if not recs or any(r is None for r in recs):
        return {"value": np.nan}
    x = np.array([r[column] for r in recs], float)
    boot, n = (family_bootstrap(stats, dataset, models, method, column) if "boot_" + column in recs[0]
               else (None, len(set().union(*(r["ids"] for r in recs)))))
    lo, hi = interval(boot)
    return {"value": x.mean(), "std": x.std(ddof=1) if len(x) > 1 else np.nan, "lo": lo, "hi": hi, "n": n}


def _counts(metrics: Sequence[str]) -> dict[str, str]:
    """The images each metric averaged (n_<metric>), labelled by the metric."""
    return {f"n_{m}": m.upper() for m in metrics}


def _grid(dataset: str, models: Sequence[str], methods: Sequence[str]) -> list[Key]:
    return [(dataset, m, meth) for m in models for meth in methods]


def per_architecture(stats: Stats, name: str, title: str, dataset: str | None, metrics: Sequence[str],
                     emphasis: int, models: Sequence[str] | None = None, single_family: bool = False,
                     chunk: int = 4) -> Table | None:
    """Methods x (architecture, metric), ranked per architecture and metric (Tables 4-7), in blocks of
    ``chunk`` architectures as in the paper; ``title`` is formatted with the dataset's name."""
    models = [m for m in (models or _models(stats, dataset)) if m in _models(stats, dataset)]
    if not models:
        return None
    methods = _methods(stats, [dataset], single_family)
    title = title.format(dataset=dataset_label(dataset))
    one = len(models) == 1
    blocks = []
    for i in range(0, len(models), chunk):
        part = models[i:i + chunk]
        cells = [{**_arch_cell(stats, (dataset, m, meth), metric), "row": (method_label(meth),),
                  "col": (LABELS[metric],) if one else (MODELS.get(m, m), LABELS[metric]),
                  "metric": metric, "group": f"{m}|{metric}"}
                 for meth in methods for m in part for metric in metrics]
        blocks.append(Block(MODELS.get(models[0], models[0]) if one else "", ("Method",), cells, emphasis))
    return Table(name, title, blocks, _grid(dataset, models, methods), counts=_counts(metrics))


def family_summary(stats: Stats, families: Mapping[str, str] | None) -> Table | None:
    """Table 2: (family, metric) x method, mean ± std across the family's architectures."""
    datasets = registry_sorted({d for d, _, _ in stats.cells}, DATASETS)
    methods = _methods(stats, datasets)
    blocks, keys = [], []
    for d in datasets:
        models = _models(stats, d)
        cells = [{**_family_cell(stats, d, ms, meth, metric), "row": (FAMILIES.get(f, f), LABELS[metric]),
                  "col": (method_label(meth),), "metric": metric, "group": f"{f}|{metric}"}
                 for f, ms in family_groups(models, families).items() for metric in CONFIDENCE for meth in methods]
        blocks.append(Block(dataset_label(d), ("Family", "Metric"), cells))
        keys += _grid(d, models, methods)
    title = ("Table 2: Evaluation of CAM-based approaches, mean ± std across the architectures of each family "
             "(each architecture: mean over its images, in %). AD: Average Drop; IC: Increase in Confidence; "
             "AG: Average Gain; ↓ / ↑: lower/higher is better. Best in bold, second in italics.")
    notes = ["95% bootstrap intervals of these means (image ids resampled jointly across the family's "
             "architectures): table2_ci and the CSV."]
    return Table("table2", title, blocks, keys, _counts(CONFIDENCE), notes) if blocks else None


def _with_family_mean(stats: Stats, dataset: str, family: str, models: Sequence[str], methods: Sequence[str],
                      columns: Sequence[tuple[str, str]]) -> list[dict]:
    """(label, architecture) x method cells of each (column, label): every architecture's value with its
    interval, then the family's mean."""
    mean = f"Mean ({FAMILIES.get(family, family)})"
    return [{**(_arch_cell(stats, (dataset, m, meth), column) if m else
                {**_family_cell(stats, dataset, models, meth, column), "std": np.nan}),
             "row": (label, MODELS.get(m, m) if m else mean), "col": (method_label(meth),), "metric": column,
             "group": ""}
            for column, label in columns for m in [*models, None] for meth in methods]


def family_intervals(stats: Stats, families: Mapping[str, str] | None) -> Table | None:
    """Table 2 with 95% bootstrap intervals: (metric, architecture or family mean) x method."""
    datasets = registry_sorted({d for d, _, _ in stats.cells}, DATASETS)
    methods = _methods(stats, datasets)
    blocks, keys = [], []
    for d in datasets:
        for f, ms in family_groups(_models(stats, d), families).items():
            cells = _with_family_mean(stats, d, f, ms, methods, [(m, LABELS[m]) for m in CONFIDENCE])
            blocks.append(Block(f"{dataset_label(d)} — {FAMILIES.get(f, f)}", ("Metric", "Architecture"), cells,
                                emphasis=0, show_ci=True))
            keys += _grid(d, ms, methods)
    title = (f"Table 2 (intervals): mean in % [{100 * LEVEL:.0f}% percentile bootstrap interval] per architecture "
             f"and family mean; images resampled with replacement (for a family mean, image ids jointly across its "
             f"architectures: an image is one draw).")
    notes = [f"Bootstrap: {stats.resamples} resamples, seed {stats.seed} (+ CRC32 of dataset/model, or of "
             f"dataset/model+model+... for a family)."]
    return Table("table2_ci", title, blocks, keys, _counts(CONFIDENCE), notes) if blocks else None


def factor(stats: Stats, dataset: str | None, models: Sequence[str], method: str, column: str) -> float:
    """Table 8's factor of ``method`` vs GradCAM from the means over ``models``: AD as GradCAM / method
    (times lower), the others as method / GradCAM; NaN when a cell is missing or the ratio undefined."""
    base = _family_cell(stats, dataset, models, "gradcam", column)["value"]
    value = _family_cell(stats, dataset, models, method, column)["value"]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = base / value if column == "ad" else value / base
    return float(ratio) if np.isfinite(ratio) else np.nan


def factors(stats: Stats, families: Mapping[str, str] | None, dataset: str | None) -> Table | None:
    """Table 8: factors vs GradCAM from the family means of Table 2: AD as GradCAM / method (times
    lower), IC and AG as method / GradCAM, runtime as method seconds / GradCAM seconds."""
    models, methods = _models(stats, dataset), ["scorecam", "opticam", "cluscam"]
    if not models:
        return None
    cells = []
    for f, ms in family_groups(models, families).items():
        for column, label in (*((m, m.upper()) for m in CONFIDENCE), ("seconds", "Runtime")):
            for meth in methods:
                cells.append({"value": factor(stats, dataset, ms, meth, column), "row": (FAMILIES.get(f, f), label),
                              "col": (method_label(meth),), "metric": column, "group": ""})
    title = (f"Table 8: Trade-off analysis on {dataset_label(dataset)}: multiplicative factors vs GradCAM "
             "from the family means (AD: GradCAM / method, i.e. times lower; IC, AG: method / GradCAM; "
             "runtime: method / GradCAM explanation seconds per image).")
    return Table("table8", title, [Block("", ("Architecture", "Metric"), cells, emphasis=0, prefix="×")],
                 _grid(dataset, models, ["gradcam", *methods]), {**_counts(CONFIDENCE), "n": "runtime"})


def passes(stats: Stats, families: Mapping[str, str] | None, dataset: str | None) -> Table | None:
    """Table 9: passes per image per method, per architecture and mean over each family."""
    models = _models(stats, dataset)
    if not models:
        return None
    methods = _methods(stats, [dataset])
    kinds = (("fp", "FP (forward + partial)"), ("bp", "backward"))
    blocks = [Block(FAMILIES.get(f, f), ("Passes per image", "Architecture"),
                    _with_family_mean(stats, dataset, f, ms, methods, kinds), emphasis=0, fmt="{:.5g}".format)
              for f, ms in family_groups(models, families).items()]
    title = (f"Table 9: Passes per image required by each explanation method on {dataset_label(dataset)} "
             "(counted: FP = whole-model forward + partial forward passes; backward passes separately).")
    return Table("table9", title, blocks, _grid(dataset, models, methods))


def agcam_table(stats: Stats, legend: str) -> Table | None:
    """Table 5 (AG-CAM beside the other methods) on the ViTs with AG-CAM rows: the paper's ViT-B on
    ILSVRC; else those of the first dataset (ILSVRC first) that has some, e.g. a ViT trained on Alzheimer's."""
    for dataset in registry_sorted({d for d, _, _ in stats.cells}, DATASETS):
        models = [m for m in _models(stats, dataset) if (dataset, m, "agcam") in stats.cells]
        if models:
            names = ", ".join(MODELS.get(m, m) for m in models)
            return per_architecture(stats, "table5", f"Table 5: Quantitative comparison of explanation methods on "
                                    f"{names} ({{dataset}}, %) " + legend, dataset, CONFIDENCE, 2, models=models,
                                    single_family=True)
    return None


def build_table(name: str, stats: Stats, families: Mapping[str, str] | None = None) -> Table | None:
    """Table ``name`` (one of :data:`TABLES`), or None when its dataset or model has no rows."""
    paper = "(↓ / ↑: lower/higher is better; best in bold{}.)"
    boxed, unboxed = _dataset(stats, boxes=True), _dataset(stats, boxes=False)
    build = {
        "2": lambda: family_summary(stats, families),
        "2ci": lambda: family_intervals(stats, families),
        "4": lambda: per_architecture(stats, "table4", "Table 4: Localization metrics (%) on {dataset}, images with "
                                      "exactly one box. EP: Energy Pointing game; LE: Localization Error "
                                      + paper.format(""), boxed, LOCALIZATION, 1),
        "5": lambda: agcam_table(stats, paper.format(", second in italics")),
        "6": lambda: per_architecture(stats, "table6", "Table 6: AD, IC, AG (%) per architecture on {dataset} "
                                      + paper.format(", second in italics"), boxed, CONFIDENCE, 2),
        "7": lambda: per_architecture(stats, "table7", "Table 7: AD, IC, AG (%) per architecture on the "
                                      "{dataset} dataset " + paper.format(", second in italics"), unboxed,
                                      CONFIDENCE, 2),
        "8": lambda: factors(stats, families, boxed),
        "9": lambda: passes(stats, families, boxed),
    }
    if name not in build:
        raise ValueError(f"unknown table {name!r}; choose from {', '.join(TABLES)}")
    return build[name]()


# -- rendering --------------------------------------------------------------------------------------------
def _ranked(block: Block) -> list[dict]:
    """The cells with ``rank`` (dense, on the displayed values; NaN when not ranked)."""
    cells = [{**c, "rank": np.nan} for c in block.cells]
    if block.emphasis:
        for group in dict.fromkeys(c["group"] for c in cells):
            members = [c for c in cells if c["group"] == group and not np.isnan(c["value"])]
            sign = 1 if members and members[0]["metric"] in LOWER_BETTER else -1
            order = sorted({sign * float(block.fmt(c["value"])) for c in members})
            for c in members:
                c["rank"] = order.index(sign * float(block.fmt(c["value"]))) + 1
    return cells


SYMBOLS = {"md": {"pm": " ± ", "bold": "**{}**", "italic": "*{}*"},
           "tex": {"pm": r" $\pm$ ", "bold": r"\textbf{{{}}}", "italic": r"\textit{{{}}}"}}
TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
       "}": r"\}", "↓": r"$\downarrow$", "↑": r"$\uparrow$", "±": r"$\pm$", "×": r"$\times$", "–": "--",
       "—": "---"}


def tex(text: str) -> str:
    return "".join(TEX.get(ch, ch) for ch in str(text))


def _text(c: dict, block: Block, style: str) -> str:
    if "text" in c:  # a preformatted cell, {style: text} (Table 1's ranges and p-value bounds, scripts/table1.py)
        return c["text"][style]
    if np.isnan(c["value"]):
        return DASH if style == "md" else "--"
    sym = SYMBOLS[style]
    s = (tex(block.prefix) if style == "tex" else block.prefix) + block.fmt(c["value"])
    if not np.isnan(c.get("std", np.nan)):
        s += sym["pm"] + block.fmt(c["std"])
    if block.show_ci and not np.isnan(c.get("lo", np.nan)):
        s += f" [{block.fmt(c['lo'])}, {block.fmt(c['hi'])}]"
    rank = c["rank"]
    return sym["bold"].format(s) if rank == 1 else sym["italic"].format(s) if rank == 2 and block.emphasis > 1 else s


def _matrix(block: Block, style: str) -> tuple[list[tuple], list[tuple], dict]:
    cells = _ranked(block)
    rows = list(dict.fromkeys(c["row"] for c in cells))
    cols = list(dict.fromkeys(c["col"] for c in cells))
    return rows, cols, {(c["row"], c["col"]): _text(c, block, style) for c in cells}


def _row_labels(row: tuple, prev: tuple | None) -> list[str]:
    """Row labels with a level left blank where it repeats the previous row's."""
    return ["" if prev is not None and row[:i + 1] == prev[:i + 1] else lab for i, lab in enumerate(row)]


def render_markdown(table: Table, meta: dict) -> str:
    out = [f"**{table.title}**", ""]
    for block in table.blocks:
        rows, cols, text = _matrix(block, "md")
        if block.title:
            out += [f"*{block.title}*", ""]
        out.append("| " + " | ".join([*block.row_names, *(" ".join(c) for c in cols)]) + " |")
        out.append("|" + "---|" * len(block.row_names) + "---:|" * len(cols))
        for i, row in enumerate(rows):
            labels = _row_labels(row, rows[i - 1] if i else None)
            out.append("| " + " | ".join([*labels, *(text.get((row, c), DASH) for c in cols)]) + " |")
        out.append("")
    return "\n".join(out + [f"{line}  " for line in footer(meta)]) + "\n"


def render_latex(table: Table, meta: dict) -> str:
    out = ["% Generated by scripts/tables.py; needs \\usepackage{booktabs}.",
           *(f"% {line}" for line in footer(meta)),
           r"\begin{table}[t]", r"\centering", f"\\caption{{{tex(table.title.split(': ', 1)[-1])}}}",
           f"\\label{{tab:{table.name}}}"]
    for block in table.blocks:
        rows, cols, text = _matrix(block, "tex")
        k = len(block.row_names)
        if block.title:
            out.append(f"\\textbf{{{tex(block.title)}}}\\\\[2pt]")
        out += [f"\\begin{{tabular}}{{{'l' * k}{'r' * len(cols)}}}", r"\toprule"]
        if len(cols[0]) > 1:  # a group header (e.g. architecture) over the metrics
            spans = [(g, sum(1 for c in cols if c[0] == g)) for g in dict.fromkeys(c[0] for c in cols)]
            out.append(" & " * k + " & ".join(f"\\multicolumn{{{n}}}{{c}}{{{tex(g)}}}" for g, n in spans) + r" \\")
            start, rules = k + 1, []
            for _, n in spans:
                rules.append(f"\\cmidrule(lr){{{start}-{start + n - 1}}}")
                start += n
            out.append(" ".join(rules))
        out.append(" & ".join(tex(x) for x in [*block.row_names, *(c[-1] for c in cols)]) + r" \\")
        out.append(r"\midrule")
        for i, row in enumerate(rows):
            labels = [tex(x) for x in _row_labels(row, rows[i - 1] if i else None)]
            out.append(" & ".join([*labels, *(text.get((row, c), "--") for c in cols)]) + r" \\")
        out += [r"\bottomrule", r"\end{tabular}", r"\par\medskip"]
    return "\n".join(out + [r"\end{table}"]) + "\n"


def render_csv(table: Table) -> str:
    """One line per cell: block, row labels, column, value, std, ci_lo, ci_hi, n_images, rank, and the text of
    a preformatted cell (its Markdown: a verdict, a range, a count) whose value is empty."""
    lines = []
    for block in table.blocks:
        for c in _ranked(block):
            lines.append({"block": block.title, **dict(zip(block.row_names, c["row"])), "column": " ".join(c["col"]),
                          "value": c["value"], "std": c.get("std", np.nan), "ci_lo": c.get("lo", np.nan),
                          "ci_hi": c.get("hi", np.nan), "n_images": c.get("n", np.nan), "rank": c["rank"],
                          "text": c["text"]["md"] if "text" in c else ""})
    return pd.DataFrame(lines).to_csv(index=False, float_format="%.6g")


# -- provenance -------------------------------------------------------------------------------------------
def short_commit(commit: str) -> str:
    """A commit by its 7-digit abbreviation, any ``+dirty`` kept, so that each commit is named once."""
    head, plus, rest = str(commit).partition("+")
    return head[:7] + plus + rest


def table_meta(table: Table, stats: Stats, commit: str = "unknown", where: Mapping[str, str] | None = None) -> dict:
    """What produced ``table``: its cells, the images each metric averaged, models, commits, devices,
    dates, missing cells, the cells cut to the common image set, the commit it was rendered at and
    the config values (``where``, ``--where``) that selected its cells."""
    used = {k: stats.cells[k] for k in table.keys if k in stats.cells}
    models = list(dict.fromkeys(m for _, m, _ in table.keys))
    dates = sorted(d for r in used.values() for d in (r["started"], r["date"]))
    return {
        "table": table.name, "title": table.title,
        "images_per_cell": {label: {"min": min((r[c] for r in used.values()), default=0),
                                              "max": max((r[c] for r in used.values()), default=0)}
                            for c, label in table.counts.items()},
        "datasets": list(dict.fromkeys(d for d, _, _ in table.keys)), "models": models,
        "model_names": [MODELS.get(m, m) for m in models],
        "methods": list(dict.fromkeys(meth for _, _, meth in table.keys)),
        "commits": sorted({short_commit(c) for r in used.values() for c in r["commits"]}),
        "devices": sorted({d for r in used.values() for d in r["devices"]}),
        "dates": [dates[0], dates[-1]] if dates else [],
        "missing": ["/".join(k) for k in table.keys if k not in stats.cells],
        "common_ids": {"/".join(k): {"kept": kept, "total": total}
                       for k, (kept, total) in stats.trimmed.items() if k in used},
        "rendered_at": commit,
        "where": dict(where or {}),
        "cells": [{"dataset": d, "model": m, "method": meth, "cell": r["cell"], "images": r["n"],
                   "single_box_images": r["n_box1"], "averaged": {label: r[c] for c, label in table.counts.items()},
                   "commits": r["commits"], "started": r["started"], "date": r["date"], "devices": r["devices"],
                   "precision": r["precision"]}
                  for (d, m, meth), r in used.items()],
        "bootstrap": {"resamples": stats.resamples, "seed": stats.seed, "level": LEVEL, "kind": "percentile"},
        "notes": table.notes,
    }


def _span(n: Mapping[str, int]) -> str:
    return str(n["min"]) if n["min"] == n["max"] else f"{n['min']}–{n['max']} (min–max)"


def _counts_line(images_per_cell: Mapping[str, Mapping[str, int]]) -> str:
    """"Images averaged per cell: AD, IC 100; AG 98–100 (min–max)", or "Images per cell: 100"."""
    spans: dict[str, list[str]] = {}
    for label, n in images_per_cell.items():
        spans.setdefault(_span(n), []).append(label)
    if list(spans.values()) == [["images"]]:
        return f"Images per cell: {next(iter(spans))}"
    single = [x for x in ("EP", "LE") if x in images_per_cell]
    return ("Images averaged per cell: " + "; ".join(f"{', '.join(labels)} {span}" for span, labels in spans.items())
            + (f" ({', '.join(single)}: single-box images)" if single else ""))


def _common_ids_line(common: Mapping[str, Mapping[str, int]]) -> str:
    """The cells cut to their architecture's common image ids, by architecture."""
    cut: dict[str, dict[int, list[str]]] = {}
    for key, v in common.items():
        arch, method = key.rsplit("/", 1)
        cut.setdefault(f"{arch}: {v['kept']} ids", {}).setdefault(v["total"], []).append(method)
    had = {k: "; ".join(", ".join(ms) + f" had {n}" for n, ms in totals.items()) for k, totals in cut.items()}
    return ("Each architecture's methods compared on the image ids all its cells have: "
            + "; ".join(f"{k} ({v})" for k, v in had.items()) + ".")


def footer(meta: dict) -> list[str]:
    """The provenance lines printed under a table."""
    lines = [f"{_counts_line(meta['images_per_cell'])}. Models: {', '.join(meta['model_names'])}.",
             f"Commit(s): {', '.join(meta['commits']) or 'unknown'}. "
             f"Device(s): {', '.join(meta['devices']) or 'unknown'}."
             + (f" Run dates: {' to '.join(dict.fromkeys(meta['dates']))}." if meta["dates"] else "")]
    if meta.get("where"):
        lines.append("Cells selected by their config (--where): "
                     + " ".join(f"{k}={v}" for k, v in meta["where"].items()) + ".")
    if meta["missing"]:
        lines.append(f"Missing cells ({DASH}): {', '.join(meta['missing'])}.")
    if meta["common_ids"]:
        lines.append(_common_ids_line(meta["common_ids"]))
    low = {f"{c['dataset']}/{c['model']}/{c['method']}": c["precision"] for c in meta["cells"] if c["precision"] != "fp32"}
    if low:
        lines.append(f"Cells not in fp32 (run.precision, admitted by scripts/precision.py's paired check against fp32 "
                     f"on the same images): {', '.join(low)} ({', '.join(sorted(set(low.values())))}); "
                     f"their seconds per image are not comparable with the fp32 cells'.")
    dirty = [f"{c['dataset']}/{c['model']}/{c['method']}" for c in meta["cells"]
             if any(commit.endswith("+dirty") for commit in c["commits"])]
    if dirty:
        lines.append(f"Rows written from a working tree with uncommitted changes: {', '.join(dirty)}.")
    if meta["rendered_at"].endswith("+dirty"):
        lines.append(f"Rendered from a working tree with uncommitted changes ({meta['rendered_at']}): "
                     f"not a result for the record.")
    return lines + meta["notes"]


def write_tables(rows: pd.DataFrame, out: str | Path, tables: Sequence[str] = TABLES,
                 families: Mapping[str, str] | None = None, resamples: int = 2000, seed: int = 0,
                 commit: str | None = None, notes: Sequence[str] = (), where: Mapping[str, str] | None = None
                 ) -> list[Path]:
    """Write ``<out>/<table>.md``, ``.tex``, ``.csv`` and ``.meta.json`` for each table with rows;
    a table whose dataset or model has no rows is skipped with a warning.  ``commit``: the checkout
    rendering them (default :func:`benchmarks.provenance.git_commit`; ``+dirty`` is marked);
    ``notes``: footer lines added to every table; ``where``: the config values that selected the rows'
    cells (named in each footer)."""
    from benchmarks.provenance import git_commit

    commit = commit or git_commit()
    stats = cell_stats(rows, resamples, seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in tables:
        table = build_table(str(name), stats, families)
        if table is None:
            warnings.warn(f"table {name}: no rows for its dataset or model; skipped", stacklevel=2)
            continue
        table.notes = [*table.notes, *notes]
        meta = table_meta(table, stats, commit, where)
        for suffix, text in ((".md", render_markdown(table, meta)), (".tex", render_latex(table, meta)),
                             (".csv", render_csv(table)), (".meta.json", json.dumps(meta, indent=2) + "\n")):
            path = out / f"{table.name}{suffix}"
            path.write_text(text)
            written.append(path)
    return written
