#!/usr/bin/env bash
# Builds everything (host and CUDA code) and runs the tests: the CPU tier always, the GPU tier
# on the local GPUs (each GPU test reports "skipped: no GPU" where there are none).
# Extra arguments go to ctest, e.g. `tools/test.sh -L cpu`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${EPCOMM_BUILD_DIR:-$root/build}
generator=()
if command -v ninja >/dev/null 2>&1; then generator=(-G Ninja); fi
export PATH="$PATH:/usr/local/cuda/bin"
# shellcheck disable=SC2086
cmake -S "$root" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release ${EPCOMM_CMAKE_ARGS:-}
cmake --build "$build" -j "$(nproc)"
ctest --test-dir "$build" --output-on-failure -j "$(nproc)" "$@"
