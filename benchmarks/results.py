"""Reading finished cells back: every per-image row of a runs folder in one long table."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from benchmarks.store import ROWS

CELL_COLUMNS = ("dataset", "model", "method", "cell", "commit", "date")


def load_rows(out_dir: str | Path, only_ok: bool = True) -> pd.DataFrame:
    """All rows under ``out_dir/<dataset>/<model>/<method>/<cell>/rows.csv`` with the cell's
    dataset, model, method, config hash and its latest provenance (commit, date; each row keeps
    its own ``device``).  ``only_ok`` drops the rows of unreadable images."""
    frames = []
    for path in sorted(Path(out_dir).glob(f"*/*/*/*/{ROWS}")):
        cell = path.parent
        rows = pd.read_csv(path, dtype={"id": str})
        if rows.empty:
            continue
        dataset, model, method = cell.parts[-4:-1]
        prov = _last_provenance(cell)
        rows.insert(0, "dataset", dataset)
        rows.insert(1, "model", model)
        rows.insert(2, "method", method)
        rows.insert(3, "cell", cell.name)
        rows["commit"], rows["date"] = prov.get("commit", "unknown"), prov.get("date", "unknown")
        frames.append(rows)
    if not frames:
        return pd.DataFrame(columns=[*CELL_COLUMNS, "id", "status"])
    out = pd.concat(frames, ignore_index=True)
    return out[out["status"] == "ok"].reset_index(drop=True) if only_ok else out


def _last_provenance(cell: Path) -> dict:
    path = cell / "provenance.jsonl"
    if not path.exists():
        return {}
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    return json.loads(lines[-1]) if lines else {}
