#!/usr/bin/env bash
# The GPU check (bench/device_check.py) on a machine with CUDA, in under ten minutes. It uses the Python that
# has a CUDA build of torch (PYTHON=..., default python3) and pdiff's checkout; with no network there, pdiff's
# own dependencies must already be installed in that Python (`pip install -e .` where the registry is reached).
# Figures go to $OUT/device_check.json when OUT is set (the device tool's output folder), else to stdout only.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
"$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
timeout 540 "$PYTHON" bench/device_check.py --steps "${STEPS:-20}" ${OUT:+--json "$OUT/device_check.json"}
