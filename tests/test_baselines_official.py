"""ReciproCAM and OptiCAM against independent straightforward re-computations of their
official algorithms, known answers on hand-built models, and the explainer invariants."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from baselines import create_explainer
from baselines.opticam import OptiCAM
from baselines.reciprocam import ReciproCAM
from cluscam.layers import LayerSpec

GAUSS = [[1 / 16, 1 / 8, 1 / 16], [1 / 8, 1 / 4, 1 / 8], [1 / 16, 1 / 8, 1 / 16]]
VIT_RECIPRO = LayerSpec("blocks.-2.norm1", "tokens", 1)


# -- models -----------------------------------------------------------------------------------------
class CellHead(nn.Module):
    """Logits from the features of one cell only: z_0 = 4 * F_0(cell), z_1 = 1."""

    def __init__(self, cell: tuple[int, int]) -> None:
        super().__init__()
        self.cell = cell
        self.fc = nn.Linear(2, 2)
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor([[4.0, 0.0], [0.0, 0.0]]))
            self.fc.bias.copy_(torch.tensor([0.0, 1.0]))

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.fc(f[:, :, self.cell[0], self.cell[1]])


class CellNet(nn.Module):
    """32x32 input, 4x4 grid of non-overlapping 8x8 cells; feature 0 = mean red, feature 1 = mean green
    of a cell; the class-0 logit reads only the red feature of ``cell``."""

    def __init__(self, cell: tuple[int, int]) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 2, 8, stride=8, bias=False), nn.ReLU())
        with torch.no_grad():
            w = torch.zeros(2, 3, 8, 8)
            w[0, 0], w[1, 1] = 1 / 64, 1 / 64
            self.features[0].weight.copy_(w)
        self.head = CellHead(cell)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


CELL, DISTRACTOR = (1, 2), (3, 0)


def cell_image() -> torch.Tensor:
    """Red 1 in CELL's block, green 2 in DISTRACTOR's block, zero elsewhere: [1, 3, 32, 32]."""
    x = torch.zeros(1, 3, 32, 32)
    x[0, 0, CELL[0] * 8:(CELL[0] + 1) * 8, CELL[1] * 8:(CELL[1] + 1) * 8] = 1.0
    x[0, 1, DISTRACTOR[0] * 8:(DISTRACTOR[0] + 1) * 8, DISTRACTOR[1] * 8:(DISTRACTOR[1] + 1) * 8] = 2.0
    return x


def block_of(index: int, width: int = 32, cell: int = 8) -> tuple[int, int]:
    return (index // width) // cell, (index % width) // cell


class SmallCNN(nn.Module):
    """Random conv features [B, 8, 4, 4] for 32x32 inputs, global pooling and a linear head."""

    def __init__(self, classes: int = 5) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 6, 3, stride=2, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
            nn.Conv2d(6, 8, 3, stride=4, padding=1), nn.ReLU(),
        )
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class Residual(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(c)
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(self.norm(x)).relu()


class ResCNN(nn.Module):
    """A stem, one residual block and a pooled head: hooking ``block.norm`` sits inside the residual."""

    def __init__(self, classes: int = 5) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 6, 8, stride=8), nn.ReLU())
        self.block = Residual(6)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.block(self.stem(x)))


def randomize_bn(model: nn.Module) -> nn.Module:
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def tiny_vit(seed: int = 0) -> VisionTransformer:
    """A 3-block timm ViT on 32x32 inputs (4x4 patches of 8), weights large enough for peaked attention."""
    torch.manual_seed(seed)
    model = VisionTransformer(img_size=32, patch_size=8, embed_dim=32, depth=3, num_heads=2, num_classes=5)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0, 0.15)
    return model.eval()


@pytest.fixture(scope="module")
def cnn() -> SmallCNN:
    torch.manual_seed(0)
    return randomize_bn(SmallCNN())


def mask_grid(i: int, j: int, h: int, w: int, gaussian: bool) -> torch.Tensor:
    """The official masks, cell by cell: one-hot of (i, j) or the 3x3 Gaussian around it, cut at borders."""
    m = torch.zeros(h, w)
    if not gaussian:
        m[i, j] = 1
        return m
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            if 0 <= i + di < h and 0 <= j + dj < w:
                m[i + di, j + dj] = GAUSS[di + 1][dj + 1]
    return m


# -- ReciproCAM ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("kernel", ["onehot", "gaussian"])
@pytest.mark.parametrize("chunk_size", [5, 64])
def test_reciprocam_matches_loop_over_positions(cnn, images, kernel, chunk_size, finish):
    targets = torch.tensor([0, 3, 4])
    with torch.no_grad():
        feats = cnn.features(images)
        ref = torch.zeros(3, 4, 4)
        for b in range(3):
            for i in range(4):
                for j in range(4):
                    masked = feats[b:b + 1] * mask_grid(i, j, 4, 4, kernel == "gaussian")
                    ref[b, i, j] = cnn.head(masked).softmax(1)[0, targets[b]]
    exp = ReciproCAM(cnn, "features", kernel=kernel, chunk_size=chunk_size)
    out = exp(images, targets)
    torch.testing.assert_close(out, finish(ref), atol=1e-5, rtol=1e-5)
    assert exp.last_passes.forward == 1 and exp.last_passes.partial == 16 and exp.last_passes.backward == 0


def test_reciprocam_known_cell_decides():
    model = CellNet(CELL).eval()
    x = cell_image()
    exp = ReciproCAM(model, "features")
    sal = exp(x)
    assert block_of(int(sal[0].argmax())) == CELL
    cy, cx = CELL[0] * 8 + 4, CELL[1] * 8 + 4
    assert sal[0, cy, cx] == pytest.approx(1.0, abs=0.05)
    assert sal[0, 28, 4] == pytest.approx(0.0, abs=1e-6)  # a far cell: every other copy scores sigmoid(-1)
    # target 1: z_1 = 1 in every copy but z_0 = 4 only in the cell's copy, which becomes the least supportive
    sal1 = exp(x, [1])
    assert sal1[0, cy, cx] == pytest.approx(0.0, abs=0.05) and sal1[0, 28, 4] == pytest.approx(1.0, abs=1e-6)


def test_reciprocam_residual_inner_layer_needs_expand_at(finish):
    torch.manual_seed(2)
    model = randomize_bn(ResCNN())
    x = torch.randn(2, 3, 32, 32)
    with pytest.raises(ValueError, match="expand_at"):
        ReciproCAM(model, "block.norm", chunk_size=64)(x)
    expanded = ReciproCAM(model, "block.norm", expand_at="block", chunk_size=64)(x)
    # reference: every copy's skip branch carries its image's unmasked stem output
    with torch.no_grad():
        stem = model.stem(x)
        inner = model.block.norm(stem)
        ref = torch.zeros(2, 4, 4)
        for b in range(2):
            for i in range(4):
                for j in range(4):
                    out = stem[b:b + 1] + model.block.conv(inner[b:b + 1] * mask_grid(i, j, 4, 4, False)).relu()
                    ref[b, i, j] = model.head(out).softmax(1)[0, model(x[b:b + 1]).argmax()]
    torch.testing.assert_close(expanded, finish(ref), atol=1e-5, rtol=1e-5)
    # one image per pass (chunk_size = h*w): the skip branch of batch 1 broadcasts as in the official code
    per_image = ReciproCAM(model, "block.norm", chunk_size=16)(x)
    torch.testing.assert_close(per_image, expanded, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("gaussian", [True, False])
def test_vit_reciprocam_matches_manual_official(images, gaussian, finish):
    model = tiny_vit()
    exp = ReciproCAM(model, VIT_RECIPRO, expand_at="blocks.-2", kernel="gaussian" if gaussian else "onehot",
                     chunk_size=7)  # one image's 16 copies in passes of 7, 7 and 2
    out = exp(images)
    with torch.no_grad():
        preds = model(images).argmax(1)
        x = model.norm_pre(model.patch_drop(model._pos_embed(model.patch_embed(images))))
        x = model.blocks[0](x)
        blk = model.blocks[-2]
        y = blk.norm1(x)
        ref = torch.zeros(3, 4, 4)
        for b in range(3):
            for i in range(4):
                for j in range(4):
                    copy = torch.zeros_like(y[b:b + 1])
                    copy[:, 0] = y[b, 0]  # the [class] token is kept
                    copy[:, 1:] = y[b:b + 1, 1:] * mask_grid(i, j, 4, 4, gaussian).view(1, 16, 1)
                    z = x[b:b + 1] + blk.ls1(blk.attn(copy))  # skip branch: the unmasked tokens
                    z = z + blk.ls2(blk.mlp(blk.norm2(z)))
                    z = model.blocks[-1](z)
                    ref[b, i, j] = model.forward_head(model.norm(z)).softmax(1)[0, preds[b]]
    # the copies' probabilities span ~1e-2 here: min-max magnifies float32 rounding to ~1e-5
    torch.testing.assert_close(out, finish(ref), atol=1e-4, rtol=1e-4)
    assert exp.kernel == "gaussian" or not gaussian


def test_reciprocam_kernel_defaults_follow_official_code(cnn):
    assert ReciproCAM(cnn, "features").kernel == "onehot"
    assert ReciproCAM(tiny_vit(), VIT_RECIPRO, expand_at="blocks.-2").kernel == "gaussian"


def test_reciprocam_zeroed_prefix_differs(images):
    model = tiny_vit()
    kept = ReciproCAM(model, VIT_RECIPRO, expand_at="blocks.-2")(images)
    zeroed = ReciproCAM(model, VIT_RECIPRO, expand_at="blocks.-2", keep_prefix=False)(images)
    assert (kept - zeroed).abs().max() > 1e-3


# -- OptiCAM ------------------------------------------------------------------------------------------
def opticam_reference(model, x, target, max_iter, lr, loss, pixel=None):
    """The official per-image loop written out: ReLU'd features, softmax weights from 0.5, bilinear
    upsampling, min-max, Adam; every max_iter // 10 steps stop if the loss rose, returning that step's
    map.  Returns the map [H, W] and whether it stopped early."""
    with torch.no_grad():
        feats = model.features(x).relu()
        f0 = model(x)[0, target]
    u = torch.full((1, feats.shape[1], 1, 1), 0.5, requires_grad=True)
    opt = torch.optim.Adam([u], lr=lr)
    prev = float("inf")

    def combine():
        s = (u.softmax(1) * feats).sum(1, keepdim=True)
        s = F.interpolate(s, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return (s - s.min()) / (s.max() - s.min())

    for step in range(max_iter):
        mask = combine()
        if pixel is None:
            masked = x * mask
        else:
            mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in pixel)
            masked = ((x * std + mean) * mask - mean) / std  # official: mask the [0, 1] image
        diff = f0 - model(masked)[0, target]
        value = diff.abs() if loss == "norm" else diff
        opt.zero_grad()
        value.backward()
        opt.step()
        if step % max(1, max_iter // 10) == 0:
            if value.item() > prev:
                return mask.detach()[0, 0], True
            prev = value.item()
    return combine().detach()[0, 0], False


@pytest.mark.parametrize("preset, baseline, lr", [
    ("cluscam", "mean", None), ("official", "mean", None), ("official", "black", None),
    ("cluscam", "mean", 1.0), ("official", "mean", 0.3),  # larger steps: some images stop early
])
def test_opticam_matches_official_loop(cnn, images, preset, baseline, lr):
    pixel = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    extra = {"pixel_mean": pixel[0], "pixel_std": pixel[1]} if baseline == "black" else {}
    exp = OptiCAM(cnn, "features", preset=preset, max_iter=20, lr=lr, baseline=baseline, **extra)
    targets = torch.tensor([1, 0, 4])
    out = exp(images, targets)
    stops = []
    for b in range(3):
        ref, stopped = opticam_reference(cnn, images[b:b + 1], int(targets[b]), 20, exp.lr, exp.loss,
                                         pixel if baseline == "black" else None)
        torch.testing.assert_close(out[b], ref, atol=1e-4, rtol=1e-4)
        stops.append(stopped)
    if lr is not None:  # the batch mixes images that stop early with images that run to the end
        assert any(stops) and not all(stops)


def test_opticam_known_cell_decides():
    model = CellNet(CELL).eval()
    x = cell_image()
    with torch.no_grad():
        start = OptiCAM.combine(torch.full((1, 2), 0.5), model.features(x), (32, 32))
    assert block_of(int(start[0].argmax())) == DISTRACTOR  # the uniform start highlights the distractor
    for preset in ("cluscam", "official"):
        sal = OptiCAM(model, "features", preset=preset)(x)
        assert block_of(int(sal[0].argmax())) == CELL
        assert sal[0, DISTRACTOR[0] * 8 + 4, DISTRACTOR[1] * 8 + 4] < 0.3  # 1 at the start
    # target 1 has a constant logit: nothing to optimize, the map stays at its uniform start
    torch.testing.assert_close(OptiCAM(model, "features")(x, [1]), start, atol=1e-6, rtol=0)


def test_opticam_presets_and_overrides(cnn):
    default = OptiCAM(cnn, "features")
    assert (default.max_iter, default.lr, default.loss) == (50, 0.1, "norm")
    off = OptiCAM(cnn, "features", preset="official")
    assert (off.max_iter, off.lr, off.loss) == (50, 0.1, "plain")
    over = OptiCAM(cnn, "features", preset="official", max_iter=7, loss="norm")
    assert (over.max_iter, over.lr, over.loss) == (7, 0.1, "norm")


def test_opticam_pass_count(cnn, images):
    exp = OptiCAM(cnn, "features", max_iter=7, early_stop=False)
    exp(images)
    assert (exp.last_passes.forward, exp.last_passes.partial, exp.last_passes.backward) == (8, 0, 7)
    stopping = OptiCAM(cnn, "features", max_iter=30)
    stopping(images)
    assert 2 <= stopping.last_passes.forward <= 31 and stopping.last_passes.backward == stopping.last_passes.forward - 1


# -- invariants shared by the methods ------------------------------------------------------------
def build(name: str):
    if name == "reciprocam_cnn":
        torch.manual_seed(0)
        return ReciproCAM(randomize_bn(SmallCNN()), "features")
    if name == "reciprocam_vit":
        return ReciproCAM(tiny_vit(), VIT_RECIPRO, expand_at="blocks.-2", chunk_size=40)
    torch.manual_seed(0)
    return OptiCAM(randomize_bn(SmallCNN()), "features", max_iter=20)


METHODS = ["reciprocam_cnn", "reciprocam_vit", "opticam"]


@pytest.mark.parametrize("name", METHODS)
def test_shape_range_and_batch_equals_single(images, name, invariants):
    invariants.batch(build(name), images, tol=1e-4)


@pytest.mark.parametrize("name", METHODS)
def test_targets_change_the_map(images, name, invariants):
    invariants.targets(build(name), images)


def test_registry_builds_both(cnn):
    assert isinstance(create_explainer("reciprocam", cnn, "features"), ReciproCAM)
    assert isinstance(create_explainer("opticam", cnn, "features", preset="official"), OptiCAM)


@pytest.mark.parametrize("make, match", [
    (lambda cnn: ReciproCAM(cnn, "features", kernel="box"), "kernel"),
    (lambda cnn: ReciproCAM(cnn, "features", expand_at="head"), "expand_at"),
    (lambda cnn: ReciproCAM(cnn, "features", expand_at="nothere"), "no child"),
    (lambda cnn: OptiCAM(cnn, "features", preset="paper"), "preset"),
    (lambda cnn: OptiCAM(cnn, "features", loss="l2"), "loss"),
    (lambda cnn: OptiCAM(cnn, "features", lr=0), "lr"),
    (lambda cnn: OptiCAM(cnn, "features", max_iter=0), "max_iter"),
])
def test_bad_options_raise(cnn, make, match):
    with pytest.raises(ValueError, match=match):
        make(cnn)
