"""The public Python API of pretrainlab.isp (Arhire & Timofte, CVPRW 2025).

``SPEC`` declares the domain; ``load`` / ``synthetic_data`` come from it; ``pretrain``, ``finetune``,
``load_task`` and ``evaluate`` are what the standard verbs call; ``render`` is the ``render`` verb.
``reproduce.py``, ``bench.py`` and ``apps/isp/app.py`` import only this module (and the core).
Heavy imports stay inside the functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pretrainlab.core.domain import DomainSpec

SPEC = DomainSpec(
    name="isp", title="Learned lightweight smartphone ISP (RAW -> RGB) with unpaired data",
    paper="Arhire & Timofte, Learned Lightweight Smartphone ISP with Unpaired Data, CVPRW 2025",
    package="pretrainlab.isp", config="pretrainlab.isp.config:ISPConfig", default_recipe="efficientisp_unpaired",
    generator="pretrainlab.isp.synthetic:generate", recipes=Path(__file__).parent / "recipes", data_version="3",
    data_help="the synthetic unprocessed-RAW dataset (Zurich layout + DNG / PNG / NTIRE .npy samples)",
    readers={"Bayer PNG mosaic (Zurich huawei_raw, UltraISP mediatek_raw)": "pretrainlab.isp.formats:read_bayer_png",
             "NTIRE 2026 packed .npy (H, W, 4: R G G B)": "pretrainlab.isp.formats:read_packed_npy",
             "camera RAW (DNG, CR2, NEF, ARW, ...; rawpy)": "pretrainlab.isp.formats:read_camera_raw",
             "sRGB target (PNG / JPEG)": "pretrainlab.isp.formats:read_rgb",
             "paired split (same-stem RAW / RGB)": "pretrainlab.isp.formats:PairedISP",
             "unpaired split (RAW folder + separate RGB folder)": "pretrainlab.isp.formats:UnpairedISP"},
    reproduce_help="conventional ISP vs paired / unpaired generators, paired verdicts over seeds",
    examples={"pretrain": "pretrainlab isp pretrain --config rmfanet_tiny_unpaired --profile tiny",
              "finetune": "pretrainlab isp finetune --init runs/isp/<run> --config efficientisp_paired --data /data/UltraISP",
              "eval": "pretrainlab isp eval --ckpt Efficient_ISP_unpaired_step_27220.pth --data /data/UltraISP",
              "demo": "pretrainlab isp demo --weights RMFA_TINY_unpaired_step_48270.pth --arch rmfanet_tiny"},
)
load = SPEC.load
synthetic_data = SPEC.synthetic_data


def pretrain(cfg: Any, data: Path, run: Path, resume: bool = False, nets: Any = None, datasets: Any = None) -> Any:
    """Train one generator (``cfg.loss.mode``: paired / paired_noadv / unpaired / warmstart).

    ``nets`` (:func:`feature_nets`) and ``datasets`` (:func:`datasets`) may be passed in to reuse them
    across runs. Returns ``(task, TrainResult)``.
    """
    from pretrainlab.isp.unpaired_training import pretrain as _pretrain

    return _pretrain(cfg, Path(data), Path(run), resume=resume, nets=nets, datasets=datasets)


def feature_nets(cfg: Any, data: Path) -> Any:
    """The frozen feature networks of the losses for ``cfg.features`` (local weights, or the project's, cached)."""
    from pretrainlab.isp.feature_networks import load_feature_nets

    return load_feature_nets(cfg.features, Path(data), seed=0, device=cfg.train.device, progress=False)


def datasets(cfg: Any, data: Path) -> tuple[Any, Any]:
    """``(training set for cfg.loss.mode, paired test split or None)``."""
    from pretrainlab.isp.unpaired_training import build_datasets

    return build_datasets(cfg, Path(data))


def score(render: Any, pairs: Any, cfg: Any) -> dict[str, float]:
    """Metrics of ``render((B, 4, h, w) normalised RAW)`` on a paired split, scored as the reference does."""
    from pretrainlab.isp.metrics import evaluate_generator

    return evaluate_generator(render, pairs, quantized=cfg.eval.quantize)


def conventional_render(pairs: Any, cfg: Any) -> Any:
    """The reference pipeline as a ``render`` of :func:`score`: normalised RAW -> counts -> conventional ISP."""
    import torch

    from pretrainlab.isp.bayer import denormalise
    from pretrainlab.isp.conventional_isp import reference_render

    def render(raw: torch.Tensor) -> torch.Tensor:
        return reference_render(denormalise(raw, pairs.norm), pairs.pattern, cfg.conventional)

    return render


def count_params(gen: Any) -> int:
    from pretrainlab.isp.generators import count_params as _count

    return _count(gen)


def build_generator(name: str) -> Any:
    """An untrained generator by name (efficientisp | robustisp | rmfanet_tiny)."""
    from pretrainlab.isp.generators import build_generator as _build

    return _build(name)


def gmacs_fullhd(gen: Any) -> float:
    """Multiply-accumulates (G) of one 1920x1080 output frame."""
    from pretrainlab.isp.generators import count_macs

    return count_macs(gen, (540, 960)) / 1e9


def random_task(cfg: Any, out_hw: tuple[int, int], paper_vit: bool = False) -> Any:
    """An ``ISPTask`` with randomly initialised feature networks (for benchmarks: weights do not change the cost).

    ``paper_vit``: the colour branch uses the paper's ViT-B/16 at 224 instead of the project ViT.
    """
    from pretrainlab.isp.feature_networks import FeatureNets, build_vit
    from pretrainlab.isp.unpaired_training import ISPTask

    nets = FeatureNets(cfg.features)
    if paper_vit:
        nets.vit, nets.vit_size = build_vit(cfg.features, paper_size=True), 224
    return ISPTask(cfg, nets.freeze(), out_hw=out_hw)


def finetune(cfg: Any, data: Path, run: Path, init: Path | None = None, resume: bool = False) -> Any:
    """Continue training a generator from ``init`` (a run, or a reference ``.pth``) on ``data``.

    ``init`` becomes ``model.init`` (a warm start; e.g. unpaired -> paired on a new camera).
    """
    import dataclasses

    if init is not None:
        cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, init=str(init)))
    return pretrain(cfg, data, run, resume=resume)


def load_task(ckpt: Path) -> tuple[Any, Any]:
    """A run / checkpoint -> ``(generator in eval mode, its config)``."""
    from pretrainlab.isp.unpaired_training import load_generator

    gen, cfg, _ = load_generator(Path(ckpt))
    return gen, cfg


def load_renderer(ckpt: Path | None = None, weights: Path | None = None, arch: str | None = None,
                  conventional: bool = False, norm: str | None = None) -> Any:
    """What renders a RAW: a project checkpoint, the reference's released weights (``--arch`` optional:
    read from the file), or the conventional ISP (see :mod:`pretrainlab.isp.render`)."""
    from pretrainlab.isp.render import make_renderer

    return make_renderer(ckpt, weights, arch, conventional, norm)


def render(inp: Path, out: Path, ckpt: Path | None = None, weights: Path | None = None, arch: str | None = None,
           conventional: bool = False, norm: str | None = None, pattern: str = "auto") -> list[Path]:
    """Render a RAW file or a folder of them to ``out/<stem>.png``; returns the written files."""
    from pretrainlab.isp.render import render_path

    return render_path(Path(inp), Path(out), load_renderer(ckpt, weights, arch, conventional, norm), pattern)


def render_file(path: Path, renderer: Any, pattern: str = "auto") -> tuple[Any, Any]:
    """One RAW file -> ``((H, W, 3) uint8 render, the RawFrame read)`` (the demo's prediction)."""
    from pretrainlab.isp.render import render_file as _render_file

    return _render_file(Path(path), renderer, pattern)


def evaluate(ckpt: Path, data: Path | None = None, split: str = "test") -> dict[str, float]:
    """PSNR / SSIM / MS-SSIM / Delta-E 2000 (+ LPIPS) of a checkpoint on a paired split.

    ``ckpt``: a project run / checkpoint, or a reference ``.pth`` (architecture read from the file;
    the reference preprocessing). Predictions are scored as the 8-bit PNGs the reference saves.
    """
    from pretrainlab.isp.bayer import REFERENCE_NORM
    from pretrainlab.isp.formats import PairedISP
    from pretrainlab.isp.generators import count_macs, count_params, load_reference_weights
    from pretrainlab.isp.metrics import evaluate_generator, load_lpips

    ckpt = Path(ckpt)
    if ckpt.is_file() and ckpt.suffix in (".pth", ".pt"):
        gen = load_reference_weights(ckpt).eval()
        arch = str(gen.arch)
        cfg = load(f"{arch}_unpaired", None, [])
        norm = REFERENCE_NORM[arch]
    else:
        gen, cfg = load_task(ckpt)
        norm = cfg.data.norm
    data = Path(data) if data else synthetic_data(cfg.data.profile if cfg.data.profile != "full" else "tiny")
    pairs = PairedISP(data, split, norm, cfg.data.bayer_pattern, cfg.data.max_test)
    lp = load_lpips(cfg.features.alexnet_weights, cfg.eval.lpips_weights) if cfg.eval.lpips_weights else None
    metrics = evaluate_generator(gen, pairs, quantized=cfg.eval.quantize, lpips=lp)
    metrics.update(params=float(count_params(gen)), GMACs_FullHD=count_macs(gen, (540, 960)) / 1e9)
    return metrics
