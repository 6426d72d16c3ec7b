#!/usr/bin/env bash
# Builds epcomm and runs the benchmark with correctness checks on every local GPU (one process
# per GPU). Without arguments every workload of BENCH.md runs; otherwise the arguments go to
# epcomm-bench, e.g. `tools/bench.sh --workload ht-dsv3 --json out.json`.
# On a machine without GPUs it says so and exits cleanly.
set -euo pipefail
# Its own build folder, without the test tier (so GoogleTest is not needed to benchmark).
default_build="$(cd "$(dirname "$0")/.." && pwd)/build-bench"
extra_cmake_args="-DEPCOMM_BUILD_TESTS=OFF"
source "$(dirname "$0")/configure.sh"
cmake --build "$build" -j "$(nproc)" --target epcomm-bench epcomm-run
if [ $# -eq 0 ]; then set -- --workload all; fi
gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
if [ "${gpus:-0}" -eq 0 ]; then
  exec "$build/tools/bench/epcomm-bench" "$@"  # prints that there is no GPU and exits 0
fi
exec "$build/tools/epcomm-run" -n "$gpus" "$build/tools/bench/epcomm-bench" "$@"
