// Declarations shared by the translation units of the extension epcomm._C.
//
// The extension sees epcomm only through its public headers. Tensors arrive as DLPack arrays
// (nb::ndarray: NumPy on the CPU, torch on CUDA, anything with __dlpack__) and leave as DeviceArray
// objects that export DLPack themselves. Streams are integers (a cudaStream_t's value).
#pragma once

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include <array>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "epcomm/buffer.hpp"
#include "epcomm/error.hpp"

namespace epcomm::py {

namespace nb = nanobind;

using Array = nb::ndarray<>;  // any DLPack array: dtype, device and layout are checked by to_tensor

// An array argument, or None (array_arg.cpp). A torch CUDA tensor of a dtype epcomm takes is read
// through its attributes (data_ptr, shape, stride: ~0.4 us on the CPU); anything else is imported
// through DLPack (a torch tensor's __dlpack__ alone costs ~2.4 us), which also gives every refusal
// its words. The accessors are nb::ndarray's, so the checks read either alike.
class OptArray {
 public:
  OptArray() = default;
  explicit OptArray(Array array);
  // The attributes of a strided torch CUDA tensor of a dtype epcomm takes, at most kMaxDims
  // dimensions; nullopt for anything else (which then goes through DLPack).
  static std::optional<OptArray> from_torch(nb::handle object) noexcept;
  // What from_torch makes of the attributes it read.
  static OptArray torch_view(nb::object tensor, int device_type, int device_id, std::size_t ndim,
                             const std::array<std::int64_t, Tensor::kMaxDims>& shape,
                             const std::array<std::int64_t, Tensor::kMaxDims>& stride, nb::dlpack::dtype dtype,
                             void* data);

  explicit operator bool() const { return given_; }
  const OptArray* operator->() const { return this; }
  const OptArray& operator*() const { return *this; }
  bool is_valid() const { return given_; }
  int device_type() const { return array_ ? array_->device_type() : device_type_; }
  int device_id() const { return array_ ? array_->device_id() : device_id_; }
  std::size_t ndim() const { return array_ ? array_->ndim() : ndim_; }
  std::size_t shape(std::size_t i) const { return array_ ? array_->shape(i) : static_cast<std::size_t>(shape_[i]); }
  std::int64_t stride(std::size_t i) const { return array_ ? array_->stride(i) : stride_[i]; }
  nb::dlpack::dtype dtype() const { return array_ ? array_->dtype() : dtype_; }
  void* data() const { return array_ ? array_->data() : data_; }

 private:
  bool given_ = false;
  std::optional<Array> array_;  // the DLPack import, when it came that way
  nb::object tensor_;           // the torch tensor read directly, kept alive
  int device_type_ = 0;
  int device_id_ = 0;
  std::size_t ndim_ = 0;
  std::array<std::int64_t, Tensor::kMaxDims> shape_{};
  std::array<std::int64_t, Tensor::kMaxDims> stride_{};
  nb::dlpack::dtype dtype_{};
  void* data_ = nullptr;
};

// Throws epcomm::Error(kInvalidArgument) from the binding's own checks, like the core's.
[[noreturn]] void invalid_argument(const std::string& message);

// ---- tensors in (tensors.cpp) -------------------------------------------------------------------
// What one argument must be. `ndim` 0 accepts any rank up to Tensor::kMaxDims.
struct TensorSpec {
  const char* name;
  std::initializer_list<DType> dtypes;
  int ndim = 0;
  bool required = true;
};

// The view of `array` as epcomm::Tensor after checking, in this order, that it is given (when
// required), lies in CUDA device memory (a CPU array is refused by name before anything runs), has
// the expected number of dimensions and one of the expected dtypes. `fp8`: a uint8 array holds
// float8_e4m3fn bytes (for producers without a DLPack FP8 code; a DLPack float8_e4m3fn array is
// accepted either way).
// `device` >= 0: a CUDA array must also lie on that device (the Buffer's), else it is refused by
// name before anything runs (a kernel would fault on, or silently read, another GPU's memory).
inline constexpr int kAnyDevice = -1;
Tensor to_tensor(const OptArray& array, const TensorSpec& spec, bool fp8 = false, int device = kAnyDevice);

// Arrays of an operation by argument name, kept alive with the views made of them.
using NamedArrays = std::vector<std::pair<const char*, OptArray>>;
// Refuses, by name, a CUDA array of `arrays` (or `array`) on a device other than `device`.
void check_device(const OptArray& array, const char* name, int device);
void check_devices(const NamedArrays& arrays, int device);

// The dtype name of a DLPack array ("float32", "bfloat16", ...), for messages.
std::string dlpack_dtype_name(const Array& array);

// ---- tensors out (tensors.cpp) ------------------------------------------------------------------
class PyAllocator;

// An output: a DeviceTensor (owned, or a view of a Buffer's memory kept alive by `keepalive`),
// exported through __dlpack__. `alloc_owner`/`alloc_offset` name the Python object of the
// allocation holding it (what PyAllocator's callable returned) and the byte offset inside it, so a
// framework can make its tensor a view of its own allocation.
struct DeviceArray {
  DeviceTensor tensor;
  nb::object keepalive{};
  nb::object alloc_owner{};
  std::int64_t alloc_offset = 0;
  int device = 0;
};

// None for an undefined tensor.
nb::object export_tensor(const DeviceTensor& tensor, const std::shared_ptr<PyAllocator>& allocator, int device);
nb::object export_view(const Tensor& view, nb::handle keepalive, int device);

// ---- allocator (allocator.cpp) ------------------------------------------------------------------
// epcomm::Allocator backed by a Python callable `allocate(nbytes: int, stream: int) -> (ptr: int,
// owner)`. The owner (a torch uint8 tensor, say) is kept alive until deallocate, which takes the GIL.
class PyAllocator final : public Allocator {
 public:
  explicit PyAllocator(nb::callable allocate);
  ~PyAllocator() override;
  void* allocate(std::size_t bytes, cudaStream_t stream) override;
  void deallocate(void* ptr, std::size_t bytes, cudaStream_t stream) noexcept override;
  // The owner of the live allocation holding `ptr` and the offset of `ptr` inside it, if any.
  std::optional<std::pair<nb::object, std::int64_t>> find(const void* ptr);

 private:
  struct Live {
    std::size_t bytes;
    nb::object owner;
  };
  nb::callable allocate_;
  std::mutex mutex_;
  std::map<std::uintptr_t, Live> live_;
};

// ---- handles -----------------------------------------------------------------------------------
// DispatchHandle and LlHandle are opaque: the binding stores, copies and passes them; the few
// values it shows Python come from their accessors, in describe() (buffer.cpp).
struct HandleInfo {
  std::int64_t num_tokens = 0;       // tokens this rank sent
  std::int64_t num_recv_tokens = 0;  // rows received (-1 where only the device knows)
  int num_ranks = 0;
  int num_local_experts = 0;
  std::int64_t hidden = 0;  // low-latency handles only
};
HandleInfo describe(const DispatchHandle& handle);
HandleInfo describe(const LlHandle& handle);

// A handle with the Buffer that made it (a handle from another Buffer is refused by name).
template <typename Handle>
struct PyHandle {
  Handle handle;
  const void* buffer = nullptr;
};
using PyDispatchHandle = PyHandle<DispatchHandle>;
using PyLlHandle = PyHandle<LlHandle>;

// ---- the Buffer (buffer.cpp) --------------------------------------------------------------------
struct PyBuffer {
  std::unique_ptr<Buffer> buffer;
  std::shared_ptr<PyAllocator> allocator;  // null: epcomm's default allocator
  int device = 0;

  // The live Buffer; a destroyed one is refused, naming the operation.
  Buffer& get(const char* op);
  // Refuses a handle made by another Buffer.
  template <typename Handle>
  const Handle& own(const PyHandle<Handle>& h, const char* name) const {
    if (!h.handle.defined()) invalid_argument(std::string(name) + ": expected a handle, got an empty one");
    if (h.buffer != this) invalid_argument(std::string(name) + ": made by another Buffer");
    return h.handle;
  }
};

// CallOptions from the keyword arguments every operation takes.
CallOptions call_options(std::uintptr_t stream, const std::optional<EventHandle>& previous_event,
                         bool async_finish, bool allocate_on_comm_stream);

void bind_errors(nb::module_& m);
void bind_tensors(nb::module_& m);
void bind_bootstrap(nb::module_& m);
nb::class_<PyBuffer> bind_buffer(nb::module_& m);
void bind_high_throughput(nb::module_& m, nb::class_<PyBuffer>& buffer);
void bind_low_latency(nb::module_& m, nb::class_<PyBuffer>& buffer);
// Masking, telemetry, kernel timing, multi-domain hints (reliability.cpp).
void bind_reliability(nb::module_& m, nb::class_<PyBuffer>& buffer);

// The event a call returned: None when it finished synchronously.
nb::object event_or_none(const EventHandle& event);

}  // namespace epcomm::py

// Arguments declared OptArray take None, a torch tensor (read directly) or any DLPack array.
namespace nanobind::detail {
template <>
struct type_caster<epcomm::py::OptArray> {
  NB_TYPE_CASTER(epcomm::py::OptArray, const_name("ndarray[]"))

  bool from_python(handle src, uint8_t flags, cleanup_list* cleanup) noexcept {
    if (src.is_none()) {
      value = epcomm::py::OptArray();
      return true;
    }
    if (std::optional<epcomm::py::OptArray> fast = epcomm::py::OptArray::from_torch(src)) {
      value = std::move(*fast);
      return true;
    }
    make_caster<epcomm::py::Array> array;
    if (!array.from_python(src, flags, cleanup)) return false;
    value = epcomm::py::OptArray(std::move(array.value));
    return true;
  }
  static handle from_cpp(const epcomm::py::OptArray&, rv_policy, cleanup_list*) noexcept {
    return none().release();
  }
};
}  // namespace nanobind::detail
