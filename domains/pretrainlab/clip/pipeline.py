"""Pre-training, checkpoint loading, evaluation and export: the Python API behind the CLI verbs."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from pretrainlab.clip.config import ClipConfig

NAME = "clip"
RECIPES = Path(__file__).parent / "recipes"
ROWS = ("clip", "slip", "barlip", "byolip", "swalip", "rocket")  # one recipe per paper-table row


def load(config: str | None = None, profile: str | None = None, overrides: list[str] | tuple[str, ...] = ()) -> ClipConfig:
    from pretrainlab.core.config import load_config

    return load_config(ClipConfig, config or "rocket", recipes_dir=RECIPES, profile=profile, overrides=list(overrides))


def synthetic_data(profile: str = "tiny", seed: int = 0) -> Path:
    """The generated dataset for ``profile`` (cached)."""
    from pretrainlab.clip import synthetic
    from pretrainlab.core.data import cached_synthetic

    return cached_synthetic(NAME, synthetic.generate, profile, seed)


def build_dataset(cfg: ClipConfig, source: Path, task: Any, progress: bool = True) -> Any:
    from pretrainlab.clip.dataset import ImageTextDataset

    t, d = cfg.text_aug, cfg.data
    return ImageTextDataset(source, task.tokenizer, task.image_size, num_texts=task.num_texts,
                            text_aug=t.enabled, global_stopword_p=t.global_stopword_p, eda_weights=t.eda_weights,
                            eda_alpha=t.eda_alpha, fmt=d.format, preload=d.preload, max_bad_fraction=d.max_bad_fraction,
                            csv_img_key=d.csv_img_key, csv_caption_key=d.csv_caption_key,
                            csv_separator=d.csv_separator, progress=progress)


def export_open_clip(task: Any, path: Path) -> Path:
    """Write the plain open_clip ``state_dict`` (loads with ``open_clip.create_model(name)``)."""
    from pretrainlab.core.checkpoint import save_weights

    save_weights(task.clip, path, metadata={"open_clip_model": task.cfg.model.name})
    return path


def pretrain(cfg: ClipConfig, data: Path | None, run_dir: Path, resume: bool = False) -> tuple[Any, Any]:
    """Train ``cfg`` on ``data`` (default: the synthetic set of ``cfg.data.profile``) into ``run_dir``."""
    from pretrainlab.clip.task import CLIPRocketTask
    from pretrainlab.core.train import Trainer, seed_everything

    seed_everything(cfg.train.seed)
    task = CLIPRocketTask(cfg)
    root = Path(data) if data is not None else synthetic_data(cfg.data.profile)
    ds = build_dataset(cfg, root, task, progress=cfg.train.progress)
    result = Trainer(cfg.train, run_dir, full_config=cfg).fit(task, ds, resume=resume)
    if result.checkpoint is not None:
        export_open_clip(task, Path(run_dir) / "open_clip_model.safetensors")
    return task, result


def load_task(ckpt: str | Path, device: str = "cpu") -> Any:
    """Rebuild the Task from a checkpoint folder (run folder / checkpoints / step folder)."""
    from pretrainlab.clip.task import CLIPRocketTask
    from pretrainlab.core.checkpoint import find_checkpoint, load_weights, read_meta
    from pretrainlab.core.config import from_dict

    folder = find_checkpoint(Path(ckpt))
    cfg = from_dict(ClipConfig, read_meta(folder)["config"])
    task = CLIPRocketTask(cfg)
    load_weights(task, folder / "model.safetensors")
    return task.to(device).eval()


def benchmark_roots(data: Path) -> tuple[Path, Path]:
    """``(zeroshot/, retrieval/)`` of a dataset root."""
    from pretrainlab.core.data import DataError

    zs, ret = Path(data) / "zeroshot", Path(data) / "retrieval"
    for p in (zs, ret):
        if not p.exists():
            raise DataError(p, "benchmark folder not found (expected zeroshot/ and retrieval/ next to the data)")
    return zs, ret


def evaluate(task: Any, data: Path, cfg: ClipConfig | None = None, probe: bool = True, seed: int = 0) -> dict[str, float]:
    """Zero-shot (all heads), retrieval R@k and linear probe on the benchmarks under ``data``."""
    from pretrainlab.clip.dataset import load_retrieval, load_zeroshot
    from pretrainlab.clip.zeroshot import probe_eval, retrieval_eval, zero_shot_eval

    cfg = cfg or task.cfg
    zs_root, ret_root = benchmark_roots(data)
    zs = load_zeroshot(zs_root, task.image_size)
    ret = load_retrieval(ret_root, task.image_size)
    m = zero_shot_eval(task, zs, (cfg.eval.mix_weight, *cfg.eval.mix_sweep))
    m.update(retrieval_eval(task, ret))
    if probe:
        m.update(probe_eval(task, zs, seed))
    print(f"evaluated: zero-shot top-1 {m['zs_top1_linear']:.3f} (linear head), retrieval R@1 {m['R@1']:.3f}"
          + (f", linear probe {m['linear_probe']:.3f}" if "linear_probe" in m else ""), file=sys.stderr)
    return m
