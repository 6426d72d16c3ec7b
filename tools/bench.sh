#!/usr/bin/env bash
# Builds epcomm and runs the benchmark with correctness checks on every local GPU (one process
# per GPU). Without arguments every named workload runs (docs/benchmark.md); otherwise the arguments go to
# epcomm-bench, e.g. `tools/bench.sh --workload ht-dsv3 --json out.json`.
# On a machine without GPUs it says so and exits cleanly.
set -euo pipefail
# The same build folder as tools/test.sh (build/, or $EPCOMM_BUILD_DIR): only the benchmark's
# targets are built here.
source "$(dirname "$0")/configure.sh"
cmake --build "$build" -j "$(nproc)" --target epcomm-bench epcomm-run
if [ $# -eq 0 ]; then set -- --workload all; fi
gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
if [ "${gpus:-0}" -eq 0 ]; then
  exec "$build/tools/bench/epcomm-bench" "$@"  # prints that there is no GPU and exits 0
fi
exec "$build/tools/epcomm-run" -n "$gpus" "$build/tools/bench/epcomm-bench" "$@"
