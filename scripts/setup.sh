#!/usr/bin/env bash
# Set up pretrainlab on a fresh machine: Debian packages (as root), a .venv, the pinned Python
# packages (constraints.txt) and the package itself (editable). Re-running is a no-op.
#
#   EXTRAS=all (default) | e.g. EXTRAS=clip,demo,dev   which pyproject extras to install
#   PYTHON=python3.11                                    interpreter for the venv
set -euo pipefail
cd "$(dirname "$0")/.."

EXTRAS="${EXTRAS:-all}"
PYTHON="${PYTHON:-python3}"
VENV=".venv"
STAMP="$VENV/.pretrainlab-setup"

# ---------------------------------------------------------------- Debian packages
# libusb-1.0-0: open3d (lidar); chromium: the headless browser tests; espeak-ng: synthetic speech
missing=()
pkg_ok() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
if command -v dpkg-query >/dev/null 2>&1; then
  for p in libusb-1.0-0 chromium espeak-ng; do pkg_ok "$p" || missing+=("$p"); done
  "$PYTHON" -c "import ensurepip" 2>/dev/null || missing+=("python3-venv")
fi
if ((${#missing[@]})); then
  if [[ "$(id -u)" == "0" ]]; then
    echo "setup: installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: missing Debian packages; run once:  sudo apt-get install -y ${missing[*]}" >&2
  fi
fi

# ---------------------------------------------------------------- Python
want="$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16) extras=$EXTRAS"
if [[ -x "$VENV/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
  exit 0  # already set up for this pyproject / constraints / extras
fi
[[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
echo "setup: installing Python packages into $VENV (first time: a few minutes, torch is large)"
t0=$(date +%s)
# (the grep drops the notes about local package mirrors that pip's site config may list)
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[${EXTRAS}]" 2>&1 \
  | { grep -v "^WARNING: Location 'file:" || true; }
echo "$want" > "$STAMP"
echo "setup: done in $(( $(date +%s) - t0 )) s ($("$VENV/bin/python" -c 'import torch; print("torch", torch.__version__)'))"
