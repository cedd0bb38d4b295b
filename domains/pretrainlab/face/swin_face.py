"""Swin Transformer face backbone (Liu et al. 2021, Sec. 3; face variant of the PETALface reference
code: 120x120 input, patch 6, window 5, embedding head BN -> Dropout -> Linear -> BN).

``SwinFace(cfg)(x)``: ``(B, 3, H, W)`` normalised to [-1, 1] -> ``(B, embedding_dim)`` (not
L2-normalised; the margin loss normalises). Window attention takes ``(B * nW, N, C)`` with the
batch as the outer index, so per-sample LoRA mixing weights repeat over windows
(``pretrainlab.core.peft``). The attention's ``qkv`` is one ``nn.Linear(C, 3C)`` (the layer twin
LoRA targets) and the head's projection is ``head.fc`` (the final feature projection that
carries PETALface's single LoRA).

Deviation: the head's normalisation is ``BatchNorm2d`` over the last stage's feature map before
flattening (as in the insightface / AdaFace output layers); the reference code's exact head
layout is to confirm.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pretrainlab.face.config import SwinConfig


def window_partition(x: Tensor, ws: int) -> Tensor:
    """``(B, H, W, C)`` -> ``(B * nW, ws * ws, C)`` (batch outer)."""
    B, H, W, C = x.shape
    x = x.view(B, H // ws, ws, W // ws, ws, C).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, ws * ws, C)


def window_reverse(w: Tensor, ws: int, H: int, W: int) -> Tensor:
    """``(B * nW, ws * ws, C)`` -> ``(B, H, W, C)``."""
    C = w.shape[-1]
    B = w.shape[0] // ((H // ws) * (W // ws))
    x = w.view(B, H // ws, W // ws, ws, ws, C).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(B, H, W, C)


class WindowAttention(nn.Module):
    """Multi-head self-attention in a window with relative position bias. ``(B*nW, N, C)`` -> same."""

    def __init__(self, dim: int, ws: int, heads: int) -> None:
        super().__init__()
        self.heads, self.ws = heads, ws
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.rel_bias = nn.Parameter(torch.zeros((2 * ws - 1) ** 2, heads))
        nn.init.trunc_normal_(self.rel_bias, std=0.02)
        coords = torch.stack(torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij")).flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (ws - 1)
        self.register_buffer("rel_index", rel[..., 0] * (2 * ws - 1) + rel[..., 1], persistent=False)

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        Bw, N, C = x.shape
        qkv = self.qkv(x).view(Bw, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        bias = self.rel_bias[self.rel_index.reshape(-1)].view(N, N, -1).permute(2, 0, 1)  # (h, N, N)
        attn_mask = bias.unsqueeze(0).to(q.dtype)
        if mask is not None:  # (nW, N, N): -100 between tokens of different shifted regions
            nW = mask.shape[0]
            attn_mask = (attn_mask.view(1, 1, self.heads, N, N) + mask.view(1, nW, 1, N, N).to(q.dtype)).view(
                1, nW, self.heads, N, N).expand(Bw // nW, -1, -1, -1, -1).reshape(Bw, self.heads, N, N)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self.proj(out.transpose(1, 2).reshape(Bw, N, C))


class DropPath(nn.Module):
    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0:
            return x
        keep = torch.rand(x.shape[0], *([1] * (x.dim() - 1)), device=x.device, dtype=x.dtype) >= self.p
        return x * keep / (1 - self.p)


class SwinBlock(nn.Module):
    """(Shifted-)window attention block on ``(B, H*W, C)``."""

    def __init__(self, dim: int, res: int, heads: int, ws: int, shift: int, mlp_ratio: float, drop_path: float) -> None:
        super().__init__()
        if res <= ws:  # Swin: a window covering the whole map, no shift
            ws, shift = res, 0
        self.res, self.ws, self.shift = res, ws, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, ws, heads)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        mask = None
        if shift > 0:
            img = torch.zeros(1, res, res, 1)
            cnt = 0
            for hs in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
                for wsl in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
                    img[:, hs, wsl, :] = cnt
                    cnt += 1
            mw = window_partition(img, ws).squeeze(-1)
            mask = (mw[:, None, :] - mw[:, :, None]).ne(0).float() * -100.0
        self.register_buffer("attn_mask", mask, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        B, L, C = x.shape
        H = W = self.res
        h = self.norm1(x).view(B, H, W, C)
        if self.shift:
            h = torch.roll(h, (-self.shift, -self.shift), dims=(1, 2))
        h = self.attn(window_partition(h, self.ws), self.attn_mask)
        h = window_reverse(h, self.ws, H, W)
        if self.shift:
            h = torch.roll(h, (self.shift, self.shift), dims=(1, 2))
        x = x + self.drop_path(h.reshape(B, L, C))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchMerging(nn.Module):
    """2x2 neighbour concat + LayerNorm + Linear(4C -> 2C): ``(B, H*W, C)`` -> ``(B, H*W/4, 2C)``."""

    def __init__(self, dim: int, res: int) -> None:
        super().__init__()
        self.res = res
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        B, _L, C = x.shape
        x = x.view(B, self.res, self.res, C)
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
        return self.reduction(self.norm(x.view(B, -1, 4 * C)))


class FeatureHead(nn.Module):
    """BN2d -> Dropout -> flatten -> Linear (``fc``, the feature projection) -> BN1d: ``(B,C,h,w)`` -> ``(B,E)``."""

    def __init__(self, channels: int, res: int, emb: int, dropout: float) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(channels)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels * res * res, emb)
        self.bn2 = nn.BatchNorm1d(emb)

    def forward(self, x: Tensor) -> Tensor:
        return self.bn2(self.fc(self.dropout(self.bn1(x)).flatten(1)))


class SwinFace(nn.Module):
    """The face backbone; ``forward`` ``(B, 3, S, S)`` -> ``(B, E)``."""

    def __init__(self, cfg: SwinConfig) -> None:
        super().__init__()
        if cfg.image_size % cfg.patch_size:
            raise ValueError(f"image_size {cfg.image_size} is not a multiple of patch_size {cfg.patch_size}")
        if len(cfg.depths) != len(cfg.num_heads):
            raise ValueError("model.depths and model.num_heads must have the same length")
        self.cfg = cfg
        res = cfg.image_size // cfg.patch_size
        dim = cfg.embed_dim
        self.patch_embed = nn.Conv2d(3, dim, cfg.patch_size, cfg.patch_size)
        self.patch_norm = nn.LayerNorm(dim)
        dpr = torch.linspace(0, cfg.drop_path, sum(cfg.depths)).tolist()
        stages: list[nn.Module] = []
        k = 0
        for i, (depth, heads) in enumerate(zip(cfg.depths, cfg.num_heads)):
            blocks: list[nn.Module] = [SwinBlock(dim, res, heads, cfg.window_size, 0 if j % 2 == 0 else cfg.window_size // 2,
                                                 cfg.mlp_ratio, dpr[k + j]) for j in range(depth)]
            k += depth
            if i < len(cfg.depths) - 1:
                if res % 2:
                    raise ValueError(f"stage {i} has an odd token grid ({res}); choose image/patch sizes divisible by 2^stages")
                blocks.append(PatchMerging(dim, res))
                res, dim = res // 2, dim * 2
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.norm = nn.LayerNorm(dim)
        self.out_res, self.out_dim = res, dim
        self.head = FeatureHead(dim, res, cfg.embedding_dim, cfg.head_dropout)
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)  # (B, L, C)
        x = self.stages(self.patch_norm(x))
        x = self.norm(x)
        B, _L, C = x.shape
        return self.head(x.transpose(1, 2).reshape(B, C, self.out_res, self.out_res))
