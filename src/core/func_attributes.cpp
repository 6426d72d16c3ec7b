#include "core/func_attributes.hpp"

#include "core/cuda_check.hpp"

namespace epcomm {

bool AttributeLedger::needs(int device, const void* kernel, int attribute, int value) {
  const std::lock_guard<std::mutex> lock(mutex_);
  const auto it = set_.find(Key{device, kernel, attribute});
  return it == set_.end() || it->second < value;
}

void AttributeLedger::record(int device, const void* kernel, int attribute, int value) {
  const std::lock_guard<std::mutex> lock(mutex_);
  int& stored = set_.try_emplace(Key{device, kernel, attribute}, value).first->second;
  if (stored < value) stored = value;
}

void raise_func_attribute(const void* kernel, cudaFuncAttribute attribute, int value) {
  static AttributeLedger ledger;
  int device = 0;
  EPCOMM_CUDA_CHECK(cudaGetDevice(&device));
  if (!ledger.needs(device, kernel, static_cast<int>(attribute), value)) return;
  EPCOMM_CUDA_CHECK(cudaFuncSetAttribute(kernel, attribute, value));
  ledger.record(device, kernel, static_cast<int>(attribute), value);
}

}  // namespace epcomm
