#!/usr/bin/env bash
# Builds epcomm and runs the benchmark with correctness checks on every local GPU (one process
# per GPU). Extra arguments go to epcomm-bench, e.g. `tools/bench.sh --workload ht-dsv3`.
# On a machine without GPUs it says so and exits cleanly.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${EPCOMM_BUILD_DIR:-$root/build}
generator=()
if command -v ninja >/dev/null 2>&1; then generator=(-G Ninja); fi
export PATH="$PATH:/usr/local/cuda/bin"
# shellcheck disable=SC2086
cmake -S "$root" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release ${EPCOMM_CMAKE_ARGS:-}
cmake --build "$build" -j "$(nproc)" --target epcomm-bench epcomm-run
gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
if [ "${gpus:-0}" -eq 0 ]; then
  exec "$build/tools/bench/epcomm-bench" "$@"  # prints that there is no GPU and exits 0
fi
exec "$build/tools/epcomm-run" -n "$gpus" "$build/tools/bench/epcomm-bench" "$@"
