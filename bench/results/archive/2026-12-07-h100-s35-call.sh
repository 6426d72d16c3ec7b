# Session 35 call 1: HEAD (11.62 + 11.64 + the pulled zero-copy combine) against f232b63 (.dev/mid) and c3c76a2 (.dev/base).
source tools/device_steps.sh
export EPCOMM_CMAKE_ARGS=-DEPCOMM_WITH_NVSHMEM=ON
B=c3c76a2; M=f232b63
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv > $OUT/machine.txt 2>&1; nproc >> $OUT/machine.txt
side() { # side SRC BUILD NAME
  if [ ! -f $2/tools/bench/epcomm-bench ]; then
    ( cmake -S $1 -B $2 -G Ninja -DCMAKE_BUILD_TYPE=Release $EPCOMM_CMAKE_ARGS > $OUT/$3_build.log 2>&1 &&
      cmake --build $2 -j 4 --target epcomm-bench epcomm-run >> $OUT/$3_build.log 2>&1; echo "rc $?" > $OUT/$3_done ) &
  else echo "rc 0" > $OUT/$3_done; fi
}
side .dev/base build-base base; side .dev/mid build-mid mid
step 330 || { wait; pack; exit 1; }
b() { # b DIR NAME COMMIT WORKLOAD [env]
  local dir=$1 name=$2 c=$3 w=$4; shift 4
  [ "$(left)" -lt 30 ] && { echo "[skipped for time: $name]"; return; }
  env "$@" EPCOMM_COMMIT=$c $dir/tools/epcomm-run -n 1 --timeout 60 $dir/tools/bench/epcomm-bench --workload $w $([ $w = ht-dsv3 ] && echo --sms 24) \
    --json $OUT/$name.json > $OUT/$name.txt 2>&1; echo "== $name ($c) rc $?"
  if [ "$w" = ht-dsv3 ]; then python3 .dev/pre.py $OUT/$name.json $name | cut -c1-150; return; fi
  grep -E 'epcomm-graph' $OUT/$name.txt | grep -v '#' | awk -v n=$name '{print n, $1, $2, $4, $7, $9, $NF}'
}
once ll2 110 shared 2 test_ll
if grep -q "FAILED" $OUT/shared_2_test_ll.log 2>/dev/null; then  # bisect: the staging form, then the pushed combine
  cp $OUT/shared_2_test_ll.log $OUT/ll2_head.log
  EPCOMM_LL_DIRECT_DISPATCH=0 step 110 shared 2 test_ll; cp $OUT/shared_2_test_ll.log $OUT/ll2_staging.log
  EPCOMM_LL_PULL_COMBINE=0 step 110 shared 2 test_ll; cp $OUT/shared_2_test_ll.log $OUT/ll2_push.log
fi
wait
cat $OUT/base_done $OUT/mid_done
C=$EPCOMM_COMMIT
for w in ll-dsv3 ll-small; do b build-gpu n1-$w $C $w; b build-base b1-$w $B $w; b build-mid m1-$w $M $w; done
b build-gpu h1-ht $C ht-dsv3; b build-base hb1-ht $B ht-dsv3
b build-gpu p0-ll-dsv3 $C ll-dsv3 EPCOMM_LL_PULL_COMBINE=0
b build-gpu tn-ll-dsv3 $C ll-dsv3 EPCOMM_LL_TRACE=2
once rm3 50 shared 3 test_rank_mask
once ht2 100 shared 2 test_ht
for w in ll-dsv3 ll-small; do b build-base b2-$w $B $w; b build-mid m2-$w $M $w; b build-gpu n2-$w $C $w; done
b build-base tb-ll-dsv3 $B ll-dsv3 EPCOMM_LL_TRACE=2
b build-gpu th-ht $C ht-dsv3 EPCOMM_HT_TRACE=1; b build-base tbh-ht $B ht-dsv3 EPCOMM_HT_TRACE=1
b build-gpu h2-ht $C ht-dsv3; b build-base hb2-ht $B ht-dsv3
once nv2 90 shared 2 test_ll_nvshmem
once tel2 40 shared 2 test_telemetry
once kt2 30 shared 2 test_kernel_times
once drain 30 drain
once ll4 160 shared 4 test_ll
pack
