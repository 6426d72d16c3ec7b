# Sourced by a one-call script for the lent GPU machine: runs tools/device_session.sh steps one at a
# time within the call's time, skips what an earlier call on the same warm machine already ran, and
# packs $OUT into one archive at the end (the device tool brings back only a few files). Example:
#   source tools/device_steps.sh          # needs OUT; EPCOMM_CALL_S: the call's seconds (570)
#   step 420                              # the build alone (device_session.sh with no step)
#   once ll 120 shared 2 test_ll          # NAME MAX_S STEP...: skipped if NAME ran before here
#   EPCOMM_MD_SHAPES="4:2" once md22 200 md
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
