// PyAllocator: epcomm's outputs allocated by a Python callable (PyTorch's caching allocator, say).
#include <string>

#include "binding.hpp"

namespace epcomm::py {

PyAllocator::PyAllocator(nb::callable allocate) : allocate_(std::move(allocate)) {}

PyAllocator::~PyAllocator() {
  // Python objects are released with the GIL held, or leaked once the interpreter is gone.
  if (!nb::is_alive()) {
    for (auto& [ptr, live] : live_) live.owner.release();
    allocate_.release();
    return;
  }
  nb::gil_scoped_acquire gil;
  live_.clear();
  allocate_.reset();
}

void* PyAllocator::allocate(std::size_t bytes, cudaStream_t stream) {
  nb::gil_scoped_acquire gil;
  std::uintptr_t ptr = 0;
  nb::object owner;
  try {
    nb::object result = allocate_(bytes, reinterpret_cast<std::uintptr_t>(stream));
    auto pair = nb::cast<nb::tuple>(result);
    if (pair.size() != 2) throw nb::type_error("expected a tuple (ptr, owner)");
    ptr = nb::cast<std::uintptr_t>(pair[0]);
    owner = pair[1];
  } catch (const nb::python_error& e) {
    throw Error(ErrorCategory::kCuda, std::string("allocator: the Python allocator failed for ") +
                                          std::to_string(bytes) + " bytes: " + e.what(),
                __FILE__, __LINE__);
  } catch (const std::exception& e) {  // a result of the wrong type
    throw Error(ErrorCategory::kInvalidArgument,
                std::string("allocator: expected the callable to return (data_ptr: int, owner), ") + e.what(),
                __FILE__, __LINE__);
  }
  if (ptr == 0 && bytes > 0)
    throw Error(ErrorCategory::kInvalidArgument, "allocator: the callable returned a null data_ptr for " +
                                                     std::to_string(bytes) + " bytes", __FILE__, __LINE__);
  std::lock_guard<std::mutex> lock(mutex_);
  live_[ptr] = Live{bytes, std::move(owner)};
  return reinterpret_cast<void*>(ptr);
}

void PyAllocator::deallocate(void* ptr, std::size_t, cudaStream_t) noexcept {
  if (!nb::is_alive()) return;  // interpreter shutdown: the owners go with it
  nb::gil_scoped_acquire gil;
  nb::object owner;  // dropped after the lock is released (its destructor may run Python code)
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = live_.find(reinterpret_cast<std::uintptr_t>(ptr));
    if (it == live_.end()) return;
    owner = std::move(it->second.owner);
    live_.erase(it);
  }
}

std::optional<std::pair<nb::object, std::int64_t>> PyAllocator::find(const void* ptr) {
  const auto p = reinterpret_cast<std::uintptr_t>(ptr);
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = live_.upper_bound(p);
  if (it == live_.begin()) return std::nullopt;
  --it;
  if (p >= it->first + it->second.bytes && !(p == it->first && it->second.bytes == 0)) return std::nullopt;
  return std::make_pair(it->second.owner, static_cast<std::int64_t>(p - it->first));
}

}  // namespace epcomm::py
