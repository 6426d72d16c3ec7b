# Session 36 call 1 (NOTES 11.75): HEAD against 39e338b (.dev/prev): the test fixes, 11.73 (pulled combine L2 prefetch), 11.74 (tagged host counts).
source tools/device_steps.sh
export EPCOMM_CMAKE_ARGS=-DEPCOMM_WITH_NVSHMEM=ON
B=39e338b
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv > $OUT/machine.txt 2>&1; nproc >> $OUT/machine.txt
if [ ! -f build-prev/tools/bench/epcomm-bench ]; then
( cmake -S .dev/prev -B build-prev -G Ninja -DCMAKE_BUILD_TYPE=Release $EPCOMM_CMAKE_ARGS > $OUT/prev_build.log 2>&1 &&
  cmake --build build-prev -j 4 --target epcomm-bench epcomm-run >> $OUT/prev_build.log 2>&1; echo "rc $?" > $OUT/prev_done ) &
else echo "rc 0" > $OUT/prev_done; fi
step 330 || { wait; pack; exit 1; }
b() { # b DIR NAME COMMIT WORKLOAD [env]
  local dir=$1 name=$2 c=$3 w=$4 t0=$(date +%s); shift 4
  [ "$(left)" -lt 30 ] && { echo "[skipped for time: $name]"; return; }
  env "$@" EPCOMM_COMMIT=$c timeout $(( $(left) - 12 )) $dir/tools/epcomm-run -n 1 --timeout 60 $dir/tools/bench/epcomm-bench --workload $w $([ $w = ht-dsv3 ] && echo --sms 24) \
    --json $OUT/$name.json > $OUT/$name.txt 2>&1; echo "== $name ($c) rc $? $(( $(date +%s) - t0 )) s"
  if [ "$w" = ht-dsv3 ]; then python3 .dev/pre.py $OUT/$name.json $name | cut -c1-150; return; fi
  grep -E 'epcomm-graph' $OUT/$name.txt | grep -v '#' | awk -v n=$name '{print n, $1, $2, $4, $7, $9, $NF}'
}
once ll2 60 shared 2 test_ll
once rm3 50 shared 3 test_rank_mask
wait
cat $OUT/prev_done
C=$EPCOMM_COMMIT
b build-gpu n1-ll-dsv3 $C ll-dsv3; b build-prev p1-ll-dsv3 $B ll-dsv3
b build-gpu h1-ht $C ht-dsv3; b build-prev hp1-ht $B ht-dsv3
b build-gpu n1-ll-small $C ll-small; b build-prev p1-ll-small $B ll-small
b build-prev p2-ll-dsv3 $B ll-dsv3; b build-gpu n2-ll-dsv3 $C ll-dsv3
b build-prev hp2-ht $B ht-dsv3; b build-gpu h2-ht $C ht-dsv3
b build-gpu tn-ll-dsv3 $C ll-dsv3 EPCOMM_LL_TRACE=2
b build-gpu th-ht $C ht-dsv3 EPCOMM_HT_TRACE=1
once ht2 150 shared 2 test_ht
once lay2 40 shared 2 test_layout
once ll4 90 shared 4 test_ll
pack
