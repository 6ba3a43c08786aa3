#!/usr/bin/env bash
# The prepared device check: `bash benchmarks/device_check.sh --device cuda|cpu --output_dir OUT [...]`; every flag
# goes to benchmarks/device_check.py, whose docstring lists them and what to carry to the device machine.
#
# The device machine lacks some packages (datasets, dill, multiprocess, evaluate; faiss-cpu for --indexing_args):
# wheels of them in the repository's .whl/ folder are installed into /tmp/site first. $PYTHON (default python3) runs
# the check; the repository root is put on PYTHONPATH, as nothing is installed there.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
if compgen -G ".whl/*.whl" > /dev/null; then
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
exec "$python" benchmarks/device_check.py "$@"
