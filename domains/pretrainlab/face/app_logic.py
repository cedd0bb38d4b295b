"""Pure functions behind ``pretrainlab face verify`` and the demo (no gradio here).

- :func:`compare_faces`: cosine similarity of two faces, the quality weight ``a`` of each and the
  decision at the threshold chosen on validation pairs after training.
- :func:`read_gallery`: a gallery zip / folder of identity folders, safely extracted.
- :func:`identify`: the top-k gallery identities of a probe (best image per identity).
"""

from __future__ import annotations

import dataclasses
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

from pretrainlab.core.data import DataError
from pretrainlab.face.config import FaceConfig
from pretrainlab.face.formats import IMAGE_SUFFIXES, IdentityFolder, load_image, load_images

MAX_ZIP_FILES = 5000
MAX_ZIP_BYTES = 500 * 2**20


def _embed_one(task: Any, cfg: FaceConfig, path: str | Path) -> tuple[torch.Tensor, float, list[str]]:
    from pretrainlab.face.evaluation import embed_images
    from pretrainlab.face.petalface import normalize
    from pretrainlab.face.quality import QualityScorer

    img, notes = load_image(path, cfg.model.image_size)
    emb, qual = embed_images(task, img[None], 1, cfg.eval.flip_tta, next(task.parameters()).device)
    if qual is None:
        qual = QualityScorer(cfg.quality)(normalize(img[None].float() / 255))
    return emb[0], float(qual[0]), notes


def compare_faces(task: Any, cfg: FaceConfig, folder: Path, img1: str | Path, img2: str | Path,
                  threshold: float | None = None) -> dict[str, Any]:
    """``{"similarity", "quality_a": [a1, a2], "threshold", "same_person", "threshold_source", "notes"}``."""
    from pretrainlab.face.pipeline import threshold_for

    e1, a1, n1 = _embed_one(task, cfg, img1)
    e2, a2, n2 = _embed_one(task, cfg, img2)
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
            out.write(src.read())


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
            raise DataError(p, f"corrupt zip ({e})") from e
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
    from pretrainlab.face.evaluation import embed_images

    try:
        folder = IdentityFolder.read(gallery_root(path), max_images)
    except DataError as e:
        raise DataError(Path(path).name if Path(path).is_file() else path, e.problem) from e
    imgs = load_images(folder.paths, cfg.model.image_size, desc="gallery")
    emb, _ = embed_images(task, imgs, cfg.eval.batch_size, cfg.eval.flip_tta, next(task.parameters()).device)
    return Gallery(folder, emb, torch.tensor(folder.labels))


def identify(task: Any, cfg: FaceConfig, gallery: Gallery, probe: str | Path, k: int = 5) -> dict[str, Any]:
    """Top-``k`` identities: ``{"top": [{"identity", "similarity", "image"}], "quality_a", "notes"}``."""
    emb, a, notes = _embed_one(task, cfg, probe)
    sim = gallery.embeddings @ emb  # (N,)
    n_id = len(gallery.folder.classes)
    best = torch.full((n_id,), -2.0).scatter_reduce(0, gallery.labels, sim, reduce="amax")
    idx_best = {}
    for i in torch.argsort(sim, descending=True).tolist():
        idx_best.setdefault(int(gallery.labels[i]), i)
    order = torch.argsort(best, descending=True)[:k].tolist()
    top = [{"identity": gallery.folder.classes[c], "similarity": float(best[c]), "image": str(gallery.folder.paths[idx_best[c]])}
           for c in order]
    return {"top": top, "quality_a": a, "notes": notes}
