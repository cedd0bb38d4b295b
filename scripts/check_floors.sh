#!/usr/bin/env bash
# Check that the floors in pyproject.toml are true: build .venv-min with every dependency at its floor
# (constraints-min.txt), the dev tools borrowed from .venv, and run the test suite there.
#
#   bash scripts/check_floors.sh            # all tests but the browser / multi-process / slow ones
#   bash scripts/check_floors.sh tests/ct   # a subset
#
# Not part of `make test`: the torch floor alone is a ~3 GB download (the CUDA build from PyPI).
# Packages only tests import (transformers, peft, colour-demosaicing...) and the test tools come from
# .venv through a .pth placed AFTER .venv-min's own site-packages, so the floors always win.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -x .venv/bin/python ]] || bash scripts/setup.sh
PYTHON="${PYTHON:-python3}"
VENV=.venv-min
STAMP="$VENV/.floors"
want="$(sha256sum constraints-min.txt | cut -c1-16)"
if [[ ! -f "$STAMP" || "$(cat "$STAMP")" != "$want" ]]; then
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  site="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  main="$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  echo "$main" > "$site/zz_borrow_dev_tools_from_venv.pth"
  printf '%s\n%s\n' "$PWD/shared" "$PWD/domains" > "$site/pretrainlab_src.pth"
  echo "check_floors: installing the floors into $VENV (constraints-min.txt)"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -c constraints-min.txt \
    $(grep -v '^#' constraints-min.txt | sed 's/[=<>].*//' | tr '\n' ' ') 2>&1 | { grep -v "^WARNING: Location" || true; }
  echo "$want" > "$STAMP"
fi
"$VENV/bin/python" -c "import torch, numpy, scipy, sklearn; print('floors:', 'torch', torch.__version__, 'numpy', numpy.__version__, 'scipy', scipy.__version__, 'scikit-learn', sklearn.__version__)"
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False
exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider -m "not slow and not ddp and not e2e" \
  -k "not test_dependencies and not test_packaging" "${@:-tests}"
