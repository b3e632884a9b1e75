#!/usr/bin/env bash
# Idempotent environment set-up: Debian packages (fonts, QEMU, Arm GCC, Tesseract) and the Python venv.
# Safe to run on every `make` call: each part is skipped when it is already in place.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3

# --- system packages -------------------------------------------------------------------------------
mapfile -t pkgs < <(grep -v '^#' scripts/apt-packages.txt | grep -v '^$')
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${#missing[@]} Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- python environment ----------------------------------------------------------------------------
stamp="$VENV/.wordrec-$(cat requirements.lock pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "setup: installing the Python environment into $VENV (first run: ~2 min)"
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  # --no-deps: the lock is a complete, tested closure; the resolver would otherwise re-pick opencv.
  "$VENV/bin/pip" install -q --no-deps -r requirements.lock
  # Several packages each bring a cv2; paddlex needs contrib 4.10, so it must be the one on disk.
  "$VENV/bin/pip" install -q --no-deps --force-reinstall "$(grep '^opencv-contrib-python==' requirements.lock)"
  "$VENV/bin/pip" install -q --no-deps -e .
  "$VENV/bin/python" -c "import cv2, torch, paddle, onnxruntime, openvino, tvm, lmdb, hydra, wordrec; assert cv2.__version__.startswith('4.10')"
  rm -f "$VENV"/.wordrec-*
  touch "$stamp"
fi

# --- QEMU instruction-count plugin (csrc/qemu_insn_count.c; Debian ships no plugin header, see docs/mcu.md) --
if command -v qemu-system-arm >/dev/null 2>&1; then
  "$VENV/bin/python" -c "from pathlib import Path; from wordrec.device.board.sim import build_plugin; build_plugin(Path('build/qemu'))"
fi
VENV="$VENV" bash scripts/fetch_wheels.sh  # pinned RapidOCR wheels holding the PaddleOCR rec models (src/wordrec/models/imported.py)
