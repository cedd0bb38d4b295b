"""Expected numbers of the parity test, from OpenPCDet's own KITTI evaluation (run once; output committed).

    git clone https://github.com/open-mmlab/OpenPCDet  (this fixture: commit 8caccce)
    python -m venv venv && venv/bin/pip install numba numba-cuda numpy   (numba 0.68.1, numba-cuda 0.30.4)
    NUMBA_ENABLE_CUDASIM=1 PYTHONPATH=<stub dir with an empty skimage/io.py> \
        venv/bin/python reference_eval.py <OpenPCDet>/pcdet/datasets/kitti

The reference's rotated IoU is a numba-CUDA kernel; NUMBA_ENABLE_CUDASIM runs that same kernel on the CPU
(float32 arrays as on the GPU). ``kitti_common`` imports ``skimage.io`` for images it never reads here.
Writes ``expected.json``: ``{set: {class: {bbox|bev|3d|aos: {easy|moderate|hard: AP_R40}}}}``, the
reference's ``get_official_eval_result`` ret_dict values, unrounded.
"""

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, sys.argv[1])
from kitti_object_eval_python import kitti_common
from kitti_object_eval_python.eval import get_official_eval_result

HERE = Path(__file__).parent
out = {}
for name in ("edge", "random"):
    ids = sorted(int(p.stem) for p in (HERE / name / "label_2").glob("*.txt"))
    gt = kitti_common.get_label_annos(str(HERE / name / "label_2"), ids)
    dt = kitti_common.get_label_annos(str(HERE / name / "det"), ids)
    text, ret = get_official_eval_result(gt, dt, ["Car", "Pedestrian", "Cyclist"])
    print(name, "\n", text)
    res = {}
    for c in ("Car", "Pedestrian", "Cyclist"):
        res[c] = {m: {lv: float(ret[f"{c}_{k}/{lv}_R40"]) for lv in ("easy", "moderate", "hard")}
                  for m, k in (("bbox", "image"), ("bev", "bev"), ("3d", "3d"), ("aos", "aos"))}
    out[name] = res
(HERE / "expected.json").write_text(json.dumps(out, indent=1) + "\n")
print("wrote", HERE / "expected.json", "numpy", np.__version__)
