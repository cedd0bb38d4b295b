"""The public Python API of the face domain. ``domain.py`` (the CLI), ``reproduce.py``, ``bench.py`` and
``apps/face/app.py`` use only this module. Heavy imports stay inside the functions.

    from pretrainlab.face import api
    data = api.synthetic_data("tiny")
    task, res = api.pretrain(api.load("pretrain", "tiny"), data, "runs/face/pre")
    task, res = api.finetune(api.load("petalface", "tiny"), data, "runs/face/petal", init=res.checkpoint)
    api.evaluate("runs/face/petal")                                  # HR verification + TinyFace rank-k
    task, cfg, src, how = api.load_model("PETALface/model.pt", ["quality.scorer=cnniqa", "quality.weights=w.pth"])
    api.embed("PETALface/model.pt", "faces/", "emb.safetensors", "scores.csv", ["quality.threshold=40"])
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from pretrainlab.core.domain import DomainSpec

SPEC = DomainSpec(
    name="face", title="PETALface: quality-weighted twin LoRA for low-resolution face recognition",
    paper="Narayan et al., WACV 2025, PETALface: Parameter Efficient Transfer Learning for Low-resolution Face Recognition",
    package="pretrainlab.face", config="pretrainlab.face.config:FaceConfig", default_recipe="petalface",
    generator="pretrainlab.face.synthetic:generate", recipes=Path(__file__).parent / "recipes",
    data_version="3",  # 2: fine-tuning set as RecordIO + verification .bin; 3: tiny TinyFace part 150 ids x 4 probes
    data_help="synthetic faces: identity folders, insightface train.rec/.idx, LFW pairs.txt + .bin, TinyFace lists",
    readers={
        "identity folders <root>/<identity>/<img>": "pretrainlab.face.formats:IdentityFolder",
        "insightface MXNet RecordIO train.rec + train.idx (no mxnet)": "pretrainlab.face.formats:RecordIO",
        "LFW pairs.txt": "pretrainlab.face.formats:read_pairs",
        "insightface verification .bin (restricted unpickler)": "pretrainlab.face.formats:read_bin",
        "TinyFace Probe / Gallery_Match / Gallery_Distractor": "pretrainlab.face.formats:read_tinyface",
        "IJB-B / IJB-C meta + loose_crop": "pretrainlab.face.formats:read_ijb",
        "PETALface model.pt (weights_only)": "pretrainlab.face.petalface:read_reference_state_dict",
        "quality-score CSV file,score": "pretrainlab.face.quality:read_quality_scores",
    },
    reproduce_help="pre-trained vs full fine-tuning vs plain LoRA vs PETALface (paired over seeds)",
    examples={
        "pretrain": "pretrainlab face pretrain --profile smoke --out runs/face/pre",
        "finetune": "pretrainlab face finetune --init runs/face/pre --config petalface --profile smoke",
        "eval": "pretrainlab face eval --ckpt runs/face/petal (or PETALface/model.pt quality.threshold=T ...)",
    },
)
load = SPEC.load
synthetic_data = SPEC.synthetic_data


def pretrain(cfg: Any, data: str | Path, run: str | Path, resume: bool = False) -> Any:
    """Stage 1 (``cfg.method == "pretrain"``) -> (FaceTask, TrainResult)."""
    from pretrainlab.face.pipeline import train

    return train(cfg, Path(data), Path(run), resume=resume)


def finetune(cfg: Any, data: str | Path, run: str | Path, init: str | Path | None = None, resume: bool = False) -> Any:
    """Stage 2 (``full`` / ``lora`` / ``petalface``) from ``init`` (else ``cfg.init``) -> (FaceTask, TrainResult)."""
    from pretrainlab.face.pipeline import train

    if init is not None:
        cfg = dataclasses.replace(cfg, init=str(init))
    return train(cfg, Path(data), Path(run), resume=resume)


def new_task(cfg: Any, num_classes: int) -> Any:
    """A fresh FaceTask (backbone with the method's adapters + a margin classifier of ``num_classes``)."""
    from pretrainlab.face.petalface import FaceTask

    return FaceTask(cfg, num_classes)


def load_model(ckpt: str | Path, overrides: list[str] | None = None, device: str = "cpu") -> tuple[Any, Any, Path, str]:
    """(task in eval mode, config, source path, how it was trained) of a face run / checkpoint or a
    reference ``model.pt``; ``overrides`` (``key=value``) apply on top of the stored config."""
    from pretrainlab.face.pipeline import load_model as _load

    return _load(ckpt, device=device, overrides=overrides)


def load_task(ckpt: str | Path) -> tuple[Any, Any]:
    """A face checkpoint (any method) or a reference ``model.pt`` -> (task in eval mode, its config)."""
    task, cfg, _, _ = load_model(ckpt)
    return task, cfg


def evaluate(ckpt: str | Path, data: str | Path | None = None, overrides: list[str] | None = None,
             device: str = "cpu") -> dict[str, Any]:
    """HR verification (10-fold accuracy, TAR@FAR) + TinyFace rank-k of a checkpoint (paper Table 1 columns)."""
    from pretrainlab.face.evaluation import evaluate_task

    task, cfg, _, _ = load_model(ckpt, overrides, device)
    return evaluate_task(task, cfg, Path(data) if data else synthetic_data(cfg.data.profile), device)


def evaluate_ijb(ckpt: str | Path, root: str | Path, target: str = "IJBC", overrides: list[str] | None = None,
                 device: str = "cpu") -> dict[str, float]:
    """IJB-B / IJB-C TAR@FAR (``eval.ijb_fars``, default 1e-4) as insightface eval_ijbc.py."""
    from pretrainlab.face.evaluation import ijb_tar

    task, cfg, _, _ = load_model(ckpt, overrides, device)
    return ijb_tar(task, cfg, Path(root), target, device)


def embed(ckpt: str | Path, src: str | Path, out: str | Path, quality_scores: str | Path | None = None,
          overrides: list[str] | None = None) -> list[Path]:
    """``face embed``: embeddings + quality a of every image under ``src``; returns the written files."""
    from pretrainlab.core.data import DataError
    from pretrainlab.face.app_logic import OUT_SUFFIXES, embed_folder, write_embeddings

    out = Path(out)
    if out.suffix.lower() not in OUT_SUFFIXES:  # checked before the model is loaded
        raise DataError(out, f"--out must end in {' or '.join(OUT_SUFFIXES)}")
    task, cfg, source, how = load_model(ckpt, overrides)
    res = embed_folder(task, cfg, src, quality_scores)
    files = write_embeddings(out, res, str(source), how)
    qa = f", mean quality a {float(res.quality_a.mean()):.3f}" if res.quality_a is not None else ", no quality a"
    print(f"embedded {len(res.paths)} images ({res.embeddings.shape[1]}-d{qa}) with {source} [{how}] -> "
          f"{', '.join(str(f) for f in files)}", file=sys.stderr)
    return files


def verify(ckpt: str | Path, img1: str | Path, img2: str | Path, threshold: float | None = None) -> dict[str, Any]:
    """Similarity, quality a of each image and the decision (printed as JSON)."""
    task, cfg, src, how = load_model(ckpt)
    res = compare_faces(task, cfg, src, img1, img2, threshold)
    res["model"] = how
    print(json.dumps(res, indent=2))
    return res


def compare_faces(task: Any, cfg: Any, folder: Path, img1: str | Path, img2: str | Path,
                  threshold: float | None = None) -> dict[str, Any]:
    from pretrainlab.face.app_logic import compare_faces as _compare

    return _compare(task, cfg, folder, img1, img2, threshold)


def read_gallery(task: Any, cfg: Any, path: str | Path, max_images: int = 2000) -> Any:
    """A gallery zip / folder of ``<identity>/<image>`` embedded (safe extraction)."""
    from pretrainlab.face.app_logic import read_gallery as _read

    return _read(task, cfg, path, max_images)


def identify(task: Any, cfg: Any, gallery: Any, probe: str | Path, k: int = 5) -> dict[str, Any]:
    """Top-``k`` gallery identities of a probe image."""
    from pretrainlab.face.app_logic import identify as _identify

    return _identify(task, cfg, gallery, probe, k)


__all__ = ["SPEC", "compare_faces", "embed", "evaluate", "evaluate_ijb", "finetune", "identify", "load", "load_model",
           "load_task", "new_task", "pretrain", "read_gallery", "synthetic_data", "verify"]
