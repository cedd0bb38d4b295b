"""The pilot that chose the clip tiny profile's image tower: the CLIP baseline alone (objective ``clip``,
tiny profile, 500 steps) trained with seed 100 (not a table seed) on each candidate tower, then the
table's evaluation (zero-shot over the 18 classes, retrieval R@1, linear probe).

    OMP_NUM_THREADS=1 python benchmarks/clip_tower_pilot.py clip-nano clip-rn-nano

Measured 2026-12-03 (README "How the table got here"), when the tower was chosen (foreach AdamW):
zero-shot top-1 0.050 with clip-nano (chance 0.056) and 0.171 with clip-rn-nano; re-run with this script
after clip moved to the fused AdamW (same update up to rounding): 0.050 and 0.157. Prints one JSON line
per tower.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from clip_schedule_pilot import train_and_evaluate  # a script beside this one

SEED = 100  # outside the table's seeds [0, 4]


def main(towers: list[str]) -> int:
    for tower in towers:
        # lr 2e-3: the tiny schedule when the tower was chosen (it moved to 1e-3 later, clip_schedule_pilot.py)
        m, _, cpu = train_and_evaluate("clip", SEED, [f"model.name={tower}", "train.lr=0.002"], probe=True)
        keep = ("zs_top1_linear", "zs_top5_linear", "zs_top1_unseen_linear", "R@1", "linear_probe")
        print(json.dumps({"tower": tower, "seed": SEED, "cpu_s": round(cpu, 1),
                          **{k: round(float(m[k]), 3) for k in keep if k in m}}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["clip-nano", "clip-rn-nano"]))
