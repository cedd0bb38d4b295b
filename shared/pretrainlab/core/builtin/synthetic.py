"""The synthetic generator: shapes written as an ImageFolder of PNGs (``split/class/NNNNN.png``).

Classes are shape kinds; colour, size, position, rotation and background texture vary, so
colour is a nuisance factor and the shape is the signal a good representation should keep.
The reader of that layout is ``formats.ImageFolder`` (the same reader runs on a real ImageFolder).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CLASSES = ("circle", "square", "triangle", "cross", "ring", "bar")
PROFILE_SIZES = {"smoke": (8, 4), "tiny": (60, 30), "full": (1000, 200)}  # images per class: train, test
IMAGE_SIZE = 32


def draw_shape(kind: str, rng: np.random.Generator, size: int = IMAGE_SIZE) -> Image.Image:
    bg = rng.uniform(0, 0.5, 3)
    noise = rng.normal(0, 0.06, (size, size, 3))
    base = np.clip(bg[None, None] + noise, 0, 1)
    img = Image.fromarray((base * 255).astype(np.uint8))
    d = ImageDraw.Draw(img)
    col = tuple(int(c) for c in rng.uniform(110, 255, 3))
    r = rng.uniform(0.22, 0.38) * size
    cx, cy = rng.uniform(r, size - r, 2)
    ang = rng.uniform(0, 2 * math.pi)
    if kind == "circle":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=col)
    elif kind == "ring":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], outline=col, width=max(2, int(r / 3)))
    elif kind in ("square", "triangle"):
        n = 4 if kind == "square" else 3
        pts = [(cx + r * math.cos(ang + 2 * math.pi * i / n), cy + r * math.sin(ang + 2 * math.pi * i / n)) for i in range(n)]
        d.polygon(pts, fill=col)
    elif kind in ("cross", "bar"):
        arms = (0.0, math.pi / 2) if kind == "cross" else (0.0,)
        for a in arms:
            dx, dy = r * math.cos(ang + a), r * math.sin(ang + a)
            d.line([(cx - dx, cy - dy), (cx + dx, cy + dy)], fill=col, width=max(2, int(r / 2.5)))
    else:
        raise ValueError(f"unknown shape {kind}")
    return img


def generate(out: Path, profile: str = "tiny", seed: int = 0) -> None:
    """Write ``out/{train,test}/<class>/NNNNN.png`` (the torchvision ImageFolder layout)."""
    from tqdm.auto import tqdm

    n_train, n_test = PROFILE_SIZES[profile]
    rng = np.random.default_rng(seed)
    jobs = [(split, c, i) for split, n in (("train", n_train), ("test", n_test)) for c in CLASSES for i in range(n)]
    for split, c, i in tqdm(jobs, desc="shapes", unit="img", leave=False):
        p = Path(out) / split / c / f"{i:05d}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        draw_shape(c, rng).save(p)
    print(f"wrote {len(jobs)} shape images ({profile}) to {out}")
