// High-throughput mode: get_dispatch_layout, dispatch, combine. Their tensor arguments are gathered
// and checked in DispatchArgs / CombineArgs objects first (testable without a GPU), then passed to
// the Buffer.
#include <nanobind/stl/optional.h>
#include <nanobind/stl/vector.h>

#include <vector>

#include "binding.hpp"
#include "epcomm/config.hpp"

namespace epcomm::py {

namespace {

// DispatchArgs with the arrays its views point into (kept alive with it).
struct PyDispatchArgs {
  DispatchArgs args;
  std::optional<PyDispatchHandle> handle;
  NamedArrays keep;
};

struct PyCombineArgs {
  CombineArgs args;
  PyDispatchHandle handle;
  NamedArrays keep;
};

void init_dispatch_args(PyDispatchArgs* self, OptArray x, OptArray x_scales, bool x_fp8, OptArray topk_idx,
                        OptArray topk_weights, OptArray num_tokens_per_rank, OptArray is_token_in_rank,
                        OptArray num_tokens_per_expert, std::optional<PyDispatchHandle> handle,
                        int expert_alignment, std::int64_t num_worst_tokens, bool zero_copy, int num_sms,
                        int num_experts) {
  DispatchArgs a;
  a.x = to_tensor(x, {"x", {DType::kBF16, DType::kFP8E4M3}, 2}, x_fp8);
  a.x_scales = to_tensor(x_scales, {"x_scales", {DType::kF32}, 2, false});
  a.topk_idx = to_tensor(topk_idx, {"topk_idx", {DType::kI64, DType::kI32}, 2, false});
  a.topk_weights = to_tensor(topk_weights, {"topk_weights", {DType::kF32}, 2, false});
  a.num_tokens_per_rank = to_tensor(num_tokens_per_rank, {"num_tokens_per_rank", {DType::kI32}, 1, false});
  a.is_token_in_rank = to_tensor(is_token_in_rank, {"is_token_in_rank", {DType::kBool}, 2, false});
  a.num_tokens_per_expert = to_tensor(num_tokens_per_expert, {"num_tokens_per_expert", {DType::kI32}, 1, false});
  a.num_experts = num_experts;
  a.expert_alignment = expert_alignment;
  a.num_worst_tokens = num_worst_tokens;
  a.zero_copy = zero_copy;
  a.config.num_sms = num_sms;
  new (self) PyDispatchArgs{a,
                            std::move(handle),
                            {{"x", x},
                             {"x_scales", x_scales},
                             {"topk_idx", topk_idx},
                             {"topk_weights", topk_weights},
                             {"num_tokens_per_rank", num_tokens_per_rank},
                             {"is_token_in_rank", is_token_in_rank},
                             {"num_tokens_per_expert", num_tokens_per_expert}}};
}

void init_combine_args(PyCombineArgs* self, OptArray x, PyDispatchHandle handle, OptArray topk_weights,
                       OptArray bias0, OptArray bias1, int num_sms) {
  CombineArgs a;
  a.x = to_tensor(x, {"x", {DType::kBF16}, 2});
  a.topk_weights = to_tensor(topk_weights, {"topk_weights", {DType::kF32}, 2, false});
  a.bias0 = to_tensor(bias0, {"bias0", {DType::kBF16}, 2, false});
  a.bias1 = to_tensor(bias1, {"bias1", {DType::kBF16}, 2, false});
  a.config.num_sms = num_sms;
  new (self) PyCombineArgs{
      a, std::move(handle), {{"x", x}, {"topk_weights", topk_weights}, {"bias0", bias0}, {"bias1", bias1}}};
}

nb::tuple get_dispatch_layout(PyBuffer& b, OptArray topk_idx, int num_experts, std::uintptr_t stream,
                              std::optional<EventHandle> previous_event, bool async_finish,
                              bool allocate_on_comm_stream) {
  Buffer& buf = b.get("get_dispatch_layout");
  const Tensor idx = to_tensor(topk_idx, {"topk_idx", {DType::kI64, DType::kI32}, 2}, false, b.device);
  DispatchLayout l;
  {
    nb::gil_scoped_release release;
    l = buf.get_dispatch_layout(idx, num_experts,
                                call_options(stream, previous_event, async_finish, allocate_on_comm_stream));
  }
  return nb::make_tuple(export_tensor(l.num_tokens_per_rank, b.allocator, b.device),
                        export_tensor(l.num_tokens_per_domain, b.allocator, b.device),
                        export_tensor(l.num_tokens_per_expert, b.allocator, b.device),
                        export_tensor(l.is_token_in_rank, b.allocator, b.device), event_or_none(l.event));
}

nb::tuple dispatch(PyBuffer& b, PyDispatchArgs& a, std::uintptr_t stream, std::optional<EventHandle> previous_event,
                   bool async_finish, bool allocate_on_comm_stream) {
  Buffer& buf = b.get("dispatch");
  check_devices(a.keep, b.device);
  DispatchArgs args = a.args;
  args.handle = a.handle ? &b.own(*a.handle, "handle") : nullptr;
  DispatchResult r;
  {
    nb::gil_scoped_release release;
    r = buf.dispatch(args, call_options(stream, previous_event, async_finish, allocate_on_comm_stream));
  }
  return nb::make_tuple(export_tensor(r.recv_x, b.allocator, b.device),
                        export_tensor(r.recv_x_scales, b.allocator, b.device),
                        export_tensor(r.recv_topk_idx, b.allocator, b.device),
                        export_tensor(r.recv_topk_weights, b.allocator, b.device), r.num_recv_tokens_per_expert,
                        PyDispatchHandle{std::move(r.handle), &b}, event_or_none(r.event));
}

nb::tuple combine(PyBuffer& b, PyCombineArgs& a, std::uintptr_t stream, std::optional<EventHandle> previous_event,
                  bool async_finish, bool allocate_on_comm_stream) {
  Buffer& buf = b.get("combine");
  check_devices(a.keep, b.device);
  CombineArgs args = a.args;
  args.handle = &b.own(a.handle, "handle");
  CombineResult r;
  {
    nb::gil_scoped_release release;
    r = buf.combine(args, call_options(stream, previous_event, async_finish, allocate_on_comm_stream));
  }
  return nb::make_tuple(export_tensor(r.x, b.allocator, b.device),
                        export_tensor(r.topk_weights, b.allocator, b.device), event_or_none(r.event));
}

}  // namespace

void bind_high_throughput(nb::module_& m, nb::class_<PyBuffer>& buffer) {
  const int default_sms = Config{}.num_sms;
  nb::class_<PyDispatchArgs>(m, "DispatchArgs",
                             "The inputs of one dispatch, checked when made (device, dimensions, dtypes).")
      .def("__init__", &init_dispatch_args, nb::kw_only(), nb::arg("x").none(),
           nb::arg("x_scales") = nb::none(), nb::arg("x_fp8") = false, nb::arg("topk_idx") = nb::none(),
           nb::arg("topk_weights") = nb::none(), nb::arg("num_tokens_per_rank") = nb::none(),
           nb::arg("is_token_in_rank") = nb::none(), nb::arg("num_tokens_per_expert") = nb::none(),
           nb::arg("handle") = nb::none(), nb::arg("expert_alignment") = 1, nb::arg("num_worst_tokens") = 0,
           nb::arg("zero_copy") = false, nb::arg("num_sms") = default_sms, nb::arg("num_experts") = 0)
      .def(
          "check_device", [](const PyDispatchArgs& a, int device) { check_devices(a.keep, device); },
          nb::arg("device"),
          "Refuses, by name, an array on another CUDA device (dispatch checks the Buffer's).");
  nb::class_<PyCombineArgs>(m, "CombineArgs", "The inputs of one combine, checked when made.")
      .def("__init__", &init_combine_args, nb::kw_only(), nb::arg("x").none(), nb::arg("handle"),
           nb::arg("topk_weights") = nb::none(), nb::arg("bias0") = nb::none(), nb::arg("bias1") = nb::none(),
           nb::arg("num_sms") = default_sms)
      .def(
          "check_device", [](const PyCombineArgs& a, int device) { check_devices(a.keep, device); },
          nb::arg("device"), "Refuses, by name, an array on another CUDA device (combine checks the Buffer's).");

  buffer
      .def("get_dispatch_layout", &get_dispatch_layout, nb::arg("topk_idx").none(), nb::arg("num_experts"),
           nb::kw_only(), nb::arg("stream") = 0, nb::arg("previous_event") = nb::none(),
           nb::arg("async_finish") = false, nb::arg("allocate_on_comm_stream") = false,
           "-> (num_tokens_per_rank, num_tokens_per_domain, num_tokens_per_expert, is_token_in_rank, event)")
      .def("dispatch", &dispatch, nb::arg("args"), nb::kw_only(), nb::arg("stream") = 0,
           nb::arg("previous_event") = nb::none(), nb::arg("async_finish") = false,
           nb::arg("allocate_on_comm_stream") = false,
           "-> (recv_x, recv_x_scales, recv_topk_idx, recv_topk_weights, num_recv_tokens_per_expert, handle, event)")
      .def("combine", &combine, nb::arg("args"), nb::kw_only(), nb::arg("stream") = 0,
           nb::arg("previous_event") = nb::none(), nb::arg("async_finish") = false,
           nb::arg("allocate_on_comm_stream") = false, "-> (x, topk_weights, event)");
}

}  // namespace epcomm::py
