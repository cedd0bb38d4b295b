"""TERA pre-training: alter, encode, reconstruct, L1 on the altered positions (TERA Sec. III).

``TeraTask.forward({"feat": (B, T, D), "lengths": (B,)})`` alters the clean frames on the device
(:mod:`pretrainlab.speech.alteration`), runs :class:`TeraEncoder` + :class:`PredictionHead`, and
returns ``masked_l1(reconstruction, clean, mask)`` (TERA Sec. III: L1 between the reconstruction and
the original frames, on the positions selected by time / frequency alteration).

The three rows of the paper's ablation are the same task with alterations switched on or off:
``time`` only (Mockingjay-style), ``time + frequency``, ``time + frequency + magnitude`` (TERA).

Deviations: the s3prl trainer uses Lamb(adam=True) ("AdamW with warm-up"); here AdamW with the
same lr, 7 % linear warm-up and linear decay. Utterances longer than ``crop_frames`` are randomly
cropped (s3prl buckets by length and caps at ``max_timestep``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from pretrainlab.core.losses import masked_l1
from pretrainlab.core.train import Task
from pretrainlab.speech.alteration import alter
from pretrainlab.speech.config import TeraConfig
from pretrainlab.speech.transformer_encoder import PredictionHead, TeraEncoder


class TeraTask(Task):
    """The reconstruction pre-training task: ``{"feat", "lengths"} -> {"loss", "l1", "marked"}``."""

    def __init__(self, cfg: TeraConfig) -> None:
        super().__init__()
        self.cfg = cfg
        dim = cfg.features.dim
        self.encoder = TeraEncoder(dim, cfg.model)
        self.head = PredictionHead(cfg.model, dim)
        self.head.apply(self.encoder._init)

    def reconstruct(self, feat: Tensor, lengths: Tensor,
                    generator: torch.Generator | None = None) -> tuple[Tensor, Any]:
        """Alter ``(B, T, D)`` clean frames and reconstruct them: returns (``(B, T, D)`` prediction, Altered)."""
        altered = alter(feat, lengths, self.cfg.alteration, generator)
        out = self.encoder(altered.inputs, lengths)
        return self.head(out["last_hidden_state"]), altered

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        feat, lengths = batch["feat"], batch["lengths"]
        pred, altered = self.reconstruct(feat, lengths)
        loss = masked_l1(pred, feat, altered.mask)
        marked = altered.mask.float().mean()
        return {"loss": loss, "l1": loss.detach(), "marked_fraction": marked.detach()}

    def batch_size(self, batch: Any) -> int:
        return int(batch["feat"].shape[0])


class FrameDataset(Dataset):
    """Pre-computed ``(T_i, D)`` feature sequences -> ``{"feat": (t, D)}`` with a random crop to ``crop`` frames."""

    def __init__(self, feats: list[Tensor], crop: int = 0) -> None:
        if not feats:
            raise ValueError("no utterances to pre-train on")
        self.feats, self.crop = feats, crop

    def __len__(self) -> int:
        return len(self.feats)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        f = self.feats[i]
        if self.crop and f.shape[0] > self.crop:
            s = int(torch.randint(0, f.shape[0] - self.crop + 1, ()))
            f = f[s:s + self.crop]
        return {"feat": f}


def pad_collate(items: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    """Pad ``[{"feat": (t_i, D)}]`` -> ``{"feat": (B, T, D), "lengths": (B,)}`` (zeros after each end)."""
    feats = [it["feat"] for it in items]
    lengths = torch.tensor([f.shape[0] for f in feats], dtype=torch.long)
    out = torch.nn.utils.rnn.pad_sequence(feats, batch_first=True)
    return {"feat": out, "lengths": lengths}


def resolve_warmup(cfg: TeraConfig) -> TeraConfig:
    """``train.warmup_steps = round(warmup_proportion * max_steps)`` (TERA: 7 % warm-up) when the
    proportion is set."""
    if cfg.warmup_proportion > 0:
        tr = dataclasses.replace(cfg.train, warmup_steps=round(cfg.warmup_proportion * cfg.train.max_steps))
        cfg = dataclasses.replace(cfg, train=tr)
    return cfg


def pretrain(cfg: TeraConfig, data_root: Path, run_dir: Path, resume: bool = False,
             feats: list[Tensor] | None = None) -> tuple[TeraTask, Any]:
    """Pre-train TERA on the utterances of ``data_root`` (LibriSpeech layout or a folder of audio)."""
    from pretrainlab.core.train import Trainer, seed_everything
    from pretrainlab.speech.datasets import pretraining_features

    cfg = resolve_warmup(cfg)
    if feats is None:
        feats = pretraining_features(Path(data_root), cfg)
    seed_everything(cfg.train.seed)
    task = TeraTask(cfg)
    crop = cfg.crop_frames or cfg.model.max_frames
    ds = FrameDataset(feats, crop=min(crop, cfg.model.max_frames))
    result = Trainer(cfg.train, run_dir, full_config=cfg).fit(task, ds, collate_fn=pad_collate, resume=resume)
    return task, result
