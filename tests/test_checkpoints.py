"""The committed Alzheimer MRI models (results/checkpoints, trained by scripts/train.py on a GPU): each
float16 state_dict loads through the zoo as the runner loads it, the test split rebuilt from the
report's options is the one it names, and the accuracy recomputed here in fp32 on the CPU matches the
report's within 2 points (the report was computed under bf16 autocast on the GPU: 7 of the 617 test
images flip for EfficientNet-Lite1)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from benchmarks import zoo
from benchmarks.data import collate
from scripts import train as T

CHECKPOINTS = Path(__file__).resolve().parents[1] / "results" / "checkpoints"
ALZHEIMER = Path(__file__).resolve().parents[2] / "shared" / "data" / "alzheimer_mri"
REPORTS = sorted(CHECKPOINTS.glob("*_alzheimer.json"))


@pytest.mark.skipif(not ALZHEIMER.exists(), reason="shared Alzheimer MRI data not available")
@pytest.mark.parametrize("report_path", REPORTS, ids=[p.stem for p in REPORTS])
def test_committed_checkpoint_reproduces_its_report(report_path):
    report = json.loads(report_path.read_text())
    cfg = T.compose_config([f"model={report['model']}", f"dataset.root={ALZHEIMER}", "run.device=cpu",
                            f"run.seed={report['seed']}"])
    opts = T.TrainOptions(val_size=report["options"]["val_size"], val_from=report["options"]["val_from"])
    splits = T.make_splits(cfg, opts)
    assert T.subset_ids(splits["val"]) == report["val_ids"]
    assert T.subset_ids(splits["test"]) == report["test_ids"]
    model_cfg = zoo.model_config(report["model"])
    model_cfg.num_classes = len(report["classes"])
    model = zoo.create_model(model_cfg, checkpoint=report_path.with_suffix(".pth"))
    state = torch.load(report_path.with_suffix(".pth"), weights_only=True)
    assert {v.dtype for v in state.values() if v.is_floating_point()} == {torch.float16}
    correct = []
    with torch.no_grad():
        for batch in DataLoader(splits["test"], batch_size=64, collate_fn=collate):
            correct.append((model(batch.images).argmax(1) == batch.labels).numpy())
    acc = float(np.concatenate(correct).mean())
    assert acc == pytest.approx(report["test_acc"], abs=0.02), (acc, report["test_acc"])
