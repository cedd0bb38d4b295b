"""Writes the label / detection sets of the KITTI-evaluation parity test (run once; outputs committed).

    python tests/lidar/data/kitti_eval/make_fixture.py     # -> edge/ and random/ beside this file

``edge``: hand-placed cases, one frame each: 2D heights of exactly 40 / 25 px and just above, truncations of
exactly 0.15 / 0.30 / 0.50 and just above, occlusion 0-3, Van under a Car detection, Person_sitting
under a Pedestrian detection, a Car detection inside a DontCare region, a detection below 25 px on a
ground truth of another class, tied scores, crowded pedestrians, an empty label file with detections
and a label file whose detection file is empty. ``random``: 40 seeded street frames with every KITTI
type, noisy / duplicated / confused / false detections and a few exact boundary values.

Overlaps within 2e-4 of a threshold (0.25 / 0.5 / 0.7) are re-drawn, so the float32 rounding of the
reference's IoU kernel cannot flip a comparison. Expected numbers: ``reference_eval.py``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from pretrainlab.lidar.formats import Calib, KittiAnnos, camera_boxes_to_image
from pretrainlab.lidar.kitti_eval import bev_overlap, d3_overlap, image_box_overlap

HERE = Path(__file__).parent
SHAPE = (375, 1242)
CALIB = Calib.default()
DIMS = {"Car": (1.55, 1.7, 4.1), "Van": (2.2, 1.9, 5.0), "Truck": (3.2, 2.5, 9.0), "Pedestrian": (1.75, 0.65, 0.8),
        "Person_sitting": (1.2, 0.6, 0.9), "Cyclist": (1.7, 0.6, 1.8), "Tram": (3.5, 2.6, 15.0), "Misc": (1.4, 1.2, 2.0)}
THRESHOLDS = (0.25, 0.5, 0.7)


def obj(name: str, x: float, z: float, ry: float = 0.3, trunc: float = 0.0, occ: int = 0, dims=None, y: float = 1.65,
        bbox=None) -> dict:
    h, w, l = dims or DIMS[name]
    cam = np.array([[x, y, z, l, h, w, ry]])
    bb = camera_boxes_to_image(cam, CALIB, SHAPE)[0] if bbox is None else np.asarray(bbox, float)
    alpha = ry - np.arctan2(x, z)
    return {"name": name, "trunc": trunc, "occ": occ, "alpha": alpha, "bbox": bb, "hwl": (h, w, l),
            "loc": (x, y, z), "ry": ry}


def dontcare(bbox) -> dict:
    return {"name": "DontCare", "trunc": -1, "occ": -1, "alpha": -10, "bbox": np.asarray(bbox, float),
            "hwl": (-1, -1, -1), "loc": (-1000, -1000, -1000), "ry": -10}


def det(o: dict, score: float, name: str | None = None, dx: float = 0.0, dz: float = 0.0, dry: float = 0.0,
        scale: float = 1.0, bbox=None) -> dict:
    x, y, z = o["loc"]
    h, w, l = (v * scale for v in o["hwl"])
    d = obj(name or o["name"], x + dx, z + dz, o["ry"] + dry, dims=(h, w, l), y=y, bbox=bbox)
    d["score"] = score
    return d


def with_height(o: dict, height: float) -> dict:
    o = dict(o)
    bb = o["bbox"].copy()
    bb[3] = bb[1] + height
    o["bbox"] = bb
    return o


def line(o: dict, detection: bool) -> str:
    h, w, l = o["hwl"]
    v = [o["alpha"], *o["bbox"], h, w, l, *o["loc"], o["ry"]]
    if detection:
        return f"{o['name']} -1 -1 " + " ".join(f"{x:.4f}" for x in v) + f" {o['score']:.4f}\n"
    return f"{o['name']} {o['trunc']:.2f} {o['occ']} " + " ".join(f"{x:.2f}" for x in v) + "\n"


def annos(objs: list[dict], detection: bool) -> KittiAnnos:
    from pretrainlab.lidar.formats import parse_kitti_annos

    return parse_kitti_annos("".join(line(o, detection) for o in objs), "x", detections=detection)


def safe(gts: list[dict], dets: list[dict]) -> bool:
    """No overlap within 2e-4 of a threshold (as read back from the 2 / 4-decimal text)."""
    if not gts or not dets:
        return True
    g, d = annos(gts, False), annos(dets, True)
    for ov in (image_box_overlap(d.bbox, g.bbox), bev_overlap(d, g), d3_overlap(d, g),
               image_box_overlap(d.bbox, g.bbox, 0)):
        if any(np.abs(ov - t).min() < 2e-4 for t in THRESHOLDS):
            return False
    return True


def write_set(name: str, frames: list[tuple[list[dict], list[dict]]]) -> None:
    root = HERE / name
    shutil.rmtree(root, ignore_errors=True)
    (root / "label_2").mkdir(parents=True)
    (root / "det").mkdir()
    for i, (gts, dets) in enumerate(frames):
        (root / "label_2" / f"{i:06d}.txt").write_text("".join(line(o, False) for o in gts))
        (root / "det" / f"{i:06d}.txt").write_text("".join(line(o, True) for o in dets))


def edge_frames() -> list[tuple[list[dict], list[dict]]]:
    F = []
    # 2D heights: exactly 40 (ignored at easy: <= 40), just above 40, exactly 25 (ignored everywhere), 25.01
    base = obj("Car", -4.0, 20.0)
    cars = [with_height(base, 40.0), with_height(obj("Car", 4.0, 20.0), 40.01),
            with_height(obj("Car", 0.0, 30.0, 1.2), 25.0), with_height(obj("Car", 8.0, 35.0, -0.4), 25.01)]
    F.append((cars, [det(c, s, dx=0.05, dz=-0.1, dry=0.02) for c, s in zip(cars, (0.9, 0.8, 0.7, 0.6))]))
    # truncation exactly at the limits and just above; occlusion 0..3
    tr = [obj("Car", -6, 15, trunc=0.15), obj("Car", -2, 15, 0.5, trunc=0.16), obj("Car", 2, 15, -0.5, trunc=0.30),
          obj("Car", 6, 15, 1.0, trunc=0.31), obj("Car", -6, 25, trunc=0.50), obj("Car", 6, 25, trunc=0.51)]
    F.append((tr, [det(c, 0.95 - 0.1 * i, dx=0.04) for i, c in enumerate(tr)]))
    oc = [obj("Pedestrian", -3 + 2 * i, 12, occ=i) for i in range(4)]
    F.append((oc, [det(c, 0.5 + 0.1 * i, dz=0.05) for i, c in enumerate(oc)]))
    # Van under a Car detection (ignored, not a FP); a Van detection is no Car detection at all
    van = obj("Van", 1.0, 18.0)
    F.append(([van, obj("Car", -5, 22)], [det(van, 0.9, name="Car", dx=0.05), det(van, 0.8, dx=-0.05),
                                          det(obj("Car", -5, 22), 0.7, dz=0.1)]))
    # Person_sitting under a Pedestrian detection; a Pedestrian beside it
    ps = obj("Person_sitting", 2.0, 10.0)
    F.append(([ps, obj("Pedestrian", -2, 10)], [det(ps, 0.85, name="Pedestrian", dx=0.03),
                                                det(obj("Pedestrian", -2, 10), 0.6, dx=0.05)]))
    # a Car detection inside a DontCare region (no FP in the 2D metric only), one half inside (a FP)
    far = obj("Car", 3.0, 40.0)
    far2 = obj("Car", -3.0, 42.0, 1.0)
    dc = dontcare([far["bbox"][0] - 5, far["bbox"][1] - 5, far["bbox"][2] + 5, far["bbox"][3] + 5])
    dc2 = dontcare([far2["bbox"][0], far2["bbox"][1], far2["bbox"][0] + 0.45 * (far2["bbox"][2] - far2["bbox"][0]),
                    far2["bbox"][3]])
    F.append(([dc, dc2, obj("Car", -8, 18)], [det(far, 0.75), det(far2, 0.74), det(obj("Car", -8, 18), 0.5, dx=0.1)]))
    # a tiny detection (< 25 px) of another class on a Car: absorbs it at threshold time (ignored, no FP)
    c = obj("Car", 0.0, 22.0)
    F.append(([c], [det(c, 0.9, name="Pedestrian", dx=0.05, bbox=[c["bbox"][0], 150, c["bbox"][2], 170]),
                    det(c, 0.4, dx=-0.1)]))
    # tied scores, two detections on one car, the better overlap second in file order
    c = obj("Car", 2.0, 16.0)
    F.append(([c, obj("Cyclist", -3, 14)], [det(c, 0.7, dx=0.4), det(c, 0.7, dx=0.05), det(obj("Cyclist", -3, 14), 0.7)]))
    # crowded pedestrians (the greedy order matters)
    peds = [obj("Pedestrian", x, 9.0 + 0.3 * i, occ=i % 2) for i, x in enumerate((-1.0, -0.4, 0.2, 0.8))]
    F.append((peds, [det(p, s, dx=dx) for p, s, dx in zip(peds, (0.5, 0.9, 0.6, 0.3), (0.2, -0.25, 0.1, 0.3))]
              + [det(peds[1], 0.8, dx=0.3)]))
    F.append(([], [det(obj("Car", 0, 15), 0.9), det(obj("Pedestrian", 2, 8), 0.4)]))  # empty label file
    F.append(([obj("Car", 0, 15), obj("Cyclist", 3, 12), obj("Misc", -4, 12), obj("Truck", 6, 30)], []))  # empty dets
    return F


def random_frames(n: int = 40, seed: int = 0) -> list[tuple[list[dict], list[dict]]]:
    rng = np.random.default_rng(seed)
    types = list(DIMS) + ["DontCare"]
    p = np.array([0.33, 0.07, 0.03, 0.2, 0.05, 0.12, 0.02, 0.04, 0.14])
    out = []
    for f in range(n):
        gts: list[dict] = []
        for _ in range(int(rng.integers(0, 15)) if f not in (3, 17) else 0):
            t = str(rng.choice(types, p=p / p.sum()))
            z = float(rng.uniform(4, 65))
            x = float(rng.uniform(-14, 14)) if rng.random() < 0.1 else float(rng.uniform(-0.75, 0.75) * z)
            if t == "DontCare":
                o = obj("Car", x, z)
                gts.append(dontcare(o["bbox"] + rng.normal(0, 3, 4)))
                continue
            if t == "Pedestrian" and gts and rng.random() < 0.4:  # a group
                near = [g for g in gts if g["name"] == "Pedestrian"]
                if near:
                    x, z = near[-1]["loc"][0] + float(rng.uniform(-0.9, 0.9)), near[-1]["loc"][2] + float(rng.uniform(-0.6, 0.6))
            dims = tuple(float(v * rng.uniform(0.9, 1.1)) for v in DIMS[t])
            o = obj(t, x, z, float(rng.uniform(-np.pi, np.pi)), occ=int(rng.choice(4, p=[0.5, 0.25, 0.15, 0.1])),
                    dims=dims, y=float(1.65 + rng.normal(0, 0.08)))
            u = rng.random()
            o["trunc"] = float(rng.choice([0.15, 0.3, 0.5])) if u < 0.1 else (float(rng.uniform(0, 0.8)) if u < 0.3 else 0.0)
            if rng.random() < 0.06:
                o = with_height(o, float(rng.choice([25.0, 40.0])))
            gts.append(o)
        dets: list[dict] = []
        for g in gts:
            if g["name"] in ("DontCare", "Tram", "Misc") or rng.random() < 0.2:
                continue
            name = {"Van": "Car" if rng.random() < 0.5 else "Van",
                    "Person_sitting": "Pedestrian" if rng.random() < 0.7 else "Person_sitting",
                    "Cyclist": "Pedestrian" if rng.random() < 0.1 else "Cyclist",
                    "Truck": "Car" if rng.random() < 0.3 else "Truck"}.get(g["name"], g["name"])
            for k in range(1 + int(rng.random() < 0.12)):
                s = float(rng.uniform(0.01, 0.12) if rng.random() < 0.65 else rng.uniform(0.12, 0.6))
                for _try in range(50):
                    d = det(g, 0.0, name, float(rng.normal(0, s)), float(rng.normal(0, s)), float(rng.normal(0, 0.15)),
                            float(rng.uniform(0.9, 1.1)))
                    if safe(gts, [d]):
                        break
                d["score"] = float(np.clip(1.0 - 1.2 * s - 0.3 * k + rng.normal(0, 0.12), 0.01, 0.99))
                if rng.random() < 0.05 and dets:
                    d["score"] = dets[-1]["score"]  # a tie
                dets.append(d)
        for _ in range(int(rng.integers(0, 4)) if f not in (5, 23) else 0):
            for _try in range(50):
                t = str(rng.choice(["Car", "Pedestrian", "Cyclist"]))
                d = det(obj(t, float(rng.uniform(-14, 14)), float(rng.uniform(4, 65)), float(rng.uniform(-3, 3))),
                        float(rng.uniform(0.01, 0.7)))
                if safe(gts, [d]):
                    break
            dets.append(d)
        if f in (5, 23):
            dets = []
        order = rng.permutation(len(dets))
        dets = [dets[i] for i in order]
        assert safe(gts, dets), f"frame {f}: an overlap near a threshold"
        out.append((gts, dets))
    return out


if __name__ == "__main__":
    edge = edge_frames()
    for i, (g, d) in enumerate(edge):
        assert safe(g, d), f"edge frame {i}: an overlap near a threshold"
    write_set("edge", edge)
    write_set("random", random_frames())
    print("wrote", HERE / "edge", HERE / "random")
