"""AG-CAM on timm's and torchvision's Vision Transformers (the benchmark's ViTs come from both): the
explicit torchvision attention reproduces nn.MultiheadAttention, the map equals a hand-written
re-computation of the whole network for each, a timm ViT and a torchvision ViT with the same
weights give the same map, and the explainer invariants."""
from __future__ import annotations

import pytest
import torch
import torchvision
from timm.models.vision_transformer import VisionTransformer as TimmViT
from torch import nn

from baselines import create_explainer
from baselines.agcam import AGCAM, attention_reader
from cluscam.layers import LayerSpec

TV_GRID = LayerSpec("encoder.layers.-1.ln_1", "tokens", 1)
TIMM_GRID = LayerSpec("blocks.-1.norm1", "tokens", 1)


def randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights large enough for peaked attention; biases, norms and tokens perturbed too
    (torchvision zero-initializes the head, which would make every gradient zero)."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0, 0.3)
            else:
                p.add_(torch.randn_like(p), alpha=0.1)
    return model.eval()


def tv_vit(seed: int = 0, layers: int = 2) -> torchvision.models.VisionTransformer:
    """A torchvision ViT on 32x32 inputs: 4x4 patches of 8, width 16, 2 heads, 5 classes."""
    model = torchvision.models.VisionTransformer(image_size=32, patch_size=8, num_layers=layers, num_heads=2,
                                                 hidden_dim=16, mlp_dim=32, num_classes=5)
    return randomize(model, seed)


def timm_vit(seed: int = 0) -> TimmViT:
    """A timm ViT of the same shape as :func:`tv_vit`."""
    return randomize(TimmViT(img_size=32, patch_size=8, embed_dim=16, depth=2, num_heads=2, mlp_ratio=2.0,
                             num_classes=5), seed)


def timm_to_torchvision(src: TimmViT) -> torchvision.models.VisionTransformer:
    """A torchvision ViT with the weights of a timm ViT of the same shape (qkv and in_proj share the
    [q; k; v] x heads layout; both LayerNorms use eps 1e-6)."""
    dst = torchvision.models.VisionTransformer(image_size=32, patch_size=8, num_layers=len(src.blocks),
                                               num_heads=src.blocks[0].attn.num_heads, hidden_dim=src.embed_dim,
                                               mlp_dim=src.blocks[0].mlp.fc1.out_features, num_classes=5)
    names = {"patch_embed.proj": "conv_proj", "cls_token": "class_token", "pos_embed": "encoder.pos_embedding",
             "norm": "encoder.ln", "head": "heads.head"}
    for i in range(len(src.blocks)):
        names |= {f"blocks.{i}.{a}": f"encoder.layers.encoder_layer_{i}.{b}" for a, b in [
            ("norm1", "ln_1"), ("attn.qkv.weight", "self_attention.in_proj_weight"),
            ("attn.qkv.bias", "self_attention.in_proj_bias"), ("attn.proj", "self_attention.out_proj"),
            ("norm2", "ln_2"), ("mlp.fc1", "mlp.0"), ("mlp.fc2", "mlp.3")]}
    state = {}
    for key, value in src.state_dict().items():
        prefix = next(p for p in sorted(names, key=len, reverse=True) if key == p or key.startswith(p + "."))
        state[names[prefix] + key[len(prefix):]] = value
    dst.load_state_dict(state)  # strict: every parameter of both models mapped
    return dst.eval()


def agcam_map(posts: list[torch.Tensor], pres: list[torch.Tensor]) -> torch.Tensor:
    """Sum over blocks and heads of ReLU(dz_c/dA[cls, 1:]) * sigmoid(S[cls, 1:]), [B, 4, 4]."""
    cam = sum((a.grad[:, :, 0, 1:].relu() * s[:, :, 0, 1:].sigmoid()).sum(1) for a, s in zip(posts, pres))
    return cam.view(-1, 4, 4)


def attention(q: torch.Tensor, k: torch.Tensor, scale: float, posts: list, pres: list) -> torch.Tensor:
    """softmax(q k^T * scale), its scores and probabilities kept for :func:`agcam_map`."""
    s = q @ k.transpose(-2, -1) * scale
    a = s.softmax(-1)
    a.retain_grad()
    posts.append(a)
    pres.append(s.detach())
    return a


def timm_reference(model: TimmViT, x: torch.Tensor, targets: torch.Tensor, detach: bool) -> torch.Tensor:
    """AG-CAM on a whole timm ViT written out (norm1 output detached if ``detach``)."""
    tok = model.norm_pre(model.patch_drop(model._pos_embed(model.patch_embed(x))))
    posts, pres = [], []
    for blk in model.blocks:
        attn = blk.attn
        y = blk.norm1(tok)
        y = y.detach() if detach else y
        b, n, c = y.shape
        q, k, v = attn.qkv(y).reshape(b, n, 3, attn.num_heads, c // attn.num_heads).permute(2, 0, 3, 1, 4)
        a = attention(q, k, attn.scale, posts, pres)
        tok = tok + blk.ls1(attn.proj((a @ v).transpose(1, 2).reshape(b, n, c)))
        tok = tok + blk.ls2(blk.mlp(blk.norm2(tok)))
    logits = model.forward_head(model.norm(tok))
    torch.testing.assert_close(logits, model(x), atol=1e-5, rtol=1e-5)  # the hand-written forward is the model's
    logits.gather(1, targets[:, None]).sum().backward()
    return agcam_map(posts, pres)


def torchvision_reference(model: torchvision.models.VisionTransformer, x: torch.Tensor, targets: torch.Tensor,
                          detach: bool) -> torch.Tensor:
    """AG-CAM on the whole torchvision ViT written out: patches, class token, position embedding,
    per block x += W_o softmax(q k^T / sqrt(d)) v (ln_1 output detached if ``detach``) and
    x += MLP(ln_2(x)), final norm, head on the class token."""
    b = x.shape[0]
    tok = model.conv_proj(x).flatten(2).transpose(1, 2)
    tok = torch.cat([model.class_token.expand(b, -1, -1), tok], 1) + model.encoder.pos_embedding
    posts, pres = [], []
    for blk in model.encoder.layers:
        mha, heads = blk.self_attention, blk.num_heads
        y = blk.ln_1(tok)
        y = y.detach() if detach else y
        n, e = y.shape[1:]
        w_q, w_k, w_v = mha.in_proj_weight.split(e)
        b_q, b_k, b_v = mha.in_proj_bias.split(e)
        split = lambda t: t.view(b, n, heads, e // heads).transpose(1, 2)  # noqa: E731
        q, k, v = split(y @ w_q.T + b_q), split(y @ w_k.T + b_k), split(y @ w_v.T + b_v)
        a = attention(q, k, (e // heads) ** -0.5, posts, pres)
        tok = tok + mha.out_proj((a @ v).transpose(1, 2).reshape(b, n, e))
        tok = tok + blk.mlp(blk.ln_2(tok))
    logits = model.heads(model.encoder.ln(tok)[:, 0])
    torch.testing.assert_close(logits, model(x), atol=1e-5, rtol=1e-5)  # the hand-written forward is the model's
    logits.gather(1, targets[:, None]).sum().backward()
    return agcam_map(posts, pres)


FLAVOURS = {"timm": (timm_vit, TIMM_GRID, timm_reference), "torchvision": (tv_vit, TV_GRID, torchvision_reference)}


# -- the explicit attention ----------------------------------------------------------------------------
@pytest.mark.parametrize("detach", [True, False])
def test_explicit_attention_reproduces_the_logits(images, detach):
    model = tv_vit()
    reader = attention_reader(model)
    with torch.no_grad():
        fast = model(images)
    with reader.reading(detach) as rows:
        slow = model(images)
    torch.testing.assert_close(slow, fast, atol=1e-5, rtol=1e-5)
    assert len(rows.scores) == 2 and rows.scores[0].shape == (3, 2, 17) and rows.leaf.shape == (3, 2, 2, 17)


# -- the map against independent re-computations --------------------------------------------------------
@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("detach", [True, False])
def test_matches_hand_written_vit(images, flavour, detach, finish):
    make, grid, reference = FLAVOURS[flavour]
    model = make()
    targets = torch.tensor([2, 0, 4])
    exp = AGCAM(model, grid, detach_attention_input=detach)
    ref = reference(model, images, targets, detach)
    with torch.enable_grad():
        raw = exp.saliency(exp.capture(images, targets))
    torch.testing.assert_close(raw, ref, atol=1e-5, rtol=1e-4)  # before normalization
    torch.testing.assert_close(exp(images, targets), finish(ref), atol=1e-5, rtol=1e-5)
    assert (exp.last_passes.forward, exp.last_passes.partial, exp.last_passes.backward) == (1, 0, 1)


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_detach_changes_the_map(images, flavour):
    make, grid, _ = FLAVOURS[flavour]
    model = make()
    kept = AGCAM(model, grid)(images)
    full = AGCAM(model, grid, detach_attention_input=False)(images)
    assert (kept - full).abs().max() > 1e-3


def test_timm_and_torchvision_agree(images):
    src = timm_vit(seed=3)
    dst = timm_to_torchvision(src)
    with torch.no_grad():
        torch.testing.assert_close(dst(images), src(images), atol=1e-5, rtol=1e-5)
    targets = torch.tensor([1, 3, 0])
    for detach in (True, False):
        a = AGCAM(src, TIMM_GRID, detach_attention_input=detach)(images, targets)
        b = AGCAM(dst, TV_GRID, detach_attention_input=detach)(images, targets)
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5)


# -- invariants ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("flavour", FLAVOURS)
def test_shape_range_batch_equals_single(images, flavour, invariants):
    make, grid, _ = FLAVOURS[flavour]
    invariants.batch(AGCAM(make(), grid), images, tol=1e-5)


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_targets_change_the_map(images, flavour, invariants):
    make, grid, _ = FLAVOURS[flavour]
    invariants.targets(AGCAM(make(), grid), images)


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_restores_the_model(images, flavour):
    make, grid, _ = FLAVOURS[flavour]
    model = make()
    # what a reader may change: a patched forward (torchvision), the fused-attention switch (timm)
    state = lambda: [(vars(m).get("forward"), getattr(m, "fused_attn", None)) for m in model.modules()]  # noqa: E731
    before, logits = state(), model(images).detach()
    AGCAM(model, grid)(images)
    assert state() == before
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    with torch.no_grad():
        torch.testing.assert_close(model(images), logits)
    with pytest.raises(RuntimeError), attention_reader(model).reading(True):  # restored after an error too
        raise RuntimeError
    assert state() == before


def test_registry_and_bf16(images):
    exp = create_explainer("agcam", tv_vit(), TV_GRID, precision="bf16")
    assert isinstance(exp, AGCAM)
    out = exp(images)
    assert out.shape == (3, 32, 32) and torch.isfinite(out).all()


@pytest.mark.parametrize("flavour, patch_embedding", [("timm", "patch_embed.proj"), ("torchvision", "conv_proj")])
def test_patch_embedding_gives_the_same_grid(images, flavour, patch_embedding):
    """At the paper's ViT hook (App. A: the patch embedding, NCHW maps) the [class] column is the one
    before the grid's h*w patches: the map is the token-layer map."""
    make, grid, _ = FLAVOURS[flavour]
    model = make()
    torch.testing.assert_close(AGCAM(model, patch_embedding)(images), AGCAM(model, grid)(images), atol=0, rtol=0)


def test_timm_prefix_tokens_must_be_one():
    with pytest.raises(ValueError, match="prefix_tokens"):
        AGCAM(timm_vit(), LayerSpec("blocks.-1.norm1", "tokens", 0))


@pytest.mark.parametrize("model, path", [
    (nn.Sequential(nn.Conv2d(3, 4, 8, stride=8), nn.Flatten(2)), "0"),
    (nn.TransformerEncoderLayer(16, 2, batch_first=True), "norm1"),  # a bare nn.MultiheadAttention: not a ViT's
])
def test_model_without_vit_attention_raises(model, path):
    with pytest.raises(ValueError, match="timm Vision Transformer.*torchvision VisionTransformer.*neither"):
        AGCAM(model, LayerSpec(path, "tokens", 1))


def test_unbatched_first_attention_raises():
    model = tv_vit()
    model.encoder.layers[0].self_attention.batch_first = False
    with pytest.raises(ValueError, match="batch_first"):
        AGCAM(model, TV_GRID)
