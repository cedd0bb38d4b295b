"""What a trained CLIP model's image features know about the zero-shot classes' two attributes: 4-fold
cross-validated logistic regression (standardised features, C = 0.1) on the tiny zero-shot images for the
18 classes, the 6 shapes and the 3 textures, beside the same probe on raw pixels (C = 0.01).

    python benchmarks/clip_attribute_probe.py runs/clip/reproduce-tiny/runs/CLIP/seed0 \\
        runs/clip/reproduce-tiny/runs/CLIP-rocket/seed0

Chance: 1/18 = 0.056, 1/6 = 0.167, 1/3 = 0.333. Prints one JSON line per model.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.preprocessing import StandardScaler

from pretrainlab.clip import api


def _probe(x: np.ndarray, y: np.ndarray, c: float) -> float:
    return float(cross_val_score(LogisticRegression(max_iter=2000, C=c), StandardScaler().fit_transform(x), y,
                                 cv=4).mean())


def main(runs: list[str]) -> int:
    from pretrainlab.clip import formats
    from pretrainlab.clip.zeroshot import eval_loader

    torch.set_num_threads(1)
    bench = formats.read_zeroshot(api.synthetic_data("tiny") / "zeroshot")
    for i, run in enumerate(runs):
        task = api.open_task(Path(run)).eval()
        feats, pixels, labels = [], [], []
        with torch.no_grad():
            for b in eval_loader(bench.records, task.preprocess, task.image_size, 128, 0):
                feats.append(task.encode_image(b["image"])["feats"].float())
                if i == 0:  # the raw-pixel baseline is the same for every model: once
                    pixels.append(b["image"].flatten(1))
                labels.append(torch.as_tensor(bench.labels[b["index"].numpy()]))
        x, y = torch.cat(feats).numpy(), torch.cat(labels).numpy()
        shape = np.array([bench.classnames[k].split()[1] for k in y])
        texture = np.array([bench.classnames[k].split()[0] for k in y])
        out = {"run": run, "images": len(y), "class18": _probe(x, y, 0.1), "shape6": _probe(x, shape, 0.1),
               "texture3": _probe(x, texture, 0.1)}
        if i == 0:
            px = torch.cat(pixels).numpy()
            out.update(pixels_shape6=_probe(px, shape, 0.01), pixels_texture3=_probe(px, texture, 0.01))
        print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in out.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
