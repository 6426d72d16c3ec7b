#!/usr/bin/env bash
# Sourced by tools/test.sh and tools/bench.sh: configures the build folder ($EPCOMM_BUILD_DIR, by
# default build/) with CMake (Ninja when present) and sets $root and $build.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${EPCOMM_BUILD_DIR:-$root/build}
generator=()
if command -v ninja >/dev/null 2>&1; then generator=(-G Ninja); fi
export PATH="$PATH:/usr/local/cuda/bin"
# shellcheck disable=SC2086
cmake -S "$root" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release ${EPCOMM_CMAKE_ARGS:-}
