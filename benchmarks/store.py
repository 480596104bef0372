"""Resumable result shards: one folder per (model, method, dataset, config) cell.

A cell folder ``<out_dir>/<dataset>/<model>/<method>/<hash>/`` holds the resolved config, the
provenance of each session that wrote to it, one CSV part per batch of images (written to a temp
file and renamed, so a part is either whole or absent) and ``rows.csv``, all parts joined in id
order at the end of each run.  A run skips the images whose rows are already in a part: a killed
run resumes without losing or duplicating rows, and a larger image range extends the cell.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

ROWS = "rows.csv"


def config_hash(resolved: dict) -> str:
    """A short stable hash of everything that changes a cell's rows."""
    return hashlib.sha256(json.dumps(resolved, sort_keys=True, default=str).encode()).hexdigest()[:12]


def atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


class CellStore:
    """The folder of one cell."""

    def __init__(self, root: Path, identity: dict) -> None:
        self.identity = identity
        self.hash = config_hash(identity)
        self.dir = Path(root) / self.hash
        self.parts = self.dir / "parts"

    def done_ids(self) -> set[str]:
        """Ids of the images whose rows are on disk."""
        return {i for p in self._part_files() for i in pd.read_csv(p, usecols=["id"], dtype={"id": str})["id"]}

    def _part_files(self) -> list[Path]:
        return sorted(p for p in self.parts.glob("*.csv") if p.stat().st_size) if self.parts.exists() else []

    def open(self, provenance: dict) -> None:
        self.parts.mkdir(parents=True, exist_ok=True)
        atomic_write(self.dir / "config.json", json.dumps(self.identity, indent=2, sort_keys=True, default=str))
        with open(self.dir / "provenance.jsonl", "a") as f:
            f.write(json.dumps(provenance) + "\n")

    def write_part(self, rows: pd.DataFrame, maps: dict[str, np.ndarray] | None = None) -> None:
        """Store one batch's rows (named by a hash of their ids) atomically; with ``maps`` (id ->
        saliency map) their float16 maps beside them, written first so that rows imply maps."""
        name = hashlib.sha256("\n".join(map(str, rows["id"])).encode()).hexdigest()[:16]
        if maps:
            tmp = self.parts / f".{name}.npz.tmp-{os.getpid()}"
            with open(tmp, "wb") as f:
                np.savez_compressed(f, ids=np.array(list(maps)), maps=np.stack(list(maps.values())).astype(np.float16))
            os.replace(tmp, self.parts / f"{name}.npz")
        atomic_write(self.parts / f"{name}.csv", rows.to_csv(index=False))

    def maps(self) -> dict[str, np.ndarray]:
        """The saved saliency maps of the cell (runs with run.save_maps=true), id -> [H, W]."""
        out = {}
        for path in sorted(self.parts.glob("*.npz")):
            with np.load(path) as z:
                out.update(zip(z["ids"].tolist(), z["maps"]))
        return out

    def finish(self) -> pd.DataFrame:
        """Join the parts, in id order, into rows.csv."""
        frames = [pd.read_csv(p, dtype={"id": str}) for p in self._part_files()]
        rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({"id": []})
        rows = rows.sort_values("id", kind="stable").reset_index(drop=True)
        if self.dir.exists():
            atomic_write(self.dir / ROWS, rows.to_csv(index=False))
        return rows

    def rows(self) -> pd.DataFrame:
        return pd.read_csv(self.dir / ROWS, dtype={"id": str})
