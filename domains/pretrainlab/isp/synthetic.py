"""Synthetic RAW data by "unprocessing" real photographs (Brooks et al., CVPR 2019, Sec. 3).

The photographs that ship with scikit-image (and any user folder of JPEG / PNG) are inverted
through a camera pipeline: inverse tone (smoothstep) -> inverse gamma -> inverse colour matrix
(a fixed "phone camera" from Brooks' camera matrices) -> inverse white balance (per-image gains,
highlight preserving) -> RGGB mosaic -> shot + read noise -> black level 60, 10-bit counts.
Targets are the same scenes rendered in a different "DSLR camera style" (saturation, warm tint,
S-shaped tone). Each photo is split into three disjoint column zones: RAW training crops, the
disjoint unpaired target crops, and a held-out paired test set.

Output (Zurich RAW-to-RGB layout, plus camera-RAW samples)::

    train/huawei_raw/N.png  16-bit Bayer    train/canon/N.jpg   paired targets
    train/canon_unpaired/N.jpg              disjoint unpaired targets
    test/huawei_raw/N.png   test/canon/N.jpg held-out pairs
    samples/N.dng, samples/N.npy (NTIRE packed, R G G B), samples/N.png: larger RAW frames for render / demo
    isp_dataset.json        norm, Bayer pattern, black / white level, the camera
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import numpy as np

# profile -> (raw patch size, train pairs, unpaired targets, test pairs, sample frames, sample size)
PROFILES: dict[str, tuple[int, int, int, int, int, tuple[int, int]]] = {
    "smoke": (32, 24, 24, 8, 2, (96, 128)),
    "tiny": (128, 256, 256, 64, 4, (256, 384)),  # >= 128 px: AlexNet relu4 / VGG relu5_4 maps of 7x7 / 8x8
    "full": (448, 4000, 4000, 400, 8, (1088, 1920)),  # Zurich patch size
}
BLACK, WHITE = 60, 1023
# Brooks et al. 2019: XYZ -> camera matrices of four cameras
XYZ2CAMS = np.array([
    [[1.0234, -0.2969, -0.2266], [-0.5625, 1.6328, -0.0469], [-0.0703, 0.2188, 0.6406]],
    [[0.4913, -0.0541, -0.0202], [-0.613, 1.3513, 0.2906], [-0.1564, 0.2151, 0.7183]],
    [[0.838, -0.263, -0.0639], [-0.2887, 1.0725, 0.2496], [-0.0627, 0.1427, 0.5438]],
    [[0.6596, -0.2079, -0.0562], [-0.4782, 1.3016, 0.1933], [-0.097, 0.1581, 0.5181]]])
RGB2XYZ = np.array([[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750],
                    [0.0193339, 0.1191920, 0.9503041]])


def photos(extra: Path | None = None) -> list[np.ndarray]:
    """The colour photographs shipped with scikit-image (+ a user folder): list of ``(H, W, 3)`` uint8."""
    import skimage.data as d

    out = []
    missing = (ImportError, OSError, ValueError)  # an image needing a download (pooch) is skipped
    for name in ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry"):
        with contextlib.suppress(*missing):
            out.append(np.asarray(getattr(d, name)())[..., :3])
    with contextlib.suppress(*missing):
        left, right, _ = d.stereo_motorcycle()
        out += [left, right]
    if extra is not None:
        from pretrainlab.core.data import DataError
        from pretrainlab.core.guards import open_image

        folder = Path(extra)
        if not folder.is_dir():
            raise DataError(folder, "--photos: folder not found")
        found = [p for p in sorted(folder.rglob("*")) if p.is_file() and p.suffix.lower() in (".jpg", ".jpeg", ".png")]
        if not found:
            raise DataError(folder, "--photos: no JPEG / PNG photographs in this folder")
        for p in found:
            img = np.asarray(open_image(p, "RGB"))
            if min(img.shape[:2]) < 64:
                raise DataError(p, f"photograph of {img.shape[1]}x{img.shape[0]} is too small (at least 64x64)")
            out.append(img)
    return out


def camera_rgb2cam(rng: np.random.Generator) -> np.ndarray:
    """A random convex combination of Brooks' XYZ->camera matrices, rows normalised (3, 3)."""
    w = rng.uniform(1e-8, 1e8, size=4)
    w = w / w.sum()
    xyz2cam = np.tensordot(w, XYZ2CAMS, axes=1)
    rgb2cam = xyz2cam @ RGB2XYZ
    return rgb2cam / rgb2cam.sum(axis=-1, keepdims=True)


def unprocess(srgb: np.ndarray, rgb2cam: np.ndarray, rng: np.random.Generator,
              shot_range: tuple[float, float] = (1e-4, 3e-3)) -> tuple[np.ndarray, dict[str, float]]:
    """``(H, W, 3)`` sRGB float in [0, 1] -> ``(H, W)`` uint16 RGGB mosaic (10-bit, black 60)."""
    x = np.clip(srgb, 0.0, 1.0)
    x = 0.5 - np.sin(np.arcsin(1.0 - 2.0 * x) / 3.0)  # inverse smoothstep tone curve
    x = np.maximum(x, 1e-8) ** 2.2  # inverse gamma
    x = x @ rgb2cam.T  # inverse colour correction
    rgb_gain = 1.0 / rng.normal(0.8, 0.1)
    red, blue = rng.uniform(1.9, 2.4), rng.uniform(1.5, 1.9)
    gains = np.array([1.0 / red, 1.0, 1.0 / blue]) / rgb_gain
    gray = x.mean(axis=-1, keepdims=True)
    mask = (np.maximum(gray - 0.9, 0.0) / 0.1) ** 2
    safe = np.maximum(mask + (1.0 - mask) * gains, gains)  # highlight-preserving inverse white balance
    x = np.clip(x * safe, 0.0, 1.0)
    h, w = x.shape[:2]
    mos = np.empty((h, w))
    mos[0::2, 0::2] = x[0::2, 0::2, 0]
    mos[0::2, 1::2] = x[0::2, 1::2, 1]
    mos[1::2, 0::2] = x[1::2, 0::2, 1]
    mos[1::2, 1::2] = x[1::2, 1::2, 2]
    shot = float(np.exp(rng.uniform(np.log(shot_range[0]), np.log(shot_range[1]))))
    read = float(np.exp(2.18 * np.log(shot) + 1.2 + rng.normal(0.0, 0.26)))
    mos = mos + rng.normal(0.0, 1.0, mos.shape) * np.sqrt(np.maximum(mos * shot + read, 0.0))
    counts = np.clip(np.round(BLACK + np.clip(mos, 0, 1) * (WHITE - BLACK)), 0, WHITE).astype(np.uint16)
    return counts, {"red_gain": red, "blue_gain": blue, "rgb_gain": rgb_gain, "shot": shot, "read": read}


def dslr_style(srgb: np.ndarray) -> np.ndarray:
    """The target camera's look: +20 % saturation, warm tint, S-shaped tone. ``(H, W, 3)`` in [0, 1]."""
    x = np.clip(srgb, 0.0, 1.0)
    luma = x @ np.array([0.299, 0.587, 0.114])
    x = luma[..., None] + 1.2 * (x - luma[..., None])
    x = np.clip(x * np.array([1.04, 1.0, 0.93]), 0.0, 1.0)
    s = x * x * (3.0 - 2.0 * x)
    return np.clip(0.7 * x + 0.3 * s, 0.0, 1.0)


def _crop(img: np.ndarray, zone: tuple[float, float], size: int, rng: np.random.Generator) -> np.ndarray | None:
    """A random ``size`` crop (random scale 1 / 0.5, flips) inside the column zone ``[a, b)`` of ``img``."""
    h, w = img.shape[:2]
    scale = rng.choice([1.0, 0.5]) if min(h, w) * 0.5 >= size * 2 else 1.0
    s = round(size / scale)
    c0, c1 = int(zone[0] * w), int(zone[1] * w)
    if c1 - c0 < s or h < s:
        s = min(c1 - c0, h)
        if s < 16:  # zone too narrow in this photo: the caller draws another one
            return None
    y = int(rng.integers(0, h - s + 1))
    x = int(rng.integers(c0, c1 - s + 1))
    patch = img[y:y + s, x:x + s].astype(np.float32) / 255.0
    if s != size:
        from PIL import Image

        patch = np.asarray(Image.fromarray((patch * 255).astype(np.uint8)).resize((size, size), Image.BICUBIC),
                           dtype=np.float32) / 255.0
    if rng.random() < 0.5:
        patch = patch[:, ::-1]
    return np.ascontiguousarray(patch)


ZONES = {"train": (0.0, 0.45), "unpaired": (0.45, 0.8), "test": (0.8, 1.0)}


def _save_png16(path: Path, counts: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(counts.astype(np.uint16)).save(path)


def _save_rgb(path: Path, rgb: np.ndarray) -> None:
    from PIL import Image

    im = Image.fromarray((np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8))
    if path.suffix == ".jpg":
        im.save(path, quality=95)
    else:
        im.save(path)


def write_dng(path: Path, counts: np.ndarray, black: int = BLACK, white: int = WHITE) -> None:
    """A minimal RGGB CFA DNG (readable by rawpy / LibRaw) of a ``(H, W)`` uint16 mosaic."""
    import tifffile

    tags = [(50706, "B", 4, (1, 4, 0, 0), True), (50707, "B", 4, (1, 1, 0, 0), True),
            (33421, "H", 2, (2, 2), True), (33422, "B", 4, (0, 1, 1, 2), True),
            (50710, "B", 3, (0, 1, 2), True), (50711, "H", 1, 1, True),
            (50714, "H", 1, black, True), (50717, "H", 1, white, True),
            (50721, "2i", 9, (1, 1, 0, 1, 0, 1, 0, 1, 1, 1, 0, 1, 0, 1, 0, 1, 1, 1), True),
            (50728, "2I", 3, (1, 1, 1, 1, 1, 1), True), (50708, "s", 0, "pretrainlab synthetic phone", True)]
    tifffile.imwrite(path, counts.astype(np.uint16), photometric=32803, compression=None, extratags=tags,
                     subfiletype=0, metadata=None)


def generate(out: Path, profile: str = "tiny", seed: int = 0, extra_photos: Path | None = None) -> None:
    """Write the synthetic ISP dataset of ``profile`` into ``out`` (layout in the module docstring)."""
    import torch
    from tqdm.auto import tqdm

    from pretrainlab.isp.bayer import pack, packed_to_ntire

    if profile not in PROFILES:
        raise ValueError(f"unknown profile '{profile}'")
    size, n_train, n_unp, n_test, n_samples, sample_hw = PROFILES[profile]
    rng = np.random.default_rng(seed)
    imgs = photos(extra_photos)
    rgb2cam = camera_rgb2cam(np.random.default_rng(1234))  # one fixed phone camera for every profile
    out = Path(out)
    for d in ("train/huawei_raw", "train/canon", "train/canon_unpaired", "test/huawei_raw", "test/canon", "samples"):
        (out / d).mkdir(parents=True, exist_ok=True)
    jobs = [("train", i) for i in range(n_train)] + [("unpaired", i) for i in range(n_unp)] + \
           [("test", i) for i in range(n_test)]
    for split, i in tqdm(jobs, desc=f"unprocess ({profile})", unit="patch", leave=False):
        patch = None
        while patch is None:
            patch = _crop(imgs[int(rng.integers(len(imgs)))], ZONES[split], size, rng)
        if split == "unpaired":
            _save_rgb(out / "train/canon_unpaired" / f"{i}.jpg", dslr_style(patch))
            continue
        counts, _ = unprocess(patch, rgb2cam, rng)
        _save_png16(out / split / "huawei_raw" / f"{i}.png", counts)
        _save_rgb(out / split / "canon" / f"{i}.jpg", dslr_style(patch))
    from PIL import Image

    for k in range(n_samples):
        img = imgs[k % len(imgs)]
        h, w = sample_hw
        im = Image.fromarray(img).resize((w, h), Image.BICUBIC)
        frame = np.asarray(im, dtype=np.float32) / 255.0
        counts, _ = unprocess(frame, rgb2cam, rng)
        write_dng(out / "samples" / f"{k}.dng", counts)
        _save_png16(out / "samples" / f"{k}.png", counts)
        packed = packed_to_ntire(pack(torch.from_numpy(counts.astype(np.float32)))).permute(1, 2, 0).numpy().astype(np.uint16)
        np.save(out / "samples" / f"{k}.npy", packed)
        _save_rgb(out / "samples" / f"{k}_target.png", dslr_style(frame))
    info: dict[str, Any] = {"format": "zurich", "norm": "synthetic", "bayer_pattern": "RGGB", "black_level": BLACK,
                            "white_level": WHITE, "profile": profile, "seed": seed, "patch": size,
                            "rgb2cam": rgb2cam.tolist(), "photos": len(imgs),
                            "zones": {k: list(v) for k, v in ZONES.items()}}
    (out / "isp_dataset.json").write_text(json.dumps(info, indent=2))
    print(f"wrote {n_train} train pairs, {n_unp} unpaired targets, {n_test} test pairs and {n_samples} "
          f"RAW frames (DNG / PNG / NPY) from {len(imgs)} photos ({profile}) to {out}")
