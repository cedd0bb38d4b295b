"""CT demo: selective reduction of a CT volume, slice by slice (Wolf et al. 2024, "Less is More").

Upload a NIfTI file or a zip of one DICOM series (or use a generated phantom), choose a strategy
and threshold: a slice viewer with a slider shows each slice framed green (kept) or red (dropped),
a strip of the whole volume along z, the kept fraction, and the lesion classifier's prediction on
the shown slice (a fine-tuned checkpoint from runs/, or the smoke profile trained on first use).
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from pretrainlab.core.data import DataError
from pretrainlab.core.demo import MAX_UPLOAD_MB, guarded, validate_upload

NAME = "ct"
ALLOWED = (".nii", ".nii.gz", ".zip")
MAX_ZIP_FILES = 2000  # zip upload limits: entries ...
MAX_ZIP_UNPACKED_MB = 400  # ... and total uncompressed size (zip bombs)
DEFAULT_THRESHOLD = {"hash": 6.0, "every_n": 5.0, "ssim": 0.7, "mi": 0.5, "deepnet": 0.97, "all": 0.0}
STRATEGIES = ("hash", "ssim", "mi", "deepnet", "every_n", "all")


# ------------------------------------------------------------------------------------------ pure functions
def extract_dicom_zip(path: str | Path, dest: Path) -> Path:
    """Unpack a zip holding ONE DICOM series into ``dest`` (flat), with limits; return the folder."""
    path = Path(path)
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise DataError(path.name, f"not a readable zip file ({e})") from e
    with zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        if not infos:
            raise DataError(path.name, "the zip is empty")
        if len(infos) > MAX_ZIP_FILES:
            raise DataError(path.name, f"{len(infos)} files in the zip, over the limit of {MAX_ZIP_FILES}")
        total = sum(i.file_size for i in infos)
        if total > MAX_ZIP_UNPACKED_MB * 2**20:
            raise DataError(path.name, f"unpacks to {total / 2**20:.0f} MB, over the {MAX_ZIP_UNPACKED_MB} MB limit")
        nested = [i.filename for i in infos if i.filename.lower().endswith((".zip", ".gz", ".tar", ".7z"))]
        if nested:
            raise DataError(path.name, f"nested archive inside the zip ({nested[0]}); upload one zip of DICOM files")
        dest.mkdir(parents=True, exist_ok=True)
        for n, info in enumerate(infos):
            base = Path(info.filename).name
            if not base or base.startswith("."):
                continue
            target = dest / f"{n:05d}_{base}"  # flat, no path traversal, no name clashes
            with zf.open(info) as src, open(target, "wb") as dst:
                dst.write(src.read())
    return dest


def load_upload(path: str | Path | None) -> tuple[str, np.ndarray]:
    """An uploaded NIfTI / DICOM-series zip -> ``(name, slices (Z, H, W) uint8)`` (paper pre-processing)."""
    from pretrainlab.ct.readers import read_dicom_series, read_nifti, volume_slices

    p = validate_upload(path, ALLOWED, MAX_UPLOAD_MB, what="NIfTI file or zip of a DICOM series")
    if p.name.lower().endswith(".zip"):
        tmp = Path(tempfile.mkdtemp(prefix="ct-demo-"))
        folder = extract_dicom_zip(p, tmp / "series")
        try:
            vol = read_dicom_series(folder)
        except DataError as e:  # name the uploaded zip, not the temporary folder
            raise DataError(p.name, e.problem.replace(str(folder), "")) from e
    else:
        vol = read_nifti(p)
    return p.name, volume_slices(vol)


def phantom_case(seed: int = 0, n_slices: int = 64, size: int = 64) -> tuple[str, np.ndarray]:
    """A generated torso phantom with lesions -> ``(name, slices uint8)``."""
    from pretrainlab.ct.phantom import phantom_volume
    from pretrainlab.ct.preprocessing import minmax_uint8

    hu, _ = phantom_volume(np.random.default_rng(seed), n_slices, size, n_lesions=5)
    return f"phantom #{seed}", minmax_uint8(hu)


def reduce_case(slices: np.ndarray, strategy: str, threshold: float, embed_fn: Any = None) -> np.ndarray:
    """Kept indices of one volume under ``strategy`` with ``threshold`` (hash: k, every_n: N)."""
    from pretrainlab.ct.config import ReductionConfig
    from pretrainlab.ct.selective_reduction import reduce_volume

    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}")
    t = float(threshold if threshold is not None else DEFAULT_THRESHOLD[strategy])
    if strategy in ("hash", "every_n") and (t < 0 or t != int(t) or (strategy == "every_n" and t < 1)):
        raise ValueError(f"{strategy}: the threshold must be a whole number" + (" >= 1" if strategy == "every_n" else " >= 0"))
    cfg = ReductionConfig(strategy=strategy, hash_k=int(t) if strategy == "hash" else 6, every_n=int(t) if strategy == "every_n" else 5,
                          ssim_threshold=t, mi_threshold=t, deepnet_threshold=t, device="cpu")
    return reduce_volume(slices, cfg, embed_fn)


def render_slice(slices: np.ndarray, index: int, kept: np.ndarray, scale: int = 4) -> np.ndarray:
    """The slice as RGB ``(H*s, W*s, 3)`` uint8, framed green when kept, red when dropped."""
    index = int(np.clip(index, 0, len(slices) - 1))
    img = slices[index]
    rgb = np.repeat(np.repeat(np.repeat(img[:, :, None], 3, axis=2), scale, 0), scale, 1)
    colour = np.array([40, 200, 80] if index in {int(k) for k in kept} else [220, 50, 50], dtype=np.uint8)
    b = max(3, scale * 2)
    rgb[:b], rgb[-b:], rgb[:, :b], rgb[:, -b:] = colour, colour, colour, colour
    return rgb


def strip_image(n: int, kept: np.ndarray, current: int, width: int = 6, height: int = 40) -> np.ndarray:
    """One column per slice along z: green = kept, red = dropped; the shown slice marked white."""
    keep = np.zeros(n, dtype=bool)
    keep[np.asarray(kept, dtype=np.int64)] = True
    cols = np.where(keep[:, None], np.array([40, 200, 80]), np.array([220, 50, 50])).astype(np.uint8)
    img = np.repeat(np.repeat(cols[None], height, 0), width, 1)
    c = int(np.clip(current, 0, n - 1)) * width
    img[: height // 4, c:c + width] = 255
    img[-height // 4:, c:c + width] = 255
    img[:, ::width] = (img[:, ::width] * 0.6).astype(np.uint8)  # slice separators
    return img


def summary_text(name: str, n: int, kept: np.ndarray, strategy: str, threshold: float) -> str:
    return (f"**{name}**: {strategy} (threshold {threshold:g}) keeps **{len(kept)} of {n} slices "
            f"({100 * len(kept) / max(1, n):.1f} %)**; pre-training on this volume would take "
            f"{len(kept) / max(1, n):.2f}x the iterations of ALL.")


def predict_slice(model: Any, image_size: int, slice_u8: np.ndarray) -> dict[str, float]:
    """The lesion classifier's probabilities on one 8-bit slice ``(H, W)``."""
    import torch
    import torch.nn.functional as F

    from pretrainlab.ct.readers import LESION_CLASSES

    x = torch.from_numpy(np.ascontiguousarray(slice_u8))[None, None].float()
    x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", antialias=True, align_corners=False)
    with torch.no_grad():
        p = model.eval()(x.round().clamp(0, 255).to(torch.uint8)).float().softmax(-1)[0]
    return {c: float(v) for c, v in zip(LESION_CLASSES, p.tolist())}


# ------------------------------------------------------------------------------------------ checkpoint
def find_lesion_classifier() -> Path | None:
    """The newest fine-tuned 2-class (lesion) classifier under runs/ct/."""
    from pretrainlab.core.data import runs_root

    root = runs_root() / NAME
    if not root.exists():
        return None
    for p in sorted(root.rglob("model.safetensors"), key=lambda q: q.stat().st_mtime, reverse=True):
        if not p.parent.name.startswith("step_"):
            continue
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(p), framework="pt") as f:
                if "model.head.weight" in set(f.keys()) and f.get_slice("model.head.weight").get_shape()[0] == 2:
                    return p.parent
        except (SafetensorError, OSError):  # a half-written or foreign file: skip it
            pass
    return None


def train_smoke() -> Path:
    """Pre-train (smoke, Hash-6) and fine-tune the lesion classifier; return the fine-tune run."""
    from pretrainlab.core.cli import default_run_dir, main

    pt = default_run_dir(NAME, "demo-pretrain-smoke")
    ft = default_run_dir(NAME, "demo-finetune-smoke")
    if main(["ct", "pretrain", "--profile", "smoke", "--out", str(pt)]) != 0:
        raise RuntimeError("smoke pre-training failed")
    if main(["ct", "finetune", "--profile", "smoke", "--init", str(pt), "--task", "lesion", "--out", str(ft)]) != 0:
        raise RuntimeError("smoke fine-tuning failed")
    return ft


class Predictor:
    """Lazily resolves and caches the classifier (no training at build time)."""

    def __init__(self, ckpt: str | Path | None = None) -> None:
        self.ckpt = ckpt
        self.model: Any = None
        self.image_size = 32
        self.message = ""

    def get(self) -> tuple[Any, int, str]:
        if self.model is None:
            from pretrainlab.core.demo import resolve_checkpoint
            from pretrainlab.ct.domain import load_classifier

            ckpt = self.ckpt or find_lesion_classifier()
            if ckpt is not None:
                folder, self.message = resolve_checkpoint(NAME, ckpt, train_smoke)
            else:
                from pretrainlab.core.checkpoint import find_checkpoint

                run = train_smoke()
                folder = find_checkpoint(run)
                self.message = f"no lesion classifier found in runs/: trained the smoke profile first ({run})"
            self.model, cfg = load_classifier(folder)
            self.image_size = cfg.model.image_size
        return self.model, self.image_size, self.message


# ------------------------------------------------------------------------------------------ app
def build_demo(ckpt: str | Path | None = None) -> Any:
    import gradio as gr

    pred = Predictor(ckpt)

    def analyse(upload: Any, use_phantom: bool, seed: float, strategy: str, threshold: float) -> tuple[Any, ...]:
        if use_phantom:
            name, slices = phantom_case(int(seed or 0))
        else:
            name, slices = load_upload(upload)
        embed = None
        model, size, msg = pred.get()
        if strategy == "deepnet":
            from pretrainlab.ct.selective_reduction import make_embedder

            embed = make_embedder(model.backbone, size, model.cfg.ssl.norm_mean, model.cfg.ssl.norm_std)
        kept = reduce_case(slices, strategy, threshold, embed)
        mid = len(slices) // 2
        state = {"name": name, "slices": slices, "kept": kept}
        return (state, gr.update(minimum=0, maximum=len(slices) - 1, value=mid, step=1),
                render_slice(slices, mid, kept), strip_image(len(slices), kept, mid),
                summary_text(name, len(slices), kept, strategy, float(threshold)),
                predict_slice(model, size, slices[mid]), msg)

    def show(state: dict[str, Any] | None, index: float) -> tuple[Any, ...]:
        if not state:
            raise DataError("(no volume)", "load a volume first")
        model, size, _ = pred.get()
        i = int(index)
        sl, kept = state["slices"], state["kept"]
        return render_slice(sl, i, kept), strip_image(len(sl), kept, i), predict_slice(model, size, sl[min(i, len(sl) - 1)])

    with gr.Blocks(title="CT: Less is More") as demo:
        gr.Markdown("## CT slice reduction before contrastive pre-training (Wolf et al. 2024, *Less is More*)\n"
                    "Upload a NIfTI volume or a zip of one DICOM series (max "
                    f"{MAX_UPLOAD_MB} MB), or use a generated phantom. Kept slices are framed **green**, dropped "
                    "ones **red**.")
        state = gr.State(None)
        with gr.Row():
            upload = gr.File(label="NIfTI (.nii, .nii.gz) or zip of a DICOM series", file_types=list(ALLOWED),
                             elem_id="ct-upload")
            with gr.Column():
                strategy = gr.Dropdown(list(STRATEGIES), value="hash", label="strategy")
                threshold = gr.Number(value=6, label="threshold (hash: k; every_n: N; ssim / mi / deepnet: similarity)")
                seed = gr.Number(value=0, label="phantom seed", precision=0)
        with gr.Row():
            run_btn = gr.Button("Reduce uploaded volume", variant="primary", elem_id="ct-run")
            ph_btn = gr.Button("Reduce a generated phantom", elem_id="ct-phantom")
        summary = gr.Markdown(elem_id="ct-summary")
        slider = gr.Slider(0, 1, value=0, step=1, label="slice", elem_id="ct-slider")
        with gr.Row():
            slice_img = gr.Image(label="slice (green: kept, red: dropped)", type="numpy", height=320)
            with gr.Column():
                strip = gr.Image(label="the volume along z (white: shown slice)", type="numpy", height=80)
                label = gr.Label(label="lesion classifier on the shown slice", num_top_classes=2)
        status = gr.Markdown(elem_id="ct-status")
        outs = [state, slider, slice_img, strip, summary, label, status]
        strategy.change(lambda s: DEFAULT_THRESHOLD[s], strategy, threshold)
        run_btn.click(guarded(lambda u, s, st, t: analyse(u, False, s, st, t)), [upload, seed, strategy, threshold], outs)
        ph_btn.click(guarded(lambda u, s, st, t: analyse(u, True, s, st, t)), [upload, seed, strategy, threshold], outs)
        slider.release(guarded(show), [state, slider], [slice_img, strip, label])
    return demo


if __name__ == "__main__":
    from pretrainlab.core.demo import launch

    launch(build_demo())
