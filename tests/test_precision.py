"""scripts/precision.py: a second precision that barely moves the per-image terms is admissible,
one that shifts them is not; the paired interval brackets the known shift."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from scripts import precision as P


def write_cell(runs, name: str, precision: str, rows: pd.DataFrame) -> None:
    cell = runs / "ilsvrc" / "m" / "scorecam" / name
    cell.mkdir(parents=True)
    (cell / "config.json").write_text(json.dumps({"method": {"name": "scorecam", "precision": precision}}))
    rows.to_csv(cell / "rows.csv", index=False)


def rows(n: int, rng: np.random.Generator, shift: float = 0.0) -> pd.DataFrame:
    ad = np.clip(rng.uniform(0, 0.6, n) + shift, 0, 1)
    return pd.DataFrame({"id": [f"img{i:03d}" for i in range(n)], "status": "ok", "ad": ad,
                         "ic": (rng.uniform(size=n) < 0.4).astype(float), "ag": rng.uniform(0, 0.3, n),
                         "ep": rng.uniform(0.3, 0.9, n), "le": rng.uniform(0.2, 0.8, n),
                         "n_boxes": rng.integers(1, 3, n), "device": "cpu"})


@pytest.mark.parametrize("shift, admissible", [(0.001, True), (0.3, False)])
def test_admissible_only_when_the_shift_is_within_the_half_width(tmp_path, shift, admissible):
    rng = np.random.default_rng(0)
    fp32 = rows(60, rng)
    bf16 = fp32.assign(ad=np.clip(fp32["ad"] + shift, 0, 1))
    write_cell(tmp_path / "a", "h1", "fp32", fp32)
    write_cell(tmp_path / "b", "h2", "bf16", bf16.iloc[:40])  # only the first 40 in common
    cells = P.rows_by_precision([tmp_path / "a", tmp_path / "b"], "ilsvrc", "m", "scorecam")
    table = P.compare(cells["fp32"], cells["bf16"]).set_index("metric")
    assert table.loc["ad", "n"] == 40 and table.loc["ep", "n"] == int((fp32["n_boxes"].iloc[:40] == 1).sum())
    assert table.loc["ad", "within"] == admissible
    assert table.loc["ic", "difference"] == 0 and table.loc["ic", "within"]
    assert table.loc["ad", "diff_lo"] <= table.loc["ad", "difference"] <= table.loc["ad", "diff_hi"]
    text = P.render(table.reset_index(), "t", [])
    assert ("**Admissible**" in text) == admissible


def test_two_cells_of_one_precision_are_refused(tmp_path):
    r = rows(5, np.random.default_rng(1))
    write_cell(tmp_path, "h1", "fp32", r)
    write_cell(tmp_path, "h2", "fp32", r)
    with pytest.raises(ValueError, match="two fp32 cells"):
        P.rows_by_precision([tmp_path], "ilsvrc", "m", "scorecam")
