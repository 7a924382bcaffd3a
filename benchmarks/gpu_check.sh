#!/usr/bin/env bash
# The GPU check: train (python and torchrun), evaluate, upscale and the network fast path on CUDA,
# under 8 minutes, into one JSON (gpu_check.json in benchmarks/results/; --out to change).
# The steps, options and JSON are described in benchmarks/gpu_check.py.
#
#   bash benchmarks/gpu_check.sh                                  # on the GPU machine
#   bash benchmarks/gpu_check.sh --device cpu --tiny --out /tmp/g.json   # the same steps, tiny, on CPU
#
# PYTHON=/path/to/python picks the interpreter (default: python3, or python, on PATH; an active venv's).
# Exit status: 0 every step ok or skipped, 1 a step failed, 2 a usage error.
set -u
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
py="${PYTHON:-}"
if [ -z "$py" ]; then
    if command -v python3 >/dev/null 2>&1; then py=python3; else py=python; fi
fi
exec "$py" "$here/gpu_check.py" "$@"
