#!/usr/bin/env bash
# The GPU check, run on the device machine (see docs/model.md, "When a GPU is lent"):
#   here:   .venv/bin/python bench/gpu_pack.py
#   device: run(command="bash bench/gpu_check.sh", carry=[".device"], timeout_s=600)
# Extra arguments go to bench/gpu_paper.py (e.g. --seeds 0 --epochs 1 for a dry run).
# Needs only the device image's python3 (torch, timm, pandas, pyarrow, ...) plus the wheels
# that gpu_pack.py carried; writes gpu_paper.json and log.txt under $OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:?set OUT to the folder for the results}"
PYTHON="${PYTHON:-python3}"
SITE="${DOVE_DEVICE_SITE:-/tmp/dove-device-site}"
if [ ! -d .device/wheels ]; then
    echo "no .device/wheels here: run bench/gpu_pack.py and carry .device" >&2
    exit 2
fi
"$PYTHON" -m pip install --quiet --no-index --find-links .device/wheels --target "$SITE" pydantic
export PYTHONPATH="$SITE:$PWD" PYTHONUNBUFFERED=1
export MLFLOW_DISABLE_TELEMETRY=true BENTOML_DO_NOT_TRACK=true DVC_NO_ANALYTICS=1
"$PYTHON" bench/gpu_paper.py --data .device/ucm \
    --weights .device/weights/tf_efficientnet_lite2.safetensors --out "$OUT" "$@" \
    2>&1 | tee "$OUT/log.txt"
