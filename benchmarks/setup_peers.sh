#!/usr/bin/env bash
# Create the peer virtualenvs used by the side-by-side benchmarks, OUTSIDE the repository
# (they are never project dependencies):
#   $PEERS/nf  neuralforecast 3.3 on the CPU build of torch 2.13
#   $PEERS/sf  statsforecast 2.1.1 (pins pandas < 3, hence its own venv)
# Usage: PEERS=/some/dir bash benchmarks/setup_peers.sh   (default /work/peers)
# TORCH_WHEEL may point at a local CPU wheel; otherwise the CPU index is used so that pip
# does not pull gigabytes of CUDA libraries.
set -euo pipefail
PEERS="${PEERS:-/work/peers}"
PY="${PYTHON:-python3.11}"
mkdir -p "$PEERS"

if [ ! -x "$PEERS/nf/bin/python" ]; then
  "$PY" -m venv "$PEERS/nf"
  "$PEERS/nf/bin/pip" install -q --upgrade pip
  # torch first (CPU build), so neuralforecast does not resolve the CUDA build.
  wheel="${TORCH_WHEEL:-$(ls /opt/wheels/torch-2.13.0+cpu-*.whl 2>/dev/null | head -n1 || true)}"
  if [ -n "$wheel" ]; then
    "$PEERS/nf/bin/pip" install -q "$wheel"
  else
    "$PEERS/nf/bin/pip" install -q torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
  fi
  "$PEERS/nf/bin/pip" install -q "neuralforecast==3.3.*" pyarrow psutil
fi

if [ ! -x "$PEERS/sf/bin/python" ]; then
  "$PY" -m venv "$PEERS/sf"
  "$PEERS/sf/bin/pip" install -q --upgrade pip
  "$PEERS/sf/bin/pip" install -q "statsforecast==2.1.1" pyarrow psutil
fi

"$PEERS/nf/bin/python" -c "import neuralforecast, torch; print('nf', neuralforecast.__version__, 'torch', torch.__version__)"
"$PEERS/sf/bin/python" -c "import statsforecast, pandas; print('sf', statsforecast.__version__, 'pandas', pandas.__version__)"
