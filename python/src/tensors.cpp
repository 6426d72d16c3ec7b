// Tensors across the boundary: DLPack arrays in (to_tensor), DeviceArray out (export_*).
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <string>

#include "binding.hpp"

namespace epcomm::py {

namespace {

namespace dl = nb::dlpack;

constexpr int kDlCpu = 1;
constexpr int kDlCuda = 2;
constexpr int kDlCudaHost = 3;
constexpr int kDlCudaManaged = 13;

std::string dtype_name(dl::dtype t) {
  const std::string bits = std::to_string(t.bits);
  switch (static_cast<dl::dtype_code>(t.code)) {
    case dl::dtype_code::Int:
      return "int" + bits;
    case dl::dtype_code::UInt:
      return "uint" + bits;
    case dl::dtype_code::Float:
      return "float" + bits;
    case dl::dtype_code::Bfloat:
      return "bfloat" + bits;
    case dl::dtype_code::Bool:
      return "bool";
    case dl::dtype_code::Complex:
      return "complex" + bits;
    case dl::dtype_code::Float8_E4M3FN:
      return "float8_e4m3fn";
    case dl::dtype_code::Float8_E5M2:
      return "float8_e5m2";
    default:
      return "dlpack dtype code " + std::to_string(t.code) + " of " + bits + " bits";
  }
}

// The names Python sees (torch's spelling; epcomm's C++ name for FP8 is float8_e4m3).
const char* py_dtype_name(DType t) {
  return t == DType::kFP8E4M3 ? "float8_e4m3fn" : to_string(t);
}

std::optional<DType> to_dtype(dl::dtype t, bool fp8) {
  if (t.lanes != 1) return std::nullopt;
  const auto code = static_cast<dl::dtype_code>(t.code);
  if (code == dl::dtype_code::Bfloat && t.bits == 16) return DType::kBF16;
  if (code == dl::dtype_code::Float8_E4M3FN && t.bits == 8) return DType::kFP8E4M3;
  if (code == dl::dtype_code::Float && t.bits == 32) return DType::kF32;
  if (code == dl::dtype_code::Int && t.bits == 32) return DType::kI32;
  if (code == dl::dtype_code::Int && t.bits == 64) return DType::kI64;
  if (code == dl::dtype_code::Bool && t.bits == 8) return DType::kBool;
  if (code == dl::dtype_code::UInt && t.bits == 8) return fp8 ? DType::kFP8E4M3 : DType::kU8;
  return std::nullopt;
}

// How an output is exported: FP8 as uint8 bytes, since not every DLPack consumer knows the FP8 code
// (DeviceArray.dtype still says float8_e4m3fn).
dl::dtype to_dlpack(DType t) {
  switch (t) {
    case DType::kBF16:
      return {static_cast<std::uint8_t>(dl::dtype_code::Bfloat), 16, 1};
    case DType::kF32:
      return nb::dtype<float>();
    case DType::kI32:
      return nb::dtype<std::int32_t>();
    case DType::kI64:
      return nb::dtype<std::int64_t>();
    case DType::kBool:
      return nb::dtype<bool>();
    case DType::kFP8E4M3:
    case DType::kU8:
      return nb::dtype<std::uint8_t>();
  }
  return nb::dtype<std::uint8_t>();
}

std::string device_name(int device_type) {
  switch (device_type) {
    case kDlCpu:
      return "a CPU array";
    case kDlCudaHost:
      return "a CUDA host (pinned) array";
    default:
      return "an array on DLPack device type " + std::to_string(device_type);
  }
}

std::string shape_string(const OptArray& a) {
  std::string s = "[";
  for (std::size_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
  return s + "]";
}

nb::tuple as_tuple(const std::array<std::int64_t, Tensor::kMaxDims>& values, int n) {
  nb::list out;
  for (int i = 0; i < n; ++i) out.append(values[static_cast<std::size_t>(i)]);
  return nb::tuple(out);
}

// The DLPack capsule of a DeviceArray: a nanobind ndarray over its memory that keeps `self` alive.
// NOTE: nanobind casts an ndarray of no framework to a bare DLPack capsule ("dltensor"), not to an
// object with __dlpack__: the capsule is what __dlpack__ returns.
nb::object as_capsule(const DeviceArray& a, nb::handle self) {
  const Tensor& v = a.tensor.view();
  std::size_t shape[Tensor::kMaxDims];
  for (int i = 0; i < v.ndim; ++i) shape[i] = static_cast<std::size_t>(v.shape[static_cast<std::size_t>(i)]);
  Array nd(v.data, static_cast<std::size_t>(v.ndim), shape, self, v.stride.data(), to_dlpack(v.dtype), kDlCuda,
           a.device);
  return nb::cast(nd, nb::rv_policy::reference);
}

}  // namespace

std::string dlpack_dtype_name(const Array& array) { return dtype_name(array.dtype()); }

void check_device(const OptArray& array, const char* name, int device) {
  if (!array || !array->is_valid() || array->device_type() != kDlCuda) return;  // managed memory: any device
  const int got = array->device_id();
  if (got != device)
    invalid_argument(std::string(name) + ": expected a CUDA tensor on cuda:" + std::to_string(device) +
                     " (the Buffer's device), got one on cuda:" + std::to_string(got));
}

void check_devices(const NamedArrays& arrays, int device) {
  for (const auto& [name, array] : arrays) check_device(array, name, device);
}

Tensor to_tensor(const OptArray& array, const TensorSpec& spec, bool fp8, int device) {
  const std::string name = spec.name;
  if (!array || !array->is_valid()) {
    if (spec.required) invalid_argument(name + ": expected a CUDA tensor, got None");
    return Tensor{};
  }
  const OptArray& a = array;
  if (a.device_type() != kDlCuda && a.device_type() != kDlCudaManaged)
    invalid_argument(name + ": expected a CUDA tensor, got " + device_name(a.device_type()));
  if (device != kAnyDevice) check_device(array, spec.name, device);
  const int ndim = static_cast<int>(a.ndim());
  if ((spec.ndim > 0 && ndim != spec.ndim) || ndim < 1 || ndim > Tensor::kMaxDims)
    invalid_argument(name + ": expected " + (spec.ndim > 0 ? std::to_string(spec.ndim) : "1 to 4") +
                     " dimensions, got " + std::to_string(ndim) + " " + shape_string(a));
  const std::optional<DType> dtype = to_dtype(a.dtype(), fp8);
  bool allowed = false;
  std::string expected;
  for (DType t : spec.dtypes) {
    allowed = allowed || (dtype && *dtype == t);
    expected += (expected.empty() ? "" : " or ") + std::string(py_dtype_name(t));
  }
  if (!allowed) invalid_argument(name + ": expected " + expected + ", got " + dtype_name(a.dtype()));

  Tensor t;
  t.data = a.data();
  t.dtype = *dtype;
  t.ndim = ndim;
  for (int i = 0; i < ndim; ++i) {
    t.shape[static_cast<std::size_t>(i)] = static_cast<std::int64_t>(a.shape(static_cast<std::size_t>(i)));
    t.stride[static_cast<std::size_t>(i)] = a.stride(static_cast<std::size_t>(i));
  }
  return t;
}

nb::object export_tensor(const DeviceTensor& tensor, const std::shared_ptr<PyAllocator>& allocator, int device) {
  if (!tensor.defined()) return nb::none();
  DeviceArray out{.tensor = tensor, .device = device};
  if (allocator) {
    if (auto found = allocator->find(tensor.data())) {
      out.alloc_owner = std::move(found->first);
      out.alloc_offset = found->second;
    }
  }
  return nb::cast(std::move(out));
}

nb::object export_view(const Tensor& view, nb::handle keepalive, int device) {
  if (!view.defined()) return nb::none();
  return nb::cast(DeviceArray{.tensor = DeviceTensor::borrowed(view),
                              .keepalive = nb::borrow(keepalive),
                              .device = device});
}

void bind_tensors(nb::module_& m) {
  m.def(
      "_check_device", [](OptArray array, const std::string& name, int device) { check_device(array, name.c_str(), device); },
      nb::arg("array").none(), nb::arg("name"), nb::arg("device"),
      "The device check every operation applies to its arrays (exposed for tests).");
  m.def(
      "_device_array_for_test",
      [](std::uintptr_t ptr, std::vector<std::int64_t> shape, int device, nb::object keepalive) {
        // A DeviceArray over any memory (a host buffer on a machine without a GPU): the tests of
        // the Python layer's round trips (a layout handed back to dispatch) run on the CPU.
        if (shape.empty() || shape.size() > static_cast<std::size_t>(Tensor::kMaxDims))
          invalid_argument("shape: expected 1 to 4 dimensions");
        Tensor view;
        view.data = reinterpret_cast<void*>(ptr);
        view.dtype = DType::kI32;
        view.ndim = static_cast<int>(shape.size());
        std::int64_t stride = 1;
        for (int i = view.ndim - 1; i >= 0; --i) {
          view.shape[static_cast<std::size_t>(i)] = shape[static_cast<std::size_t>(i)];
          view.stride[static_cast<std::size_t>(i)] = stride;
          stride *= shape[static_cast<std::size_t>(i)];
        }
        return export_view(view, keepalive, device);
      },
      nb::arg("ptr"), nb::arg("shape"), nb::arg("device"), nb::arg("keepalive").none(),
      "An int32 DeviceArray labelled cuda:device over `ptr` (tests only).");
  using Self = nb::pointer_and_handle<DeviceArray>;
  nb::class_<DeviceArray>(m, "DeviceArray",
                          "An epcomm output in CUDA memory; a DLPack producer (torch.from_dlpack(a)). FP8 "
                          "data is exported as uint8 bytes; dtype says float8_e4m3fn.")
      .def_prop_ro("shape", [](const DeviceArray& a) { return as_tuple(a.tensor.view().shape, a.tensor.view().ndim); })
      .def_prop_ro("strides", [](const DeviceArray& a) { return as_tuple(a.tensor.view().stride, a.tensor.view().ndim); },
                   "Strides in elements.")
      .def_prop_ro("dtype", [](const DeviceArray& a) { return py_dtype_name(a.tensor.view().dtype); })
      .def_prop_ro("itemsize", [](const DeviceArray& a) { return dtype_size(a.tensor.view().dtype); })
      .def_prop_ro("data_ptr", [](const DeviceArray& a) { return reinterpret_cast<std::uintptr_t>(a.tensor.data()); })
      .def_prop_ro("device", [](const DeviceArray& a) { return a.device; }, "CUDA device ordinal.")
      .def_prop_ro("alloc_owner", [](const DeviceArray& a) { return a.alloc_owner.is_valid() ? a.alloc_owner : nb::none(); },
                   "The object the Python allocator returned for the allocation holding this array, or None.")
      .def_prop_ro("alloc_offset", [](const DeviceArray& a) { return a.alloc_offset; },
                   "Byte offset of data_ptr inside alloc_owner's allocation.")
      .def(
          "__dlpack__",
          [](Self self, nb::args, nb::kwargs) {
            // A legacy (unversioned) capsule whatever max_version asks, which the protocol allows;
            // no stream handshake: the data was written on the stream of the call that made it.
            return as_capsule(*self.p, self.h);
          },
          "A DLPack capsule over the array (it keeps the array alive).")
      .def("__dlpack_device__", [](const DeviceArray& a) { return nb::make_tuple(kDlCuda, a.device); })
      .def("__repr__", [](const DeviceArray& a) {
        const Tensor& v = a.tensor.view();
        return "epcomm.DeviceArray(" + v.describe() + ", cuda:" + std::to_string(a.device) + ")";
      });
}

}  // namespace epcomm::py
