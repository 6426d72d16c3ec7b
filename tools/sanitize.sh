#!/usr/bin/env bash
# compute-sanitizer over the GPU test tier: memcheck, racecheck, synccheck and initcheck, each over
# every GPU test program on N ranks (default 2; ranks share the GPUs when there are fewer GPUs than
# ranks: correctness only). Writes one log per tool and program and a summary (JSON and a table) to
# $OUT (default build/sanitize/). Exit status: 0 when every run reported 0 errors and passed its
# tests; 1 otherwise; 77 without a GPU (EPCOMM_REQUIRE_GPU=1 makes that 1).
#   tools/sanitize.sh [--ranks N] [--tools memcheck,racecheck,...] [PROGRAM...]
#   PROGRAM: test_ht, test_ll, ... (default: every GPU test program that was built)
# Builds with the README's test command's settings (build/, or $EPCOMM_BUILD_DIR) first.
set -uo pipefail
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
ranks=2
tools="memcheck,racecheck,synccheck,initcheck"
programs=()
while [ $# -gt 0 ]; do
  case "$1" in
    --ranks) ranks=$2; shift 2 ;;
    --tools) tools=$2; shift 2 ;;
    -h | --help) sed -n '2,9p' "$0"; exit 0 ;;
    *) programs+=("$1"); shift ;;
  esac
done
source "$(dirname "$0")/configure.sh" > /dev/null || exit 1
cmake --build "$build" -j "$(nproc)" > /dev/null || { echo "sanitize: build failed"; exit 1; }
out=${OUT:-$build/sanitize}
mkdir -p "$out"

gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
if [ "${gpus:-0}" -eq 0 ]; then
  echo "sanitize: skipped: no GPU"
  [ "${EPCOMM_REQUIRE_GPU:-0}" = 1 ] && exit 1
  exit 77
fi
if ! command -v compute-sanitizer > /dev/null; then
  echo "sanitize: compute-sanitizer not found (it ships with the CUDA toolkit: add its bin/ to PATH)"
  exit 1
fi
share=()
[ "$gpus" -lt "$ranks" ] && share=(EPCOMM_TEST_SHARE_GPUS=1 "EPCOMM_TIMEOUT_MS=${EPCOMM_TIMEOUT_MS:-300000}")
if [ ${#programs[@]} -eq 0 ]; then
  for p in "$build"/tests/gpu_test_*; do [ -x "$p" ] && programs+=("$(basename "$p" | sed 's/^gpu_//')"); done
fi

status=0
summary="$out/summary.json"
echo "[" > "$summary"
first=1
printf '%-10s %-22s %8s %6s\n' tool program errors rc
for tool in ${tools//,/ }; do
  for program in "${programs[@]}"; do
    log="$out/$tool-$program.log"
    # Every rank runs its process under the sanitizer; EPCOMM_REQUIRE_GPU=1: a skip is a failure.
    env EPCOMM_REQUIRE_GPU=1 "${share[@]}" "$build/tools/epcomm-run" -n "$ranks" --timeout 1800 \
      compute-sanitizer --tool "$tool" --error-exitcode 86 "$build/tests/gpu_$program" > "$log" 2>&1
    rc=$?
    # compute-sanitizer closes each process's report with "ERROR SUMMARY: n errors".
    errors=$(grep -o 'ERROR SUMMARY: [0-9]*' "$log" | awk '{s += $3} END {print s + 0}')
    [ "$rc" -ne 0 ] && status=1
    printf '%-10s %-22s %8s %6s\n' "$tool" "$program" "$errors" "$rc"
    [ $first -eq 1 ] || echo "," >> "$summary"
    first=0
    printf '  {"tool": "%s", "program": "%s", "ranks": %d, "errors": %d, "rc": %d}' \
      "$tool" "$program" "$ranks" "$errors" "$rc" >> "$summary"
  done
done
printf '\n]\n' >> "$summary"
echo "sanitize: logs and summary.json in $out"
exit $status
