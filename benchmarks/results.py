"""Reading finished cells back: every per-image row of a runs folder in one long table."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd

from benchmarks.store import CONFIG, ROWS, read_cell_rows, read_sessions

CELL_COLUMNS = ("dataset", "model", "method", "cell", "commit", "started", "date", "precision")


def load_rows(out_dir: str | Path, only_ok: bool = True, where: Mapping[str, str] | None = None) -> pd.DataFrame:
    """All rows under ``out_dir/<dataset>/<model>/<method>/<cell>/rows.csv`` (one per image id, paths
    relative to the dataset root) with the cell's dataset, model, method, config hash, its provenance
    (``commit``: the commits of every session that wrote its rows, space-separated in order; ``started``
    and ``date``: its first and last session's dates; each row keeps its own ``device``) and precision (``method.precision``
    of its config: fp32 unless bf16 was asked).  ``only_ok`` drops the rows of
    unreadable images; ``where`` keeps the cells whose ``config.json`` has these values (dotted keys,
    e.g. ``{"dataset.options.single_box_only": "false"}``)."""
    frames = []
    for path in sorted(Path(out_dir).glob(f"*/*/*/*/{ROWS}")):
        cell = path.parent
        config = cell_config(cell)
        if where and not matches(config, where):
            continue
        rows = read_cell_rows(cell)
        if rows.empty:
            continue
        dataset, model, method = cell.parts[-4:-1]
        sessions = read_sessions(cell)
        rows.insert(0, "dataset", dataset)
        rows.insert(1, "model", model)
        rows.insert(2, "method", method)
        rows.insert(3, "cell", cell.name)
        commits = dict.fromkeys(str(s.get("commit", "unknown")) for s in sessions)
        rows["commit"] = " ".join(commits) or "unknown"
        first, last = (sessions[0], sessions[-1]) if sessions else ({}, {})
        rows["started"], rows["date"] = first.get("date", "unknown"), last.get("date", "unknown")
        rows["precision"] = str(config.get("method.precision", "fp32"))
        frames.append(rows)
    if not frames:
        return pd.DataFrame(columns=[*CELL_COLUMNS, "id", "status"])
    out = pd.concat(frames, ignore_index=True)
    return out[out["status"] == "ok"].reset_index(drop=True) if only_ok else out


def parse_where(items: Sequence[str]) -> dict[str, str]:
    """``--where KEY=VALUE ...`` as a mapping for :func:`load_rows`; an error naming malformed items."""
    bad = [w for w in items if "=" not in w]
    if bad:
        raise ValueError(f"--where takes KEY=VALUE, got {' '.join(bad)}")
    return dict(w.split("=", 1) for w in items)


def add_row_arguments(parser: argparse.ArgumentParser) -> None:
    """The options shared by what renders rows (tables, claims): the runs folder, ``--where`` and the bootstrap's."""
    parser.add_argument("--runs", required=True, help="the runner's out_dir (<dataset>/<model>/<method>/<hash>/)")
    parser.add_argument("--where", nargs="+", default=[], metavar="KEY=VALUE",
                        help="use only the cells whose config.json has these values (dotted keys, e.g. "
                             "dataset.options.single_box_only=false), when a dataset/model/method has several cells")
    parser.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")


def where_argument(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, str]:
    """``args.where`` parsed; a usage error through ``parser`` when malformed."""
    try:
        return parse_where(args.where)
    except ValueError as err:
        parser.error(str(err))


def cell_config(cell: Path) -> dict:
    """The cell's ``config.json`` flattened to dotted keys (``dataset.options.layout``)."""
    path = cell / CONFIG
    return _flatten(json.loads(path.read_text())) if path.exists() else {}


def matches(config: Mapping, where: Mapping[str, str]) -> bool:
    """Whether ``config`` (flat) has each value of ``where``, read as JSON where it parses (``false``, ``50``)."""
    return all(key in config and config[key] == _parse(value) for key, value in where.items())


def _parse(value: str):
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def _flatten(tree: Mapping, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out

