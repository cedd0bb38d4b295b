"""Pure functions behind ``pretrainlab face embed / verify`` and the demo (no gradio here).

- :func:`embed_folder` / :func:`write_embeddings`: the ONE implementation of ``face embed`` (the CLI
  and the demo call it): embeddings + quality weight ``a`` of every image of a folder, rows in sorted
  relative-path order, precomputed IQA scores from a ``file,score`` CSV or the configured scorer.
- :func:`compare_faces`: cosine similarity of two faces, the quality weight ``a`` of each and the
  decision at the threshold chosen on validation pairs after training.
- :func:`read_gallery` / :func:`identify`: a gallery zip / folder of identity folders, safely
  extracted; the top-k gallery identities of a probe (best image per identity).
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pretrainlab.core.data import DataError
from pretrainlab.face.config import FaceConfig
from pretrainlab.face.formats import IMAGE_SUFFIXES, IdentityFolder, load_image

MAX_ZIP_FILES = 5000
MAX_ZIP_BYTES = 500 * 2**20
OUT_SUFFIXES = (".safetensors", ".npy")


def _device(task: Any) -> torch.device:
    return next(task.parameters()).device


def _one(task: Any, cfg: FaceConfig, path: str | Path) -> tuple[torch.Tensor, float | None, list[str]]:
    from pretrainlab.face.evaluation import embed_batch

    x, notes = load_image(path, cfg.model.image_size)
    e, a, _ = embed_batch(task, x[None].to(_device(task)), cfg.eval.flip_tta)
    return e[0].cpu(), (float(a[0]) if a is not None else None), notes


# ------------------------------------------------------------------ face embed
def list_images(src: str | Path) -> tuple[Path, list[Path]]:
    """(root, images) of a folder (recursive, sorted by relative path) or one image file."""
    src = Path(src)
    if not src.exists():
        raise DataError(src, "no such file or folder (--input)")
    if src.is_dir():
        paths = sorted((p for p in src.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                        and not p.name.startswith(".")), key=lambda p: p.relative_to(src).as_posix())
        if not paths:
            raise DataError(src, f"no images ({', '.join(IMAGE_SUFFIXES)}) found")
        return src, paths
    if src.suffix.lower() not in IMAGE_SUFFIXES:
        raise DataError(src, f"not an image file (allowed: {', '.join(IMAGE_SUFFIXES)})")
    return src.parent, [src]


def scores_for(root: Path, paths: list[Path], scores: dict[str, float], csv_path: Path) -> np.ndarray:
    """Each image's score from the CSV: keyed by the path relative to ``--input`` or, when unique, the file name."""
    rel = [p.relative_to(root).as_posix() for p in paths]
    names = [p.name for p in paths]
    unique_names = {n for n in names if names.count(n) == 1}
    out, used = np.empty(len(paths)), set()
    for i, (r, n) in enumerate(zip(rel, names)):
        key = r if r in scores else n if n in scores and n in unique_names else None
        if key is None:
            raise DataError(csv_path, f"no score for image '{r}' (give its path relative to --input, or its file name)")
        out[i] = scores[key]
        used.add(key)
    unused = sorted(set(scores) - used)
    if unused:
        raise DataError(csv_path, f"{len(unused)} listed files are not among the {len(paths)} input images "
                                  f"(e.g. '{unused[0]}')")
    return out


@dataclasses.dataclass
class Embedded:
    paths: list[str]  # relative to the input root, sorted
    embeddings: torch.Tensor  # (N, E) L2-normalised
    quality_a: torch.Tensor | None  # (N,)
    quality_source: str


def embed_folder(task: Any, cfg: FaceConfig, src: str | Path, scores_csv: str | Path | None = None) -> Embedded:
    """Embed every image under ``src`` (or one image) as the reference's TinyFace evaluation does."""
    from pretrainlab.face.evaluation import embed_sources
    from pretrainlab.face.quality import quality_weight, read_quality_scores

    root, paths = list_images(src)
    quality = None
    source = ""
    if scores_csv is not None:
        raw = scores_for(root, paths, read_quality_scores(scores_csv), Path(scores_csv))
        quality = quality_weight(torch.from_numpy(raw), cfg.quality.threshold, cfg.quality.clamp)
        source = f"scores from {Path(scores_csv).name} (a = 0.5 + score - {cfg.quality.threshold:g})"
    if quality is not None and cfg.method != "petalface":
        source += f"; reported only: the {cfg.method} model does not use a"
    emb, qa = embed_sources(task, paths, cfg, _device(task), desc="embed",
                            quality=quality if cfg.method == "petalface" else None)
    if quality is not None:
        qa = quality.float()
    elif qa is not None:
        source = f"quality.scorer={cfg.quality.scorer} on the normalised input (threshold {cfg.quality.threshold:g})"
    return Embedded([p.relative_to(root).as_posix() for p in paths], emb, qa, source)


def write_embeddings(out: str | Path, result: Embedded, checkpoint: str, trained: str) -> list[Path]:
    """``FILE.safetensors`` (``embeddings``, ``quality_a``) or ``FILE.npy`` (+ ``FILE.quality_a.npy``), and
    ``FILE.json`` (file order, checkpoint); every file written to a temporary name and moved in at the end."""
    from pretrainlab.core.checkpoint import save_tensors
    from pretrainlab.core.io import dumps_json

    out = Path(out)
    if out.suffix.lower() not in OUT_SUFFIXES:
        raise DataError(out, f"--out must end in {' or '.join(OUT_SUFFIXES)}")
    if out.is_dir():
        raise DataError(out, "is a folder; --out names the output file")
    if not out.parent.is_dir():
        raise DataError(out.parent, "output folder does not exist")
    side = out.with_suffix(".json")
    targets: dict[Path, Any] = {}
    emb = result.embeddings.float().contiguous()
    if out.suffix.lower() == ".safetensors":
        tensors = {"embeddings": emb}
        if result.quality_a is not None:
            tensors["quality_a"] = result.quality_a.float().contiguous()
        targets[out] = ("safetensors", tensors)
    else:
        targets[out] = ("npy", emb.numpy())
        if result.quality_a is not None:
            targets[out.with_suffix(".quality_a.npy")] = ("npy", result.quality_a.float().numpy())
    meta = {"files": result.paths, "checkpoint": checkpoint, "trained": trained, "quality_a": result.quality_source,
            "shape": list(emb.shape)}
    targets[side] = ("text", dumps_json(meta, indent=1))
    tmps: list[tuple[Path, Path]] = []
    try:
        for final, (kind, obj) in targets.items():
            fd, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
            os.close(fd)
            tmp = Path(name)
            tmps.append((tmp, final))
            if kind == "safetensors":
                save_tensors(tmp, obj, {"checkpoint": checkpoint})
            elif kind == "npy":
                with open(tmp, "wb") as f:
                    np.save(f, obj)
            else:
                tmp.write_text(obj)
        for tmp, final in tmps:
            os.replace(tmp, final)
    finally:
        for tmp, _ in tmps:
            tmp.unlink(missing_ok=True)
    return list(targets)


# ------------------------------------------------------------------ verify / identify
def compare_faces(task: Any, cfg: FaceConfig, folder: Path, img1: str | Path, img2: str | Path,
                  threshold: float | None = None) -> dict[str, Any]:
    """``{"similarity", "quality_a": [a1, a2], "threshold", "same_person", "threshold_source", "notes"}``."""
    from pretrainlab.face.pipeline import threshold_for

    e1, a1, n1 = _one(task, cfg, img1)
    e2, a2, n2 = _one(task, cfg, img2)
    sim = float((e1 * e2).sum())
    if threshold is None:
        threshold, source = threshold_for(Path(folder))
        if threshold is None:
            threshold, source = 0.3, "no validation threshold stored with the checkpoint: default 0.3"
    else:
        source = "given"
    notes = [f"{Path(img1).name}: {n}" for n in n1] + [f"{Path(img2).name}: {n}" for n in n2]
    return {"similarity": sim, "quality_a": [a1, a2], "threshold": float(threshold), "same_person": sim >= threshold,
            "threshold_source": source, "method": cfg.method, "notes": notes}


def _safe_extract(zf: zipfile.ZipFile, dest: Path, zpath: Path) -> None:
    infos = [i for i in zf.infolist() if not i.is_dir()]
    if len(infos) > MAX_ZIP_FILES:
        raise DataError(zpath, f"{len(infos)} files in the zip (limit {MAX_ZIP_FILES})")
    if sum(i.file_size for i in infos) > MAX_ZIP_BYTES:
        raise DataError(zpath, f"unpacks to more than {MAX_ZIP_BYTES // 2**20} MB")
    for i in infos:
        parts = Path(i.filename).parts
        if Path(i.filename).is_absolute() or ".." in parts:
            raise DataError(zpath, f"unsafe path in zip: {i.filename}")
        if parts[0] == "__MACOSX" or parts[-1].startswith("."):
            continue
        target = dest.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        with zf.open(i) as src, open(target, "wb") as out:
            data = src.read(MAX_ZIP_BYTES + 1)
            if len(data) > i.file_size:
                raise DataError(zpath, f"{i.filename}: unpacks to more than its declared size")
            out.write(data)


@dataclasses.dataclass
class Gallery:
    folder: IdentityFolder
    embeddings: torch.Tensor  # (N, E) L2-normalised
    labels: torch.Tensor  # (N,)


def gallery_root(path: str | Path) -> Path:
    """A folder of identity folders from a folder or a zip (extracted to a temp dir; one wrapper folder allowed)."""
    p = Path(path)
    if p.is_file():
        if not zipfile.is_zipfile(p):
            raise DataError(p, "not a zip archive (upload a .zip of identity folders)")
        dest = Path(tempfile.mkdtemp(prefix="face-gallery-"))
        try:
            with zipfile.ZipFile(p) as zf:
                _safe_extract(zf, dest, p)
        except zipfile.BadZipFile as e:
            raise DataError(p, f"corrupt zip ({e})") from None
        root = dest
        subdirs = [d for d in root.iterdir() if d.is_dir() and not d.name.startswith((".", "__MACOSX"))]
        loose = [f for f in root.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES]
        if len(subdirs) == 1 and not loose and any(x.is_dir() for x in subdirs[0].iterdir()):
            root = subdirs[0]  # a zip of one wrapper folder
        if not any(d.is_dir() for d in root.iterdir()):
            raise DataError(p, "the zip holds no identity folders (expected <identity>/<image> entries)")
        return root
    return p


def read_gallery(task: Any, cfg: FaceConfig, path: str | Path, max_images: int = 2000) -> Gallery:
    from pretrainlab.face.evaluation import embed_sources

    try:
        folder = IdentityFolder.read(gallery_root(path), max_images)
    except DataError as e:
        raise DataError(Path(path).name if Path(path).is_file() else path, e.problem) from None
    emb, _ = embed_sources(task, folder.paths, cfg, _device(task), desc="gallery")
    return Gallery(folder, emb, torch.tensor(folder.labels))


def identify(task: Any, cfg: FaceConfig, gallery: Gallery, probe: str | Path, k: int = 5) -> dict[str, Any]:
    """Top-``k`` identities: ``{"top": [{"identity", "similarity", "image"}], "quality_a", "notes"}``."""
    emb, a, notes = _one(task, cfg, probe)
    sim = gallery.embeddings @ emb  # (N,)
    n_id = len(gallery.folder.classes)
    best = torch.full((n_id,), -2.0).scatter_reduce(0, gallery.labels, sim, reduce="amax")
    idx_best: dict[int, int] = {}
    for i in torch.argsort(sim, descending=True).tolist():
        idx_best.setdefault(int(gallery.labels[i]), i)
    order = torch.argsort(best, descending=True)[:k].tolist()
    top = [{"identity": gallery.folder.classes[c], "similarity": float(best[c]), "image": str(gallery.folder.paths[idx_best[c]])}
           for c in order]
    return {"top": top, "quality_a": a, "notes": notes}


__all__ = ["Embedded", "Gallery", "compare_faces", "embed_folder", "gallery_root", "identify", "list_images",
           "read_gallery", "write_embeddings"]
