"""Image-quality weight of PETALface (Sec. 3.2; ref: train_iqa.py ``generate_alpha``).

``a = 0.5 + (score - threshold)`` per image, NOT clamped (the reference's three branches are this one
formula), ``score`` the raw output of a no-reference IQA model on the NORMALISED input tensor
``(x - 0.5) / 0.5`` (values in about [-1, 1]) exactly as the reference feeds it; the twin LoRA mixes
its adapters with ``(1 - a, a)``. The same ``a`` is used at test time (the mirrored image of the flip
test is scored separately, ref: validate_tinyface_iqa.py).

Scorers (``quality.scorer``):

- ``brisque`` (the reference default, ``scripts/train_iqa.sh --iqa brisque``): pyiqa's BRISQUE. Its
  raw score (about 0-150, LOWER is better) is used as is: no ``1 - s/100`` rescaling, as the
  reference. pyiqa >= 0.1.13 asserts a [0, 1] input; the reference's pinned pyiqa did not check, so
  this project builds the metric with ``check_input_range=False`` (older pyiqa: without it) and feeds
  the normalised tensor, reproducing the reference's scores. Needs ``pip install pyiqa`` and the SVM
  weights as a local file (``quality.weights``: pyiqa's ``brisque_svm_weights.pth``); it is read with
  ``weights_only`` first, so a file whose pickle would run code is refused.
- ``cnniqa`` (``--iqa cnniqa``): this project's port of pyiqa's CNNIQA (conv 7x7 x 50 -> max + min
  pooling -> 800 -> 800 -> 1, ReLU; no pyiqa needed), weights from a local file
  (``quality.weights``: pyiqa's ``CNNIQA_koniq10k-*.pth``, ``{"params": state_dict}``).
- ``sharpness`` (weight-free, offline; NOT the reference's): the relative high-frequency energy of
  the luminance, ``r = mean(Laplacian(Y)^2) / (Var(Y) + eps)`` at ``analysis_size``, mapped to [0, 1)
  by ``r / (r + c)``. It measures resolution / blur only. The tiny / smoke profiles use it because no
  IQA weights ship offline; their table names the row "PETALface (sharpness IQA)".

``read_quality_scores(csv)`` reads precomputed scores (``file,score``) for ``face embed``.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pretrainlab.core.config import ConfigError
from pretrainlab.core.data import DataError
from pretrainlab.face.config import QualityConfig

MAX_SCORES_BYTES = 256 * 2**20  # a score CSV of ~5M faces; larger is not a score list
_LAPLACE = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


def sharpness_score(x: Tensor, c: float = 0.2, analysis_size: int = 32) -> Tensor:
    """``(B, 3, H, W)`` (any affine normalisation) -> ``(B,)`` score in [0, 1), float32 (autocast off)."""
    with torch.autocast(x.device.type, enabled=False):
        x = x.float()
        if x.shape[-1] != analysis_size or x.shape[-2] != analysis_size:
            x = F.interpolate(x, size=(analysis_size, analysis_size), mode="bilinear", align_corners=False, antialias=True)
        y = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)  # (B, 1, S, S)
        lap = F.conv2d(F.pad(y, (1, 1, 1, 1), mode="replicate"), _LAPLACE.to(y.device, y.dtype)[None, None])
        hf = lap.pow(2).mean(dim=(1, 2, 3))
        var = y.var(dim=(1, 2, 3), unbiased=False)
        r = hf / (var + 1e-6)
        return r / (r + c)


def quality_weight(score: Tensor, threshold: float, clamp: bool = False) -> Tensor:
    """``a = 0.5 + (score - threshold)`` (ref: generate_alpha); optionally clamped to [0, 1]. ``(B,)`` float32."""
    a = 0.5 + (score.float().reshape(-1) - threshold)
    return a.clamp(0.0, 1.0) if clamp else a


class CNNIQA(nn.Module):
    """pyiqa's CNNIQA (Kang et al. 2014, RGB variant): ``(B, 3, H, W)`` -> ``(B,)`` raw score."""

    def __init__(self, ker_size: int = 7, n_kers: int = 50, n1: int = 800, n2: int = 800) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, n_kers, ker_size)
        self.fc1 = nn.Linear(2 * n_kers, n1)
        self.fc2 = nn.Linear(n1, n2)
        self.fc3 = nn.Linear(n2, 1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(x)
        h = torch.cat([h.amax(dim=(2, 3)), h.amin(dim=(2, 3))], 1)  # max-min pooling over the whole map
        h = F.relu(self.fc1(h))
        h = F.relu(self.fc2(h))  # dropout is inactive at inference
        return self.fc3(h).reshape(-1)


def load_cnniqa(weights: str | Path) -> CNNIQA:
    """CNNIQA with weights from a local pyiqa checkpoint (``{"params": ...}`` or a plain state dict)."""
    from pretrainlab.core.checkpoint import CheckpointError, load_torch_file

    obj = load_torch_file(weights)
    sd = obj.get("params", obj) if isinstance(obj, dict) else None
    if not isinstance(sd, dict):
        raise CheckpointError(f"{weights}: not a CNNIQA checkpoint (expected a state dict, or {{'params': state dict}})")
    net = CNNIQA()
    try:
        net.load_state_dict({k: v for k, v in sd.items() if isinstance(v, Tensor)}, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{weights}: not a CNNIQA checkpoint ({str(e).splitlines()[0]})") from None
    return net.eval()


def _brisque(weights: str) -> Callable[[Tensor], Tensor]:
    from pretrainlab.core.checkpoint import CheckpointError, load_torch_file

    obj = load_torch_file(weights)  # weights_only first: refuses a pickle that would run code
    if not (isinstance(obj, (tuple, list)) and len(obj) == 2 and all(isinstance(t, Tensor) for t in obj)):
        raise CheckpointError(f"{weights}: not pyiqa's brisque_svm_weights.pth (expected a (sv_coef, sv) tensor pair)")
    try:
        import pyiqa  # type: ignore[import-not-found]
    except ImportError:
        raise ConfigError("quality.scorer: brisque needs the pyiqa package (pip install pyiqa); or use "
                          "quality.scorer=cnniqa (local weights) or sharpness (weight-free)") from None
    try:
        metric = pyiqa.create_metric("brisque", device="cpu", check_input_range=False, pretrained_model_path=weights)
    except TypeError:  # pyiqa < 0.1.13: no input-range check (and no such option)
        metric = pyiqa.create_metric("brisque", device="cpu", pretrained_model_path=weights)

    def score(x: Tensor) -> Tensor:
        with torch.no_grad():
            return metric.to(x.device)(x.float()).reshape(-1).float()

    return score


class QualityScorer:
    """``scorer(xn (B,3,H,W) normalised) -> a (B,)``; ``scorer.score(xn)`` gives the raw IQA score."""

    def __init__(self, cfg: QualityConfig) -> None:
        self.cfg = cfg
        if cfg.scorer == "sharpness":
            self._score: Callable[[Tensor], Tensor] = lambda x: sharpness_score(x, cfg.sharpness_scale, cfg.analysis_size)
            return
        if not cfg.weights:
            raise ConfigError(f"quality.weights: quality.scorer={cfg.scorer} needs its weights as a local file "
                              f"(pyiqa's {'brisque_svm_weights.pth' if cfg.scorer == 'brisque' else 'CNNIQA_koniq10k-*.pth'}); "
                              "nothing is downloaded. Or use quality.scorer=sharpness (weight-free)")
        if not Path(cfg.weights).is_file():
            raise DataError(cfg.weights, "quality weight file not found (quality.weights)")
        if cfg.scorer == "cnniqa":
            net = load_cnniqa(cfg.weights)

            def cnn(x: Tensor) -> Tensor:
                with torch.no_grad(), torch.autocast(x.device.type, enabled=False):
                    return net.to(x.device)(x.float()).float()

            self._score = cnn
        elif cfg.scorer == "brisque":
            self._score = _brisque(cfg.weights)
        else:
            raise ConfigError(f"quality.scorer: {cfg.scorer!r} is not allowed; allowed: brisque, cnniqa, sharpness")

    def score(self, x: Tensor) -> Tensor:
        return self._score(x)

    def __call__(self, x: Tensor) -> Tensor:
        return quality_weight(self.score(x), self.cfg.threshold, self.cfg.clamp)


def read_quality_scores(path: str | Path) -> dict[str, float]:
    """``file,score`` CSV -> ``{file name: score}``; every problem is a ``DataError`` naming the file and line."""
    p = Path(path)
    if not p.is_file():
        raise DataError(p, "quality-score CSV not found" if not p.exists() else "is not a file")
    if p.stat().st_size > MAX_SCORES_BYTES:
        raise DataError(p, f"{p.stat().st_size:,} bytes is too large for a score list (limit {MAX_SCORES_BYTES:,})")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(p, f"not UTF-8 text (byte {e.start})") from None
    rows = list(csv.reader(text.splitlines()))
    if not rows or [c.strip().lower() for c in rows[0]] != ["file", "score"]:
        raise DataError(p, f"first line must be the header 'file,score', got {','.join(rows[0]) if rows else 'nothing'!r}")
    out: dict[str, float] = {}
    for i, row in enumerate(rows[1:], 2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != 2:
            raise DataError(p, f"line {i}: expected 'file,score', got {len(row)} fields")
        name, raw = row[0].strip(), row[1].strip()
        try:
            v = float(raw)
        except ValueError:
            raise DataError(p, f"line {i}: score {raw!r} is not a number") from None
        if not math.isfinite(v):
            raise DataError(p, f"line {i}: score {raw!r} is not finite")
        if not name:
            raise DataError(p, f"line {i}: empty file name")
        if name in out:
            raise DataError(p, f"line {i}: '{name}' is listed twice")
        out[name] = v
    if not out:
        raise DataError(p, "no scores (only the header)")
    return out
