"""One cell in shards: ``run.shard=i/n`` runs the i-th (0-based) of n disjoint parts of a cell's images,
so that n processes, on one machine or on several sharing the results folder, fill one cell together.

A shard is a run of whole batches of the cell's listing (the range ``run.start``/``run.n_images``), the
batches split as evenly as they go: every image is in exactly one shard, and a shard's batches are the
batches a sequential run of the cell makes, so n shards write the rows one run writes.  The shards
share the cell's folder; each holds its own lock (:meth:`benchmarks.store.CellStore.locked`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

_FORM = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def positions(self, n_images: int, batch_size: int) -> range:
        """The positions in the cell's listing of ``n_images`` that this shard runs: batches
        ``[b0, b1)`` of ``batch_size`` images, the first ``n_batches % count`` shards one batch more."""
        n_batches = -(-n_images // batch_size)
        size, extra = divmod(n_batches, self.count)
        b0 = self.index * size + min(self.index, extra)
        b1 = b0 + size + (self.index < extra)
        return range(min(b0 * batch_size, n_images), min(b1 * batch_size, n_images))


def parse_shard(value: object) -> Shard | None:
    """``run.shard``: None (the whole cell) or ``"i/n"`` with 0 <= i < n; anything else is refused naming the key."""
    if value is None:
        return None
    match = _FORM.match(str(value))
    if match is None or not int(match[2]) > int(match[1]) >= 0:
        raise ValueError(f"run.shard={value!r} must be i/n with 0 <= i < n (e.g. run.shard=0/4 ... run.shard=3/4), "
                         f"or null for the whole cell")
    return Shard(int(match[1]), int(match[2]))
