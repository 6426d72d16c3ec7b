#!/usr/bin/env bash
# Builds everything (host and CUDA code) and runs the tests: the CPU tier always, the GPU tier
# on the local GPUs (each GPU test reports "skipped: no GPU" where there are none).
# Extra arguments go to ctest, e.g. `tools/test.sh -L cpu`.
set -euo pipefail
source "$(dirname "$0")/configure.sh"
cmake --build "$build" -j "$(nproc)"
ctest --test-dir "$build" --output-on-failure -j "$(nproc)" "$@"
# The Python package's CPU tier (pytest; builds and installs the package into build-py/ first).
"$root/python/tests/run_cpu.sh"
