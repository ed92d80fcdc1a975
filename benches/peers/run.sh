#!/usr/bin/env bash
# fourf against PyTorch CPU eager, side by side in one run, 2 threads each:
#   benches/peers/run.sh [VENV]   (VENV: a venv with torch from PyPI; default ./venv-torch)
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=${1:-venv-torch}
[ -x "$venv/bin/python" ] || { python3 -m venv "$venv"; "$venv/bin/pip" install -q torch; }
echo "# PyTorch $("$venv/bin/python" -c 'import torch; print(torch.__version__)')"
OMP_NUM_THREADS=2 "$venv/bin/python" benches/peers/torch_fmnist.py
echo "# fourf"
RAYON_NUM_THREADS=2 cargo bench -p fourf-nn --bench train -- --noplot 2>&1 | grep -E "^(train|infer)/|thrpt"
