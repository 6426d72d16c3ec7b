# Session 41 call 2 (NOTES 11.90): HEAD (e35280d brought back, ll_run_phases back to 7d9436d's order) against
# 570db2f (.dev/prev, main's kernels = 7d9436d's): the tests, traces, A/B alternated twice, ht-dsv3 --sms 24 traced.
source tools/device_steps.sh
export EPCOMM_CMAKE_ARGS=-DEPCOMM_WITH_NVSHMEM=ON
B=570db2f
C=$EPCOMM_COMMIT
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv > $OUT/machine.txt 2>&1; nproc >> $OUT/machine.txt
if [ ! -f build-prev/tools/bench/epcomm-bench ]; then
( cmake -S .dev/prev -B build-prev -G Ninja -DCMAKE_BUILD_TYPE=Release $EPCOMM_CMAKE_ARGS > $OUT/prev_build.log 2>&1 &&
  cmake --build build-prev -j 4 --target epcomm-bench epcomm-run >> $OUT/prev_build.log 2>&1; echo "rc $?" > $OUT/prev_done ) &
else echo "rc 0" > $OUT/prev_done; fi
step 220 || { wait; pack; exit 1; }
wait
cat $OUT/prev_done
once ll2 50 shared 2 test_ll && keep 2_test_ll direct
for w in ll-small ll-dsv3; do
  bench build-gpu tn-$w $C $w EPCOMM_LL_TRACE=2; bench build-prev tp-$w $B $w EPCOMM_LL_TRACE=2
done
for w in ll-dsv3 ll-small; do bench build-gpu n1-$w $C $w; bench build-prev p1-$w $B $w; done
if [ "$(left)" -gt 200 ]; then t0=$(date +%s)
  EPCOMM_HT_TRACE=1 EPCOMM_COMMIT=$C timeout 150 build-gpu/tools/epcomm-run -n 1 --timeout 80 build-gpu/tools/bench/epcomm-bench \
    --workload ht-dsv3 --sms 24 --json $OUT/n-ht-dsv3-sms24.json > $OUT/n-ht-dsv3-sms24.txt 2>&1
  echo "== ht-dsv3 rc $? $(( $(date +%s) - t0 )) s"; grep -v "^\[rank 0\] #" $OUT/n-ht-dsv3-sms24.txt | tail -25
fi
once ll4 130 shared 4 test_ll
EPCOMM_LL_DIRECT_DISPATCH=0 once ll2s 50 shared 2 test_ll && keep 2_test_ll staging
once nv2 60 shared 2 test_ll_nvshmem
EPCOMM_FAULTS_CASES=ll_ once faults 120 faults
for w in ll-dsv3 ll-small; do bench build-gpu n2-$w $C $w; bench build-prev p2-$w $B $w; done
once rm3 45 shared 3 test_rank_mask
pack
