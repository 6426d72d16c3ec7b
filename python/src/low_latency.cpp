// Low-latency mode: dispatch, combine and the zero-copy combine buffer. Outputs are views of the
// Buffer's memory (double-buffered, see epcomm/low_latency.hpp); each keeps the Python Buffer alive.
#include <nanobind/stl/function.h>
#include <nanobind/stl/optional.h>

#include <functional>

#include "binding.hpp"

namespace epcomm::py {

namespace {

using Self = nb::pointer_and_handle<PyBuffer>;

nb::object hook_or_none(std::function<void()> receive) {
  return receive ? nb::cast(std::move(receive)) : nb::none();
}

nb::tuple low_latency_dispatch(Self self, OptArray x, OptArray topk_idx, bool use_fp8, bool round_scale,
                               bool use_ue8m0, bool return_recv_hook, OptArray cumulative_local_expert_recv_stats,
                               std::uintptr_t stream, std::optional<EventHandle> previous_event, bool async_finish) {
  PyBuffer& b = *self.p;
  Buffer& buf = b.get("low_latency_dispatch");
  const Tensor xv = to_tensor(x, {"x", {DType::kBF16}, 2}, false, b.device);
  const Tensor idx = to_tensor(topk_idx, {"topk_idx", {DType::kI64, DType::kI32}, 2}, false, b.device);
  const LlDispatchOptions ll{
      .use_fp8 = use_fp8,
      .round_scale = round_scale,
      .use_ue8m0 = use_ue8m0,
      .return_recv_hook = return_recv_hook,
      .cumulative_local_expert_recv_stats =
          to_tensor(cumulative_local_expert_recv_stats,
                    {"cumulative_local_expert_recv_stats", {DType::kI32}, 1, false}, false, b.device)};
  LlDispatchResult r;
  {
    nb::gil_scoped_release release;
    r = buf.low_latency_dispatch(xv, idx, ll, call_options(stream, previous_event, async_finish, false));
  }
  return nb::make_tuple(export_view(r.recv_x, self.h, b.device), export_view(r.recv_scales, self.h, b.device),
                        export_view(r.recv_count, self.h, b.device), export_view(r.layout_range, self.h, b.device),
                        export_view(r.src_info, self.h, b.device), PyLlHandle{std::move(r.handle), &b},
                        event_or_none(r.event), hook_or_none(std::move(r.receive)));
}

nb::tuple low_latency_combine(Self self, OptArray y, OptArray topk_idx, OptArray topk_weights,
                              const PyLlHandle& handle, bool zero_copy, bool return_recv_hook, OptArray out,
                              std::uintptr_t stream, std::optional<EventHandle> previous_event, bool async_finish) {
  PyBuffer& b = *self.p;
  Buffer& buf = b.get("low_latency_combine");
  const Tensor yv = to_tensor(y, {"y", {DType::kBF16}, 3}, false, b.device);
  const Tensor idx = to_tensor(topk_idx, {"topk_idx", {DType::kI64, DType::kI32}, 2}, false, b.device);
  const Tensor w = to_tensor(topk_weights, {"topk_weights", {DType::kF32}, 2}, false, b.device);
  const Tensor o = to_tensor(out, {"out", {DType::kBF16}, 2, false}, false, b.device);
  const LlHandle& h = b.own(handle, "handle");
  LlCombineResult r;
  {
    nb::gil_scoped_release release;
    r = buf.low_latency_combine(yv, idx, w, h, {.zero_copy = zero_copy, .return_recv_hook = return_recv_hook, .out = o},
                                call_options(stream, previous_event, async_finish, false));
  }
  return nb::make_tuple(export_view(r.out, self.h, b.device), event_or_none(r.event),
                        hook_or_none(std::move(r.receive)));
}

nb::object next_combine_buffer(Self self, const PyLlHandle& handle) {
  PyBuffer& b = *self.p;
  const Tensor y = b.get("get_next_low_latency_combine_buffer")
                       .get_next_low_latency_combine_buffer(b.own(handle, "handle"));
  return export_view(y, self.h, b.device);
}

}  // namespace

void bind_low_latency(nb::module_&, nb::class_<PyBuffer>& buffer) {
  buffer
      .def("low_latency_dispatch", &low_latency_dispatch, nb::arg("x").none(), nb::arg("topk_idx").none(),
           nb::kw_only(), nb::arg("use_fp8") = true, nb::arg("round_scale") = false, nb::arg("use_ue8m0") = false,
           nb::arg("return_recv_hook") = false, nb::arg("cumulative_local_expert_recv_stats") = nb::none(),
           nb::arg("stream") = 0, nb::arg("previous_event") = nb::none(), nb::arg("async_finish") = false,
           "-> (recv_x, recv_scales, recv_count, layout_range, src_info, handle, event, receive)")
      .def("low_latency_combine", &low_latency_combine, nb::arg("y").none(), nb::arg("topk_idx").none(),
           nb::arg("topk_weights").none(), nb::arg("handle"), nb::kw_only(), nb::arg("zero_copy") = false,
           nb::arg("return_recv_hook") = false, nb::arg("out") = nb::none(), nb::arg("stream") = 0, nb::arg("previous_event") = nb::none(),
           nb::arg("async_finish") = false, "-> (out, event, receive)")
      .def("get_next_low_latency_combine_buffer", &next_combine_buffer, nb::arg("handle"));
}

}  // namespace epcomm::py
