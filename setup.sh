#!/usr/bin/env bash
# Sets everything up on a fresh machine and runs the main job on the bundled sample region:
# a virtual environment in .venv, CPU-only torch (pinned: an unpinned torch pulls a multi-GB CUDA
# build), the project with its test tools, then `matcher demo` (generate -> ingest -> build ->
# gaps and ranked prospects). Extra arguments go to `matcher demo` (e.g. --n 5000).
# SETUP_ONLY=1 installs without running the demo.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "error: Python 3.11 or newer is needed ($PYTHON is $("$PYTHON" --version 2>&1))" >&2
  exit 1
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet torch==2.13.0
.venv/bin/python -m pip install --quiet -e ".[test]"
export HF_HUB_OFFLINE=1
if [ "${SETUP_ONLY:-0}" != 1 ]; then
  .venv/bin/matcher demo "$@"
fi
