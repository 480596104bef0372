"""AG-CAM, Attention-Guided CAM (Leem & Seo, AAAI 2024), for timm and torchvision Vision Transformers.

For every block l and head h (paper Sec. 3, official ``Methods/AGCAM/AGCAM.py``): the [class]
token's row of the self-attention, with the pre-softmax scores S = q k^T / sqrt(d) normalized by a
sigmoid as the feature map (Eq. 2) and the gradient of the target logit with respect to the
post-softmax attention, passed through ReLU, as its weight (Eq. 7):

    cam = sum_l sum_h ReLU(d z_c / d A_lh[cls, :]) * sigmoid(S_lh[cls, :]),

then the [class] column is dropped and the rest reshaped to the token grid.  The hooked layer only
gives that grid: a tokens LayerSpec names the prefix tokens; a map layer (the patch embedding conv,
the paper's ViT hook, App. A) gives the grid, the columns before its h*w patches being the prefix.
The official code sums heads and layers (a mean is the same map after min-max).  It also detaches the
input of every attention module (its ``Attention.forward``), so gradients flow only through the
residual and MLP branches (the paper's dE^(k+1)/dE^k = I): ``detach_attention_input`` (default True)
keeps that.

Fused attention kernels expose neither matrix, so an :class:`AttentionReader` per framework makes
each attention module report, during the explanation only, its [class] rows to one
:class:`AttentionRows`: the pre-softmax scores (detached) and the post-softmax attention, to which a
zero leaf is added whose gradient is d z_c / d A.  timm ``Attention`` is switched to its explicit
path (``fused_attn = False``) and read through hooks; torchvision's ``EncoderBlock.self_attention``
(``nn.MultiheadAttention``) gets an explicit forward from its own weights.  Everything is restored
afterwards.  1 forward + 1 backward pass.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from timm.models.vision_transformer import Attention
from torch import nn
from torchvision.models.vision_transformer import EncoderBlock

from cluscam.base import Capture, Explainer, PassCount

Undo = Callable[[], None]


class AttentionRows:
    """The [class] rows read during one forward pass of ``n_blocks`` attention modules: pre-softmax
    scores per block [B, H, N], and the zero leaf [B, n_blocks, H, N] whose gradient is
    d z_c / d (post-softmax attention)."""

    def __init__(self, n_blocks: int) -> None:
        self.n_blocks = n_blocks
        self.scores: list[torch.Tensor] = []
        self.leaf: torch.Tensor | None = None

    def score(self, cls_scores: torch.Tensor) -> None:
        """Record S[cls, :] = q_cls k^T / sqrt(d) of the next block, [B, H, N]."""
        self.scores.append(cls_scores.detach())

    def attend(self, block: int, attn: torch.Tensor) -> torch.Tensor:
        """A[cls, :] + 0 for post-softmax attention [B, H, N, N]: the leaf's gradient is d z_c / d A[cls, :]."""
        b, heads, n, _ = attn.shape
        if self.leaf is None:
            self.leaf = attn.new_zeros(b, self.n_blocks, heads, n, requires_grad=True)
        if self.leaf.shape[2:] != (heads, n):
            raise ValueError("AG-CAM needs the same number of heads and tokens in every attention block")
        cls_row = attn[:, :, :1] + self.leaf[:, block, :, None]
        return torch.cat([cls_row, attn[:, :, 1:]], dim=2)


class AttentionReader(ABC):
    """A framework's self-attention modules in forward order, and how to make one report its rows."""

    def __init__(self, model: nn.Module) -> None:
        self.modules = self.find(model)

    @staticmethod
    @abstractmethod
    def find(model: nn.Module) -> list[nn.Module]:
        """The attention modules of ``model`` this reader handles (empty if none)."""

    @abstractmethod
    def patch(self, module: nn.Module, block: int, rows: AttentionRows, detach: bool) -> Undo:
        """Make ``module`` report to ``rows`` as block ``block`` (input detached if ``detach``);
        return what undoes it."""

    @contextmanager
    def reading(self, detach: bool) -> Iterator[AttentionRows]:
        rows, undo = AttentionRows(len(self.modules)), []
        try:
            for block, module in enumerate(self.modules):
                undo.append(self.patch(module, block, rows, detach))
            yield rows
        finally:
            for fn in reversed(undo):
                fn()


def _detach_input(_module: nn.Module, args: tuple) -> tuple:
    return (args[0].detach(), *args[1:])


class TimmAttentionReader(AttentionReader):
    """timm ViT ``Attention`` (ViT, DeiT), on its explicit path: q and k after ``q_norm``/``k_norm``
    give the pre-softmax row, ``attn_drop``'s output is the post-softmax attention.  Other attention
    classes (e.g. rotary embeddings applied after q_norm/k_norm) would be misread, so are not found."""

    @staticmethod
    def find(model: nn.Module) -> list[nn.Module]:
        return [m for m in model.modules() if isinstance(m, Attention)]

    def patch(self, module: nn.Module, block: int, rows: AttentionRows, detach: bool) -> Undo:
        query: dict[str, torch.Tensor] = {}
        fused, module.fused_attn = module.fused_attn, False
        handles = [
            module.q_norm.register_forward_hook(lambda _m, _i, q: query.__setitem__("cls", q[:, :, :1])),
            module.k_norm.register_forward_hook(  # S[cls, :] = q_cls k^T * scale
                lambda _m, _i, k: rows.score(((query["cls"] * module.scale) @ k.transpose(-2, -1))[:, :, 0])),
            module.attn_drop.register_forward_hook(lambda _m, _i, attn: rows.attend(block, attn)),
        ]
        if detach:
            handles.append(module.register_forward_pre_hook(_detach_input))

        def undo() -> None:
            for h in handles:
                h.remove()
            module.fused_attn = fused
        return undo


class TorchvisionAttentionReader(AttentionReader):
    """torchvision ``VisionTransformer``: the ``nn.MultiheadAttention`` of each ``EncoderBlock``,
    whose forward is replaced by the same attention written out (in_proj, S = q k^T / sqrt(d),
    softmax, dropout, A v, out_proj), reporting S and A."""

    @staticmethod
    def find(model: nn.Module) -> list[nn.Module]:
        mods = [blk.self_attention for blk in model.modules() if isinstance(blk, EncoderBlock)]
        for m in mods:
            if not (m.batch_first and m._qkv_same_embed_dim and m.bias_k is None and not m.add_zero_attn):
                raise ValueError("AG-CAM reads torchvision EncoderBlock attention with batch_first=True, "
                                 "one in_proj_weight, no bias_k/bias_v and add_zero_attn=False")
        return mods

    def patch(self, module: nn.Module, block: int, rows: AttentionRows, detach: bool) -> Undo:
        saved = vars(module).get("forward")

        def forward(query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                    average_attn_weights=True, is_causal=False):
            if key_padding_mask is not None or attn_mask is not None or is_causal or not (query is key is value):
                raise ValueError("AG-CAM reads unmasked self-attention only (query is key is value, no masks)")
            out, attn = _self_attention(module, query.detach() if detach else query, block, rows)
            if not need_weights:
                return out, None
            return out, attn.mean(1) if average_attn_weights else attn

        module.forward = forward

        def undo() -> None:
            if saved is None:
                del module.forward
            else:
                module.forward = saved
        return undo


def _self_attention(m: nn.MultiheadAttention, x: torch.Tensor, block: int,
                    rows: AttentionRows) -> tuple[torch.Tensor, torch.Tensor]:
    """nn.MultiheadAttention's self-attention on batch-first x [B, N, E], reporting S and A to ``rows``."""
    b, n, e = x.shape
    qkv = F.linear(x, m.in_proj_weight, m.in_proj_bias).view(b, n, 3, m.num_heads, m.head_dim)
    q, k, v = qkv.permute(2, 0, 3, 1, 4)  # [B, H, N, d] each
    scores = (q * m.head_dim ** -0.5) @ k.transpose(-2, -1)  # S = q k^T / sqrt(d), [B, H, N, N]
    rows.score(scores[:, :, 0])
    attn = rows.attend(block, F.dropout(scores.softmax(-1), m.dropout, m.training))
    out = m.out_proj((attn @ v).transpose(1, 2).reshape(b, n, e))
    return out, attn


READERS: tuple[type[AttentionReader], ...] = (TimmAttentionReader, TorchvisionAttentionReader)


def attention_reader(model: nn.Module) -> AttentionReader:
    """The reader of ``model``'s attention; a clear error unless exactly one framework's is found."""
    found = [r for r in (cls(model) for cls in READERS) if r.modules]
    if len(found) != 1:
        raise ValueError(
            f"AG-CAM needs a timm Vision Transformer (timm.models.vision_transformer.Attention: ViT, DeiT) "
            f"or a torchvision VisionTransformer (EncoderBlock.self_attention): {type(model).__name__} has "
            f"{'both' if found else 'neither'}"
        )
    return found[0]


@dataclass
class AttentionCapture(Capture):
    """A capture with, per block, the [class] rows of the pre-softmax scores and of the attention
    gradients, both [B, L, H, N]."""

    scores: torch.Tensor | None = None
    attn_grad: torch.Tensor | None = None


class AGCAM(Explainer):
    """AG-CAM for a batch.  layer: the token grid, e.g. the patch embedding ``'patch_embed.proj'``
    (timm) / ``'conv_proj'`` (torchvision), or ``LayerSpec('blocks.-1.norm1', 'tokens', 1)``; a tokens
    layer needs prefix_tokens >= 1: the [class] token, first, gives the row that is read."""

    display_name = "AG-CAM"
    families = ("vit",)
    needs_attention = True
    uses_gradients = True

    @classmethod
    def supports(cls, family: str, model: nn.Module | None = None) -> bool:
        """ViTs, and of a built model only a timm or torchvision Vision Transformer (whose attention it reads)."""
        return super().supports(family) and (model is None or any(reader.find(model) for reader in READERS))

    def __init__(self, model, layer, *, detach_attention_input: bool = True, **kwargs) -> None:
        super().__init__(model, layer, **kwargs)
        if self.layer.layout == "tokens" and self.layer.prefix_tokens < 1:
            raise ValueError(
                "AG-CAM reads the [class] token's attention row: give the patch embedding or a tokens LayerSpec "
                f"with prefix_tokens >= 1 (e.g. LayerSpec('blocks.-1.norm1', 'tokens', 1)), got {self.layer}"
            )
        self.reader = attention_reader(model)
        self.detach_attention_input = detach_attention_input

    @classmethod
    def expected_passes(cls, shape: tuple[int, int, int], **options) -> PassCount:
        """1 forward + 1 backward: the capture reads every block's attention, one gradient reaches all of it."""
        cls._dims(shape)
        cls._options(options)
        return PassCount(forward=1.0, backward=1.0)

    def capture(self, images: torch.Tensor, targets=None) -> AttentionCapture:
        store: dict[str, torch.Tensor] = {}
        with self.reader.reading(self.detach_attention_input) as rows, \
                self.hooked(lambda out: store.__setitem__("act", out)):
            logits = self.logits(images, capture=True)
        if "act" not in store or len(rows.scores) != len(self.reader.modules):
            raise RuntimeError(
                f"layer {self.layer.path!r} or some attention modules were not called once in the forward pass"
            )
        targets = self.resolve_targets(logits, targets)
        grad = self.gradient(logits.gather(1, targets[:, None]).sum(), rows.leaf)  # d z_c / d A[cls, :]
        return AttentionCapture(images, targets, logits.detach(), store["act"].detach(), self.layer,
                                scores=torch.stack(rows.scores, 1), attn_grad=grad)

    def saliency(self, cap: AttentionCapture) -> torch.Tensor:
        # Eq. 7 weights ReLU(grad) times Eq. 2 maps sigmoid(S), summed over heads and blocks (official 'sum')
        cam = (cap.attn_grad.relu() * cap.scores.sigmoid()).sum((1, 2))  # [B, prefix + h*w]
        if self.layer.layout == "tokens":
            return self.layer.maps(cam.unsqueeze(-1))[:, 0]  # drop prefix columns, reshape to the grid
        h, w = cap.maps.shape[-2:]
        if cam.shape[1] <= h * w:
            raise ValueError(f"AG-CAM: the attention has {cam.shape[1]} tokens, no [class] token before the "
                             f"{h}x{w} patches of layer {self.layer.path!r}")
        return cam[:, -h * w:].unflatten(1, (h, w))
