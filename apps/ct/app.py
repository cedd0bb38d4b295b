"""CT demo: selective reduction of a CT volume, slice by slice (Wolf et al. 2024, "Less is More").

Upload a NIfTI file or a zip of one DICOM series (or use a generated phantom), choose a strategy
and threshold: a slice viewer with a slider shows each slice framed green (kept) or red (dropped),
a strip of the whole volume along z, the kept fraction, and a fine-tuned COVID-CT classifier's
probabilities on the shown slice, under the class names the classifier was trained with. The page
says which checkpoint that is and how it was trained (a smoke model's outputs are flagged as not
meaningful). Hash-k is the reference's method; SSIM / MI / DeepNet / EveryN are this project's
extensions.
"""

from __future__ import annotations

import os
import tempfile
import threading
import zipfile
from collections.abc import Callable
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
DEFAULT_THRESHOLD = {"hash": 6.0, "every_n": 10.0, "ssim": 0.6539, "mi": 0.5032, "deepnet": 0.9652, "all": 0.0}  # the recipes'
STRATEGIES = ("hash", "ssim", "mi", "deepnet", "every_n", "all")
CLASSIFIER_TASK = "covid"


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
            try:
                with zf.open(info) as src, open(target, "wb") as dst:
                    dst.write(src.read(MAX_ZIP_UNPACKED_MB * 2**20 + 1))
            except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
                raise DataError(path.name, f"cannot unpack {base} ({e})") from e
    return dest


def load_upload(path: str | Path | None) -> tuple[str, np.ndarray]:
    """An uploaded NIfTI / DICOM-series zip -> ``(name, slices (Z, H, W) uint8)`` (the paper's pre-processing)."""
    import shutil

    from pretrainlab.ct import api

    p = validate_upload(path, ALLOWED, MAX_UPLOAD_MB, what="NIfTI file or zip of a DICOM series")
    if p.name.lower().endswith(".zip"):
        tmp = Path(tempfile.mkdtemp(prefix="ct-demo-"))
        try:
            folder = extract_dicom_zip(p, tmp / "series")
            try:
                _, slices = api.read_upload(folder)
            except DataError as e:  # name the uploaded zip, not the temporary folder
                raise DataError(p.name, e.problem.replace(str(folder) + "/", "").replace(str(folder), "")) from e
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return p.name, slices
    try:
        return api.read_upload(p)
    except DataError as e:
        raise DataError(p.name, e.problem) from e


def phantom_case(seed: int = 0, n_slices: int = 64, size: int = 64) -> tuple[str, np.ndarray]:
    from pretrainlab.ct import api

    return api.phantom_case(seed, n_slices, size)


def reduce_case(slices: np.ndarray, strategy: str, threshold: float | None, embed_fn: Any = None) -> np.ndarray:
    """Kept indices of one volume under ``strategy`` with ``threshold`` (hash: k, every_n: N); bad values
    raise a ConfigError naming the ``reduction.*`` key."""
    from pretrainlab.ct import api

    if strategy not in STRATEGIES:
        raise DataError("strategy", f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    t = DEFAULT_THRESHOLD[strategy] if threshold is None else threshold
    return api.reduce_slices(slices, strategy, t, embed_fn)


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
    origin = "the reference's method" if strategy in ("hash", "all") else "this project's extension (not in the reference)"
    return (f"**{name}**: {strategy} ({origin}; threshold {threshold:g}) keeps **{len(kept)} of {n} slices "
            f"({100 * len(kept) / max(1, n):.1f} %)**; pre-training on this volume would take "
            f"{len(kept) / max(1, n):.2f}x the iterations of ALL.")


def predict_slice(model: Any, cfg: Any, slice_u8: np.ndarray) -> dict[str, float]:
    """The classifier's probabilities on one 8-bit slice ``(H, W)``, keyed by the class names it was trained with."""
    from pretrainlab.ct import api

    return api.classify_slice(model, cfg, slice_u8)


# ------------------------------------------------------------------------------------------ checkpoint
def find_classifier(task: str = CLASSIFIER_TASK) -> Path | None:
    """The newest fine-tuned classifier of ``task`` under runs/ct/ (its ``best/`` folder)."""
    import json

    from pretrainlab.core.data import runs_root

    root = runs_root() / NAME
    if not root.exists():
        return None
    for meta in sorted(root.rglob("best/meta.json"), key=lambda q: q.stat().st_mtime, reverse=True):
        try:
            m = json.loads(meta.read_text())
        except (OSError, json.JSONDecodeError):  # a half-written or foreign file: skip it
            continue
        if m.get("task") == "FinetuneTask" and (m.get("config") or {}).get("task") == task:
            return meta.parent
    return None


def train_smoke() -> Path:
    """Pre-train (smoke, Hash-6) and fine-tune the COVID-CT classifier; return the fine-tuning run."""
    from pretrainlab.core.data import runs_root
    from pretrainlab.ct import api

    pt, ft = runs_root() / NAME / "demo-pretrain-smoke", runs_root() / NAME / "demo-finetune-smoke"
    import shutil

    for d in (pt, ft):
        shutil.rmtree(d, ignore_errors=True)
    data = api.synthetic_data("smoke")
    api.pretrain(api.load("hash6", "smoke", ["train.progress=false"]), data, pt)
    api.finetune(api.load("finetune", "smoke", [f"task={CLASSIFIER_TASK}", "train.progress=false"]), data, ft, init=pt)
    return ft


def describe(folder: Path, cfg: Any) -> str:
    from pretrainlab.core.demo import describe_checkpoint

    init = f"pre-trained backbone from {cfg.init}" if cfg.init else "RANDOM-INIT backbone (no pre-training)"
    return (f"classifier: {describe_checkpoint(folder)}; task {cfg.task}, classes {', '.join(cfg.classes)}; {init}")


class Predictor:
    """Lazily resolves and caches the classifier (no training at build time)."""

    def __init__(self, ckpt: str | Path | None = None) -> None:
        self.ckpt = ckpt
        self.model: Any = None
        self.cfg: Any = None
        self.message = ""
        self._lock = threading.Lock()

    def get(self) -> tuple[Any, Any, str]:
        with self._lock:
            if self.model is None:
                from pretrainlab.ct import api

                if self.ckpt is not None:
                    folder, note = api.classifier_folder(Path(self.ckpt)), f"checkpoint given: {self.ckpt}"
                else:
                    found = find_classifier()
                    if found is not None:
                        folder, note = found, "newest COVID-CT classifier in runs/"
                    else:
                        run = train_smoke()
                        folder, note = api.classifier_folder(run), f"no classifier in runs/: trained the smoke profile first ({run})"
                self.model, self.cfg = api.load_classifier(folder)
                self.message = f"{note}. {describe(folder, self.cfg)}"
            return self.model, self.cfg, self.message


def analyse(pred: Predictor, upload: Any, use_phantom: bool, seed: float, strategy: str,
            threshold: float) -> tuple[Any, ...]:
    """One click of a run button: (state, slider update, slice, strip, summary naming the volume,
    classifier probabilities on the middle slice, which classifier)."""
    import gradio as gr

    name, slices = phantom_case(int(seed or 0)) if use_phantom else load_upload(upload)
    model, cfg, msg = pred.get()
    embed = None
    if strategy == "deepnet":
        from pretrainlab.ct import api

        f = cfg.finetune
        embed = api.make_embedder(model.backbone, cfg.model.image_size, f.covid_mean[0], f.covid_std[0])
    kept = reduce_case(slices, strategy, threshold, embed)
    mid = len(slices) // 2
    state = {"name": name, "slices": slices, "kept": kept}
    return (state, gr.update(minimum=0, maximum=len(slices) - 1, value=mid, step=1),
            render_slice(slices, mid, kept), strip_image(len(slices), kept, mid),
            summary_text(name, len(slices), kept, strategy, float(threshold)),
            predict_slice(model, cfg, slices[mid]), msg)


# ------------------------------------------------------------------------------------------ app
def build_demo(ckpt: str | Path | None = None) -> Any:
    import gradio as gr

    from pretrainlab.core.demo import run_button

    pred = Predictor(ckpt)

    def show(state: dict[str, Any] | None, index: float) -> tuple[Any, ...]:
        if not state:
            raise DataError("(no volume)", "load a volume first")
        model, cfg, _ = pred.get()
        i = int(index)
        sl, kept = state["slices"], state["kept"]
        return render_slice(sl, i, kept), strip_image(len(sl), kept, i), predict_slice(model, cfg, sl[min(i, len(sl) - 1)])

    with gr.Blocks(title="CT: Less is More") as demo:
        gr.Markdown("## CT slice reduction before contrastive pre-training (Wolf et al. 2024, *Less is More*)\n"
                    "Upload a NIfTI volume or a zip of one DICOM series (max "
                    f"{MAX_UPLOAD_MB} MB), or use a generated phantom. Kept slices are framed **green**, dropped "
                    "ones **red**. Hash-k is the reference's method; SSIM / MI / DeepNet / EveryN are this "
                    "project's extensions. The classifier's probabilities carry the class names it was trained with.")
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
                label = gr.Label(label="COVID-CT classifier on the shown slice", num_top_classes=2)
        status = gr.Markdown(elem_id="ct-status")
        outs = [state, slider, slice_img, strip, summary, label, status]
        strategy.change(lambda s: DEFAULT_THRESHOLD[s], strategy, threshold)
        run_button(run_btn, lambda u, s, st, t: analyse(pred, u, False, s, st, t), [upload, seed, strategy, threshold],
                   outs, api_name="ct_analyse")
        run_button(ph_btn, lambda u, s, st, t: analyse(pred, u, True, s, st, t), [upload, seed, strategy, threshold],
                   outs, api_name="ct_phantom")
        slider.release(guarded(show), [state, slider], [slice_img, strip, label])
    return demo


def load_test_calls(sample_dir: Path) -> list[tuple[str, list[Any], Callable[[Any], bool]]]:
    """What the hub load test (benchmarks/hub_load.py) sends: (endpoint, inputs, check of the result).
    Inputs are the smoke synthetic volumes (two NIfTI files, a DICOM series zipped) copied into
    ``sample_dir`` under distinct names, and a phantom of a distinct seed; each check wants a valid
    answer whose summary names this call's own volume and strategy (``**<name>**: <strategy> ...``)."""
    from gradio_client import handle_file

    from pretrainlab.ct.api import synthetic_data

    vols = synthetic_data("smoke") / "pretrain"

    def ok(out: Any, name: str, strategy: str) -> bool:
        if not isinstance(out, (list, tuple)) or len(out) < 6:
            return False
        summaries = [o for o in out if isinstance(o, str) and " keeps **" in o]
        return len(summaries) == 1 and summaries[0].startswith(f"**{name}**: {strategy} (")

    calls: list[tuple[str, list[Any], Callable[[Any], bool]]] = []
    for src, name, strategy, t in ((vols / "vol_000.nii.gz", "ct-vol0.nii.gz", "hash", 6.0),
                                   (vols / "vol_002.nii.gz", "ct-vol2.nii.gz", "every_n", 4.0)):
        dst = Path(sample_dir) / name
        dst.write_bytes(src.read_bytes())
        calls.append(("ct_analyse", [handle_file(str(dst)), 0, strategy, t],
                      lambda out, n=name, st=strategy: ok(out, n, st)))
    z = Path(sample_dir) / "ct-series1.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for f in sorted((vols / "vol_001").glob("*.dcm")):
            zf.write(f, f"series/{f.name}")
    calls.append(("ct_analyse", [handle_file(str(z)), 0, "hash", 6.0], lambda out: ok(out, z.name, "hash")))
    calls.append(("ct_phantom", [None, 3, "every_n", 8.0], lambda out: ok(out, "phantom #3", "every_n")))
    return calls


if __name__ == "__main__":
    from pretrainlab.core.demo import launch

    launch(build_demo())
