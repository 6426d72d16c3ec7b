# Session 39 call 2 (NOTES 11.87): which of the two waits the receive's 1.5 us after item-ready is.
# .dev/exp = 21719df with item-ready stamped only once lane 0's piece is in registers (a predicated
# store that reads it, then the clock). Not for main: an experiment's trace point.
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_REMOTE_TRANSPORT=none
export PATH="$PATH:/usr/local/cuda/bin"
t0=$(date +%s)
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv > $OUT/machine.txt 2>&1; nproc >> $OUT/machine.txt
cmake -S .dev/exp -B build-exp -G Ninja -DCMAKE_BUILD_TYPE=Release > $OUT/exp_build.log 2>&1 &&
  timeout 200 cmake --build build-exp -j 16 --target epcomm-bench epcomm-run >> $OUT/exp_build.log 2>&1
echo "build rc $? $(( $(date +%s) - t0 )) s"; tail -2 $OUT/exp_build.log
for w in ll-small ll-dsv3; do
  EPCOMM_LL_TRACE=2 EPCOMM_COMMIT=21719df-exp timeout 60 build-exp/tools/epcomm-run -n 1 --timeout 50 build-exp/tools/bench/epcomm-bench \
    --workload $w --json $OUT/te-$w.json > $OUT/te-$w.txt 2>&1; echo "== $w rc $? $(( $(date +%s) - t0 )) s"
  grep -E '# trace rank 0 epcomm-graph dispatch' -A11 $OUT/te-$w.txt | grep -E 'span|done-seen|item-ready|received|exit' | cut -c1-120
done
tar czf /tmp/o.tgz -C $OUT . && find $OUT -mindepth 1 -delete && mv /tmp/o.tgz $OUT/out.tgz
