# Session 37 call 1 (NOTES 11.81): the tagged lists (EPCOMM_LL_TAGGED_LISTS) in one build, 1 against 0.
source tools/device_steps.sh
export EPCOMM_CMAKE_ARGS=-DEPCOMM_WITH_NVSHMEM=ON
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv > $OUT/machine.txt 2>&1; nproc >> $OUT/machine.txt
step 330 || { pack; exit 1; }
b() { # b NAME WORKLOAD TAGGED [env]
  local name=$1 w=$2 tg=$3 t0=$(date +%s); shift 3
  [ "$(left)" -lt 30 ] && { echo "[skipped for time: $name]"; return; }
  env "$@" EPCOMM_LL_TAGGED_LISTS=$tg EPCOMM_COMMIT=$EPCOMM_COMMIT timeout $(( $(left) - 12 )) build-gpu/tools/epcomm-run -n 1 --timeout 60 \
    build-gpu/tools/bench/epcomm-bench --workload $w --json $OUT/$name.json > $OUT/$name.txt 2>&1; echo "== $name (tagged $tg) rc $? $(( $(date +%s) - t0 )) s"
  grep -E 'epcomm-graph' $OUT/$name.txt | grep -v '#' | awk -v n=$name '{print n, $1, $2, $4, $7, $9, $NF}'
  grep -E '# trace rank 0 epcomm-graph dispatch (1|128) tokens' $OUT/$name.txt | cut -c1-140
}
once entry 40 entry
once ll2 60 shared 2 test_ll
EPCOMM_LL_TAGGED_LISTS=1 once ll2t 60 shared 2 test_ll
EPCOMM_LL_TAGGED_LISTS=1 once rm3t 50 shared 3 test_rank_mask
b t1-ll-small ll-small 1 EPCOMM_LL_TRACE=2; b t0-ll-small ll-small 0 EPCOMM_LL_TRACE=2
b t1-ll-dsv3 ll-dsv3 1 EPCOMM_LL_TRACE=2; b t0-ll-dsv3 ll-dsv3 0 EPCOMM_LL_TRACE=2
b n1-ll-dsv3 ll-dsv3 1; b p1-ll-dsv3 ll-dsv3 0; b p2-ll-dsv3 ll-dsv3 0; b n2-ll-dsv3 ll-dsv3 1
b n1-ll-small ll-small 1; b p1-ll-small ll-small 0; b p2-ll-small ll-small 0; b n2-ll-small ll-small 1
EPCOMM_LL_TAGGED_LISTS=1 once ll4t 130 shared 4 test_ll
pack
