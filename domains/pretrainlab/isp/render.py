"""RAW -> RGB rendering with a trained generator or the conventional ISP (``pretrainlab isp render``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pretrainlab.core.data import DataError
from pretrainlab.isp.formats import RAW_SUFFIXES, load_raw


def render_tensor(packed: torch.Tensor, gen: torch.nn.Module | None, pattern: str = "RGGB", conventional_cfg=None,
                  tile: int = 512) -> torch.Tensor:
    """``(4, h, w)`` normalised packed RAW -> ``(3, 2h, 2w)`` in [0, 1]; learned renders are tiled."""
    from pretrainlab.isp.conventional_isp import conventional_isp

    x = packed[None].float()
    if gen is None:
        c = conventional_cfg
        kw = {} if c is None else {"demosaic": c.demosaic, "wb_gains": tuple(c.wb_gains), "gamma": c.gamma}
        return conventional_isp(x, pattern, **kw)[0]
    p = next(gen.parameters())
    x = x.to(p.device)
    h, w = x.shape[-2:]
    out = torch.zeros(3, 2 * h, 2 * w)
    pad = 8
    with torch.no_grad():
        for y0 in range(0, h, tile):
            for x0 in range(0, w, tile):
                ya, xa = max(0, y0 - pad), max(0, x0 - pad)
                yb, xb = min(h, y0 + tile + pad), min(w, x0 + tile + pad)
                o = gen(x[..., ya:yb, xa:xb]).float().clamp(0, 1)[0].cpu()
                ty, tx = min(tile, h - y0), min(tile, w - x0)
                out[:, 2 * y0:2 * (y0 + ty), 2 * x0:2 * (x0 + tx)] = \
                    o[:, 2 * (y0 - ya):2 * (y0 - ya + ty), 2 * (x0 - xa):2 * (x0 - xa + tx)]
    return out


def to_uint8(img: torch.Tensor) -> np.ndarray:
    return (img.clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)


def render_path(inp: Path, out: Path, ckpt: Path | None, conventional: bool = False, norm: str = "auto",
                pattern: str = "auto") -> int:
    """Render one RAW file or every RAW file of a folder to ``out/<stem>.png``."""
    from PIL import Image
    from tqdm.auto import tqdm

    from pretrainlab.core.io import atomic_write_bytes

    inp = Path(inp)
    if inp.is_dir():
        files = sorted(p for p in inp.iterdir() if p.suffix.lower() in RAW_SUFFIXES and not p.stem.endswith("_target"))
        if not files:
            raise DataError(inp, f"no RAW files ({', '.join(RAW_SUFFIXES)})")
    else:
        files = [inp]
    gen, cfg = None, None
    if not conventional:
        if ckpt is None:
            raise ValueError("--ckpt is required unless --conventional is given")
        from pretrainlab.isp.unpaired_training import load_generator

        gen, cfg, _ = load_generator(ckpt)
    Path(out).mkdir(parents=True, exist_ok=True)
    import io

    for f in tqdm(files, desc="render", unit="file"):
        packed, pat = load_raw(f, norm, pattern)
        img = render_tensor(packed, gen, pat, cfg.conventional if cfg else None)
        buf = io.BytesIO()
        Image.fromarray(to_uint8(img)).save(buf, format="PNG")
        atomic_write_bytes(Path(out) / f"{f.stem}.png", buf.getvalue())
    print(f"rendered {len(files)} RAW file(s) with {'the conventional ISP' if gen is None else ckpt} to {out}")
    return len(files)
