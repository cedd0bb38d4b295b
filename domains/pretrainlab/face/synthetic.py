"""Parametric synthetic faces written in the real formats (identity folders, LFW pairs.txt,
TinyFace probe / gallery / distractor lists).

No identity-labelled face set ships offline, so the generator draws faces from an *identity code*
(head shape, skin tone, eye / nose / mouth geometry, brows, hair style and colour, glasses, beard)
and renders each image with *per-image nuisance* (in-plane pose and yaw shift, expression, lighting
direction and strength, background colour and texture, partial occlusion). Low-resolution images
follow the paper's data (TinyFace / BRIAR are low-resolution faces up-sampled to the network size):
down-sample to 16-24 px (probes) with Gaussian blur, noise and JPEG, then up-sample back to 112 px.

Layout written by :func:`generate` (each part is a format the readers in ``formats.py`` accept)::

    train_hr/<identity>/<n>.png          high-resolution pre-training identities ("WebFace" stage)
    train_lr/train.rec, train.idx        mixed-resolution fine-tuning identities as insightface MXNet RecordIO
                                         (the TinyFace training pack the reference trains from)
    verify/<name>/<name>_0001.png        LFW layout, disjoint identities
    verify/pairs.txt                     LFW pairs.txt: "F N" header, per fold N genuine + N impostor
    verify.bin                           the same pairs as an insightface verification .bin (same PNG bytes)
    tinyface/Probe/<id>_<k>.png          LR probes (16-24 px, degraded, up-sampled)
    tinyface/Gallery_Match/<id>_<k>.png  HR gallery images of the probe identities
    tinyface/Gallery_Distractor/<k>.png  HR distractors (other identities)
    tinyface/probe.txt, gallery_match.txt, gallery_distractor.txt   "<relative path> <label>"
"""

from __future__ import annotations

import dataclasses
import io
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from pretrainlab.face.formats import write_bin, write_recordio

RENDER = 112  # alignment-free face crops at 112x112 (insightface convention)
SUPER = 2  # render at 2x then downsample (anti-aliasing)


@dataclasses.dataclass
class Profile:
    pretrain_ids: int
    pretrain_imgs: int
    finetune_ids: int
    finetune_imgs: int
    verify_ids: int
    verify_imgs: int
    pair_folds: int
    pairs_per_fold: int  # genuine pairs per fold (and as many impostor pairs)
    tinyface_ids: int
    probes_per_id: int
    gallery_per_id: int
    distractors: int
    finetune_lr_px: tuple[int, int] = (12, 40)  # fine-tuning resolutions (TinyFace: mixed, mostly < 24 px)
    finetune_hr_fraction: float = 0.25  # share of fine-tuning images kept at full resolution
    probe_px: tuple[int, int] = (16, 24)  # issue: LR probes by downsampling to 16-24 px


PROFILES: dict[str, Profile] = {
    "smoke": Profile(12, 4, 8, 4, 10, 4, 2, 6, 6, 2, 1, 6),
    "tiny": Profile(150, 10, 80, 8, 60, 5, 10, 30, 150, 4, 1, 300),  # 600 LR probes: rank-1 in steps of 0.17 points
    "full": Profile(2000, 20, 1000, 10, 500, 6, 10, 300, 500, 4, 1, 2000),
}


# ------------------------------------------------------------------ identity code and nuisance
def identity_code(rng: np.random.Generator) -> dict[str, float]:
    """One identity: geometry, colours and features, each a scalar drawn once per identity."""
    skin = rng.uniform([0.35, 0.22, 0.15], [0.98, 0.85, 0.72])
    skin = np.sort(skin)[::-1] * rng.uniform(0.85, 1.0)  # red >= green >= blue: skin-like
    return {
        "head_w": rng.uniform(0.30, 0.40), "head_h": rng.uniform(0.40, 0.50), "jaw": rng.uniform(0.0, 1.0),
        "skin_r": skin[0], "skin_g": skin[1], "skin_b": skin[2],
        "eye_y": rng.uniform(-0.10, 0.02), "eye_dx": rng.uniform(0.11, 0.18), "eye_r": rng.uniform(0.028, 0.05),
        "iris": rng.uniform(0, 1), "eye_tilt": rng.uniform(-0.25, 0.25),
        "brow_dy": rng.uniform(0.05, 0.11), "brow_w": rng.uniform(0.010, 0.03), "brow_tilt": rng.uniform(-0.3, 0.3),
        "nose_len": rng.uniform(0.08, 0.18), "nose_w": rng.uniform(0.03, 0.08),
        "mouth_y": rng.uniform(0.17, 0.27), "mouth_w": rng.uniform(0.07, 0.16), "lip": rng.uniform(0.01, 0.03),
        "hair_style": float(rng.integers(0, 5)), "hair_r": rng.uniform(0.02, 0.6), "hair_g": rng.uniform(0.5, 0.9),
        "hair_b": rng.uniform(0.4, 0.9), "glasses": float(rng.random() < 0.25), "beard": float(rng.random() < 0.25),
        "mole_x": rng.uniform(-0.2, 0.2), "mole_y": rng.uniform(-0.1, 0.3), "mole": float(rng.random() < 0.3),
    }


def nuisance(rng: np.random.Generator) -> dict[str, float]:
    """Per-image nuisance: pose, expression, lighting, background, occlusion."""
    return {
        "roll": rng.normal(0, 8), "yaw": rng.normal(0, 0.035), "dy": rng.normal(0, 0.02), "scale": rng.uniform(0.92, 1.08),
        "smile": rng.normal(0, 0.6), "eye_open": rng.uniform(0.5, 1.0), "brow_raise": rng.normal(0, 0.012),
        "light_dir": rng.uniform(0, 2 * math.pi), "light": rng.uniform(0.0, 0.45), "gain": rng.uniform(0.75, 1.15),
        "bg_r": rng.uniform(0, 1), "bg_g": rng.uniform(0, 1), "bg_b": rng.uniform(0, 1), "bg_tex": rng.uniform(0, 0.15),
        "occl": float(rng.random() < 0.15), "occl_x": rng.uniform(-0.3, 0.3), "occl_y": rng.uniform(-0.2, 0.3),
        "occl_s": rng.uniform(0.12, 0.25),
    }


def _c(rgb: tuple[float, float, float] | np.ndarray) -> tuple[int, int, int]:
    return tuple(int(np.clip(v, 0, 1) * 255) for v in rgb)  # type: ignore[return-value]


def render_face(code: dict[str, float], nz: dict[str, float], rng: np.random.Generator) -> Image.Image:
    """Draw one 112x112 RGB face of identity ``code`` under nuisance ``nz``."""
    S = RENDER * SUPER
    img = Image.new("RGB", (S, S), _c((nz["bg_r"], nz["bg_g"], nz["bg_b"])))
    d = ImageDraw.Draw(img)
    cx, cy, sc = S / 2 + nz["yaw"] * S, S / 2 + nz["dy"] * S, nz["scale"] * S

    def P(x: float, y: float, yaw_k: float = 1.0) -> tuple[float, float]:  # face coords -> pixels; features shift with yaw
        return cx + (x + nz["yaw"] * yaw_k) * sc, cy + y * sc

    def E(x: float, y: float, rx: float, ry: float, fill: tuple[int, int, int], k: float = 1.0) -> None:
        (px, py) = P(x, y, k)
        d.ellipse([px - rx * sc, py - ry * sc, px + rx * sc, py + ry * sc], fill=fill)

    skin = np.array([code["skin_r"], code["skin_g"], code["skin_b"]])
    hair = np.array([code["hair_r"], code["hair_r"] * code["hair_g"], code["hair_r"] * code["hair_g"] * code["hair_b"]])
    hw, hh, style = code["head_w"], code["head_h"], int(code["hair_style"])
    if style in (3, 4):  # long hair behind the head
        E(0, 0.05, hw * 1.18, hh * 1.05, _c(hair), 0.3)
    E(-hw * 0.98, 0.0, 0.05, 0.08, _c(skin * 0.92), 0.5)  # ears
    E(hw * 0.98, 0.0, 0.05, 0.08, _c(skin * 0.92), 0.5)
    E(0, 0, hw, hh, _c(skin), 0.5)  # head
    jaw = code["jaw"]  # square-ish jaw: a wider lower face
    E(0, hh * 0.45, hw * (0.75 + 0.2 * jaw), hh * 0.55, _c(skin), 0.5)
    if code["beard"]:
        E(0, hh * 0.62, hw * 0.7, hh * 0.35, _c(hair * 0.8), 0.8)
        E(0, code["mouth_y"], code["mouth_w"] * 1.1, 0.05, _c(skin), 1.0)
    if style in (1, 2, 3):  # cap of hair
        E(0, -hh * 0.78, hw * 1.02, hh * 0.42, _c(hair), 0.4)
    if style == 2:  # fringe
        E(-hw * 0.3, -hh * 0.55, hw * 0.55, hh * 0.2, _c(hair), 0.5)
    # eyes, iris, brows
    iris = np.array([0.1 + 0.4 * code["iris"], 0.15 + 0.35 * (1 - code["iris"]), 0.1 + 0.5 * code["iris"] ** 2])
    for side in (-1, 1):
        ex, ey = side * code["eye_dx"], code["eye_y"] + side * code["eye_tilt"] * 0.04
        er = code["eye_r"]
        E(ex, ey, er * 1.4, er * nz["eye_open"], (240, 240, 235), 1.0)
        E(ex, ey, er * 0.7, er * 0.7 * nz["eye_open"], _c(iris), 1.0)
        E(ex, ey, er * 0.3, er * 0.3 * nz["eye_open"], (15, 15, 15), 1.0)
        by = ey - code["brow_dy"] - nz["brow_raise"]
        tilt = code["brow_tilt"] * side * 0.05
        p0, p1 = P(ex - er * 1.6, by + tilt), P(ex + er * 1.6, by - tilt)
        d.line([p0, p1], fill=_c(hair * 0.7), width=max(1, int(code["brow_w"] * sc)))
    if code["glasses"]:
        for side in (-1, 1):
            ex, ey, er = side * code["eye_dx"], code["eye_y"], code["eye_r"] * 2.0
            (px, py) = P(ex, ey)
            d.ellipse([px - er * sc, py - er * 0.8 * sc, px + er * sc, py + er * 0.8 * sc], outline=(20, 20, 20),
                      width=max(1, int(0.012 * sc)))
        d.line([P(-code["eye_dx"] + code["eye_r"] * 2, code["eye_y"]), P(code["eye_dx"] - code["eye_r"] * 2, code["eye_y"])],
               fill=(20, 20, 20), width=max(1, int(0.01 * sc)))
    # nose
    nl, nw = code["nose_len"], code["nose_w"]
    d.polygon([P(0, code["eye_y"] + 0.04, 1.2), P(-nw, code["eye_y"] + 0.04 + nl, 1.2), P(nw, code["eye_y"] + 0.04 + nl, 1.2)],
              fill=_c(skin * 0.8))
    # mouth with expression (smile bends the corners)
    mw, my, smile = code["mouth_w"], code["mouth_y"], nz["smile"]
    pts = [P(mw * t, my - smile * 0.03 * (1 - t * t) + 0.0, 1.0) for t in np.linspace(-1, 1, 9)]
    d.line(pts, fill=_c((0.55, 0.15, 0.18)), width=max(1, int(code["lip"] * sc)))
    if code["mole"]:
        E(code["mole_x"], code["mole_y"], 0.012, 0.012, (60, 35, 25), 1.0)
    if nz["occl"]:  # partial occlusion: a grey block (hand, scarf, sticker)
        E(nz["occl_x"], nz["occl_y"], nz["occl_s"], nz["occl_s"] * 0.8, _c((0.5, 0.5, 0.5) * np.ones(3) * rng.uniform(0.3, 1.2)), 0.0)
    img = img.rotate(nz["roll"], resample=Image.BILINEAR, fillcolor=_c((nz["bg_r"], nz["bg_g"], nz["bg_b"])))
    img = img.resize((RENDER, RENDER), Image.LANCZOS)
    # lighting: a directional gradient, global gain, background texture noise
    a = np.asarray(img).astype(np.float32) / 255.0
    yy, xx = np.mgrid[0:RENDER, 0:RENDER] / RENDER - 0.5
    grad = 1.0 + nz["light"] * (np.cos(nz["light_dir"]) * xx + np.sin(nz["light_dir"]) * yy) * 2
    a = a * grad[..., None] * nz["gain"] + rng.normal(0, 0.01 + nz["bg_tex"] * 0.1, a.shape)
    return Image.fromarray((np.clip(a, 0, 1) * 255).astype(np.uint8))


def degrade(img: Image.Image, px: int, rng: np.random.Generator, size: int = RENDER) -> Image.Image:
    """Low-resolution version: blur, down-sample to ``px``, noise, JPEG, up-sample back to ``size``."""
    blur = rng.uniform(0.3, 1.2) * RENDER / px / 3
    small = img.filter(ImageFilter.GaussianBlur(blur)).resize((px, px), Image.BILINEAR)
    a = np.asarray(small).astype(np.float32) + rng.normal(0, rng.uniform(1, 6), (px, px, 3))
    small = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
    buf = io.BytesIO()
    small.save(buf, format="JPEG", quality=int(rng.integers(30, 80)))
    buf.seek(0)
    return Image.open(buf).convert("RGB").resize((size, size), Image.BICUBIC)


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _write_identity_folders(root: Path, codes: list[dict[str, float]], n_imgs: int, rng: np.random.Generator,
                            names: list[str], lr: tuple[int, int] | None = None, hr_fraction: float = 1.0,
                            bar: object | None = None) -> None:
    for name, code in zip(names, codes):
        folder = root / name
        folder.mkdir(parents=True)
        for k in range(n_imgs):
            img = render_face(code, nuisance(rng), rng)
            if lr is not None and rng.random() >= hr_fraction:
                img = degrade(img, int(rng.integers(lr[0], lr[1] + 1)), rng)
            img.save(folder / f"{k:04d}.png")
            if bar is not None:
                bar.update(1)  # type: ignore[attr-defined]


def generate(out: Path, profile: str = "tiny", seed: int = 0) -> None:
    """Write the whole synthetic face dataset of ``profile`` into the (empty) folder ``out``."""
    from tqdm.auto import tqdm

    if profile not in PROFILES:
        raise ValueError(f"unknown profile '{profile}'; use one of {list(PROFILES)}")
    p = PROFILES[profile]
    rng = np.random.default_rng(seed)
    out = Path(out)
    n_ids = p.pretrain_ids + p.finetune_ids + p.verify_ids + p.tinyface_ids + p.distractors
    codes = [identity_code(rng) for _ in range(n_ids)]
    total = (p.pretrain_ids * p.pretrain_imgs + p.finetune_ids * p.finetune_imgs + p.verify_ids * p.verify_imgs
             + p.tinyface_ids * (p.probes_per_id + p.gallery_per_id) + p.distractors)
    bar = tqdm(total=total, desc=f"face data ({profile})", unit="img")
    i = 0
    pre, i = codes[i:i + p.pretrain_ids], i + p.pretrain_ids
    ft, i = codes[i:i + p.finetune_ids], i + p.finetune_ids
    ver, i = codes[i:i + p.verify_ids], i + p.verify_ids
    tf, i = codes[i:i + p.tinyface_ids], i + p.tinyface_ids
    dis = codes[i:i + p.distractors]
    _write_identity_folders(out / "train_hr", pre, p.pretrain_imgs, rng, [f"id{j:05d}" for j in range(len(pre))], bar=bar)
    rec_images, rec_labels = [], []
    for j, code in enumerate(ft):  # fine-tuning set: insightface RecordIO (the reference's TinyFace .rec)
        for _k in range(p.finetune_imgs):
            img = render_face(code, nuisance(rng), rng)
            if rng.random() >= p.finetune_hr_fraction:
                img = degrade(img, int(rng.integers(p.finetune_lr_px[0], p.finetune_lr_px[1] + 1)), rng)
            rec_images.append(_png(img))
            rec_labels.append(j)
            bar.update(1)
    write_recordio(out / "train_lr", rec_images, rec_labels)
    # LFW layout + pairs.txt
    vroot = out / "verify"
    vnames = [f"Person_{j:04d}" for j in range(len(ver))]
    for name, code in zip(vnames, ver):
        (vroot / name).mkdir(parents=True)
        for k in range(p.verify_imgs):
            render_face(code, nuisance(rng), rng).save(vroot / name / f"{name}_{k + 1:04d}.png")
            bar.update(1)
    lines = [f"{p.pair_folds}\t{p.pairs_per_fold}"]
    for _ in range(p.pair_folds):
        for _ in range(p.pairs_per_fold):
            n = vnames[int(rng.integers(len(vnames)))]
            a, b = rng.choice(p.verify_imgs, 2, replace=False) + 1
            lines.append(f"{n}\t{a}\t{b}")
        for _ in range(p.pairs_per_fold):
            n1, n2 = rng.choice(len(vnames), 2, replace=False)
            lines.append(f"{vnames[n1]}\t{int(rng.integers(p.verify_imgs)) + 1}\t{vnames[n2]}\t{int(rng.integers(p.verify_imgs)) + 1}")
    (vroot / "pairs.txt").write_text("\n".join(lines) + "\n")
    bins, issame = [], []  # the same pairs as an insightface .bin (bins[2i], bins[2i+1], issame[i])
    for line in lines[1:]:
        f = line.split("\t")
        a_img, b_img = ((f[0], f[1]), (f[0], f[2])) if len(f) == 3 else ((f[0], f[1]), (f[2], f[3]))
        for name, k in (a_img, b_img):
            bins.append((vroot / name / f"{name}_{int(k):04d}.png").read_bytes())
        issame.append(len(f) == 3)
    write_bin(out / "verify.bin", bins, issame)
    # TinyFace layout: LR probes vs HR gallery + distractors
    troot = out / "tinyface"
    for sub in ("Probe", "Gallery_Match", "Gallery_Distractor"):
        (troot / sub).mkdir(parents=True)
    probe, gal, dist = [], [], []
    for j, code in enumerate(tf):
        label = j + 1
        for k in range(p.probes_per_id):
            img = degrade(render_face(code, nuisance(rng), rng), int(rng.integers(p.probe_px[0], p.probe_px[1] + 1)), rng)
            rel = f"Probe/{label}_{k + 1}.png"
            img.save(troot / rel)
            probe.append(f"{rel} {label}")
            bar.update(1)
        for k in range(p.gallery_per_id):
            rel = f"Gallery_Match/{label}_{k + 1}.png"
            render_face(code, nuisance(rng), rng).save(troot / rel)
            gal.append(f"{rel} {label}")
            bar.update(1)
    for j, code in enumerate(dis):
        rel = f"Gallery_Distractor/{j + 1}.png"
        render_face(code, nuisance(rng), rng).save(troot / rel)
        dist.append(f"{rel} -1")
        bar.update(1)
    (troot / "probe.txt").write_text("\n".join(probe) + "\n")
    (troot / "gallery_match.txt").write_text("\n".join(gal) + "\n")
    (troot / "gallery_distractor.txt").write_text("\n".join(dist) + "\n")
    bar.close()
    print(f"wrote {total} synthetic face images ({profile}, seed {seed}) to {out}")
