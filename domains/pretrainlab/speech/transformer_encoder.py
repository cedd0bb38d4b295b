"""TERA's network (TERA Sec. III-D; s3prl ``upstream/mockingjay/model.py``).

- **Input representation**: ``Linear(D -> H)`` of the (altered) frames + sinusoidal position
  encodings, then LayerNorm and dropout (s3prl ``TransformerInputRepresentations``).
- **Encoder**: BERT-style post-LayerNorm Transformer layers (self-attention -> dropout -> residual
  -> LayerNorm; GELU FFN -> dropout -> residual -> LayerNorm). Base: 3 layers, 768 hidden,
  12 heads, FFN 3072; large: 12 layers.
- **Prediction head** (pre-training only): ``dense -> GELU -> LayerNorm -> Linear(H -> D)``.
- **Upstream interface** like s3prl's: ``forward`` returns ``last_hidden_state`` ``(B, T, H)`` and
  ``hidden_states`` (the input representation and every layer's output: ``L + 1`` tensors of
  ``(B, T, H)``); :class:`Featurizer` is the learnable softmax-weighted sum over them that probes use.

The layers are ``torch.nn.TransformerEncoderLayer(norm_first=False)``, which is exactly the post-LN
BERT layer and runs PyTorch's fused scaled-dot-product attention on GPUs.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from pretrainlab.speech.config import ModelConfig


def sinusoidal_positions(n: int, dim: int) -> Tensor:
    """``(n, dim)`` table of Vaswani et al. 2017 (sin on even dims, cos on odd dims)."""
    pos = torch.arange(n, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(n, dim)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div[: dim // 2])
    return pe


class TeraEncoder(nn.Module):
    """The TERA upstream: ``(B, T, D)`` frames + ``(B,)`` lengths -> hidden states."""

    def __init__(self, input_dim: int, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.input_dim = input_dim
        self.spec_transform = nn.Linear(input_dim, cfg.hidden)
        self.register_buffer("positions", sinusoidal_positions(cfg.max_frames, cfg.hidden), persistent=False)
        self.input_norm = nn.LayerNorm(cfg.hidden, eps=cfg.layer_norm_eps)
        self.input_dropout = nn.Dropout(cfg.dropout)
        self.layers = nn.ModuleList([
            nn.TransformerEncoderLayer(cfg.hidden, cfg.heads, cfg.ffn, dropout=cfg.dropout, activation=cfg.activation,
                                       layer_norm_eps=cfg.layer_norm_eps, batch_first=True, norm_first=False)
            for _ in range(cfg.layers)])
        for layer in self.layers:  # s3prl: attention dropout is its own probability
            layer.self_attn.dropout = cfg.attention_dropout
        self.apply(self._init)

    def _init(self, m: nn.Module) -> None:
        """BERT initialisation: N(0, 0.02) weights, zero biases, unit LayerNorm."""
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=self.cfg.init_range)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.MultiheadAttention):
            nn.init.normal_(m.in_proj_weight, std=self.cfg.init_range)
            nn.init.zeros_(m.in_proj_bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    @property
    def num_hidden_states(self) -> int:
        return self.cfg.layers + 1

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> dict[str, Tensor | list[Tensor]]:
        """``x`` ``(B, T, D)``, ``lengths`` ``(B,)`` -> ``{"last_hidden_state": (B, T, H),
        "hidden_states": [(B, T, H)] * (L + 1), "padding_mask": (B, T) bool (True = padding)}``."""
        B, T, _ = x.shape
        if T > self.cfg.max_frames:
            raise ValueError(f"{T} frames exceed model.max_frames={self.cfg.max_frames}; crop or chunk the input")
        pad = None
        if lengths is not None:
            pad = torch.arange(T, device=x.device)[None, :] >= lengths[:, None]
        h = self.spec_transform(x) + self.positions[:T].to(x.dtype)
        h = self.input_dropout(self.input_norm(h))
        hidden = [h]
        for layer in self.layers:
            h = layer(h, src_key_padding_mask=pad)
            hidden.append(h)
        if pad is None:
            pad = torch.zeros(B, T, dtype=torch.bool, device=x.device)
        return {"last_hidden_state": h, "hidden_states": hidden, "padding_mask": pad}


class PredictionHead(nn.Module):
    """s3prl ``TransformerSpecPredictionHead``: ``(B, T, H) -> (B, T, D)`` reconstruction."""

    def __init__(self, cfg: ModelConfig, output_dim: int) -> None:
        super().__init__()
        self.dense = nn.Linear(cfg.hidden, cfg.hidden)
        self.act = nn.GELU()
        self.norm = nn.LayerNorm(cfg.hidden, eps=cfg.layer_norm_eps)
        self.output = nn.Linear(cfg.hidden, output_dim)

    def forward(self, h: Tensor) -> Tensor:
        return self.output(self.norm(self.act(self.dense(h))))


class Featurizer(nn.Module):
    """s3prl's learnable weighted sum over layers: ``[(…, H)] * K -> (…, H)`` with softmax weights."""

    def __init__(self, n_layers: int, weighted: bool = True) -> None:
        super().__init__()
        self.weighted = weighted
        self.weights = nn.Parameter(torch.zeros(n_layers))

    def forward(self, stacked: Tensor) -> Tensor:
        """``stacked`` ``(K, …, H)`` -> ``(…, H)``; without weighting, the last layer."""
        if not self.weighted:
            return stacked[-1]
        w = torch.softmax(self.weights.float(), dim=0).to(stacked.dtype)
        return torch.einsum("k,k...->...", w, stacked)
