#!/usr/bin/env bash
# Sourced by tools/test.sh and tools/bench.sh: configures the build folder ($EPCOMM_BUILD_DIR, by
# default build/ or the folder the caller names in $default_build) with CMake (Ninja when present),
# passing the caller's $extra_cmake_args, and sets $root and $build.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${EPCOMM_BUILD_DIR:-${default_build:-$root/build}}
generator=()
if command -v ninja >/dev/null 2>&1; then generator=(-G Ninja); fi
export PATH="$PATH:/usr/local/cuda/bin"
# shellcheck disable=SC2086
cmake -S "$root" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release ${extra_cmake_args:-} ${EPCOMM_CMAKE_ARGS:-}
