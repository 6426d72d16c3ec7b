# Session 42 call 2: main's head after 11.96 (b3aa8ef's kernels + ed52468's combine block 0 without
# partial items, the other three reverted): build, gpu_test_ll on 2, both low-latency workloads
# checked, rank_mask on 3, gpu_test_ll on 4 if time is left.
source tools/device_steps.sh
export EPCOMM_CMAKE_ARGS=-DEPCOMM_WITH_NVSHMEM=ON
C=$EPCOMM_COMMIT
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv > $OUT/machine.txt 2>&1
step 150 || { pack; exit 1; }
once ll2 50 shared 2 test_ll
for w in ll-dsv3 ll-small; do bench build-gpu f-$w $C $w; done
once rm3 40 shared 3 test_rank_mask
once ll4 130 shared 4 test_ll
pack
