# Session 40 call 1 (NOTES 11.88): HEAD (a token's parts spread over blocks: the dispatch's rows and
# the combine's partial sums) against cef1f74 (.dev/prev, main's kernels = a1d1106's): the tests,
# traces of both, A/B alternated twice, and row_store_probe's token cases.
source tools/device_steps.sh
export EPCOMM_CMAKE_ARGS=-DEPCOMM_WITH_NVSHMEM=ON
B=cef1f74
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv > $OUT/machine.txt 2>&1; nproc >> $OUT/machine.txt
if [ ! -f build-prev/tools/bench/epcomm-bench ]; then
( cmake -S .dev/prev -B build-prev -G Ninja -DCMAKE_BUILD_TYPE=Release $EPCOMM_CMAKE_ARGS > $OUT/prev_build.log 2>&1 &&
  cmake --build build-prev -j 4 --target epcomm-bench epcomm-run >> $OUT/prev_build.log 2>&1; echo "rc $?" > $OUT/prev_done ) &
else echo "rc 0" > $OUT/prev_done; fi
( nvcc -std=c++20 -O3 -arch=sm_90a -Isrc -Itools/probes tools/probes/row_store_probe.cu -o /tmp/rsp > $OUT/probe_build.log 2>&1; echo "rc $?" >> $OUT/probe_build.log ) &
step 200 || { wait; pack; exit 1; }
wait
cat $OUT/prev_done $OUT/probe_build.log
b() { # b DIR NAME COMMIT WORKLOAD [env]
  local dir=$1 name=$2 c=$3 w=$4 t0=$(date +%s); shift 4
  [ "$(left)" -lt 15 ] && { echo "[skipped for time: $name]"; return; }
  env "$@" EPCOMM_COMMIT=$c timeout $(( $(left) - 8 )) $dir/tools/epcomm-run -n 1 --timeout 40 $dir/tools/bench/epcomm-bench --workload $w \
    --json $OUT/$name.json > $OUT/$name.txt 2>&1; echo "== $name ($c) rc $? $(( $(date +%s) - t0 )) s"
  grep -E 'epcomm-graph' $OUT/$name.txt | grep -v '#' | awk -v n=$name '{print n, $1, $2, $4, $7, $9, $NF}'
  grep -E '# trace rank 0 epcomm-graph (dispatch|combine) (1|128) tokens' -A3 $OUT/$name.txt | cut -c1-140
}
keep() { cp $OUT/shared_$1.log $OUT/shared_$1_$2.log; }
C=$EPCOMM_COMMIT
once ll2 50 shared 2 test_ll && keep 2_test_ll direct
for w in ll-small ll-dsv3; do
  b build-gpu tn-$w $C $w EPCOMM_LL_TRACE=2; b build-prev tp-$w $B $w EPCOMM_LL_TRACE=2
done
for w in ll-dsv3 ll-small; do b build-gpu n1-$w $C $w; b build-prev p1-$w $B $w; done
once rm3 45 shared 3 test_rank_mask
once ll4 130 shared 4 test_ll
EPCOMM_LL_DIRECT_DISPATCH=0 once ll2s 50 shared 2 test_ll && keep 2_test_ll staging
once nv2 60 shared 2 test_ll_nvshmem
EPCOMM_FAULTS_CASES=ll_ once faults 120 faults
for w in ll-dsv3 ll-small; do b build-gpu n2-$w $C $w; b build-prev p2-$w $B $w; done
[ "$(left)" -gt 40 ] && timeout 30 /tmp/rsp > $OUT/row-store-probe.txt 2>&1 && cat $OUT/row-store-probe.txt
pack
