"""Demo of the LiDAR domain: 3D detection on a simulated or uploaded scan with an E-SSL3D-style detector.

Pick a simulated scan (KITTI format, ground truth known) or upload ``.bin`` / ``.pcd`` / ``.ply`` /
``.npy``; the page shows the detections as a table, a bird's-eye-view picture with the boxes (and
the ground truth when known) and an interactive 3D view (plotly) of the points coloured by height
with the boxes. ``build_demo()`` returns at once; the detector is resolved on the first query: the
given checkpoint, else the newest detection checkpoint in ``runs/lidar``, else the smoke profile
is fine-tuned first (seconds) and the page says so.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

from pretrainlab.core.demo import describe_checkpoint, run_button, validate_upload

POINT_TYPES = [".bin", ".pcd", ".ply", ".npy"]
CLASS_COLOURS = {"Car": "#e4572e", "Pedestrian": "#29335c", "Cyclist": "#17bebb"}
N_SAMPLES = 4  # simulated val scans offered in the picker
_lock = threading.Lock()
_cache: dict[str, Any] = {}


def train_smoke() -> Path:
    """Fine-tune the smoke detector (seconds on a CPU) into ``runs/lidar/demo-smoke``."""
    import shutil

    from pretrainlab.core.data import runs_root
    from pretrainlab.lidar import api

    cfg = api.load("detect", "smoke", ["train.progress=false"])
    run = runs_root() / "lidar" / "demo-smoke"
    if run.exists():
        shutil.rmtree(run)
    api.finetune(cfg, api.synthetic_data("smoke"), run)
    return run


def newest_detector() -> Path | None:
    """The newest checkpoint under ``runs/lidar`` that loads as a detector (pre-training runs are skipped)."""
    from pretrainlab.core.checkpoint import CheckpointError
    from pretrainlab.core.data import runs_root
    from pretrainlab.lidar import api

    root = runs_root() / "lidar"
    if not root.exists():
        return None
    cands = sorted((p.parent for p in root.rglob("model.safetensors") if p.parent.name.startswith("step_")),
                   key=lambda p: p.stat().st_mtime, reverse=True)
    for c in cands:
        try:
            api.load_task(c)
        except (CheckpointError, OSError, ValueError):
            continue
        return c
    return None


def load_model(ckpt: str | Path | None) -> dict[str, Any]:
    """Detector (cached per checkpoint argument) and the message saying which one and how it was trained."""
    from pretrainlab.core.checkpoint import find_checkpoint
    from pretrainlab.lidar import api

    key = str(ckpt)
    with _lock:
        if key not in _cache:
            if ckpt:
                folder, msg = find_checkpoint(Path(ckpt)), f"checkpoint {ckpt}"
            elif (found := newest_detector()) is not None:
                folder, msg = found, "the newest detector in runs/"
            else:
                folder = find_checkpoint(train_smoke())
                msg = "no detection checkpoint found: fine-tuned the smoke profile first"
            task, cfg = api.load_task(folder)
            _cache[key] = {"task": task, "cfg": cfg, "message": f"Model: {msg}; {describe_checkpoint(folder)}",
                           "smoke": cfg.data.profile == "smoke"}
        return _cache[key]


def sample_frames() -> list[Any]:
    """A few simulated val scans (KITTI format, with labels, calibration and image size)."""
    from pretrainlab.lidar import api

    if "frames" not in _cache:
        cfg = api.load("detect", "smoke")
        split = api.open_split(cfg, api.synthetic_data("smoke"), "val")
        _cache["frames"] = [split[i] for i in range(min(N_SAMPLES, len(split)))]
    return _cache["frames"]


def load_input(upload: str | None, sample: int, fov: bool = True) -> tuple[Any, str]:
    """``(Frame, name)`` from an upload (preferred; KITTI's calibration and image size when ``fov``) or a
    simulated scan (its own calibration, image size and ground truth)."""
    from pretrainlab.core.data import DataError
    from pretrainlab.lidar import api

    if upload:
        p = validate_upload(upload, POINT_TYPES, what="point cloud")
        return api.scan_frame(p, fov), p.name
    frames = sample_frames()
    if not 0 <= int(sample) < len(frames):
        raise DataError("(sample)", f"pick a simulated scan between 0 and {len(frames) - 1}")
    f = frames[int(sample)]
    return f, f"simulated scan {f.path.stem}"


def detect(task: Any, frame: Any) -> tuple[list[Any], int]:
    """Detections on one frame and the number of points the detector did not see (outside the camera field
    of view or the detection range)."""
    from pretrainlab.core.data import DataError
    from pretrainlab.lidar import api

    seen = api.model_points(frame, task.cfg)
    if len(seen) == 0:
        raise DataError("(scan)", f"no points inside the camera field of view and the detection range "
                                  f"{task.cfg.data.detect_range}")
    return api.predict_frames(task, [frame])[0], len(frame.points) - len(seen)


def detections_table(dets: list[Any]) -> list[list[Any]]:
    """Rows ``class, score, x, y, z, l, w, h, yaw`` (rounded)."""
    return [[d.cls, round(float(d.score or 0), 3), *[round(float(v), 2) for v in d.box]] for d in dets]


def bev_image(points: np.ndarray, dets: list[Any], gts: list[Any] | None, pc_range: list[float]) -> Any:
    """Bird's-eye view (PIL image): points by height, detections (solid, class colour), ground truth (dashed)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    from pretrainlab.lidar import api

    r = pc_range
    sel = (points[:, 0] >= r[0]) & (points[:, 0] < r[3]) & (points[:, 1] >= r[1]) & (points[:, 1] < r[4])
    p = points[sel]
    fig, ax = plt.subplots(figsize=(6, 6 * (r[4] - r[1]) / (r[3] - r[0])), dpi=90)
    ax.scatter(p[:, 1], p[:, 0], c=p[:, 2], s=0.3, cmap="viridis", vmin=-2.0, vmax=1.0)
    for objs, style in ((gts or [], "--"), (dets, "-")):
        for o in objs:
            c = api.box_corners(o.box)[[0, 1, 2, 3], :2]
            c = np.vstack([c, c[:1]])
            ax.plot(c[:, 1], c[:, 0], style, color=CLASS_COLOURS.get(o.cls, "k"), lw=1.4 if style == "-" else 1.0)
    ax.set_xlim(r[4], r[1])  # y to the left, as seen from above with x forward
    ax.set_ylim(r[0], r[3])
    ax.set_xlabel("y (m)")
    ax.set_ylabel("x (m, forward)")
    ax.set_title("BEV: detections (solid), ground truth (dashed)")
    ax.set_aspect("equal")
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def scene_3d(points: np.ndarray, dets: list[Any], max_points: int = 20000) -> Any:
    """Interactive plotly 3D figure: points coloured by height, detection boxes as wireframes."""
    import plotly.graph_objects as go

    from pretrainlab.lidar import api

    rng = np.random.default_rng(0)
    p = points if len(points) <= max_points else points[rng.choice(len(points), max_points, replace=False)]
    fig = go.Figure(go.Scatter3d(x=p[:, 0], y=p[:, 1], z=p[:, 2], mode="markers",
                                 marker={"size": 1, "color": p[:, 2], "colorscale": "Viridis"}, name="points"))
    edges = [(0, 1), (1, 2), (2, 3), (3, 0), (4, 5), (5, 6), (6, 7), (7, 4), (0, 4), (1, 5), (2, 6), (3, 7)]
    for d in dets:
        c = api.box_corners(d.box)
        xs, ys, zs = [], [], []
        for a, b in edges:
            xs += [c[a, 0], c[b, 0], None]
            ys += [c[a, 1], c[b, 1], None]
            zs += [c[a, 2], c[b, 2], None]
        fig.add_trace(go.Scatter3d(x=xs, y=ys, z=zs, mode="lines", line={"color": CLASS_COLOURS.get(d.cls, "black")},
                                   name=f"{d.cls} {d.score or 0:.2f}"))
    fig.update_layout(scene={"aspectmode": "data"}, margin={"l": 0, "r": 0, "t": 0, "b": 0}, showlegend=False, height=420)
    return fig


def predict(upload: str | None, sample: int, ckpt: str | Path | None = None, fov: bool = True
            ) -> tuple[list[list[Any]], Any, Any, str]:
    """The demo's whole prediction: table, BEV picture, 3D figure, status text (which model, how trained)."""
    model = load_model(ckpt)
    task = model["task"]
    frame, name = load_input(upload, sample, fov)
    dets, dropped = detect(task, frame)
    gts = frame.objects if not upload else None
    warn = ("\n\n**Untrained model (smoke profile, seconds of training): these detections are NOT meaningful.** "
            "Fine-tune the tiny or full profile and pass --ckpt.") if model["smoke"] else ""
    status = (f"**{name}**: {len(frame.points)} points, {dropped} not seen by the detector (outside the camera field "
              f"of view{' (KITTI calibration, 375 x 1242)' if upload and fov else ''} or the detection range); "
              f"{len(dets)} detections (score >= {task.cfg.head.score_threshold}).\n\n{model['message']}{warn}")
    points = frame.points
    return detections_table(dets), bev_image(points, dets, gts, task.cfg.data.detect_range), scene_3d(points, dets), status


def build_demo(ckpt: str | Path | None = None) -> gr.Blocks:
    with gr.Blocks(title="pretrainlab · LiDAR") as demo:
        gr.Markdown("### LiDAR 3D detection (E-SSL3D)\nPick a simulated KITTI-format scan or upload a point "
                    "cloud (.bin KITTI float32 x y z i, .pcd, .ply, .npy); the detector finds cars, "
                    "pedestrians and cyclists.")
        with gr.Row():
            inp = gr.File(label="point cloud (.bin / .pcd / .ply / .npy)", file_types=POINT_TYPES, type="filepath", elem_id="lidar-upload")
            with gr.Column():
                sample = gr.Slider(0, N_SAMPLES - 1, value=0, step=1, label="simulated scan (used when no upload)")
                fov = gr.Checkbox(value=True, label="uploads: only points in the KITTI camera's field of view (as trained)")
                btn = gr.Button("Detect", variant="primary")
        status = gr.Markdown(elem_id="lidar-status")
        with gr.Row():
            bev = gr.Image(label="bird's-eye view", type="pil", elem_id="lidar-bev")
            view3d = gr.Plot(label="3D view")
        table = gr.Dataframe(headers=["class", "score", "x", "y", "z", "l", "w", "h", "yaw"], label="detections", elem_id="lidar-table")
        run_button(btn, lambda f, s, v: predict(f, s, ckpt, v), [inp, sample, fov], [table, bev, view3d, status],
                   api_name="lidar_detect")
    return demo


def load_test_calls(sample_dir: Path) -> list[tuple[str, list[Any], Callable[[Any], bool]]]:
    """What the hub load test (benchmarks/hub_load.py) sends: (endpoint, inputs, check of the result).
    Inputs are smoke synthetic scans copied into ``sample_dir`` under distinct names (a KITTI ``.bin`` and
    one saved as ``.npy``) and a simulated scan picked by index; each check wants a valid answer whose
    status names this call's own scan (``**<name>**: N points, ...``)."""
    from gradio_client import handle_file

    from pretrainlab.lidar import api

    velo = api.synthetic_data("smoke") / "training" / "velodyne"

    def ok(out: Any, name: str) -> bool:
        return (isinstance(out, (list, tuple)) and len(out) == 4 and str(out[3]).startswith(f"**{name}**: ")
                and " detections (score >= " in str(out[3]))

    a = Path(sample_dir) / "lidar-scan0.bin"
    a.write_bytes((velo / "000000.bin").read_bytes())
    b = Path(sample_dir) / "lidar-scan1.npy"
    np.save(b, api.scan_frame(velo / "000001.bin", fov=False).points)
    sim = f"simulated scan {sample_frames()[1].path.stem}"
    return [("lidar_detect", [handle_file(str(a)), 0, True], lambda out: ok(out, a.name)),
            ("lidar_detect", [handle_file(str(b)), 0, True], lambda out: ok(out, b.name)),
            ("lidar_detect", [None, 1, True], lambda out: ok(out, sim))]


if __name__ == "__main__":
    from pretrainlab.core.demo import launch

    launch(build_demo())
