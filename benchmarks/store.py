"""Resumable result shards: one folder per (model, method, dataset, config) cell.

A cell folder ``<out_dir>/<dataset>/<model>/<method>/<hash>/`` holds the resolved config, the
provenance of each session that wrote to it, one CSV part per batch of images (written to a temp
file and renamed, so a part is either whole or absent) and ``rows.csv``, all parts joined in id
order at the end of each run.  A run skips the images whose rows are already in a part: a killed
run resumes without losing or duplicating rows, and a larger image range extends the cell.

One process writes a cell at a time (:meth:`CellStore.locked`), or the n processes of its shards
(``run.shard=i/n``, :mod:`benchmarks.shards`), each holding the lock of its own images.  A new row for an image replaces
its old one (a retried ``skipped`` image), so a cell holds one part's rows per image id.  The
folder, its config and provenance appear with the first part: a run that fails before it leaves
no cell.  Image paths are stored relative to the dataset root (``dataset.root`` of the config).
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from benchmarks.shards import Shard

ROWS = "rows.csv"
CONFIG = "config.json"
PROVENANCE = "provenance.jsonl"


class CellLocked(RuntimeError):
    """Another process is writing the cell."""


def config_hash(resolved: dict) -> str:
    """A short stable hash of everything that changes a cell's rows."""
    return hashlib.sha256(json.dumps(resolved, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _write_pid(fd: int) -> None:
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())


def _read_pid(path: Path) -> str:
    try:
        return path.read_text().strip() or "unknown"
    except OSError:
        return "unknown"


def atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def unwritable(folder: str | Path) -> str | None:
    """Why ``folder`` cannot be written (creating it when missing, then writing and removing a probe file in
    it), or None when it can: checked before a run's work, not found out after it."""
    path = Path(folder).expanduser()
    probe = path / f".write-probe-{os.getpid()}"
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe.touch()
        probe.unlink()
    except OSError as err:
        return err.strerror or str(err)
    return None


def relative_paths(paths: pd.Series, root: str | None) -> pd.Series:
    """``paths`` under ``root`` made relative to it; others (hub locators, other folders) unchanged."""
    if not root:
        return paths
    base = os.path.abspath(os.path.expanduser(str(root)))

    def rel(p):
        if not isinstance(p, str) or not os.path.isabs(p):
            return p
        return os.path.relpath(p, base) if os.path.commonpath([base, os.path.abspath(p)]) == base else p
    return paths.map(rel)


def one_row_per_id(rows: pd.DataFrame, where: str) -> pd.DataFrame:
    """``rows`` with one row per image id, an ``ok`` row before a ``skipped`` one; warns naming
    ``where`` when there were duplicates."""
    bad = rows["status"].ne("ok") if "status" in rows else pd.Series(False, index=rows.index)
    order = rows.assign(_bad=bad).sort_values(["id", "_bad"], kind="stable")
    out = order.drop_duplicates("id").drop(columns="_bad").reset_index(drop=True)
    if len(out) < len(rows):
        warnings.warn(f"{where}: {len(rows) - len(out)} duplicate rows for {rows['id'].duplicated().sum()} image "
                      f"ids; kept one row per id (an ok row where there is one)", stacklevel=2)
    return out


def read_cell_rows(cell: Path) -> pd.DataFrame:
    """The ``rows.csv`` of a runner cell: one row per image id, paths relative to the dataset root
    (rows written before paths were stored relative held absolute ones)."""
    rows = pd.read_csv(cell / ROWS, dtype={"id": str})
    if "path" in rows and (cell / CONFIG).exists():
        root = json.loads((cell / CONFIG).read_text()).get("dataset", {}).get("root")
        rows["path"] = relative_paths(rows["path"], root)
    return one_row_per_id(rows, str(cell)) if "id" in rows else rows


def read_sessions(cell: Path) -> list[dict]:
    """The provenance of each session that wrote rows to a cell, in order (one line of its
    ``provenance.jsonl`` each, written with the session's first part); empty when it has none."""
    path = cell / PROVENANCE
    lines = path.read_text().splitlines() if path.exists() else []
    return [json.loads(line) for line in lines if line.strip()]


PATH_KEYS = ("root", "exclude")  # the dataset's path strings, part of a cell's identity as given


def _without_paths(identity: dict) -> dict:
    return {**identity, "dataset": {k: v for k, v in (identity.get("dataset") or {}).items() if k not in PATH_KEYS}}


def _same_place(a: str | None, b: str | None) -> bool:
    """Whether two dataset path strings name the same file or folder from here (relative vs absolute,
    ``~``, links)."""
    if a is None or b is None:
        return a == b
    a_path, b_path = Path(a).expanduser(), Path(b).expanduser()
    if a_path.exists() and b_path.exists():
        return os.path.samefile(a_path, b_path)
    return a_path.resolve() == b_path.resolve()


def _spelled_as_before(root: Path, identity: dict) -> dict:
    """``identity`` with the dataset paths spelled as in the cell beside it that holds the same configuration
    with paths naming the same data (e.g. a relative ``dataset.root`` before, an absolute one now), so the
    run resumes that cell instead of starting a second one; ``identity`` itself when there is none."""
    if (root / config_hash(identity)).is_dir() or not root.is_dir():
        return identity
    mine, ours = _without_paths(identity), identity.get("dataset") or {}
    for config in sorted(root.glob(f"*/{CONFIG}")):
        other = json.loads(config.read_text())
        theirs = other.get("dataset") or {}
        if (_without_paths(other) == mine and all(_same_place(theirs.get(k), ours.get(k)) for k in PATH_KEYS)
                and config_hash(other) == config.parent.name):
            return other
    return identity


class CellStore:
    """The folder of one cell."""

    def __init__(self, root: Path, identity: dict) -> None:
        identity = _spelled_as_before(Path(root), identity)
        self.identity = identity
        self.hash = config_hash(identity)
        self.dir = Path(root) / self.hash
        self.parts = self.dir / "parts"
        self.lock_path = Path(root) / f".{self.hash}.lock"
        self.data_root = (identity.get("dataset") or {}).get("root")
        self._pending: dict | None = None  # the session's provenance, written with its first part
        self._part_of: dict[str, Path] = {}

    @contextmanager
    def locked(self, shard: Shard | None = None) -> Iterator[None]:
        """Hold the cell's lock while writing: an exclusive ``flock`` on ``.<hash>.lock`` beside the cell, or
        for one of n shards a shared one on it and an exclusive one on ``.<hash>.shard-<i>-of-<n>.lock``, so
        that the shards of one count run together and nothing else writes the cell meanwhile.  Raise
        :class:`CellLocked` at once when that is not free."""
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = self._acquire(self.lock_path, fcntl.LOCK_SH if shard else fcntl.LOCK_EX)
        own = None
        try:
            if shard is None:
                _write_pid(fd)
            else:
                own = self._acquire(self._shard_lock(shard), fcntl.LOCK_EX)
                _write_pid(own)
                self._refuse_other_counts(shard)
            yield
        finally:
            if own is not None:
                self._shard_lock(shard).unlink(missing_ok=True)
                os.close(own)
            try:  # the last holder removes the lock file (a shard's shared lock: only when it is the last)
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self.lock_path.unlink(missing_ok=True)
            except BlockingIOError:
                pass
            os.close(fd)
            self._remove_empty_folders()

    def _remove_empty_folders(self) -> None:
        """Remove the <dataset>/<model>/<method> folders the lock made when nothing was written in them
        (a run that failed before its first row leaves no trace)."""
        for folder in (self.lock_path.parent, *list(self.lock_path.parents)[1:3]):
            try:
                folder.rmdir()
            except OSError:  # not empty (or gone): stop there
                return

    def _shard_lock(self, shard: Shard) -> Path:
        return self.lock_path.with_name(f".{self.hash}.shard-{shard.index}-of-{shard.count}.lock")

    def _holders(self) -> str:
        """Who holds the cell: its writer's pid, or its shards' and their pids."""
        shards = sorted(self.lock_path.parent.glob(f".{self.hash}.shard-*.lock"))
        pids = [f"{p.name.split('.shard-')[1][:-5].replace('-of-', '/')} pid {_read_pid(p)}" for p in shards]
        return f"shards {', '.join(pids)}" if pids else f"pid {_read_pid(self.lock_path)}"

    def _refuse_other_counts(self, shard: Shard) -> None:
        """Refuse a shard while shards of another count (which would overlap it) write the cell."""
        for path in self.lock_path.parent.glob(f".{self.hash}.shard-*-of-*.lock"):
            if path.name.endswith(f"-of-{shard.count}.lock"):
                continue
            try:
                probe = os.open(path, os.O_RDWR)
            except FileNotFoundError:  # its shard ended meanwhile
                continue
            try:
                fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                count = path.name.rsplit("-of-", 1)[1][:-5]
                raise CellLocked(f"cell {self.dir} is being written in {count} shards ({self._holders()}); "
                                 f"run.shard={shard} would overlap them: use run.shard=<i>/{count}") from None
            finally:
                os.close(probe)

    def _acquire(self, path: Path, mode: int, wait: bool = False) -> int:
        """The descriptor of the lock file ``path`` locked in ``mode`` (retrying when its previous holder removed
        it meanwhile, and for a moment while a holder releases it; with ``wait``, until it is free)."""
        give_up = time.monotonic() + 1.0
        while True:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            except FileNotFoundError:  # another run removed the empty folder meanwhile (_remove_empty_folders)
                path.parent.mkdir(parents=True, exist_ok=True)
                continue
            try:
                fcntl.flock(fd, mode if wait else mode | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                if time.monotonic() < give_up:  # a holder that releases takes the lock alone for an instant
                    time.sleep(0.02)
                    continue
                held = self._holders()
                how = ("by another process" if held.startswith("pid") else "in shards") if path == self.lock_path \
                    else "by another process running the same shard"
                raise CellLocked(f"cell {self.dir} is being written {how} ({held}, lock {path}); wait for it to "
                                 f"finish, or run this configuration with another run.out_dir") from None
            try:
                if os.stat(path).st_ino == os.fstat(fd).st_ino:
                    return fd
            except FileNotFoundError:
                pass
            os.close(fd)

    def _index(self) -> pd.DataFrame:
        """id, status (where the rows have one) and part file of every row on disk."""
        frames = [frame.assign(part=p) for p, frame in
                  self._read_parts(usecols=lambda c: c in ("id", "status"), dtype={"id": str})]
        index = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({"id": [], "part": []})
        self._part_of = dict(zip(index["id"], index["part"]))
        return index

    def done_ids(self) -> set[str]:
        """Ids of the images whose rows are on disk (not counting ``skipped`` ones, which a run retries)."""
        return self._ids()[0]

    def skipped_ids(self) -> set[str]:
        """Ids of the images on disk only as ``skipped`` (unreadable when they were run)."""
        return self._ids()[1]

    def _ids(self) -> tuple[set[str], set[str]]:
        index = self._index()
        if "status" not in index:
            return set(index["id"]), set()
        ok = set(index["id"][index["status"] == "ok"])
        return ok, set(index["id"]) - ok

    def _part_files(self) -> list[Path]:
        return sorted(p for p in self.parts.glob("*.csv") if p.stat().st_size) if self.parts.exists() else []

    def _read_parts(self, **read_csv) -> list[tuple[Path, pd.DataFrame]]:
        """Every part file with its rows, read again from the listing when another shard replaced a part
        meanwhile (a retried image's row moves to that shard's new part)."""
        while True:
            try:
                return [(p, pd.read_csv(p, **read_csv)) for p in self._part_files()]
            except FileNotFoundError:
                continue

    def open(self, provenance: dict) -> None:
        """Start a session; its provenance (and the cell's config) is written with its first part."""
        self._pending = provenance
        self._index()

    def _create(self) -> None:
        self._warn_same_but_paths()
        self.parts.mkdir(parents=True, exist_ok=True)
        atomic_write(self.dir / CONFIG, json.dumps(self.identity, indent=2, sort_keys=True, default=str))
        with open(self.dir / PROVENANCE, "a") as f:
            f.write(json.dumps(self._pending) + "\n")
        self._pending = None

    def _warn_same_but_paths(self) -> None:
        """Warn, as a new cell starts, of a cell beside it whose config differs only in the dataset's
        path strings (``dataset.root``, ``dataset.exclude``): the same run under another spelling of a
        path (relative, absolute) starts from zero instead of resuming it."""
        mine = _without_paths(self.identity)
        for config in sorted(self.dir.parent.glob(f"*/{CONFIG}")):
            other = json.loads(config.read_text())
            if config.parent != self.dir and _without_paths(other) == mine:
                theirs, ours = other.get("dataset") or {}, self.identity.get("dataset") or {}
                paths = {k: theirs.get(k) for k in PATH_KEYS if theirs.get(k) != ours.get(k)}
                warnings.warn(f"starting a new cell {self.dir} although {config.parent} holds the same configuration "
                              f"with {paths}: pass those dataset paths (the same strings) to resume it", stacklevel=3)

    def write_part(self, rows: pd.DataFrame, maps: dict[str, np.ndarray] | None = None) -> None:
        """Store one batch's rows (named by a hash of their ids) atomically, replacing the rows of
        those ids in other parts; with ``maps`` (id -> saliency map) their float16 maps beside them,
        written first so that rows imply maps."""
        if self._pending is not None:
            self._create()
        if "path" in rows:
            rows = rows.assign(path=relative_paths(rows["path"], self.data_root))
        name = hashlib.sha256("\n".join(map(str, rows["id"])).encode()).hexdigest()[:16]
        self._drop_elsewhere(set(rows["id"]), self.parts / f"{name}.csv")
        if maps:
            tmp = self.parts / f".{name}.npz.tmp-{os.getpid()}"
            with open(tmp, "wb") as f:
                np.savez_compressed(f, ids=np.array(list(maps)), maps=np.stack(list(maps.values())).astype(np.float16))
            os.replace(tmp, self.parts / f"{name}.npz")
        atomic_write(self.parts / f"{name}.csv", rows.to_csv(index=False))
        self._part_of.update(dict.fromkeys(rows["id"], self.parts / f"{name}.csv"))

    def _drop_elsewhere(self, ids: set[str], own: Path) -> None:
        """Remove the rows of ``ids`` from the parts (other than ``own``) that hold them."""
        for part in {self._part_of[i] for i in ids if i in self._part_of} - {own}:
            old = pd.read_csv(part, dtype={"id": str})
            keep = old[~old["id"].isin(ids)]
            if keep.empty:
                part.unlink()
            else:
                atomic_write(part, keep.to_csv(index=False))

    def maps(self) -> dict[str, np.ndarray]:
        """The saved saliency maps of the cell (runs with run.save_maps=true), id -> [H, W]."""
        out = {}
        for path in sorted(self.parts.glob("*.npz")):
            with np.load(path) as z:
                out.update(zip(z["ids"].tolist(), z["maps"]))
        return out

    def finish(self) -> pd.DataFrame:
        """Join the parts, in id order, into rows.csv, each id's rows from one part (an ok row's
        where several parts hold the id, e.g. copied or duplicated part files).  One process at a time
        (a lock on ``.<hash>.rows.lock``), so the shard that finishes last writes every shard's rows."""
        if not self.dir.exists():
            return pd.DataFrame({"id": []})
        path = self.lock_path.with_name(f".{self.hash}.rows.lock")
        fd = self._acquire(path, fcntl.LOCK_EX, wait=True)
        try:
            frames = [frame.assign(_part=k) for k, (_, frame) in enumerate(self._read_parts(dtype={"id": str}))]
            rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({"id": [], "_part": []})
            rows = _one_part_per_id(rows, str(self.dir)).sort_values("id", kind="stable").reset_index(drop=True)
            if "path" in rows:
                rows["path"] = relative_paths(rows["path"], self.data_root)
            atomic_write(self.dir / ROWS, rows.to_csv(index=False))
        finally:
            path.unlink(missing_ok=True)
            os.close(fd)
        return rows

    def rows(self) -> pd.DataFrame:
        """The cell's rows.csv, one row per image id (:func:`read_cell_rows`)."""
        return read_cell_rows(self.dir)


def _one_part_per_id(rows: pd.DataFrame, where: str) -> pd.DataFrame:
    """The rows of each id from one part (column ``_part``): the first part with an ok row, else the first."""
    firsts = one_row_per_id(rows.drop_duplicates(["id", "_part"]), where)
    chosen = rows["id"].map(firsts.set_index("id")["_part"])
    return rows[rows["_part"] == chosen].drop(columns="_part")
