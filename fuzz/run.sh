#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/CMakeLists.txt) in their own folder with clang and runs each
# for FUZZ_SECONDS seconds (default 30) from its committed corpus. New inputs go to a scratch folder,
# never into fuzz/corpus/. Stops with a non-zero status at the first finding, whose input is kept as
# <build>/fuzz/findings/<target>-crash-... (reproduce: <build>/fuzz/fuzz_<target> <that file>).
#   fuzz/run.sh                          all targets, 30 s each
#   FUZZ_SECONDS=600 fuzz/run.sh checks  one target, longer
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${EPCOMM_FUZZ_BUILD_DIR:-$root/build-fuzz}
seconds=${FUZZ_SECONDS:-30}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(bootstrap_wire checks env)
export PATH="$PATH:/usr/local/cuda/bin"
generator=()
if command -v ninja >/dev/null 2>&1; then generator=(-G Ninja); fi

# shellcheck disable=SC2086
cmake -S "$root" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=clang++ \
  -DEPCOMM_BUILD_FUZZERS=ON -DEPCOMM_BUILD_TESTS=OFF -DEPCOMM_BUILD_BENCH=OFF -DEPCOMM_BUILD_EXAMPLES=OFF \
  ${EPCOMM_FUZZ_CMAKE_ARGS:-} >/dev/null
cmake --build "$build" -j "$(nproc)" --target epcomm_fuzzers

findings="$build/fuzz/findings"
mkdir -p "$findings"
for target in "${targets[@]}"; do
  work=$(mktemp -d)
  log="$build/fuzz/$target.log"
  echo "fuzz: $target for ${seconds} s from fuzz/corpus/$target"
  # -malloc_limit_mb: one allocation beyond it is a finding (no length from the input may size one).
  if ! "$build/fuzz/fuzz_$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -malloc_limit_mb=512 -print_final_stats=1 -artifact_prefix="$findings/$target-" \
      "$work" "$root/fuzz/corpus/$target" >"$log" 2>&1; then
    grep -v '^#[0-9]' "$log" | tail -n 60
    echo "fuzz: $target found a problem (log: $log; input under $findings)" >&2
    rm -rf "$work"
    exit 1
  fi
  grep -E '^stat::(number_of_executed_units|new_units_added|peak_rss_mb)' "$log" | sed "s/^/fuzz: $target /"
  rm -rf "$work"
done
