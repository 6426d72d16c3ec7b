# Session 43 call 1, prepared and not run (no machine could be started; then loans were paused).
# NOTES 11.97: HEAD (the direct dispatch's counts stored ahead of the places, b9bba23; on main it is
# reverted by f2f2514: `git revert f2f2514` brings it back) against 50b3951 (b3aa8ef's dispatch +
# ed52468's combine, main's kernels), traced, alternated twice; the tests on HEAD; ht-dsv3 --sms 24
# traced (the preamble's device-clock span, still unmeasured on an H200).
# Before: rm -rf .dev/prev && mkdir .dev/prev && git archive 50b3951 | tar x -C .dev/prev && rm -rf .dev/prev/bench/results
# Run: EPCOMM_CALL_S=570 EPCOMM_COMMIT=<HEAD> bash <this script> (carry .gtest and .dev).
source tools/device_steps.sh
export EPCOMM_CMAKE_ARGS=-DEPCOMM_WITH_NVSHMEM=ON
B=50b3951
C=$EPCOMM_COMMIT
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv > $OUT/machine.txt 2>&1; nproc >> $OUT/machine.txt
cat $OUT/machine.txt
side build-prev .dev/prev
step 220 || { wait; pack; exit 1; }
wait
tail -n 1 $OUT/side_build-prev.log
once ll2 50 shared 2 test_ll && keep 2_test_ll direct
for w in ll-small ll-dsv3; do
  bench build-gpu tn-$w $C $w EPCOMM_LL_TRACE=2; bench build-prev tp-$w $B $w EPCOMM_LL_TRACE=2
done
for w in ll-dsv3 ll-small; do bench build-gpu n1-$w $C $w; bench build-prev p1-$w $B $w; done
bench build-gpu n-ht-dsv3-sms24 $C "ht-dsv3 --sms 24" EPCOMM_HT_TRACE=1
once ll4 130 shared 4 test_ll
once rm3 45 shared 3 test_rank_mask
EPCOMM_LL_DIRECT_DISPATCH=0 once ll2s 50 shared 2 test_ll && keep 2_test_ll staging
for w in ll-dsv3 ll-small; do bench build-gpu n2-$w $C $w; bench build-prev p2-$w $B $w; done
EPCOMM_FAULTS_CASES=ll_ once faults 120 faults
once nv2 60 shared 2 test_ll_nvshmem
pack
