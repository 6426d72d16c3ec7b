# Sourced by a one-call script for the lent GPU machine: runs tools/device_session.sh steps one at a
# time within the call's time, skips what an earlier call on the same warm machine already ran, and
# packs $OUT into one archive at the end (the device tool brings back only a few files). Example:
#   source tools/device_steps.sh          # needs OUT; EPCOMM_CALL_S: the call's seconds (570)
#   step 420                              # the build alone (device_session.sh with no step)
#   once ll 120 shared 2 test_ll          # NAME MAX_S STEP...: skipped if NAME ran before here
#   EPCOMM_MD_SHAPES="4:2" once md22 200 md
#   side build-prev .dev/prev; step 220; wait   # a side tree's benchmark built beside the build
#   bench build-gpu n1-ll-small "$EPCOMM_COMMIT" ll-small EPCOMM_LL_TRACE=2
#   once ll2 50 shared 2 test_ll && keep 2_test_ll direct
#   pack
# A step is given at most MAX_S seconds and never more than the call has left (less a margin); one
# cut short by that bound is not marked as run. Markers live in build-gpu/device-steps-done/, which
# the machine keeps between calls while it stays warm.
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_REMOTE_TRANSPORT=none
export PATH="$PATH:/usr/local/cuda/bin"
: "${OUT:?device_steps.sh: OUT must name the output folder}"
steps_t0=$(date +%s)
steps_done=build-gpu/device-steps-done
# Seconds this call has left.
left() { echo $(( ${EPCOMM_CALL_S:-570} - ($(date +%s) - steps_t0) )); }
# step MAX_S [STEP...]: one device_session.sh run; prints its status, time and what is left.
step() {
  local max=$1 l t rc
  shift
  l=$(( $(left) - 25 ))
  if [ "$l" -lt 20 ]; then echo "[skipped for time: ${*:-build}]"; return 1; fi
  [ "$max" -gt "$l" ] && max=$l
  t=$(date +%s)
  EPCOMM_SHARED_TIMEOUT_S=$(( max - 8 )) timeout -k 5 "$max" tools/device_session.sh "$@" 2>&1 | grep -v "^build ok$"
  rc=${PIPESTATUS[0]}
  echo "[step '${*:-build}': rc $rc, $(( $(date +%s) - t )) s, $(left) s left]"
  [ "$rc" -ne 124 ] && [ "$rc" -ne 137 ]
}
# once NAME MAX_S [STEP...]: step, unless NAME already ran on this machine.
once() {
  local name=$1
  shift
  mkdir -p "$steps_done"
  if [ -f "$steps_done/$name" ]; then echo "[already run: $name]"; return 0; fi
  step "$@" && touch "$steps_done/$name"
}
# Everything in $OUT into $OUT/out.tgz (ncu reports over 3 MB are dropped first).
pack() {
  find "$OUT" -name '*.ncu-rep' -size +3M -delete
  tar czf /tmp/device-steps-out.tgz -C "$OUT" . && find "$OUT" -mindepth 1 -delete &&
    mv /tmp/device-steps-out.tgz "$OUT/out.tgz"
}
# bench DIR NAME COMMIT "WORKLOAD [FLAG...]" [VAR=VALUE...]: one rank's epcomm-bench run of DIR's build
# (build-gpu or a side tree's) into $OUT/NAME.{json,txt}, the flags passed and the variables set for
# it; prints its CUDA-graph rows (name, op, tokens, time, check) and the heads of its one-token and
# 128-token traces, if traced; for a workload with no graph rows (high-throughput), its table's tail.
# Example: bench build-gpu n-ht-dsv3-sms24 "$EPCOMM_COMMIT" "ht-dsv3 --sms 24" EPCOMM_HT_TRACE=1
bench() {
  local dir=$1 name=$2 commit=$3 t0=$(date +%s) workload
  read -ra workload <<< "$4"
  shift 4
  if [ "$(left)" -lt 15 ]; then echo "[skipped for time: $name]"; return 1; fi
  env "$@" EPCOMM_COMMIT="$commit" timeout $(( $(left) - 8 )) "$dir/tools/epcomm-run" -n 1 --timeout 50 \
    "$dir/tools/bench/epcomm-bench" --workload "${workload[@]}" --json "$OUT/$name.json" > "$OUT/$name.txt" 2>&1
  echo "== $name ($commit) rc $? $(( $(date +%s) - t0 )) s"
  if grep -q 'epcomm-graph' "$OUT/$name.txt"; then
    grep -E 'epcomm-graph' "$OUT/$name.txt" | grep -v '#' | awk -v n="$name" '{print n, $1, $2, $4, $7, $9, $NF}'
    grep -E '# trace rank 0 epcomm-graph (dispatch|combine) (1|128) tokens' -A3 "$OUT/$name.txt" | cut -c1-140
  else
    grep -v '^\[rank 0\] #' "$OUT/$name.txt" | tail -25
  fi
}
# keep NAME TAG: a copy of the log `shared N prog` left (it is overwritten by the next run of that step).
keep() { cp "$OUT/shared_$1.log" "$OUT/shared_$1_$2.log"; }
# side DIR SRC: in the background, configure SRC (a side tree: another commit's files, e.g. from
# `git archive`) into DIR with EPCOMM_CMAKE_ARGS and build its benchmark and launcher there; `wait`
# for it. $OUT/side_DIR.log (DIR's slashes as underscores) is its log and ends with its status
# ("rc N").
side() {
  local dir=$1 src=$2 log="$OUT/side_${1//\//_}.log"
  (
    {
      cmake -S "$src" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release $EPCOMM_CMAKE_ARGS &&
        cmake --build "$dir" -j 4 --target epcomm-bench epcomm-run
    } > "$log" 2>&1
    echo "rc $?" >> "$log"
  ) &
}
