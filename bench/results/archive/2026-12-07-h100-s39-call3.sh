# Session 39 call 3 (NOTES 11.87): row_store_probe (17489a0, its first five cases), built alone, run twice.
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
export PATH="$PATH:/usr/local/cuda/bin"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv > $OUT/machine.txt 2>&1
nvcc -std=c++20 -O3 -arch=sm_90a -Isrc -Itools/probes tools/probes/row_store_probe.cu -o /tmp/rsp && echo built
for i in 1 2; do timeout 60 /tmp/rsp | tee $OUT/row-store-probe-$i.txt; done
