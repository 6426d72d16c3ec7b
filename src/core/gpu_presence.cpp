#include "epcomm/gpu_presence.hpp"

#include <dlfcn.h>

namespace epcomm {

namespace {

// Whether the driver library can be loaded, i.e. whether an NVIDIA driver is installed at all.
bool cuda_driver_installed() {
  void* driver = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL);
  if (driver == nullptr) return false;
  dlclose(driver);
  return true;
}

}  // namespace

GpuPresence probe_gpu_presence() {
  GpuPresence p;
  p.count_error = cudaGetDeviceCount(&p.num_gpus);
  if (p.count_error != cudaSuccess) p.num_gpus = 0;
  p.error_name = cudaGetErrorName(p.count_error);
  p.error_text = cudaGetErrorString(p.count_error);
  (void)cudaGetLastError();  // NOTE: a failed count must not surface in the caller's next check
  p.driver_installed = cuda_driver_installed();
  return p;
}

}  // namespace epcomm
