"""The Swin face backbone of PETALface, ported from the reference code (Kartik-3004/PETALface
``backbones/swin_models.py`` = ``get_model("swin_256new")`` and ``backbones/swin_models_iqa.py`` =
``get_model("swin_256new_iqa")``) with the same module tree, so a reference ``state_dict`` (the
released ``model.pt``: 433 tensors for ``r=8, use_lora=True``) loads key for key, strictly.

``SwinFace(cfg, adapter)(x, alpha=None)``: ``(B, 3, S, S)`` normalised to ``(x - 0.5) / 0.5`` ->
``(B, E)`` (not L2-normalised). ``adapter``:

- ``"none"``: the pre-training network (``swin_256new``; plain ``nn.Linear`` everywhere);
- ``"lora"``: plain LoRA on every attention ``qkv`` and on the feature projection
  (``swin_256new`` with ``use_lora=True``: the paper's LoRA baseline);
- ``"twin"``: PETALface (``swin_256new_iqa`` with ``use_lora=True``): twin LoRA on every ``qkv``
  mixed by the per-sample quality weight ``alpha`` ``(B,)``, plain LoRA on the feature projection.

Architecture (reference defaults, ``cfg`` fields): 120 px input, patch 6 (20 x 20 tokens), embed 384,
depths [2, 18, 2], heads [8, 16, 16], window 5, MLP ratio 4, ``qkv`` bias, absolute position
embedding (``ape=True``), patch-embedding LayerNorm, stochastic depth rising linearly to 0.05, no
other dropout. After the last stage's LayerNorm the tokens are flattened TOKEN-MAJOR
``(B, L, C) -> (B, L * C)`` (25 x 1536 = 38400) and the head ``feature_layer`` is
``BatchNorm1d(L*C) -> Dropout(0.25) -> Linear(L*C -> 512) [LoRA] -> BatchNorm1d(512)``.

Quirks of the reference reproduced on purpose (``model.*`` fields name them):
- the shifted-window attention mask is computed and stored (``attn_mask`` buffers are in the
  state dict) but never applied: ``attn1 = attn[..] + mask`` is unused in ``WindowAttention``, so
  shifted windows attend across the wrapped borders (``model.apply_shift_mask=false``; ``true``
  applies the mask as the Swin paper does);
- ``attn_windows[:, :25]`` / ``attn[:, :, :25, :25]`` are no-ops for a 5 x 5 window and are not
  ported as truncations;
- ``_init_weights`` is applied after the LoRA layers are built, so adapters start at
  ``trunc_normal(0.02)`` for both matrices (:mod:`pretrainlab.face.lora_layers`).

The tiny / smoke profiles are scaled-down instances of this same module (smaller embed / depths /
image size); the head's input width is always ``L_last * C_last``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pretrainlab.face.config import SwinConfig, check_swin
from pretrainlab.face.lora_layers import LoRALinear, LoRALinearTwo

ADAPTERS = ("none", "lora", "twin")


def window_partition(x: Tensor, ws: int) -> Tensor:
    """``(B, H, W, C)`` -> ``(B * nW, ws * ws, C)`` (batch outer, as the reference)."""
    B, H, W, C = x.shape
    x = x.view(B, H // ws, ws, W // ws, ws, C).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, ws * ws, C)


def window_reverse(w: Tensor, ws: int, H: int, W: int) -> Tensor:
    """``(B * nW, ws * ws, C)`` -> ``(B, H, W, C)``."""
    C = w.shape[-1]
    B = w.shape[0] // ((H // ws) * (W // ws))
    x = w.view(B, H // ws, W // ws, ws, ws, C).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(B, H, W, C)


def relative_position_index(ws: int) -> Tensor:
    """``(ws*ws, ws*ws)`` index into the ``(2ws-1)^2`` bias table (Swin; reference WindowAttention)."""
    coords = torch.stack(torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0).contiguous()
    rel[:, :, 0] += ws - 1
    rel[:, :, 1] += ws - 1
    rel[:, :, 0] *= 2 * ws - 1
    return rel.sum(-1)


def shift_attention_mask(res: int, ws: int, shift: int) -> Tensor:
    """``(nW, N, N)``: 0 within a shifted region, -100 across regions (Swin SW-MSA mask)."""
    img = torch.zeros(1, res, res, 1)
    cnt = 0
    for hs in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
        for wsl in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
            img[:, hs, wsl, :] = cnt
            cnt += 1
    mw = window_partition(img, ws).squeeze(-1)
    mask = mw.unsqueeze(1) - mw.unsqueeze(2)
    return mask.masked_fill(mask != 0, -100.0).masked_fill(mask == 0, 0.0)


class DropPath(nn.Module):
    """Stochastic depth per sample (timm ``DropPath``, ``scale_by_keep=True``)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0:
            return x
        keep = 1 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class WindowAttention(nn.Module):
    """W-MSA with relative position bias; ``(B*nW, N, C)`` (+ ``alpha`` ``(B,)``) -> same shape."""

    def __init__(self, dim: int, ws: int, heads: int, adapter: str, r: int, scale: float, dropout: float,
                 qkv_bias: bool = True) -> None:
        super().__init__()
        self.dim, self.ws, self.num_heads = dim, ws, heads
        self.scale = (dim // heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * ws - 1) ** 2, heads))
        self.register_buffer("relative_position_index", relative_position_index(ws))
        self.twin = adapter == "twin"
        if adapter == "twin":
            self.qkv: nn.Linear = LoRALinearTwo(dim, dim * 3, r=r, scale=scale, bias=qkv_bias, dropout=dropout)
        elif adapter == "lora":
            self.qkv = LoRALinear(dim, dim * 3, r=r, scale=scale, bias=qkv_bias, dropout=dropout)
        else:
            self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def forward(self, x: Tensor, alpha: Tensor | None, mask: Tensor | None) -> Tensor:
        Bw, N, C = x.shape
        if self.twin:
            if alpha is None:
                raise ValueError("PETALface's twin LoRA needs the quality weight alpha (B,)")
            a = alpha.reshape(-1).repeat_interleave(Bw // alpha.numel(), dim=0).view(-1, 1, 1)  # ref: repeat over windows
            qkv = self.qkv(x, a)  # type: ignore[call-arg]
        else:
            qkv = self.qkv(x)
        qkv = qkv.reshape(Bw, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(N, N, -1)
        bias = bias.permute(2, 0, 1).unsqueeze(0).to(q.dtype)  # (1, h, N, N)
        if mask is not None:  # only with model.apply_shift_mask=true (the reference never applies it)
            nW = mask.shape[0]
            bias = (bias.unsqueeze(1) + mask.to(q.dtype)[None, :, None]).expand(Bw // nW, -1, -1, -1, -1)
            bias = bias.reshape(Bw, self.num_heads, N, N)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=self.scale)
        return self.proj(out.transpose(1, 2).reshape(Bw, N, C))


class SwinTransformerBlock(nn.Module):
    def __init__(self, dim: int, res: int, heads: int, ws: int, shift: int, mlp_ratio: float, drop_path: float,
                 adapter: str, r: int, scale: float, dropout: float, apply_mask: bool) -> None:
        super().__init__()
        if res <= ws:  # ref: a window covering the whole map, no shift
            ws, shift = res, 0
        self.res, self.window_size, self.shift_size, self.apply_mask = res, ws, shift, apply_mask
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, ws, heads, adapter, r, scale, dropout)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.register_buffer("attn_mask", shift_attention_mask(res, ws, shift) if shift > 0 else None)

    def forward(self, x: Tensor, alpha: Tensor | None) -> Tensor:
        B, L, C = x.shape
        H = W = self.res
        ws, shift = self.window_size, self.shift_size
        h = self.norm1(x).view(B, H, W, C)
        if shift:
            h = torch.roll(h, (-shift, -shift), dims=(1, 2))
        h = self.attn(window_partition(h, ws), alpha, self.attn_mask if self.apply_mask else None)
        h = window_reverse(h, ws, H, W)
        if shift:
            h = torch.roll(h, (shift, shift), dims=(1, 2))
        x = x + self.drop_path(h.reshape(B, L, C))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchMerging(nn.Module):
    """2x2 neighbour concat (x0, x1, x2, x3 as the reference) -> LayerNorm(4C) -> Linear(4C -> 2C, no bias)."""

    def __init__(self, dim: int, res: int) -> None:
        super().__init__()
        self.res = res
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x: Tensor) -> Tensor:
        B, _L, C = x.shape
        x = x.view(B, self.res, self.res, C)
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
        return self.reduction(self.norm(x.view(B, -1, 4 * C)))


class BasicLayer(nn.Module):
    def __init__(self, blocks: list[SwinTransformerBlock], downsample: PatchMerging | None) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.downsample = downsample

    def forward(self, x: Tensor, alpha: Tensor | None) -> Tensor:
        for blk in self.blocks:
            x = blk(x, alpha)
        return self.downsample(x) if self.downsample is not None else x


class PatchEmbed(nn.Module):
    def __init__(self, patch: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=patch, stride=patch)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(self.proj(x).flatten(2).transpose(1, 2))


class SwinFace(nn.Module):
    """The reference face Swin; ``forward(x (B,3,S,S), alpha (B,) | None)`` -> ``(B, E)``."""

    def __init__(self, cfg: SwinConfig, adapter: str = "none", r: int = 8, scale: float = 1.0, dropout: float = 0.1) -> None:
        super().__init__()
        check_swin(cfg)
        if adapter not in ADAPTERS:
            raise ValueError(f"adapter {adapter!r} is not one of {ADAPTERS}")
        self.cfg, self.adapter = cfg, adapter
        res = cfg.image_size // cfg.patch_size
        dim = cfg.embed_dim
        self.patch_embed = PatchEmbed(cfg.patch_size, dim)
        if cfg.ape:
            self.absolute_pos_embed = nn.Parameter(torch.zeros(1, res * res, dim))
            nn.init.trunc_normal_(self.absolute_pos_embed, std=0.02)
        dpr = torch.linspace(0, cfg.drop_path, sum(cfg.depths), device="cpu").tolist()  # ref: stochastic depth decay rule
        layers, k = [], 0
        for i, (depth, heads) in enumerate(zip(cfg.depths, cfg.num_heads)):
            blocks = [SwinTransformerBlock(dim, res, heads, cfg.window_size, 0 if j % 2 == 0 else cfg.window_size // 2,
                                           cfg.mlp_ratio, dpr[k + j], adapter, r, scale, dropout, cfg.apply_shift_mask)
                      for j in range(depth)]
            k += depth
            last = i == len(cfg.depths) - 1
            layers.append(BasicLayer(blocks, None if last else PatchMerging(dim, res)))
            if not last:
                res, dim = res // 2, dim * 2
        self.layers = nn.ModuleList(layers)
        self.norm = nn.LayerNorm(dim)
        self.out_tokens, self.num_features = res * res, dim
        flat = res * res * dim  # ref: embed_dim * 100 = 25 tokens x 1536 channels
        fc: nn.Linear = LoRALinear(flat, cfg.embedding_dim, r=r, scale=scale, dropout=dropout) if adapter != "none" \
            else nn.Linear(flat, cfg.embedding_dim)
        self.feature_layer = nn.Sequential(nn.BatchNorm1d(flat), nn.Dropout(cfg.head_dropout), fc,
                                           nn.BatchNorm1d(cfg.embedding_dim))
        self.apply(reference_init)

    def forward_features(self, x: Tensor, alpha: Tensor | None = None) -> Tensor:
        """``(B, 3, S, S)`` -> ``(B, L * C)`` token-major flattened final tokens."""
        x = self.patch_embed(x)
        if self.cfg.ape:
            x = x + self.absolute_pos_embed
        for layer in self.layers:
            x = layer(x, alpha)
        x = self.norm(x)
        return x.reshape(x.shape[0], -1)

    def forward(self, x: Tensor, alpha: Tensor | None = None) -> Tensor:
        return self.feature_layer(self.forward_features(x, alpha))


def reference_init(m: nn.Module) -> None:
    """The reference's ``_init_weights``: every ``nn.Linear`` (adapters included) ``trunc_normal(0.02)``,
    zero bias; LayerNorm weight 1, bias 0."""
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
