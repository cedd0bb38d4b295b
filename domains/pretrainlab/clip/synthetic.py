"""Synthetic image-text data written in the real formats (open_clip CSV + webdataset shards, an
image folder with captions JSONL), with a zero-shot benchmark that has a held-out composition split,
and a retrieval benchmark.

The zero-shot classes are "<texture> <shape>" compositions (3 textures x 6 shapes = 18 classes):
attributes that survive the paper's augmentations. Colour is NOT part of a class: the augmented
views jitter hue by up to +-36 degrees and turn 20 % of them gray, so a colour-defined class would make
the benchmark work against the method; colour, size, count, position and background are nuisance
attributes (captioned, never asked for). Textures are drawn coarse enough (stripe / dot period of
~1/9 of the image) to survive the random resized crops and the blur at the model's input size.

Held-out compositions: ``UNSEEN`` (one per shape, each texture twice) never appear in the training
pairs, as images or captions; every shape and every texture still appears in training with other
partners, so the zero-shot "unseen" split measures compositional generalisation.

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

SHAPES = ("circle", "square", "triangle", "star", "cross", "diamond")
TEXTURES = ("plain", "striped", "dotted")
COLOURS = {"red": (220, 30, 30), "green": (30, 170, 50), "blue": (30, 60, 220), "yellow": (235, 215, 20),
           "purple": (140, 40, 170), "orange": (245, 140, 20), "cyan": (20, 200, 210)}
SIZES = ("small", "large")
POSITIONS = ("left", "right", "top", "bottom", "center")
BACKGROUNDS = ("white", "gray", "dark", "noisy", "gradient")
COUNTS = {1: "one", 2: "two"}
# (texture, shape) compositions held out of training: shape i with texture i mod 3
UNSEEN = tuple((TEXTURES[i % len(TEXTURES)], SHAPES[i]) for i in range(len(SHAPES)))

TEMPLATES = ("a photo of a {}.", "a picture of a {}.", "an image of a {}.", "a {} on a background.",
             "a drawing of a {}.", "a rendering of the {}.")

PROFILE_SIZES = {  # train pairs, zero-shot images per class, retrieval pairs, image side (px)
    "smoke": (96, 1, 32, 32),
    "tiny": (4000, 28, 256, 48),
    "full": (100_000, 50, 2000, 96),
}


def _sample_attrs(rng: random.Random, allow_unseen: bool, count: int | None = None) -> dict[str, Any]:
    while True:
        texture, shape = rng.choice(TEXTURES), rng.choice(SHAPES)
        if allow_unseen or (texture, shape) not in UNSEEN:
            break
    return {"shape": shape, "texture": texture, "colour": rng.choice(list(COLOURS)), "size": rng.choice(SIZES),
            "position": rng.choice(POSITIONS), "count": count or rng.choice((1, 1, 1, 2)),
            "background": rng.choice(BACKGROUNDS)}


def _polygon(shape: str, cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    if shape == "triangle":
        return [(cx + r * math.cos(a), cy + r * math.sin(a)) for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)]
    if shape == "diamond":
        return [(cx, cy - r), (cx + 0.7 * r, cy), (cx, cy + r), (cx - 0.7 * r, cy)]
    if shape == "star":
        pts = []
        for k in range(10):
            rr = r if k % 2 == 0 else 0.5 * r
            a = -math.pi / 2 + k * math.pi / 5
            pts.append((cx + rr * math.cos(a), cy + rr * math.sin(a)))
        return pts
    raise ValueError(shape)


def _mask(shape: str, s: int, cx: float, cy: float, r: float) -> Image.Image:
    m = Image.new("L", (s, s), 0)
    d = ImageDraw.Draw(m)
    if shape == "circle":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
    elif shape == "square":
        d.rectangle([cx - 0.85 * r, cy - 0.85 * r, cx + 0.85 * r, cy + 0.85 * r], fill=255)
    elif shape == "cross":
        w = 0.38 * r
        d.rectangle([cx - r, cy - w, cx + r, cy + w], fill=255)
        d.rectangle([cx - w, cy - r, cx + w, cy + r], fill=255)
    else:
        d.polygon(_polygon(shape, cx, cy, r), fill=255)
    return m


def _background(kind: str, s: int, rng: random.Random) -> np.ndarray:
    if kind == "white":
        return np.full((s, s, 3), 240, np.uint8)
    if kind == "gray":
        return np.full((s, s, 3), 128, np.uint8)
    if kind == "dark":
        return np.full((s, s, 3), 25, np.uint8)
    if kind == "noisy":
        nrng = np.random.default_rng(rng.randrange(2**31))
        return nrng.integers(70, 190, (s, s, 1), dtype=np.uint8).repeat(3, axis=2)
    ramp = np.linspace(30, 230, s, dtype=np.float32)  # gradient
    return np.broadcast_to(ramp[None, :, None], (s, s, 3)).astype(np.uint8)


def render(attrs: dict[str, Any], size: int, rng: random.Random) -> Image.Image:
    """Draw one scene (``size x size`` RGB): ``count`` copies of a textured shape on a background."""
    s = size
    arr = _background(attrs["background"], s, rng).astype(np.float32)
    col = np.array(COLOURS[attrs["colour"]], np.float32)
    # the texture's second colour contrasts with the object: dark on light colours, light on dark ones
    lum = 0.299 * col[0] + 0.587 * col[1] + 0.114 * col[2]
    ink = np.full(3, 20.0 if lum > 110 else 235.0, np.float32)
    n = attrs["count"]
    r = s * (0.34 if attrs["size"] == "large" else 0.25) / (1.0 if n == 1 else 1.45)
    anchor = {"left": (0.36, 0.5), "right": (0.64, 0.5), "top": (0.5, 0.36), "bottom": (0.5, 0.64),
              "center": (0.5, 0.5)}[attrs["position"]]
    offsets = [(0.0, 0.0)] if n == 1 else [((k - 0.5) * 2.1 * r / s, 0.0) for k in range(n)]
    if attrs["position"] in ("left", "right") and n > 1:
        offsets = [(0.0, o[0]) for o in offsets]
    period = max(4, round(s / 9))  # stripe / dot period: coarse enough to survive crops and blur
    yy, xx = np.mgrid[0:s, 0:s]
    phase = rng.randrange(period)
    if attrs["texture"] == "striped":
        pattern = ((yy + phase) % period) < max(2, period // 2)
    elif attrs["texture"] == "dotted":
        pattern = (((yy + phase) % period) < max(2, period // 2)) & (((xx + phase) % period) < max(2, period // 2))
    else:
        pattern = np.zeros((s, s), bool)
    for ox, oy in offsets:
        cx = min(max((anchor[0] + ox) * s + rng.uniform(-0.04, 0.04) * s, r), s - r)
        cy = min(max((anchor[1] + oy) * s + rng.uniform(-0.04, 0.04) * s, r), s - r)
        m = np.asarray(_mask(attrs["shape"], s, cx, cy, r), np.float32)[..., None] / 255.0
        fill = np.where(pattern[..., None], ink, col)
        arr = arr * (1 - m) + fill * m
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


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
_TEX_WORDS = {"plain": ("plain", "solid", "uniform"), "striped": ("striped", "banded", "lined"),
              "dotted": ("dotted", "spotted", "speckled")}
_FRAMES = ("{det} {noun} {pos} {bg}", "a photo of {det} {noun} {pos}, {bg}", "{det} {noun}, {pos} {bg}",
           "picture showing {det} {noun} {pos} {bg}", "{bg_cap}: {det} {noun} {pos}", "there is {det} {noun} {pos}")


def caption(attrs: dict[str, Any], rng: random.Random) -> str:
    """A paraphrased caption of a scene: texture and shape always, colour / size most of the time."""
    n = attrs["count"]
    words = [rng.choice(_SIZE_WORDS[attrs["size"]]) if rng.random() < 0.6 else "",
             attrs["colour"] if rng.random() < 0.7 else "", rng.choice(_TEX_WORDS[attrs["texture"]])]
    if rng.random() < 0.3:
        words[1], words[2] = words[2], words[1]
    noun = attrs["shape"] + ("es" if n > 1 and attrs["shape"] == "cross" else "s" if n > 1 else "")
    phrase = " ".join(w for w in [*words, noun] if w)
    det = ("an" if phrase[0] in "aeiou" else "a") if n == 1 else COUNTS[n]
    bg = rng.choice(_BG_PHRASES[attrs["background"]])
    frame = rng.choice(_FRAMES)
    text = frame.format(det=det, noun=phrase, pos=rng.choice(_POS_PHRASES[attrs["position"]]), bg=bg,
                        bg_cap=bg[0].upper() + bg[1:])
    if n > 1:
        text = text.replace("there is ", "there are ")
    return " ".join(text.split())


def class_names() -> list[str]:
    """Zero-shot classes: every "<texture> <shape>" composition (18)."""
    return [f"{t} {s}" for s in SHAPES for t in TEXTURES]


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
    names = class_names()
    total = n_train + per_class * len(names) + n_ret
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
    # --- zero-shot benchmark: one object per image, every composition, nuisance attributes random
    zs_lines = ["filepath\tlabel"]
    j = 0
    for _ in range(per_class):
        for ci, name in enumerate(names):
            texture, shape = name.split(" ")
            attrs = _sample_attrs(rng, allow_unseen=True, count=1)
            attrs.update(shape=shape, texture=texture)
            fn = f"images/{j:05d}.jpg"
            render(attrs, size, rng).save(out / "zeroshot" / fn, quality=92)
            zs_lines.append(f"{fn}\t{ci}")
            j += 1
            bar.update()
    (out / "zeroshot" / "labels.csv").write_text("\n".join(zs_lines) + "\n", encoding="utf-8")
    (out / "zeroshot" / "classes.json").write_text(json.dumps(
        {"classnames": names, "templates": list(TEMPLATES), "unseen": [f"{t} {s}" for t, s in UNSEEN]}, indent=1))
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
