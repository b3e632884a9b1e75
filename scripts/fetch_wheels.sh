#!/usr/bin/env bash
# Set-up only: download the RapidOCR wheels whose PaddleOCR rec ONNX models src/wordrec/models/imported.py imports, into
# build/wheels/, and check them against the pins in scripts/wheels.sha256. Idempotent: a wheel already present is
# not downloaded again, but every wheel is hash-checked on every run. Nothing is installed (wheels are read as zips).
set -euo pipefail
cd "$(dirname "$0")/.."

PIP=${PIP:-${VENV:-.venv}/bin/pip}
DEST=build/wheels
WHEELS=(
  "rapidocr-onnxruntime==1.2.3 rapidocr_onnxruntime-1.2.3-py3-none-any.whl"  # ch_PP-OCRv3_rec_infer.onnx
  "rapidocr-onnxruntime==1.4.4 rapidocr_onnxruntime-1.4.4-py3-none-any.whl"  # ch_PP-OCRv4_rec_infer.onnx
  "rapidocr==3.10.0 rapidocr-3.10.0-py3-none-any.whl"                        # PP-OCRv6_rec_small.onnx
)

mkdir -p "$DEST"
for entry in "${WHEELS[@]}"; do
  read -r spec file <<<"$entry"
  if [ ! -f "$DEST/$file" ]; then
    echo "fetch_wheels: downloading $spec"
    "$PIP" download -q --no-deps --only-binary=:all: -d "$DEST" "$spec"
  fi
done

if ! (cd "$DEST" && sha256sum --quiet -c "../../scripts/wheels.sha256"); then
  echo "fetch_wheels: a wheel in $DEST does not match its sha256 pin in scripts/wheels.sha256;" \
       "delete it and re-run scripts/fetch_wheels.sh (if it mismatches again, the registry file changed)" >&2
  exit 1
fi
