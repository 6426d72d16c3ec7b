// OptArray: an array argument, read from a torch tensor's attributes when it can be, else imported
// through DLPack. The extension includes no PyTorch header and needs no PyTorch: the tensor type and
// dtypes are looked up in sys.modules once PyTorch is there.
#include <utility>

#include "binding.hpp"

namespace epcomm::py {

namespace {

namespace dl = nb::dlpack;

constexpr int kDlCuda = 2;

// torch.Tensor, torch.strided and the dtypes epcomm takes, with their DLPack codes; found once
// PyTorch is imported (sys.modules["torch"]), never released (the module outlives the extension's
// calls).
struct TorchTypes {
  PyObject* tensor = nullptr;
  PyObject* strided = nullptr;
  std::pair<PyObject*, dl::dtype> dtypes[7] = {};
};

// Interned attribute names, made once.
struct Names {
  nb::str is_cuda{"is_cuda"}, layout{"layout"}, dtype{"dtype"}, is_neg{"is_neg"}, data_ptr{"data_ptr"},
      shape{"shape"}, stride{"stride"}, get_device{"get_device"};
};

const TorchTypes* torch_types() {
  static TorchTypes types;
  if (types.tensor) return &types;
  PyObject* modules = PyImport_GetModuleDict();  // borrowed
  PyObject* torch = modules ? PyDict_GetItemString(modules, "torch") : nullptr;  // borrowed
  if (!torch) return nullptr;  // PyTorch not imported: no torch tensor can be passed
  nb::handle t(torch);
  if (!nb::hasattr(t, "Tensor") || !nb::hasattr(t, "float8_e4m3fn")) return nullptr;  // partly imported
  const std::pair<const char*, dl::dtype> names[7] = {
      {"bfloat16", {static_cast<std::uint8_t>(dl::dtype_code::Bfloat), 16, 1}},
      {"float8_e4m3fn", {static_cast<std::uint8_t>(dl::dtype_code::Float8_E4M3FN), 8, 1}},
      {"float32", nb::dtype<float>()},
      {"int32", nb::dtype<std::int32_t>()},
      {"int64", nb::dtype<std::int64_t>()},
      {"bool", nb::dtype<bool>()},
      {"uint8", nb::dtype<std::uint8_t>()}};
  TorchTypes found;
  const auto keep = [&](const char* name) { return nb::object(t.attr(name)).release().ptr(); };
  found.strided = keep("strided");
  for (int i = 0; i < 7; ++i) found.dtypes[i] = std::make_pair(keep(names[i].first), names[i].second);
  found.tensor = keep("Tensor");
  types = found;
  return &types;
}

std::optional<OptArray> read_torch(nb::handle object, const TorchTypes& torch) {
  static const Names* names = new Names();  // never freed: used until the interpreter ends
  if (!PyObject_IsTrue(object.attr(names->is_cuda).ptr())) return std::nullopt;  // CPU, meta: DLPack's words
  if (!object.attr(names->layout).is(nb::handle(torch.strided))) return std::nullopt;
  const nb::object dtype = object.attr(names->dtype);
  const dl::dtype* code = nullptr;
  for (const auto& [type, dlpack] : torch.dtypes)
    if (dtype.is(nb::handle(type))) code = &dlpack;
  if (!code) return std::nullopt;                                                  // refused by name there
  if (PyObject_IsTrue(object.attr(names->is_neg)().ptr())) return std::nullopt;    // a lazy negation
  const nb::object shape = object.attr(names->shape);
  const nb::object stride = object.attr(names->stride)();
  const std::size_t ndim = nb::len(shape);
  if (ndim < 1 || ndim > static_cast<std::size_t>(Tensor::kMaxDims) || nb::len(stride) != ndim) return std::nullopt;
  std::array<std::int64_t, Tensor::kMaxDims> shape_values{}, stride_values{};
  for (std::size_t i = 0; i < ndim; ++i) {
    shape_values[i] = nb::cast<std::int64_t>(shape[i]);
    stride_values[i] = nb::cast<std::int64_t>(stride[i]);
  }
  const auto data = nb::cast<std::uintptr_t>(object.attr(names->data_ptr)());
  const int device = nb::cast<int>(object.attr(names->get_device)());
  return OptArray::torch_view(nb::borrow(object), kDlCuda, device, ndim, shape_values, stride_values, *code,
                              reinterpret_cast<void*>(data));
}

}  // namespace

OptArray::OptArray(Array array) : given_(array.is_valid()), array_(std::move(array)) {}

OptArray OptArray::torch_view(nb::object tensor, int device_type, int device_id, std::size_t ndim,
                              const std::array<std::int64_t, Tensor::kMaxDims>& shape,
                              const std::array<std::int64_t, Tensor::kMaxDims>& stride, nb::dlpack::dtype dtype,
                              void* data) {
  OptArray out;
  out.given_ = true;
  out.tensor_ = std::move(tensor);
  out.device_type_ = device_type;
  out.device_id_ = device_id;
  out.ndim_ = ndim;
  out.shape_ = shape;
  out.stride_ = stride;
  out.dtype_ = dtype;
  out.data_ = data;
  return out;
}

std::optional<OptArray> OptArray::from_torch(nb::handle object) noexcept {
  const TorchTypes* torch = nullptr;
  try {
    torch = torch_types();
    if (!torch || !PyObject_TypeCheck(object.ptr(), reinterpret_cast<PyTypeObject*>(torch->tensor)))
      return std::nullopt;
    return read_torch(object, *torch);
  } catch (...) {
    PyErr_Clear();  // anything unexpected: DLPack decides, with its own words
    return std::nullopt;
  }
}

}  // namespace epcomm::py
