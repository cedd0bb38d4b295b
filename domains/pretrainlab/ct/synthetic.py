"""Synthetic CT phantoms written in the real formats (NIfTI, DICOM series, PNG, MedMNIST .npz).

Each volume is a torso in Hounsfield units whose anatomy changes along z (slice 0 = thorax,
last slice = pelvis): body outline with fat and muscle, lungs with vessels that drift from slice
to slice, ribs (periodic along z), vertebrae with discs, aorta, heart with contrast chambers,
liver, spleen, pancreas, kidneys (cortex / medulla), bowel gas, pelvis bones, bladder, femurs,
optional lesions (solid nodules and ground-glass opacities) in the lungs, and scanner noise.
Outside the circular field of view the DICOM series stores the padding value -2000 (as many
scanners; the reader sets it to 0 before rescaling, as the reference) and NIfTI stores -1024.

Without variation along z the Hash-k reduction keeps almost nothing (a smooth ellipsoid phantom
of 160 slices kept 2, see the research notes); ribs, vessels and organs entering and leaving the
field make consecutive slices similar but not identical, as in real CT.

Layout written by :func:`generate` (``pretrainlab ct data --out DIR``)::

    DIR/pretrain/vol_000.nii.gz            NIfTI volumes (even indices; dcm2niix orientation)
    DIR/pretrain/vol_001/IM_0000.dcm ...   DICOM series (odd indices), one folder per series
    DIR/downstream/covid/CT_COVID/*.png, CT_NonCOVID/*.png      COVID-CT as published: lung slices
        with lesions (nodules, ground-glass opacities) in CT_COVID, without in CT_NonCOVID, and
        Data-split/COVID/{train,val,test}CT_COVID.txt, Data-split/NonCOVID/{...}CT_NonCOVID.txt
    DIR/downstream/organ/organsmnist.npz     OrganSMNIST style 28x28 sagittal crops, 11 classes
    DIR/downstream/organ/organsmnist_64.npz  the same crops at 64x64
    DIR/info.json
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from pretrainlab.ct.formats import COVID_CLASSES, ORGAN_CLASSES

PAD_RAW = -2000  # DICOM padding value outside the field of view
INTERCEPT = -1024.0  # DICOM RescaleIntercept written


@dataclasses.dataclass
class ProfileSize:
    pretrain_volumes: int
    slices: tuple[int, int]  # min, max slices per volume
    size: int  # in-plane pixels
    lesion_volumes: int
    organ_volumes: int


PROFILES = {
    "smoke": ProfileSize(4, (20, 28), 32, 8, 6),
    "tiny": ProfileSize(16, (48, 80), 64, 50, 20),
    "full": ProfileSize(400, (160, 240), 256, 600, 400),
}


@dataclasses.dataclass
class Organ:
    name: str
    c: tuple[float, float, float]  # centre x, y (in [-1, 1]), z (in [0, 1])
    r: tuple[float, float, float]  # radii
    hu: float


def _organs(rng: np.random.Generator) -> list[Organ]:
    def j(v: float, s: float = 0.03) -> float:
        return float(v + rng.uniform(-s, s))

    def jr(v: float) -> float:
        return float(v * rng.uniform(0.85, 1.15))

    base = [
        ("lung-left", (0.36, -0.05, 0.22), (0.27, 0.36, 0.2), -850),
        ("lung-right", (-0.36, -0.05, 0.22), (0.29, 0.38, 0.21), -850),
        ("heart", (0.1, -0.12, 0.33), (0.2, 0.18, 0.09), 45),
        ("liver", (-0.32, 0.0, 0.48), (0.33, 0.3, 0.1), 60),
        ("spleen", (0.42, 0.18, 0.47), (0.11, 0.14, 0.06), 50),
        ("pancreas", (0.05, 0.08, 0.53), (0.25, 0.06, 0.03), 38),
        ("kidney-left", (0.3, 0.3, 0.58), (0.09, 0.12, 0.07), 32),
        ("kidney-right", (-0.3, 0.3, 0.6), (0.09, 0.12, 0.07), 32),
        ("bladder", (0.0, -0.1, 0.86), (0.15, 0.13, 0.06), 10),
        ("femur-left", (0.38, 0.05, 0.95), (0.1, 0.1, 0.08), 750),
        ("femur-right", (-0.38, 0.05, 0.95), (0.1, 0.1, 0.08), 750),
    ]
    return [Organ(n, (j(c[0]), j(c[1]), j(c[2], 0.02)), (jr(r[0]), jr(r[1]), jr(r[2])), hu) for n, c, r, hu in base]


def _ell(x: np.ndarray, y: np.ndarray, z: np.ndarray, o: Organ) -> np.ndarray:
    """Normalised ellipsoid radius (< 1 inside)."""
    return ((x - o.c[0]) / o.r[0]) ** 2 + ((y - o.c[1]) / o.r[1]) ** 2 + ((z - o.c[2]) / o.r[2]) ** 2


def phantom_volume(rng: np.random.Generator, n_slices: int, size: int, n_lesions: int = 0,
                   noise_hu: float | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """One torso phantom.

    Returns:
        ``hu`` ``(Z, H, W)`` float32 and ``meta`` with ``organs`` (list of :class:`Organ`),
        ``lesion_slices`` ``(Z,)`` bool (a lesion is visible in the slice) and ``fov`` ``(H, W)``.
    """
    zs = np.linspace(0.0, 1.0, n_slices, dtype=np.float32)[:, None, None]
    ys = np.linspace(-1.0, 1.0, size, dtype=np.float32)[None, :, None]
    xs = np.linspace(-1.0, 1.0, size, dtype=np.float32)[None, None, :]
    shape = (n_slices, size, size)
    hu = np.full(shape, -1000.0, dtype=np.float32)
    ph = rng.uniform(0, 2 * np.pi, 4)
    ax = 0.8 * rng.uniform(0.93, 1.07) * (1 + 0.05 * np.sin(2 * np.pi * 0.8 * zs + ph[0]))
    ay = 0.56 * rng.uniform(0.93, 1.07) * (1 + 0.05 * np.sin(2 * np.pi * 0.6 * zs + ph[1]))
    br = (xs / ax) ** 2 + (ys / ay) ** 2
    hu = np.where(br < 1.0, np.float32(-100.0), hu)  # subcutaneous fat
    hu = np.where(br < 0.86 ** 2, np.float32(45.0), hu)  # muscle / soft tissue
    theta = np.arctan2(ys / ay, xs / ax)
    # ribs: along the chest wall, periodic in z and descending anteriorly
    n_ribs = rng.uniform(9, 12)
    rib_phase = (zs * n_ribs + 0.35 * (ys / ay) + ph[2]) % 1.0
    ribs = (br > 0.72 ** 2) & (br < 0.84 ** 2) & (rib_phase < 0.3) & (zs < 0.6) & (np.abs(theta + np.pi / 2) > 0.45)
    hu = np.where(ribs, np.float32(650.0), hu)
    organs = _organs(rng)
    by = {o.name: o for o in organs}
    # lungs, with drifting vessels
    lung_mask = np.zeros(shape, dtype=bool)
    for nm in ("lung-left", "lung-right"):
        lung_mask |= _ell(xs, ys, zs, by[nm]) < 1.0
    hu = np.where(lung_mask, np.float32(-850.0), hu)
    n_vessels = int(rng.integers(30, 60))
    vessel = np.zeros(shape, dtype=bool)
    for _ in range(n_vessels):
        lung = by["lung-left"] if rng.random() < 0.5 else by["lung-right"]
        x0 = lung.c[0] + rng.uniform(-0.6, 0.6) * lung.r[0]
        y0 = lung.c[1] + rng.uniform(-0.6, 0.6) * lung.r[1]
        dx, dy = rng.normal(0, 0.6, 2)
        z0 = lung.c[2] + rng.uniform(-0.5, 0.5) * lung.r[2]
        rad = rng.uniform(0.012, 0.035)
        cx, cy = x0 + dx * (zs - z0), y0 + dy * (zs - z0)
        vessel |= ((xs - cx) ** 2 + (ys - cy) ** 2) < rad ** 2
    hu = np.where(vessel & lung_mask, np.float32(40.0), hu)
    # spine: vertebral bodies with discs, spinal canal; aorta
    vy = 0.42 * ay
    vert = (xs ** 2 + (ys - vy) ** 2) < 0.1 ** 2
    disc = ((zs * rng.uniform(14, 18) + ph[3]) % 1.0) < 0.22
    hu = np.where(vert, np.where(disc, np.float32(90.0), np.float32(380.0)), hu)
    hu = np.where((xs ** 2 + (ys - vy - 0.14) ** 2) < 0.04 ** 2, np.float32(20.0), hu)
    aorta = ((xs - 0.07) ** 2 + (ys - 0.22 * ay) ** 2) < 0.05 ** 2
    hu = np.where(aorta & (zs > 0.2) & (zs < 0.78), np.float32(160.0), hu)
    # abdominal / pelvic organs
    for nm in ("liver", "spleen", "pancreas", "bladder"):
        hu = np.where(_ell(xs, ys, zs, by[nm]) < 1.0, np.float32(by[nm].hu), hu)
    for nm in ("kidney-left", "kidney-right"):
        e = _ell(xs, ys, zs, by[nm])
        hu = np.where(e < 1.0, np.float32(150.0), hu)  # cortex
        hu = np.where(e < 0.45, np.float32(by[nm].hu), hu)  # medulla
    heart = _ell(xs, ys, zs, by["heart"])
    hu = np.where(heart < 1.0, np.float32(45.0), hu)
    hu = np.where(heart < 0.35, np.float32(170.0), hu)  # contrast-filled chambers
    # bowel gas pockets (abdomen), pelvis bones, femurs (cortex + marrow)
    for _ in range(int(rng.integers(6, 14))):
        gc = (rng.uniform(-0.4, 0.4), rng.uniform(-0.25, 0.2), rng.uniform(0.55, 0.82))
        gr = rng.uniform(0.03, 0.07)
        g = ((xs - gc[0]) ** 2 + (ys - gc[1]) ** 2 + ((zs - gc[2]) * 2.0) ** 2) < gr ** 2
        hu = np.where(g & (br < 0.8 ** 2), np.float32(-900.0), hu)
    for side in (-1, 1):
        pel = (((xs - side * 0.45) / 0.18) ** 2 + ((ys - 0.15) / 0.3) ** 2 < 1.0) & (zs > 0.74) & (zs < 0.86)
        hu = np.where(pel, np.float32(450.0), hu)
        fem = by["femur-left" if side > 0 else "femur-right"]
        fr = ((xs - fem.c[0]) ** 2 + (ys - fem.c[1]) ** 2) / fem.r[0] ** 2
        infem = (zs > fem.c[2] - fem.r[2]) & (fr < 1.0)
        hu = np.where(infem, np.where(fr < 0.45, np.float32(160.0), np.float32(fem.hu)), hu)
    # lesions in the lungs: solid nodules and ground-glass opacities
    lesion = np.zeros(shape, dtype=bool)
    for _ in range(n_lesions):
        lung = by["lung-left"] if rng.random() < 0.5 else by["lung-right"]
        u = rng.normal(size=3)
        u = u / np.linalg.norm(u) * rng.uniform(0, 0.6)
        c = [lung.c[i] + u[i] * lung.r[i] for i in range(3)]
        ggo = rng.random() < 0.6
        rad = rng.uniform(0.05, 0.12) if ggo else rng.uniform(0.025, 0.06)
        d = ((xs - c[0]) ** 2 + (ys - c[1]) ** 2 + ((zs - c[2]) * 2.5) ** 2) / rad ** 2
        m = (d < 1.0) & lung_mask
        val = np.float32(-620.0) if ggo else np.float32(25.0)
        hu = np.where(m, val, hu)
        lesion |= m
    fov = (xs[0] ** 2 + ys[0] ** 2) <= 1.0  # (H, W)
    sigma = rng.uniform(12, 25) if noise_hu is None else noise_hu
    hu = hu + rng.normal(0.0, sigma, shape).astype(np.float32)
    hu = np.where(fov[None], hu, np.float32(INTERCEPT))
    meta = {"organs": organs, "lesion_slices": lesion.any(axis=(1, 2)), "lesion_pixels": lesion.sum(axis=(1, 2)),
            "fov": fov, "lung_slices": lung_mask.any(axis=(1, 2))}
    return np.round(hu).astype(np.float32), meta


# ----------------------------------------------------------------------------------- writers
def write_nifti(hu: np.ndarray, path: Path, spacing: tuple[float, float, float] = (2.5, 1.0, 1.0)) -> None:
    """``(Z, H, W)`` HU in the DICOM display orientation -> int16 NIfTI as dcm2niix writes the same
    scan (:func:`write_dicom_series`): columns along x (affine -dx: towards the patient's left),
    rows flipped so y runs posterior -> anterior (+dy), slices along +z ("LAS"), the origin at the
    world position of the first stored voxel. Both files hold one scan at one place in the world."""
    import nibabel as nib

    h = hu.shape[1]
    dz, dy, dx = spacing
    data = np.ascontiguousarray(np.asarray(hu).transpose(2, 1, 0)[:, ::-1, :]).astype(np.int16)  # (X, Y, Z)
    aff = np.array([[-dx, 0.0, 0.0, -0.0], [0.0, dy, 0.0, -(h - 1) * dy], [0.0, 0.0, dz, 0.0], [0.0, 0.0, 0.0, 1.0]])
    img = nib.Nifti1Image(data, aff)
    img.header.set_xyzt_units("mm")
    img.header.set_qform(aff, code=1)
    img.header.set_sform(aff, code=1)
    nib.save(img, str(path))


def write_dicom_series(hu: np.ndarray, folder: Path, fov: np.ndarray | None = None, *,
                       spacing: tuple[float, float, float] = (2.5, 1.0, 1.0), modality: str = "CT",
                       series_uid: str | None = None, rescale: bool = True, shuffle_names: bool = False,
                       seed: int = 0, name_format: str = "IM_{:04d}.dcm", first_index: int = 0) -> str:
    """``(Z, H, W)`` HU -> one CT DICOM file per slice (int16, RescaleIntercept -1024, padding -2000
    outside ``fov``). Files are named ``IM_<n>.dcm``; with ``shuffle_names`` the names do not follow
    the slice order (the reader must sort by position). Returns the SeriesInstanceUID."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    series_uid = series_uid or generate_uid()
    study_uid = generate_uid()
    order = rng.permutation(len(hu)) if shuffle_names else np.arange(len(hu))
    for i, sl in enumerate(hu):
        raw = np.round(sl - (INTERCEPT if rescale else 0.0)).astype(np.int32)
        if fov is not None:
            raw = np.where(fov, raw, PAD_RAW)
        raw = np.clip(raw, -32768, 32767).astype(np.int16)
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        sop = generate_uid()
        meta.MediaStorageSOPInstanceUID = sop
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = sop
        ds.Modality = modality
        ds.PatientID = "PHANTOM"
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.InstanceNumber = i + 1
        ds.ImagePositionPatient = [0.0, 0.0, float(i * spacing[0])]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing = [spacing[1], spacing[2]]
        ds.SliceThickness = spacing[0]
        ds.Rows, ds.Columns = sl.shape
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        ds.PixelPaddingValue = PAD_RAW
        if rescale:
            ds.RescaleIntercept = INTERCEPT
            ds.RescaleSlope = 1.0
        ds.PixelData = raw.tobytes()
        ds.save_as(str(folder / name_format.format(int(order[i]) + first_index)), enforce_file_format=True)
    return str(series_uid)


def save_png(arr: np.ndarray, path: Path) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


# ----------------------------------------------------------------------------------- downstream
def organ_crops(hu: np.ndarray, organs: list[Organ], sizes: tuple[int, ...] = (28, 64),
                offsets: tuple[float, ...] = (-0.35, 0.0, 0.35)) -> tuple[dict[int, list[np.ndarray]], list[int]]:
    """OrganSMNIST-style crops: sagittal planes through each organ, the organ's bounding box (+20 %
    margin, squared), window [-1000, 1000] HU -> 0-255, resized to each size. Returns crops per size, labels."""
    from PIL import Image

    z_n, h, w = hu.shape
    xs = np.linspace(-1, 1, w)
    ys = np.linspace(-1, 1, h)[None, :]
    zs = np.linspace(0, 1, z_n)[:, None]
    out: dict[int, list[np.ndarray]] = {s: [] for s in sizes}
    labels: list[int] = []
    for o in organs:
        for off in offsets:
            xc = o.c[0] + off * o.r[0]
            col = int(np.argmin(np.abs(xs - xc)))
            m = (((xs[col] - o.c[0]) / o.r[0]) ** 2 + ((ys - o.c[1]) / o.r[1]) ** 2 + ((zs - o.c[2]) / o.r[2]) ** 2) < 1.0
            if not m.any():
                continue
            zi, yi = np.nonzero(m)
            z0, z1, y0, y1 = zi.min(), zi.max() + 1, yi.min(), yi.max() + 1
            side = int(max(z1 - z0, y1 - y0) * 1.2) + 2
            cz, cy = (z0 + z1) // 2, (y0 + y1) // 2
            plane = np.pad(hu[:, :, col], side, mode="constant", constant_values=-1000.0)
            crop = plane[cz - side // 2 + side: cz - side // 2 + 2 * side, cy - side // 2 + side: cy - side // 2 + 2 * side]
            u8 = ((np.clip(crop, -1000, 1000) + 1000) / 2000 * 255).astype(np.uint8)
            for s in sizes:
                out[s].append(np.asarray(Image.fromarray(u8).resize((s, s), Image.Resampling.BILINEAR)))
            labels.append(ORGAN_CLASSES.index(o.name))
    return out, labels


def _split_of(i: int, n: int) -> str:
    f = i / max(1, n)
    return "train" if f < 0.6 else ("val" if f < 0.8 else "test")


def generate(out: Path, profile: str = "tiny", seed: int = 0) -> None:
    """Write the pre-training volumes and both downstream tasks (see the module docstring)."""
    from tqdm.auto import tqdm

    ps = PROFILES[profile]
    rng = np.random.default_rng(seed)
    out = Path(out)
    (out / "pretrain").mkdir(parents=True, exist_ok=True)
    total_slices = 0
    jobs = [("pretrain", i) for i in range(ps.pretrain_volumes)] + [("covid", i) for i in range(ps.lesion_volumes)] + \
        [("organ", i) for i in range(ps.organ_volumes)]
    counts = {"covid": {"train": [0, 0], "val": [0, 0], "test": [0, 0]}}
    covid = out / "downstream" / "covid"
    lists: dict[tuple[str, str], list[str]] = {(sp, c): [] for sp in ("train", "val", "test") for c in COVID_CLASSES}
    organ: dict[str, dict[int, list[np.ndarray]]] = {sp: {28: [], 64: []} for sp in ("train", "val", "test")}
    organ_y: dict[str, list[int]] = {sp: [] for sp in ("train", "val", "test")}
    for kind, i in tqdm(jobs, desc=f"phantoms ({profile})", unit="vol"):
        n_sl = int(rng.integers(ps.slices[0], ps.slices[1] + 1))
        if kind == "pretrain":
            hu, meta = phantom_volume(rng, n_sl, ps.size, n_lesions=int(rng.integers(0, 4)))
            total_slices += n_sl
            if i % 2 == 0:
                write_nifti(hu, out / "pretrain" / f"vol_{i:03d}.nii.gz")
            else:
                write_dicom_series(hu, out / "pretrain" / f"vol_{i:03d}", meta["fov"], seed=seed * 1000 + i)
        elif kind == "covid":
            sick = i % 2 == 1
            hu, meta = phantom_volume(rng, n_sl, ps.size, n_lesions=int(rng.integers(4, 9)) if sick else 0)
            split = _split_of(i, ps.lesion_volumes)
            from pretrainlab.ct.preprocessing import minmax_uint8

            cand = np.nonzero(meta["lung_slices"])[0]
            pos = [z for z in cand if meta["lesion_pixels"][z] >= 3]
            neg = [z for z in cand if not meta["lesion_slices"][z]]
            take_pos = list(rng.permutation(pos)[:6]) if sick else []
            take_neg = list(rng.permutation(neg)[: (3 if sick else 6)])
            u8 = minmax_uint8(hu)
            for z, lab in [(z, 0) for z in take_pos] + [(z, 1) for z in take_neg]:
                cls = COVID_CLASSES[lab]
                name = f"v{i:03d}_s{int(z):03d}.png"
                save_png(u8[z], covid / cls / name)
                lists[(split, cls)].append(name)
                counts["covid"][split][lab] += 1
        else:
            hu, meta = phantom_volume(rng, n_sl, ps.size, n_lesions=0)
            split = _split_of(i, ps.organ_volumes)
            crops, labels = organ_crops(hu, meta["organs"])
            for s in (28, 64):
                organ[split][s] += crops[s]
            organ_y[split] += labels
    for (sp, cls), names in lists.items():  # the published split lists (Data-split/<COVID|NonCOVID>/<split><cls>.txt)
        txt = covid / "Data-split" / cls.removeprefix("CT_") / f"{sp}{cls}.txt"
        txt.parent.mkdir(parents=True, exist_ok=True)
        txt.write_text("".join(f"{n}\n" for n in names))
    odir = out / "downstream" / "organ"
    odir.mkdir(parents=True, exist_ok=True)
    for s, name in ((28, "organsmnist.npz"), (64, "organsmnist_64.npz")):
        arrays = {}
        for sp in ("train", "val", "test"):
            arrays[f"{sp}_images"] = np.stack(organ[sp][s]).astype(np.uint8)
            arrays[f"{sp}_labels"] = np.asarray(organ_y[sp], dtype=np.uint8)[:, None]
        np.savez_compressed(odir / name, **arrays)
    info = {"profile": profile, "seed": seed, "pretrain_volumes": ps.pretrain_volumes, "pretrain_slices": total_slices,
            "slice_size": ps.size, "covid_counts": {sp: dict(zip(COVID_CLASSES, v)) for sp, v in counts["covid"].items()},
            "organ_counts": {sp: len(organ_y[sp]) for sp in organ_y}, "organ_classes": list(ORGAN_CLASSES)}
    (out / "info.json").write_text(json.dumps(info, indent=2))
    print(f"wrote {ps.pretrain_volumes} CT phantoms ({total_slices} slices, NIfTI + DICOM), "
          f"{sum(sum(v) for v in counts['covid'].values())} COVID-CT style slices, "
          f"{sum(len(v) for v in organ_y.values())} organ crops ({profile}) to {out}")


def bench_volumes(n_volumes: int, n_slices: int, size: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Phantom volumes ``(HU (n_slices, size, size), field-of-view mask)`` (rendered at <= 128 px,
    upsampled, with scanner noise)."""
    rng = np.random.default_rng(seed)
    base = min(size, 128)
    out = []
    for _ in range(n_volumes):
        hu, meta = phantom_volume(rng, n_slices, base, n_lesions=3)
        rep = -(-size // base)
        big = np.repeat(np.repeat(hu, rep, axis=1), rep, axis=2)[:, :size, :size]
        fov = np.repeat(np.repeat(meta["fov"], rep, axis=0), rep, axis=1)[:size, :size]
        out.append((np.round(big + rng.normal(0, 12, big.shape)).astype(np.float32), fov))
    return out
