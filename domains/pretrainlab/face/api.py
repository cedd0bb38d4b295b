"""The public Python API of the face domain (the CLI in ``domain.py``, ``reproduce.py``, ``bench.py`` and
the demo use only this module).

    from pretrainlab.face import api
    cfg = api.load("petalface", "tiny", ["lora.rank=4"])
    data = api.synthetic_data("tiny")
    task, res = api.pretrain(api.load("pretrain", "tiny"), data, "runs/face/pre")
    task, cfg, src, how = api.load_task("model.pt", overrides=["quality.scorer=cnniqa", "quality.weights=cnniqa.pth"])
    api.embed("model.pt", "faces/", "emb.safetensors", "scores.csv", ["quality.threshold=40"])
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pretrainlab.face.config import FaceConfig
from pretrainlab.face.pipeline import load, load_task, synthetic_data, train


def pretrain(cfg: FaceConfig, data: str | Path, run_dir: str | Path, resume: bool = False) -> Any:
    """Stage 1 (``cfg.method == "pretrain"``) -> (FaceTask, TrainResult)."""
    return train(cfg, Path(data), Path(run_dir), resume=resume)


def finetune(cfg: FaceConfig, data: str | Path, run_dir: str | Path, resume: bool = False) -> Any:
    """Stage 2 (``full`` / ``lora`` / ``petalface``, ``cfg.init`` set) -> (FaceTask, TrainResult)."""
    return train(cfg, Path(data), Path(run_dir), resume=resume)


def evaluate(ckpt: str | Path, data: str | Path | None = None, out: str | Path | None = None,
             overrides: list[str] | None = None) -> dict[str, Any]:
    """HR verification + TinyFace rank-k of a checkpoint; writes metrics.json (printed path) and returns it."""
    from pretrainlab.core.io import atomic_write_json
    from pretrainlab.face.evaluation import evaluate_task

    task, cfg, src, how = load_task(ckpt, overrides=overrides)
    metrics = evaluate_task(task, cfg, Path(data) if data else synthetic_data(cfg.data.profile))
    dest = Path(out) if out else (src.parent if src.is_file() else src) / "metrics.json"
    atomic_write_json(dest, metrics)
    print(json.dumps(metrics, indent=2))
    print(f"evaluated {src} ({how}): HR verification {metrics['hr_verif_acc']:.2f}%, LR rank-1 "
          f"{metrics.get('lr_rank-1', float('nan')):.2f}% -> {dest}", file=sys.stderr)
    return metrics


def embed(ckpt: str | Path, src: str | Path, out: str | Path, quality_scores: str | Path | None = None,
          overrides: list[str] | None = None) -> list[Path]:
    """``face embed``: embeddings + quality a of every image under ``src``; returns the written files."""
    from pretrainlab.face.app_logic import embed_folder, write_embeddings

    out = Path(out)
    from pretrainlab.core.data import DataError
    from pretrainlab.face.app_logic import OUT_SUFFIXES

    if out.suffix.lower() not in OUT_SUFFIXES:  # checked before the model is loaded
        raise DataError(out, f"--out must end in {' or '.join(OUT_SUFFIXES)}")
    task, cfg, source, how = load_task(ckpt, overrides=overrides)
    res = embed_folder(task, cfg, src, quality_scores)
    files = write_embeddings(out, res, str(source), how)
    qa = f", mean quality a {float(res.quality_a.mean()):.3f}" if res.quality_a is not None else ", no quality a"
    print(f"embedded {len(res.paths)} images ({res.embeddings.shape[1]}-d{qa}) with {source} ({how}) -> "
          f"{', '.join(str(f) for f in files)}", file=sys.stderr)
    return files


def verify(ckpt: str | Path, img1: str | Path, img2: str | Path, threshold: float | None = None) -> dict[str, Any]:
    """Similarity, quality a of each image and the decision (printed as JSON)."""
    from pretrainlab.face.app_logic import compare_faces

    task, cfg, src, how = load_task(ckpt)
    res = compare_faces(task, cfg, src, img1, img2, threshold)
    res["model"] = how
    print(json.dumps(res, indent=2))
    return res


__all__ = ["embed", "evaluate", "finetune", "load", "load_task", "pretrain", "synthetic_data", "verify"]
