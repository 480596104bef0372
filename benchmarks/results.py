"""Reading finished cells back: every per-image row of a runs folder in one long table."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd

from benchmarks.store import CONFIG, ROWS, read_cell_rows, read_sessions

CELL_COLUMNS = ("dataset", "model", "method", "cell", "commit", "started", "date", "precision")
OK_COLUMNS = ("ad", "ic", "ag", "ep", "le", "n_boxes", "device")  # in the runner's row of every explained image


def load_rows(out_dir: str | Path, only_ok: bool = True, where: Mapping[str, str] | None = None) -> pd.DataFrame:
    """All rows under ``out_dir/<dataset>/<model>/<method>/<cell>/rows.csv`` (one per image id, paths
    relative to the dataset root) with the cell's dataset, model, method, config hash, its provenance
    (``commit``: the commits of every session that wrote its rows, space-separated in order; ``started``
    and ``date``: its first and last session's dates; each row keeps its own ``device``) and precision (``method.precision``
    of its config: fp32 unless bf16 was asked).  ``only_ok`` drops the rows of
    unreadable images; ``where`` keeps the cells whose ``config.json`` has these values (dotted keys,
    e.g. ``{"dataset.options.single_box_only": "false"}``).  A ``rows.csv`` that is not whole is an
    error naming it (:func:`read_rows_csv`)."""
    frames = []
    for path in sorted(Path(out_dir).glob(f"*/*/*/*/{ROWS}")):
        cell = path.parent
        config = cell_config(cell)
        if where and not matches(config, where):
            continue
        rows = read_rows_csv(cell)
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


def read_rows_csv(cell: Path) -> pd.DataFrame:
    """The cell's rows (:func:`benchmarks.store.read_cell_rows`); an error naming its ``rows.csv`` and the
    fix when the file is not whole: unparsable, without a column the runner writes, or cut mid-line."""
    path = cell / ROWS
    try:
        rows = read_cell_rows(cell)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise _unreadable(path, " ".join(str(err).split())) from None
    explained = "status" in rows and rows["status"].eq("ok").any()
    missing = [c for c in ("id", "status", *(OK_COLUMNS if explained else ())) if c not in rows]
    if missing:
        raise _unreadable(path, f"missing column(s) {', '.join(missing)}")
    if not path.read_bytes().endswith(b"\n"):  # the runner writes whole lines
        raise _unreadable(path, "its last line is cut")
    return rows


def _unreadable(path: Path, problem: str) -> ValueError:
    return ValueError(f"{path} is unreadable ({problem}); rerun its cell: the runner resumes and rewrites "
                      "rows.csv from the cell's parts")


def partial_cells(out_dir: str | Path, where: Mapping[str, str] | None = None) -> dict[Path, int]:
    """The cells whose parts are not yet joined into a ``rows.csv`` (a run under way or stopped), which
    :func:`load_rows` leaves out, with the images in their parts; ``where`` as in :func:`load_rows`."""
    out = {}
    for parts in sorted(Path(out_dir).glob("*/*/*/*/parts")):
        cell = parts.parent
        if (cell / ROWS).exists() or (where and not matches(cell_config(cell), where)):
            continue
        files = [p for p in parts.glob("*.csv") if p.stat().st_size]
        out[cell] = len({i for p in files for i in pd.read_csv(p, usecols=["id"], dtype=str)["id"]})
    return out


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

