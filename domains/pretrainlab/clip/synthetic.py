"""Synthetic image-text data written in the real formats (open_clip CSV + webdataset shards,
an image folder with captions JSONL), with a held-out zero-shot and a retrieval benchmark.

Scenes: 1-3 copies of one object on a background. Attributes: category (7 shapes), colour (7),
size (small / large), position (left / right / top / bottom / center), count (1-3), texture
(solid / striped / dotted), background (white / gray / dark / noisy / gradient). Captions come
from a grammar with paraphrase variety (word synonyms, several sentence frames, attribute order).

Held-out compositions: ``UNSEEN`` (category, colour) pairs never appear in the training set, as
images or captions; the zero-shot benchmark asks for all 49 "colour shape" classes, so its
unseen part measures compositional generalisation.

Layout written by :func:`generate`::

    train.csv                 tab-separated: filepath<TAB>title (open_clip --dataset-type csv)
    images/000000.jpg ...
    shards/train-000000.tar   the same samples as webdataset (000000.jpg + 000000.txt)
    zeroshot/classes.json     {"classnames", "templates", "unseen"}
    zeroshot/labels.csv       tab-separated: filepath<TAB>label (class index)
    zeroshot/images/*.jpg
    retrieval/captions.jsonl  {"file", "caption"} (image folder + captions JSONL)
    retrieval/*.jpg
"""

from __future__ import annotations

import io
import json
import math
import random
import sys
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from pretrainlab.clip.formats import ShardWriter

SHAPES = ("circle", "square", "triangle", "star", "cross", "ring", "diamond")
COLOURS = {"red": (220, 30, 30), "green": (30, 170, 50), "blue": (30, 60, 220), "yellow": (235, 215, 20),
           "purple": (140, 40, 170), "orange": (245, 140, 20), "cyan": (20, 200, 210)}
SIZES = ("small", "large")
POSITIONS = ("left", "right", "top", "bottom", "center")
TEXTURES = ("solid", "striped", "dotted")
BACKGROUNDS = ("white", "gray", "dark", "noisy", "gradient")
COUNTS = {1: "one", 2: "two", 3: "three"}
# (shape, colour) compositions held out of training: a Latin-square pattern, 1 per shape
UNSEEN = tuple((SHAPES[i], list(COLOURS)[(2 * i + 1) % len(COLOURS)]) for i in range(len(SHAPES)))

TEMPLATES = ("a photo of a {}.", "a picture of a {}.", "an image of a {}.", "a {} on a background.",
             "a drawing of a {}.", "a rendering of the {}.")

PROFILE_SIZES = {  # train pairs, zero-shot images per class, retrieval pairs, image side (px)
    "smoke": (96, 1, 32, 32),
    "tiny": (4000, 6, 256, 48),
    "full": (100_000, 20, 2000, 96),
}


def _sample_attrs(rng: random.Random, allow_unseen: bool, count: int | None = None) -> dict[str, Any]:
    while True:
        shape, colour = rng.choice(SHAPES), rng.choice(list(COLOURS))
        if allow_unseen or (shape, colour) not in UNSEEN:
            break
    bg = rng.choice(BACKGROUNDS)
    texture = "solid" if shape == "ring" else rng.choice(TEXTURES)  # a ring outline has no texture
    return {"shape": shape, "colour": colour, "size": rng.choice(SIZES), "position": rng.choice(POSITIONS),
            "count": count or rng.choice((1, 1, 2, 3)), "texture": texture, "background": bg}


def _polygon(shape: str, cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    if shape == "triangle":
        return [(cx + r * math.cos(a), cy + r * math.sin(a)) for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)]
    if shape == "diamond":
        return [(cx, cy - r), (cx + 0.7 * r, cy), (cx, cy + r), (cx - 0.7 * r, cy)]
    if shape == "star":
        pts = []
        for k in range(10):
            rr = r if k % 2 == 0 else 0.45 * r
            a = -math.pi / 2 + k * math.pi / 5
            pts.append((cx + rr * math.cos(a), cy + rr * math.sin(a)))
        return pts
    raise ValueError(shape)


def render(attrs: dict[str, Any], size: int, rng: random.Random) -> Image.Image:
    """Draw one scene (``size x size`` RGB)."""
    s = size
    bg = attrs["background"]
    if bg == "white":
        arr = np.full((s, s, 3), 245, np.uint8)
    elif bg == "gray":
        arr = np.full((s, s, 3), 128, np.uint8)
    elif bg == "dark":
        arr = np.full((s, s, 3), 25, np.uint8)
    elif bg == "noisy":
        nrng = np.random.default_rng(rng.randrange(2**31))
        arr = nrng.integers(60, 200, (s, s, 1), dtype=np.uint8).repeat(3, axis=2)
    else:  # gradient
        ramp = np.linspace(30, 230, s, dtype=np.float32)
        arr = np.broadcast_to(ramp[None, :, None], (s, s, 3)).astype(np.uint8)
    img = Image.fromarray(np.ascontiguousarray(arr))
    d = ImageDraw.Draw(img)
    col = COLOURS[attrs["colour"]]
    r = s * (0.22 if attrs["size"] == "large" else 0.11) / (1.0 if attrs["count"] == 1 else 1.25)
    anchor = {"left": (0.27, 0.5), "right": (0.73, 0.5), "top": (0.5, 0.27), "bottom": (0.5, 0.73),
              "center": (0.5, 0.5)}[attrs["position"]]
    n = attrs["count"]
    offsets = [(0.0, 0.0)] if n == 1 else [((k - (n - 1) / 2) * 2.3 * r / s, 0.0) for k in range(n)]
    if attrs["position"] in ("left", "right") and n > 1:
        offsets = [(0.0, o[0]) for o in offsets]
    for ox, oy in offsets:
        cx = (anchor[0] + ox) * s + rng.uniform(-0.03, 0.03) * s
        cy = (anchor[1] + oy) * s + rng.uniform(-0.03, 0.03) * s
        box = [cx - r, cy - r, cx + r, cy + r]
        shape = attrs["shape"]
        if shape == "circle":
            d.ellipse(box, fill=col)
        elif shape == "square":
            d.rectangle([cx - 0.85 * r, cy - 0.85 * r, cx + 0.85 * r, cy + 0.85 * r], fill=col)
        elif shape == "ring":
            d.ellipse(box, outline=col, width=max(2, int(r * 0.4)))
        elif shape == "cross":
            w = 0.35 * r
            d.rectangle([cx - r, cy - w, cx + r, cy + w], fill=col)
            d.rectangle([cx - w, cy - r, cx + w, cy + r], fill=col)
        else:
            d.polygon(_polygon(shape, cx, cy, r), fill=col)
        if attrs["texture"] == "striped" and shape != "ring":
            for y in range(int(cy - r), int(cy + r), max(2, int(r / 3))):
                d.line([(cx - r, y), (cx + r, y)], fill=(250, 250, 250) if bg == "dark" else (20, 20, 20), width=1)
        elif attrs["texture"] == "dotted" and shape != "ring":
            step = max(3, int(r / 2.5))
            for y in range(int(cy - r), int(cy + r), step):
                for x in range(int(cx - r), int(cx + r), step):
                    d.point((x, y), fill=(255, 255, 255))
    return img


# ------------------------------------------------------------------ caption grammar
_SIZE_WORDS = {"small": ("small", "little", "tiny"), "large": ("large", "big", "huge")}
_POS_PHRASES = {"left": ("on the left", "at the left side", "to the left"),
                "right": ("on the right", "at the right side", "to the right"),
                "top": ("at the top", "in the upper part", "near the top"),
                "bottom": ("at the bottom", "in the lower part", "near the bottom"),
                "center": ("in the center", "in the middle", "at the centre")}
_BG_PHRASES = {"white": ("on a white background", "against white"), "gray": ("on a gray background", "against gray"),
               "dark": ("on a dark background", "against black"), "noisy": ("on a noisy background", "over grainy noise"),
               "gradient": ("on a gradient background", "over a shaded gradient")}
_TEX_WORDS = {"solid": ("", "solid", "plain"), "striped": ("striped", "banded"), "dotted": ("dotted", "spotted")}
_FRAMES = ("{det} {noun} {pos} {bg}", "a photo of {det} {noun} {pos}, {bg}", "{det} {noun}, {pos} {bg}",
           "picture showing {det} {noun} {pos} {bg}", "{bg_cap}: {det} {noun} {pos}", "there is {det} {noun} {pos}")


def caption(attrs: dict[str, Any], rng: random.Random) -> str:
    """A paraphrased caption of a scene."""
    n = attrs["count"]
    words = [rng.choice(_SIZE_WORDS[attrs["size"]]), rng.choice(_TEX_WORDS[attrs["texture"]]), attrs["colour"]]
    if rng.random() < 0.3:
        words[0], words[1] = words[1], words[0]
    noun = attrs["shape"] + ("s" if n > 1 and not attrs["shape"].endswith("s") else "")
    if n > 1 and attrs["shape"] == "cross":
        noun = "crosses"
    phrase = " ".join(w for w in words + [noun] if w)
    det = ("an" if phrase[0] in "aeiou" else "a") if n == 1 else COUNTS[n]
    bg = rng.choice(_BG_PHRASES[attrs["background"]])
    frame = rng.choice(_FRAMES)
    text = frame.format(det=det, noun=phrase, pos=rng.choice(_POS_PHRASES[attrs["position"]]), bg=bg,
                        bg_cap=bg[0].upper() + bg[1:])
    return " ".join(text.split())


def class_names() -> list[str]:
    """Zero-shot classes: every "colour shape" composition (49)."""
    return [f"{c} {s}" for s in SHAPES for c in COLOURS]


def _jpeg(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=92)
    return buf.getvalue()


def generate(out: Path, profile: str = "tiny", seed: int = 0) -> dict[str, Any]:
    """Write the dataset (layout in the module docstring) into the empty folder ``out``."""
    from tqdm import tqdm

    if profile not in PROFILE_SIZES:
        raise ValueError(f"unknown profile '{profile}'; use one of {list(PROFILE_SIZES)}")
    n_train, per_class, n_ret, size = PROFILE_SIZES[profile]
    out = Path(out)
    rng = random.Random(seed)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "zeroshot" / "images").mkdir(parents=True, exist_ok=True)
    (out / "retrieval").mkdir(exist_ok=True)
    total = n_train + per_class * len(class_names()) + n_ret
    bar = tqdm(total=total, desc=f"generating clip/{profile}", unit="img", leave=False)
    # --- training pairs: CSV + webdataset shards of the same samples
    per_shard = 1000
    csv_lines = ["filepath\ttitle"]
    shards = ShardWriter(out / "shards", "train", per_shard)
    for i in range(n_train):
        attrs = _sample_attrs(rng, allow_unseen=False)
        img, cap = render(attrs, size, rng), caption(attrs, rng)
        data = _jpeg(img)
        key = f"{i:06d}"
        (out / "images" / f"{key}.jpg").write_bytes(data)
        csv_lines.append(f"images/{key}.jpg\t{cap}")
        shards.write(key, {"jpg": data, "txt": cap.encode("utf-8")})
        bar.update()
    shards.close()
    (out / "train.csv").write_text("\n".join(csv_lines) + "\n", encoding="utf-8")
    # --- zero-shot benchmark: one single object per image, every composition
    names = class_names()
    zs_lines = ["filepath\tlabel"]
    j = 0
    for rep in range(per_class):
        for ci, name in enumerate(names):
            colour, shape = name.split(" ")
            attrs = _sample_attrs(rng, allow_unseen=True, count=1)
            attrs.update(shape=shape, colour=colour)
            fn = f"images/{j:05d}.jpg"
            render(attrs, size, rng).save(out / "zeroshot" / fn, quality=92)
            zs_lines.append(f"{fn}\t{ci}")
            j += 1
            bar.update()
    (out / "zeroshot" / "labels.csv").write_text("\n".join(zs_lines) + "\n", encoding="utf-8")
    (out / "zeroshot" / "classes.json").write_text(json.dumps(
        {"classnames": names, "templates": list(TEMPLATES), "unseen": [f"{c} {s}" for s, c in UNSEEN]}, indent=1))
    # --- retrieval benchmark: image folder + captions.jsonl (unseen compositions allowed)
    lines = []
    for i in range(n_ret):
        attrs = _sample_attrs(rng, allow_unseen=True)
        fn = f"{i:05d}.jpg"
        render(attrs, size, rng).save(out / "retrieval" / fn, quality=92)
        lines.append(json.dumps({"file": fn, "caption": caption(attrs, rng)}))
        bar.update()
    (out / "retrieval" / "captions.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    bar.close()
    print(f"generated clip/{profile}: {n_train} train pairs (CSV + {math.ceil(n_train / per_shard)} shards), "
          f"{j} zero-shot images ({len(names)} classes, {len(UNSEEN)} unseen), {n_ret} retrieval pairs -> {out}",
          file=sys.stderr)
    return {"train": n_train, "zeroshot": j, "retrieval": n_ret}
