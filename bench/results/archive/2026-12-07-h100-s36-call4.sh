# Session 36 call 4: the entry-load probe (NOTES 11.78), then GPU test programs not run since
# b5da470 on the kernels of HEAD (which are d62d094's, with the list blocks' trace points).
source tools/device_steps.sh
export EPCOMM_CMAKE_ARGS=-DEPCOMM_WITH_NVSHMEM=ON
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv > $OUT/machine.txt 2>&1; nproc >> $OUT/machine.txt
step 330 || { pack; exit 1; }
once entry 40 entry
once kt 60 shared 2 test_kernel_times
once tel 40 shared 2 test_telemetry
once fa3 150 shared 3 test_faults
EPCOMM_MD_SHAPES="2:1 4:2" once md 150 md
pack
