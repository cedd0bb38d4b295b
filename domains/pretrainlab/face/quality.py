"""Image-quality weight of PETALface (Sec. 3.2): ``a = 0.5 + (score - threshold)``.

``score`` is a no-reference image-quality score of each image; the twin LoRA mixes its adapters
with ``(1 - a, a)`` (``a`` weights the high-quality adapter). The same ``a`` is used at test time.
The reference code computes pyiqa's CNNIQA or BRISQUE on the normalised input tensor and does not
clamp ``a`` (``clamp=False`` here by default; ``quality.clamp=true`` clamps to [0, 1]).

Scorers:
- ``sharpness`` (default; weight-free, works offline): the *relative high-frequency energy* of the
  luminance, ``r = mean(Laplacian(Y)^2) / (Var(Y) + eps)`` on the image resized to
  ``analysis_size``, mapped to [0, 1) by ``score = r / (r + c)`` (``c = sharpness_scale``). It
  measures resolution / blur (how much fine detail is left relative to the image's contrast): an
  up-sampled 16 px face scores low, a sharp 112 px face high. It does not see pose, occlusion,
  noise that is coarser than a pixel, or compression artefacts that keep edges; it is contrast-
  and brightness-invariant. It runs batched on the device with no host sync.
- ``pyiqa:<name>`` (e.g. ``pyiqa:cnniqa``, ``pyiqa:brisque``): pyiqa's scorer with weights from a
  local file (``quality.pyiqa_weights``); pyiqa downloads weights otherwise, which this project
  never does at run time. ``lower_better`` metrics (BRISQUE: 0 best .. 100) are mapped to
  ``1 - score / 100``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from pretrainlab.face.config import QualityConfig

_LAPLACE = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


def sharpness_score(x: Tensor, c: float = 0.2, analysis_size: int = 32) -> Tensor:
    """``(B, 3, H, W)`` (any affine normalisation) -> ``(B,)`` score in [0, 1), float32 (autocast off)."""
    with torch.autocast(x.device.type, enabled=False):
        return _sharpness(x.float(), c, analysis_size)


def _sharpness(x: Tensor, c: float, analysis_size: int) -> Tensor:
    if x.shape[-1] != analysis_size or x.shape[-2] != analysis_size:
        x = F.interpolate(x, size=(analysis_size, analysis_size), mode="bilinear", align_corners=False, antialias=True)
    y = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)  # (B, 1, S, S)
    lap = F.conv2d(F.pad(y, (1, 1, 1, 1), mode="replicate"), _LAPLACE.to(y.device, y.dtype)[None, None])
    hf = lap.pow(2).mean(dim=(1, 2, 3))
    var = y.var(dim=(1, 2, 3), unbiased=False)
    r = hf / (var + 1e-6)
    return r / (r + c)


def quality_weight(score: Tensor, threshold: float, clamp: bool = False) -> Tensor:
    """``a = 0.5 + (score - threshold)`` (PETALface Sec. 3.2); optionally clamped to [0, 1]. ``(B,)``."""
    a = 0.5 + (score.float() - threshold)
    return a.clamp(0.0, 1.0) if clamp else a


def mixing_from_quality(a: Tensor) -> Tensor:
    """``(B,)`` quality weight -> ``(B, 2)`` twin-LoRA mixing weights ``(1 - a, a)``."""
    return torch.stack([1.0 - a, a], dim=1)


def _pyiqa_scorer(name: str, weights: str) -> Callable[[Tensor], Tensor]:
    try:
        import pyiqa  # type: ignore[import-not-found]
    except ImportError as e:
        raise ValueError(f"quality.scorer=pyiqa:{name} needs the pyiqa package (pip install pyiqa) and a local weight "
                         "file in quality.pyiqa_weights; or use quality.scorer=sharpness (weight-free)") from e
    if not weights:
        raise ValueError(f"quality.scorer=pyiqa:{name}: set quality.pyiqa_weights to a local weight file "
                         "(no download at run time)")
    from pathlib import Path

    if not Path(weights).is_file():
        from pretrainlab.core.data import DataError

        raise DataError(weights, "pyiqa weight file not found")
    metric = pyiqa.create_metric(name, as_loss=False, pretrained_model_path=weights, device="cpu")
    lower = bool(getattr(metric, "lower_better", False))

    def score(x: Tensor) -> Tensor:
        m = metric.to(x.device)
        with torch.no_grad():
            s = m(((x.float() + 1) / 2).clamp(0, 1)).flatten().float()  # pyiqa expects [0, 1] RGB
        return 1 - s / 100.0 if lower else s

    return score


class QualityScorer:
    """``scorer(x (B,3,H,W) in [-1,1]) -> a (B,)``: the configured score turned into PETALface's weight."""

    def __init__(self, cfg: QualityConfig) -> None:
        self.cfg = cfg
        if cfg.scorer == "sharpness":
            self._score: Callable[[Tensor], Tensor] = lambda x: sharpness_score(x, cfg.sharpness_scale, cfg.analysis_size)
        elif cfg.scorer.startswith("pyiqa:"):
            self._score = _pyiqa_scorer(cfg.scorer.split(":", 1)[1], cfg.pyiqa_weights)
        else:
            raise ValueError(f"unknown quality.scorer '{cfg.scorer}' (use sharpness or pyiqa:<name>)")

    def score(self, x: Tensor) -> Tensor:
        return self._score(x)

    def __call__(self, x: Tensor) -> Tensor:
        return quality_weight(self.score(x), self.cfg.threshold, self.cfg.clamp)
