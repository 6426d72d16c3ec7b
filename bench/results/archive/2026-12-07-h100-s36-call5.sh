# Session 36 call 5 (NOTES 11.80): HEAD (seq by a plain load) against d62d094 (.dev/prev), traced,
# with the entry-load probe's hot-word cases.
source tools/device_steps.sh
export EPCOMM_CMAKE_ARGS=-DEPCOMM_WITH_NVSHMEM=ON
B=d62d094
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv > $OUT/machine.txt 2>&1; nproc >> $OUT/machine.txt
if [ ! -f build-prev/tools/bench/epcomm-bench ]; then
( cmake -S .dev/prev -B build-prev -G Ninja -DCMAKE_BUILD_TYPE=Release $EPCOMM_CMAKE_ARGS > $OUT/prev_build.log 2>&1 &&
  cmake --build build-prev -j 4 --target epcomm-bench epcomm-run >> $OUT/prev_build.log 2>&1; echo "rc $?" > $OUT/prev_done ) &
else echo "rc 0" > $OUT/prev_done; fi
step 120 || { wait; pack; exit 1; }
wait
cat $OUT/prev_done
b() { # b DIR NAME COMMIT WORKLOAD [env]
  local dir=$1 name=$2 c=$3 w=$4 t0=$(date +%s); shift 4
  [ "$(left)" -lt 15 ] && { echo "[skipped for time: $name]"; return; }
  env "$@" EPCOMM_COMMIT=$c timeout $(( $(left) - 8 )) $dir/tools/epcomm-run -n 1 --timeout 40 $dir/tools/bench/epcomm-bench --workload $w \
    --json $OUT/$name.json > $OUT/$name.txt 2>&1; echo "== $name ($c) rc $? $(( $(date +%s) - t0 )) s"
  grep -E 'epcomm-graph' $OUT/$name.txt | grep -v '#' | awk -v n=$name '{print n, $1, $2, $4, $7, $9, $NF}'
  grep -E '# trace rank 0 epcomm-graph(-zc)? (dispatch|combine) (1|128) tokens' $OUT/$name.txt | cut -c1-140
}
C=$EPCOMM_COMMIT
timeout 20 build-gpu/tools/entry_load_probe > $OUT/entry_load_probe.txt 2>&1; cat $OUT/entry_load_probe.txt
b build-gpu tn-ll-small $C ll-small EPCOMM_LL_TRACE=2; b build-prev tp-ll-small $B ll-small EPCOMM_LL_TRACE=2
b build-gpu tn-ll-dsv3 $C ll-dsv3 EPCOMM_LL_TRACE=2; b build-prev tp-ll-dsv3 $B ll-dsv3 EPCOMM_LL_TRACE=2
b build-gpu n1-ll-dsv3 $C ll-dsv3; b build-prev p1-ll-dsv3 $B ll-dsv3
b build-gpu n1-ll-small $C ll-small; b build-prev p1-ll-small $B ll-small
once ll2 40 shared 2 test_ll
pack
