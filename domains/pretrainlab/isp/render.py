"""RAW -> RGB rendering (``pretrainlab isp render``): a project checkpoint, the reference's released
weights, or the conventional ISP.

As the reference's inference script (ref: pretrained/run_inference.py): the whole frame goes
through the generator at once (RMFA-Net's channel attention pools over the whole frame, so tiles
would change the result), the output is clamped to [0, 1] and ``x * 255`` is TRUNCATED to uint8,
saved as an RGB PNG. With released weights (``--weights REF.pth --arch A``) the RAW gets the
reference preprocessing of that architecture (``bayer.REFERENCE_NORM``: Fujifilm black levels for
EfficientISP / RobustISP, ``clamp(x - 63, 0) / 1023`` for RMFA-Net tiny) unless ``--norm`` says
otherwise; a project checkpoint uses the normalisation it was trained with; camera RAW files
(DNG, ...) always use their own black / white levels.

Outputs are written into a temporary folder and moved into ``--out`` only when every input has
rendered, so a failure leaves nothing behind. Output names are ``<stem>.png``; inputs that share a
stem (``0.dng``, ``0.npy``) keep their extension (``0.dng.png``, ``0.npy.png``). An output that
would overwrite an input is refused.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pretrainlab.core.config import ConfigError
from pretrainlab.core.data import DataError
from pretrainlab.isp.formats import NORMS, RAW_SUFFIXES, RawFrame, auto_norm, normalise_frame, read_raw


def to_uint8(img: torch.Tensor) -> np.ndarray:
    """``(3, H, W)`` -> ``(H, W, 3)`` uint8: clamp [0, 1], ``x * 255`` truncated (ref: save_generated_image)."""
    return (img.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).astype(np.uint8)


@dataclass
class Renderer:
    """What renders: ``gen`` (None: the conventional ISP), how its input is normalised, and a label."""

    gen: torch.nn.Module | None
    norm: str | None  # None: the file's auto normalisation
    label: str
    conventional: Any = None  # ConventionalISPConfig (None: reference defaults)
    kind: str = "conventional"  # conventional | checkpoint | reference

    @torch.no_grad()
    def __call__(self, frame: RawFrame, path: Path) -> torch.Tensor:
        """One RAW frame -> ``(3, 2h, 2w)`` in [0, 1] (whole frame)."""
        from pretrainlab.isp.conventional_isp import reference_render

        if self.gen is None:
            return reference_render(frame.counts[None], frame.pattern, self.conventional)[0].clamp(0, 1)
        norm = self.norm or auto_norm(path)
        x = normalise_frame(frame, norm)[None]
        if hasattr(self.gen, "pattern"):
            self.gen.pattern = frame.pattern
        p = next(self.gen.parameters())
        return self.gen(x.to(p.device, p.dtype)).float().clamp(0, 1)[0].cpu()


def make_renderer(ckpt: Path | None = None, weights: Path | None = None, arch: str | None = None,
                  conventional: bool = False, norm: str | None = None) -> Renderer:
    """Exactly one of ``conventional``, ``ckpt`` (a project run) or ``weights`` + ``arch`` (released weights)."""
    from pretrainlab.isp.bayer import REFERENCE_NORM
    from pretrainlab.isp.generators import GENERATORS, load_reference_weights

    chosen = [n for n, v in (("--conventional", conventional), ("--ckpt", ckpt), ("--weights", weights)) if v]
    if len(chosen) > 1:
        raise ConfigError(f"{' and '.join(chosen)}: give only one of --ckpt, --weights (with --arch) or --conventional")
    if not chosen:
        raise ConfigError("--ckpt: missing; give a trained run (--ckpt RUN), the reference's released weights "
                          "(--weights FILE.pth --arch NAME) or --conventional")
    if norm is not None and norm not in NORMS:
        raise ConfigError(f"--norm: '{norm}' is not allowed; allowed: {', '.join(NORMS)}")
    if norm == "auto":
        norm = None
    if arch is not None and not weights:
        raise ConfigError("--arch: only used with --weights (a project checkpoint knows its generator)")
    if conventional:
        return Renderer(None, None, "the conventional ISP (Menon 2007, WB, stretch, gamma; reference pipeline)")
    if weights:
        if arch is not None and arch not in GENERATORS:
            raise ConfigError(f"--arch: '{arch}' is not allowed; allowed: {', '.join(GENERATORS)}")
        gen = load_reference_weights(Path(weights), arch).eval()
        held = str(gen.arch)
        return Renderer(gen, norm or REFERENCE_NORM[held], f"the reference's released {held} weights "
                                                           f"{Path(weights).name}", kind="reference")
    from pretrainlab.isp.unpaired_training import load_generator

    assert ckpt is not None
    gen, cfg, _ = load_generator(Path(ckpt))
    trained = cfg.data.norm if cfg.data.norm != "auto" else None
    return Renderer(gen, norm or trained, f"checkpoint {ckpt} ({cfg.model.generator})", cfg.conventional, "checkpoint")


def _inputs(inp: Path) -> tuple[list[Path], list[str]]:
    """RAW files of a file / folder, and the names of folder PNGs skipped because they are not RAW mosaics."""
    from pretrainlab.core.guards import image_size

    inp = Path(inp)
    if not inp.exists():
        raise DataError(inp, "file or folder not found")
    if not inp.is_dir():
        return [inp], []
    files, skipped = [], []
    for p in sorted(inp.iterdir()):
        if not p.is_file() or p.suffix.lower() not in RAW_SUFFIXES or p.name.startswith("."):
            continue
        if p.suffix.lower() == ".png":
            try:
                mode = image_size(p)[2]
            except DataError:
                mode = ""
            if mode in ("RGB", "RGBA", "L", "P", "LA"):  # an 8-bit image next to the RAWs (e.g. a target)
                skipped.append(p.name)
                continue
        files.append(p)
    if not files:
        raise DataError(inp, f"no RAW files ({', '.join(RAW_SUFFIXES)})")
    return files, skipped


def output_names(files: list[Path]) -> list[str]:
    """``<stem>.png``; files sharing a stem keep their extension (``0.dng.png``)."""
    stems: dict[str, int] = {}
    for f in files:
        stems[f.stem] = stems.get(f.stem, 0) + 1
    return [f"{f.name}.png" if stems[f.stem] > 1 else f"{f.stem}.png" for f in files]


def render_path(inp: Path, out: Path, renderer: Renderer, pattern: str = "auto", progress: bool = True) -> list[Path]:
    """Render one RAW file or every RAW file of a folder to ``out/``; returns the written paths."""
    from PIL import Image
    from tqdm.auto import tqdm

    files, skipped = _inputs(Path(inp))
    names = output_names(files)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataError(out, "--out exists and is not a folder")
    inputs = {f.resolve() for f in files}
    for n in names:
        if (out / n).resolve() in inputs:
            raise DataError(out / n, "rendering would overwrite this input RAW file; choose another --out")
    anchor = out.absolute()
    while not anchor.exists():  # the temporary folder lives in the nearest existing folder: nothing is created
        anchor = anchor.parent  # outside it unless every input renders
    tmp = Path(tempfile.mkdtemp(dir=anchor, prefix=f".{out.name}.render-", suffix=".tmp"))
    written: list[Path] = []
    try:
        for f, name in tqdm(list(zip(files, names)), desc="render", unit="file", disable=not progress or len(files) < 2):
            img = renderer(read_raw(f, pattern), f)
            buf = io.BytesIO()
            Image.fromarray(to_uint8(img)).save(buf, format="PNG")
            (tmp / name).write_bytes(buf.getvalue())
        out.mkdir(parents=True, exist_ok=True)
        for name in names:
            os.replace(tmp / name, out / name)
            written.append(out / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    extra = f"; skipped {len(skipped)} non-RAW PNG(s): {', '.join(skipped[:5])}" if skipped else ""
    print(f"rendered {len(written)} RAW file(s) with {renderer.label} to {out}{extra}")
    return written


def render_file(path: Path, renderer: Renderer, pattern: str = "auto") -> tuple[np.ndarray, RawFrame]:
    """One RAW file -> ``((H, W, 3) uint8 render, the frame read)``."""
    frame = read_raw(Path(path), pattern)
    return to_uint8(renderer(frame, Path(path))), frame
