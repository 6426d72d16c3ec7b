# Session 42 call 1 (NOTES 11.91-11.95): HEAD (`git revert 73d9ba9 4356cfc 211da2a 005fd83`: the list blocks'
# pass, block 0 without partial items, the halves' fields selected, the receive's early item) against b3aa8ef (4851d26 kernels + 7bd9d5a tidy):
# the tests, traces of both, A/B alternated twice, param_probe, ht-dsv3 --sms 24 traced.
# Before: rm -rf .dev/prev && mkdir .dev/prev && git archive b3aa8ef | tar x -C .dev/prev && rm -rf .dev/prev/bench/results
source tools/device_steps.sh
export EPCOMM_CMAKE_ARGS=-DEPCOMM_WITH_NVSHMEM=ON
B=b3aa8ef
C=$EPCOMM_COMMIT
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv > $OUT/machine.txt 2>&1; nproc >> $OUT/machine.txt
side build-prev .dev/prev
step 220 || { wait; pack; exit 1; }
wait
tail -n 1 $OUT/side_build-prev.log
once ll2 50 shared 2 test_ll && keep 2_test_ll direct
for w in ll-small ll-dsv3; do
  bench build-gpu tn-$w $C $w EPCOMM_LL_TRACE=2; bench build-prev tp-$w $B $w EPCOMM_LL_TRACE=2
done
for w in ll-dsv3 ll-small; do bench build-gpu n1-$w $C $w; bench build-prev p1-$w $B $w; done
once ll4 130 shared 4 test_ll
EPCOMM_LL_DIRECT_DISPATCH=0 once ll2s 50 shared 2 test_ll && keep 2_test_ll staging
once nv2 60 shared 2 test_ll_nvshmem
once rm3 45 shared 3 test_rank_mask
EPCOMM_FAULTS_CASES=ll_ once faults 120 faults
[ -x build-gpu/tools/param_probe ] && timeout 30 build-gpu/tools/param_probe > $OUT/param-probe.txt 2>&1; cat $OUT/param-probe.txt
if [ "$(left)" -gt 75 ]; then t0=$(date +%s)
  EPCOMM_HT_TRACE=1 EPCOMM_COMMIT=$C timeout 60 build-gpu/tools/epcomm-run -n 1 --timeout 50 build-gpu/tools/bench/epcomm-bench \
    --workload ht-dsv3 --sms 24 --json $OUT/n-ht-dsv3-sms24.json > $OUT/n-ht-dsv3-sms24.txt 2>&1
  echo "== ht-dsv3 rc $? $(( $(date +%s) - t0 )) s"; grep -v "^\[rank 0\] #" $OUT/n-ht-dsv3-sms24.txt | tail -25
fi
for w in ll-dsv3 ll-small; do bench build-gpu n2-$w $C $w; bench build-prev p2-$w $B $w; done
pack
