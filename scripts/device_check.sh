#!/usr/bin/env bash
# GPU check: every installed domain's training-step benchmark on CUDA in bf16 for a few hundred
# steps, one table (samples/s, step time, peak memory). Fits in 8 minutes on one H100.
#   bash scripts/device_check.sh            (or: make device-check)
# On the lent device machine: results go to $OUT (else runs/device_check).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
OUT_DIR="${OUT:-runs/device_check}"
STEPS="${STEPS:-200}"
"$PY" - <<'PYEOF'
import torch
assert torch.cuda.is_available(), "no CUDA device"
p = torch.cuda.get_device_properties(0)
print(f"device: {p.name}, {p.total_memory / 2**30:.0f} GiB, torch {torch.__version__}, bf16 {torch.cuda.is_bf16_supported()}")
PYEOF
"$PY" benchmarks/run_all.py --device cuda --precision bf16 --steps "$STEPS" --warmup 10 --timeout 120 --out "$OUT_DIR" "$@"
