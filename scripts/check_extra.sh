#!/usr/bin/env bash
# Check that one domain's extra is enough: build .venv-extra-<d> with ONLY `pip install ".[<d>,demo]"`
# (a wheel, not editable; pinned by constraints.txt) plus the test tools (pytest, pytest-timeout,
# pytest-xdist, playwright for the browser tests), then run that domain's tests there.
#
#   bash scripts/check_extra.sh face            # tests/face in a venv with pretrainlab[face,demo]
#   bash scripts/check_extra.sh isp -k formats  # extra pytest arguments
#
# Packages that only some tests use (scikit-image photos, transformers converters, ...) are dev-only:
# their tests skip here (pytest.importorskip). Not part of `make test`: torch alone is a ~3 GB install.
set -euo pipefail
cd "$(dirname "$0")/.."
d="${1:?usage: check_extra.sh <domain> [pytest args]}"
shift
PYTHON="${PYTHON:-python3}"
VENV=".venv-extra-$d"
STAMP="$VENV/.extra"
want="$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)"
if [[ ! -f "$STAMP" || "$(cat "$STAMP")" != "$want" ]]; then
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  tools=$(grep -E '^(pytest|pytest-timeout|pytest-xdist|playwright)==' constraints.txt | tr '\n' ' ')
  echo "check_extra: installing .[${d},demo] + ${tools}into $VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -c constraints.txt ".[${d},demo]" $tools 2>&1 \
    | { grep -v "^WARNING: Location 'file:" || true; }
  echo "$want" > "$STAMP"
fi
# run from a folder without the sources on sys.path: the installed wheel is what gets tested
cd tests && exec "../$VENV/bin/python" -m pytest -q -p no:cacheprovider "$d" "$@"
