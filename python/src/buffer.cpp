// The Buffer, its events and handles, and the values Python reads from the C++ headers (Config
// defaults, low-latency bounds, ll_region_bytes_hint, ht_nvl_bytes_hint).
#include <nanobind/stl/optional.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>

#include <string>

#include "binding.hpp"
#include "epcomm/config.hpp"
#include "epcomm/size_hints.hpp"

namespace epcomm::py {

// The values a handle shows Python, read through the handles' public accessors.
HandleInfo describe(const DispatchHandle& h) {
  return {.num_tokens = h.num_tokens(),
          .num_recv_tokens = h.num_recv_tokens(),
          .num_ranks = h.num_ranks(),
          .num_local_experts = h.num_local_experts()};
}

HandleInfo describe(const LlHandle& h) {
  return {.num_tokens = h.num_tokens(),
          .num_recv_tokens = -1,  // per expert, on the device (recv_count)
          .num_ranks = h.num_ranks(),
          .num_local_experts = h.num_local_experts(),
          .hidden = h.hidden()};
}

Buffer& PyBuffer::get(const char* op) {
  if (!buffer) invalid_argument(std::string(op) + ": the Buffer was destroyed");
  return *buffer;
}

CallOptions call_options(std::uintptr_t stream, const std::optional<EventHandle>& previous_event,
                         bool async_finish, bool allocate_on_comm_stream) {
  return {.stream = reinterpret_cast<cudaStream_t>(stream),
          .previous_event = previous_event.value_or(EventHandle{}),
          .async_finish = async_finish,
          .allocate_on_comm_stream = allocate_on_comm_stream};
}

nb::object event_or_none(const EventHandle& event) {
  return event.valid() ? nb::cast(event) : nb::none();
}

namespace {

void init_buffer(PyBuffer* self, std::shared_ptr<Bootstrap> bootstrap, std::int64_t num_nvl_bytes,
                 std::int64_t num_rdma_bytes, bool low_latency_mode, std::int64_t timeout_ms,
                 std::optional<nb::callable> allocator, const std::optional<LowLatencyOptions>& low_latency,
                 const std::string& ll_transport, int ranks_per_domain, bool mask_on_timeout, bool peer_telemetry) {
  std::shared_ptr<PyAllocator> py_allocator;
  if (allocator) py_allocator = std::make_shared<PyAllocator>(std::move(*allocator));
  if (ll_transport != "auto" && ll_transport != "nvshmem")
    invalid_argument("ll_transport: expected 'auto' or 'nvshmem', got '" + ll_transport + "'");
  const BufferOptions options{.num_nvl_bytes = num_nvl_bytes,
                              .num_rdma_bytes = num_rdma_bytes,
                              .ranks_per_domain = ranks_per_domain,
                              .low_latency_mode = low_latency_mode,
                              .timeout_ms = timeout_ms,
                              .allocator = py_allocator,
                              .ll_transport = ll_transport == "nvshmem" ? LlTransport::kNvshmem : LlTransport::kAuto,
                              .mask_on_timeout = mask_on_timeout,
                              .peer_telemetry = peer_telemetry};
  std::unique_ptr<Buffer> buffer;
  int device = 0;
  {
    nb::gil_scoped_release release;  // collective: the bootstrap's callback takes the GIL itself
    buffer = low_latency ? std::make_unique<Buffer>(std::move(bootstrap), options, *low_latency)
                         : std::make_unique<Buffer>(std::move(bootstrap), options);
    if (cudaGetDevice(&device) != cudaSuccess) device = 0;
  }
  // Constructed last: nanobind runs no destructor for an __init__ that raised.
  new (self) PyBuffer{std::move(buffer), std::move(py_allocator), device};
}

template <typename Handle>
void bind_handle(nb::module_& m, const char* name, const char* doc) {
  nb::class_<PyHandle<Handle>>(m, name, doc)
      .def("defined", [](const PyHandle<Handle>& h) { return h.handle.defined(); })
      .def_prop_ro("num_tokens", [](const PyHandle<Handle>& h) { return describe(h.handle).num_tokens; })
      .def_prop_ro("num_recv_tokens", [](const PyHandle<Handle>& h) { return describe(h.handle).num_recv_tokens; })
      .def_prop_ro("num_ranks", [](const PyHandle<Handle>& h) { return describe(h.handle).num_ranks; })
      .def_prop_ro("num_local_experts",
                   [](const PyHandle<Handle>& h) { return describe(h.handle).num_local_experts; });
}

}  // namespace

nb::class_<PyBuffer> bind_buffer(nb::module_& m) {
  nb::class_<EventHandle>(m, "EventHandle", "A recorded CUDA event (empty when a call finished synchronously).")
      .def(nb::init<>())
      .def_static(
          "record", [](std::uintptr_t stream) { return EventHandle::record(reinterpret_cast<cudaStream_t>(stream)); },
          nb::arg("stream"), "Records a new event on `stream` (a cudaStream_t as int).")
      .def_prop_ro("valid", &EventHandle::valid)
      .def_prop_ro("cuda_event", [](const EventHandle& e) { return reinterpret_cast<std::uintptr_t>(e.get()); })
      .def(
          "wait", [](const EventHandle& e, std::uintptr_t stream) { e.wait(reinterpret_cast<cudaStream_t>(stream)); },
          nb::arg("stream"), "Makes `stream` wait for the event.")
      .def("synchronize", &EventHandle::synchronize, nb::call_guard<nb::gil_scoped_release>());

  bind_handle<DispatchHandle>(m, "DispatchHandle", "The route of one high-throughput dispatch (opaque).");
  bind_handle<LlHandle>(m, "LlHandle", "The route of one low-latency dispatch (opaque).");

  nb::class_<LowLatencyOptions>(m, "LowLatencyOptions")
      .def(
          "__init__",
          [](LowLatencyOptions* o, std::int64_t t, std::int64_t hidden, int num_experts, int max_topk) {
            new (o) LowLatencyOptions{t, hidden, num_experts, max_topk};
          },
          nb::arg("max_tokens_per_rank"), nb::arg("hidden"), nb::arg("num_experts"),
          nb::arg("max_topk") = LowLatencyOptions{}.max_topk)
      .def_rw("max_tokens_per_rank", &LowLatencyOptions::max_tokens_per_rank)
      .def_rw("hidden", &LowLatencyOptions::hidden)
      .def_rw("num_experts", &LowLatencyOptions::num_experts)
      .def_rw("max_topk", &LowLatencyOptions::max_topk);

  m.def("ll_region_bytes_hint", &ll_region_bytes_hint, nb::arg("max_tokens_per_rank"), nb::arg("hidden"),
        nb::arg("num_ranks"), nb::arg("num_experts"), nb::arg("max_topk") = kLlMaxTopk);
  m.def("ht_nvl_bytes_hint", &ht_nvl_bytes_hint, nb::arg("max_tokens_per_rank"), nb::arg("hidden"),
        nb::arg("num_ranks"), nb::arg("max_topk") = kHtMaxTopk);
  m.attr("HT_MAX_TOPK") = kHtMaxTopk;
  m.attr("LL_MAX_TOPK") = kLlMaxTopk;
  m.attr("LL_MAX_TOKENS_PER_RANK") = kLlMaxTokensPerRank;
  m.attr("LL_MAX_HIDDEN") = kLlMaxHidden;
  m.attr("LL_HIDDEN_MULTIPLE") = kLlHiddenMultiple;
  m.attr("DEFAULT_NUM_SMS") = Config{}.num_sms;
  m.def("cuda_device_count", [] {
    int n = 0;
    return cudaGetDeviceCount(&n) == cudaSuccess ? n : 0;
  });

  return nb::class_<PyBuffer>(m, "Buffer", "epcomm::Buffer: one mode's communication memory of an expert-parallel group.")
      .def("__init__", &init_buffer, nb::arg("bootstrap"), nb::kw_only(), nb::arg("num_nvl_bytes") = 0,
           nb::arg("num_rdma_bytes") = 0, nb::arg("low_latency_mode") = false, nb::arg("timeout_ms") = -1,
           nb::arg("allocator") = nb::none(), nb::arg("low_latency") = nb::none(),
           nb::arg("ll_transport") = "auto", nb::arg("ranks_per_domain") = 0, nb::arg("mask_on_timeout") = false,
           nb::arg("peer_telemetry") = false)
      .def_prop_ro("rank", [](PyBuffer& b) { return b.get("rank").rank(); })
      .def_prop_ro("num_ranks", [](PyBuffer& b) { return b.get("num_ranks").num_ranks(); })
      .def_prop_ro("num_domain_ranks", [](PyBuffer& b) { return b.get("num_domain_ranks").num_domain_ranks(); })
      .def_prop_ro("num_domains", [](PyBuffer& b) { return b.get("num_domains").num_domains(); })
      .def_prop_ro("num_nvl_bytes", [](PyBuffer& b) { return b.get("num_nvl_bytes").num_nvl_bytes(); })
      .def_prop_ro("device", [](const PyBuffer& b) { return b.device; })
      .def_prop_ro("destroyed", [](const PyBuffer& b) { return !b.buffer; })
      .def_prop_ro("comm_stream",
                   [](PyBuffer& b) { return reinterpret_cast<std::uintptr_t>(b.get("comm_stream").comm_stream()); })
      .def(
          "barrier",
          [](PyBuffer& b, std::uintptr_t stream, std::optional<EventHandle> previous_event, bool async_finish) {
            Buffer& buf = b.get("barrier");
            nb::gil_scoped_release release;
            return buf.barrier(call_options(stream, previous_event, async_finish, false));
          },
          nb::kw_only(), nb::arg("stream") = 0, nb::arg("previous_event") = nb::none(),
          nb::arg("async_finish") = false)
      .def("check_status", [](PyBuffer& b) { b.get("check_status").check_status(); })
      .def("last_kernel_us", [](PyBuffer& b) { return b.get("last_kernel_us").last_kernel_us(); })
      .def(
          "destroy",
          [](PyBuffer& b) {
            std::unique_ptr<Buffer> gone = std::move(b.buffer);
            nb::gil_scoped_release release;  // collective teardown
            gone.reset();
          },
          "Frees the Buffer now (collective: every rank calls it). Later calls raise epcomm.Error.");
}

}  // namespace epcomm::py
