#!/usr/bin/env bash
# Sets everything up on a fresh machine and runs the main job on the bundled sample region:
# a virtual environment in .venv, CPU-only torch (pinned: an unpinned torch pulls a multi-GB CUDA
# build), the project with its test tools, then `matcher demo` (generate -> ingest -> build ->
# gaps and ranked prospects). Extra arguments go to `matcher demo` (e.g. --n 5000).
# Every package is installed at the exact version in constraints.txt (the environment the tests
# passed in; its header says how to regenerate it), so two machines set up alike. torch is pinned
# there as the public version 2.13.0: pip takes the CPU build (2.13.0+cpu) where it lies on local
# disk (pip's find-links), as here and in CI.
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
.venv/bin/python -m pip install --quiet -c constraints.txt torch
.venv/bin/python -m pip install --quiet -c constraints.txt -e ".[test]"
# The review page is tested in a real headless browser: Debian's Chromium and its driver, and a CJK
# font so Chinese renders in the tests as it does on staff laptops.
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null || ! fc-list 2>/dev/null | grep -qi "CJK"; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing chromium, chromium-driver and fonts-noto-cjk (browser tests of the review page)" >&2
    (apt-get install -y -q chromium chromium-driver fonts-noto-cjk >/dev/null 2>&1 ||
      { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium chromium-driver fonts-noto-cjk >/dev/null; }) ||
      echo "warning: could not install chromium; the browser tests will be skipped" >&2
  else
    echo "note: chromium/chromedriver not found and not root; the browser tests will be skipped" >&2
  fi
fi
export HF_HUB_OFFLINE=1
if [ "${SETUP_ONLY:-0}" != 1 ]; then
  .venv/bin/matcher demo "$@"
fi
