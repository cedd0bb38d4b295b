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
BERT layer and runs PyTorch's fused scaled-dot-product attention on GPUs (s3prl's separate
``query`` / ``key`` / ``value`` projections are its ``in_proj`` rows, see :mod:`pretrainlab.speech.s3prl_format`).

Inputs longer than ``max_frames`` (s3prl ``task.sequence_length``) are cut with ``torch.chunk`` into
``ceil(T / max_frames)`` equal parts that are encoded separately, each with positions from 0, and
concatenated (s3prl ``upstream/mockingjay/builder.py`` ``_forward``); see :meth:`TeraEncoder.forward`
for how a batch is chunked.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from pretrainlab.speech.config import ModelConfig


def sinusoidal_positions(n: int, dim: int) -> Tensor:
    """``(n, dim)`` table of Vaswani et al. 2017: ``pos / 10000^(2 (j // 2) / dim)``, sin on even ``j``,
    cos on odd ``j``; computed in float64 and rounded to float32 once, as s3prl's numpy table."""
    pos = torch.arange(n, dtype=torch.float64)[:, None]
    j = torch.arange(dim, dtype=torch.float64)
    angle = pos / torch.pow(10000.0, 2 * torch.div(j, 2, rounding_mode="floor") / dim)
    pe = torch.where(j.long() % 2 == 0, torch.sin(angle), torch.cos(angle))
    return pe.float()


ACTIVATIONS = {"gelu": "gelu", "relu": "relu", "swish": torch.nn.functional.silu}  # s3prl model.py ACT2FN


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
            nn.TransformerEncoderLayer(cfg.hidden, cfg.heads, cfg.ffn, dropout=cfg.dropout,
                                       activation=ACTIVATIONS[cfg.activation],  # type: ignore[arg-type]
                                       layer_norm_eps=cfg.layer_norm_eps, batch_first=True, norm_first=False)
            for _ in range(cfg.layers)])
        for layer in self.layers:
            layer.self_attn.dropout = cfg.attention_dropout  # s3prl: attention_probs_dropout_prob of its own
            layer.dropout = nn.Dropout(0.0)  # s3prl's FFN has no dropout between the activation and output.dense
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
        "hidden_states": [(B, T, H)] * (L + 1), "padding_mask": (B, T) bool (True = padding)}``.

        An utterance longer than ``max_frames`` is cut with ``torch.chunk`` into ``ceil(L / max_frames)``
        equal parts encoded separately (s3prl builder.py). Deviation: s3prl chunks the padded batch,
        so its states depend on the batch's longest utterance; here each utterance is chunked by its
        own length (s3prl with batch size 1, which ``embed`` matches), whatever it is batched with."""
        B, T, _ = x.shape
        if lengths is None:
            lengths = torch.full((B,), T, dtype=torch.long, device=x.device)
        pad = torch.arange(T, device=x.device)[None, :] >= lengths[:, None]
        m = self.cfg.max_frames
        if T <= m:
            hidden = self._encode(x, lengths)
            return {"last_hidden_state": hidden[-1], "hidden_states": hidden, "padding_mask": pad}
        hidden = [x.new_zeros(B, T, self.cfg.hidden) for _ in range(self.cfg.layers + 1)]
        short = (lengths <= m).nonzero().flatten()
        if len(short):  # utterances that fit: one batch, as usual
            t = int(lengths[short].max())
            for k, h in enumerate(self._encode(x[short, :t], lengths[short])):
                hidden[k][short, :t] = h
        for b in (lengths > m).nonzero().flatten().tolist():  # each long utterance by its own chunks
            n = int(lengths[b])
            parts = [self._encode(c, torch.tensor([c.shape[1]], device=x.device))
                     for c in torch.chunk(x[b:b + 1, :n], math.ceil(n / m), dim=1)]
            for k, hs in enumerate(zip(*parts)):
                hidden[k][b:b + 1, :n] = torch.cat(hs, dim=1)
        return {"last_hidden_state": hidden[-1], "hidden_states": hidden, "padding_mask": pad}

    def _encode(self, x: Tensor, lengths: Tensor) -> list[Tensor]:
        """One chunk ``(B, t <= max_frames, D)`` -> the ``L + 1`` hidden states, positions from 0."""
        T = x.shape[1]
        pad = torch.arange(T, device=x.device)[None, :] >= lengths[:, None]
        h = self.spec_transform(x) + self.positions[:T].to(x.dtype)
        h = self.input_dropout(self.input_norm(h))
        hidden = [h]
        for layer in self.layers:
            h = layer(h, src_key_padding_mask=pad)
            hidden.append(h)
        return hidden


class PredictionHead(nn.Module):
    """s3prl ``TransformerSpecPredictionHead``: ``(B, T, H) -> (B, T, D)`` reconstruction."""

    def __init__(self, cfg: ModelConfig, output_dim: int) -> None:
        super().__init__()
        self.dense = nn.Linear(cfg.hidden, cfg.hidden)
        self.act = {"gelu": nn.GELU(), "relu": nn.ReLU(), "swish": nn.SiLU()}[cfg.activation]  # s3prl hidden_act
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
