"""TERA pre-training: alter, encode, reconstruct, L1 on the altered positions (TERA Sec. III).

``TeraTask.forward({"feat": (B, T, D), "lengths": (B,)[, "target": (B, T, D')]})`` alters the clean
frames on the device (:mod:`pretrainlab.speech.alteration`), runs :class:`TeraEncoder` +
:class:`PredictionHead`, and returns ``masked_l1(reconstruction, target, mask)`` (TERA Sec. III: L1
between the reconstruction and the original frames on the positions selected by time / frequency
alteration; the target is the input features, or s3prl's ``audio.target`` such as Mockingjay's
linear spectrogram).

The data (s3prl ``pretrain/mockingjay/dataset.py`` ``OnlineAcousticDataset``, ``bucket_dataset.py``):
utterances of ``<= data.min_frames`` frames are dropped; each item is decoded in a DataLoader worker,
scaled to -25 dB over the whole utterance, randomly cropped to ``crop`` frames of waveform and turned
into features (CMVN over the crop, as s3prl extracts after cropping); Kaldi ``fbank`` features are
extracted from the whole utterance and then cropped (s3prl ``KaldiAcousticDataset``). Nothing is
held in memory but the file list (``waves=`` lets a caller share decoded audio across runs).

Deviations: AdamW (torch) instead of s3prl's ``Lamb(adam=True, correct_bias=True)`` (the same update
but for where eps enters and the bias correction of the weight decay); random batches padded to the
longest crop instead of length-sorted buckets; a crop is ``(crop - 1) * hop`` samples, giving exactly
``crop`` frames (s3prl's ``crop * hop`` samples give ``crop + 1``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from pretrainlab.core.losses import masked_l1
from pretrainlab.core.train import Task
from pretrainlab.speech.alteration import Altered, alter, target_mask
from pretrainlab.speech.config import TeraConfig
from pretrainlab.speech.transformer_encoder import PredictionHead, TeraEncoder


class TeraTask(Task):
    """The reconstruction pre-training task: ``{"feat", "lengths"[, "target"]} -> {"loss", "l1", "marked_fraction"}``."""

    def __init__(self, cfg: TeraConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = TeraEncoder(cfg.features.dim, cfg.model)
        self.head = PredictionHead(cfg.model, cfg.features.target_dim)
        self.head.apply(self.encoder._init)

    def reconstruct(self, feat: Tensor, lengths: Tensor,
                    generator: torch.Generator | None = None) -> tuple[Tensor, Altered]:
        """Alter ``(B, T, D)`` clean frames and reconstruct them: returns (``(B, T, D')`` prediction, Altered)."""
        altered = alter(feat, lengths, self.cfg.alteration, generator)
        out = self.encoder(altered.inputs, lengths)
        return self.head(out["last_hidden_state"]), altered

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        feat, lengths = batch["feat"], batch["lengths"]
        target = batch.get("target", feat)
        pred, altered = self.reconstruct(feat, lengths)
        mask = target_mask(altered, lengths, target.shape[-1])
        loss = masked_l1(pred, target, mask)
        return {"loss": loss, "l1": loss.detach(), "marked_fraction": mask.float().mean().detach()}

    def batch_size(self, batch: Any) -> int:
        return int(batch["feat"].shape[0])


class PretrainDataset(Dataset):
    """Audio files -> ``{"feat": (t, D)[, "target": (t, D')]}``, decoded and cropped lazily (in workers).

    ``waves``: already decoded ``(N_i,)`` waveforms in the same order (shared across runs by
    ``reproduce``); else each item reads its file."""

    def __init__(self, paths: list[Path], cfg: TeraConfig, waves: list[np.ndarray] | None = None) -> None:
        if not paths:
            raise ValueError("no utterances to pre-train on")
        self.paths, self.cfg, self.waves = list(paths), cfg, waves

    def __len__(self) -> int:
        return len(self.paths)

    def _wave(self, i: int) -> np.ndarray:
        if self.waves is not None:
            return self.waves[i]
        from pretrainlab.speech.audio import load_audio

        return load_audio(self.paths[i], self.cfg.features.sample_rate).wave

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        from pretrainlab.speech.features import extract_pair, normalize_db

        fc, crop = self.cfg.features, self.cfg.crop
        w = torch.from_numpy(np.ascontiguousarray(self._wave(i), dtype=np.float32))
        if fc.kind == "fbank":  # KaldiAcousticDataset: features of the whole utterance, then a crop of frames
            feat, target = extract_pair(w, fc)
            if feat.shape[0] > crop:
                s = int(torch.randint(0, feat.shape[0] - crop + 1, ()))
                feat, target = feat[s:s + crop], target[s:s + crop]
        else:  # OnlineAcousticDataset: -25 dB over the whole utterance, crop the waveform, then features
            w = normalize_db(w, fc.target_db)
            n = (crop - 1) * fc.hop
            if w.numel() > n:
                s = int(torch.randint(0, w.numel() - n + 1, ()))
                w = w[s:s + n]
            feat, target = extract_pair(w, fc, normalize=False)
        item = {"feat": feat}
        if fc.target_kind:
            item["target"] = target
        return item


def pad_collate(items: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    """Pad ``[{"feat": (t_i, D)[, "target"]}]`` -> ``{"feat": (B, T, D), "lengths": (B,)[, "target"]}``."""
    feats = [it["feat"] for it in items]
    out = {"feat": torch.nn.utils.rnn.pad_sequence(feats, batch_first=True),
           "lengths": torch.tensor([f.shape[0] for f in feats], dtype=torch.long)}
    if "target" in items[0]:
        out["target"] = torch.nn.utils.rnn.pad_sequence([it["target"] for it in items], batch_first=True)
    return out


def resolve_warmup(cfg: TeraConfig) -> TeraConfig:
    """``train.warmup_steps = round(warmup_proportion * max_steps)`` (config_runner.yaml: 7 % warm-up)."""
    if cfg.warmup_proportion > 0:
        tr = dataclasses.replace(cfg.train, warmup_steps=round(cfg.warmup_proportion * cfg.train.max_steps))
        cfg = dataclasses.replace(cfg, train=tr)
    return cfg


def pretraining_dataset(data_root: Path, cfg: TeraConfig) -> PretrainDataset:
    """The streaming pre-training set of ``data_root`` (LibriSpeech ``cfg.data.subsets`` or a folder of audio)."""
    from pretrainlab.speech.formats import pretraining_files

    files = pretraining_files(Path(data_root), cfg.data.subsets, cfg.features, cfg.data.min_frames)
    return PretrainDataset([f.path for f in files], cfg)


def pretrain(cfg: TeraConfig, data_root: Path, run_dir: Path, resume: bool = False,
             dataset: PretrainDataset | None = None) -> tuple[TeraTask, Any]:
    """Pre-train TERA on ``data_root`` (or a prepared ``dataset``) into ``run_dir``."""
    from pretrainlab.core.config import ConfigError
    from pretrainlab.core.train import Trainer, seed_everything

    cfg = resolve_warmup(cfg)
    ds = dataset if dataset is not None else pretraining_dataset(Path(data_root), cfg)
    if len(ds) < cfg.train.batch_size:
        raise ConfigError(f"train.batch_size: {cfg.train.batch_size} is more than the {len(ds)} pre-training "
                          f"utterances of {data_root}; lower it or give more data")
    seed_everything(cfg.train.seed)
    task = TeraTask(cfg)
    result = Trainer(cfg.train, run_dir, full_config=cfg).fit(task, ds, collate_fn=pad_collate, resume=resume)
    return task, result
