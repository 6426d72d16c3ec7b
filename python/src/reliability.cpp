// What the C++ API gained after the first binding: rank masking, per-peer telemetry and kernel
// timing (methods of Buffer), and the multi-domain size hints. The survivors' bootstrap of recovery
// is in bootstrap.cpp.
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "binding.hpp"
#include "epcomm/multi_domain.hpp"
#include "epcomm/telemetry.hpp"

namespace epcomm::py {

namespace {

// A telemetry record crosses as a tuple (operation, peer, bytes_sent, bytes_received, wait_ns,
// waits); epcomm/telemetry.py names the fields.
using TrafficTuple = std::tuple<std::string, int, std::uint64_t, std::uint64_t, std::uint64_t, std::uint64_t>;

TrafficTuple to_tuple(const PeerTraffic& t) {
  return {t.operation, t.peer, t.bytes_sent, t.bytes_received, t.wait_ns, t.waits};
}

PeerTraffic from_tuple(const TrafficTuple& t) {
  return {.operation = std::get<0>(t),
          .peer = std::get<1>(t),
          .bytes_sent = std::get<2>(t),
          .bytes_received = std::get<3>(t),
          .wait_ns = std::get<4>(t),
          .waits = std::get<5>(t)};
}

void bind_masking(nb::class_<PyBuffer>& buffer) {
  buffer
      .def(
          "mask_rank",
          [](PyBuffer& b, int rank) {
            Buffer& buf = b.get("mask_rank");
            nb::gil_scoped_release release;
            buf.mask_rank(rank);
          },
          nb::arg("rank"))
      .def("masked_ranks", [](PyBuffer& b) { return b.get("masked_ranks").masked_ranks(); })
      .def("clear_rank_mask", [](PyBuffer& b) {
        Buffer& buf = b.get("clear_rank_mask");
        nb::gil_scoped_release release;  // collective
        buf.clear_rank_mask();
      });
}

void bind_diagnostics(nb::class_<PyBuffer>& buffer) {
  buffer
      .def(
          "peer_telemetry",
          [](PyBuffer& b, bool clear) {
            Buffer& buf = b.get("peer_telemetry");
            std::vector<PeerTraffic> traffic;
            {
              nb::gil_scoped_release release;  // waits for this rank's queued work
              traffic = buf.peer_telemetry(clear);
            }
            std::vector<TrafficTuple> out;
            out.reserve(traffic.size());
            for (const PeerTraffic& t : traffic) out.push_back(to_tuple(t));
            return out;
          },
          nb::arg("clear") = false)
      .def(
          "set_kernel_timing", [](PyBuffer& b, bool enabled) { b.get("set_kernel_timing").set_kernel_timing(enabled); },
          nb::arg("enabled"))
      .def_prop_ro("kernel_timing", [](PyBuffer& b) { return b.get("kernel_timing").kernel_timing(); })
      .def("last_kernel_times",
           [](PyBuffer& b) {
             Buffer& buf = b.get("last_kernel_times");
             std::vector<KernelTime> times;
             {
               nb::gil_scoped_release release;  // waits for the kernels
               times = buf.last_kernel_times();
             }
             std::vector<std::pair<std::string, double>> out;
             out.reserve(times.size());
             for (const KernelTime& t : times) out.emplace_back(t.name, t.us);
             return out;
           })
      .def("last_call_timeline", [](PyBuffer& b) {
        Buffer& buf = b.get("last_call_timeline");
        nb::gil_scoped_release release;  // waits for the kernels
        return buf.last_call_timeline();
      });
}

MultiDomainShape shape_of(std::int64_t num_tokens, std::int64_t hidden, int num_topk, int num_experts,
                          int num_ranks, int ranks_per_domain, bool fp8) {
  return {num_tokens, hidden, num_topk, num_experts, num_ranks, ranks_per_domain, fp8};
}

void bind_multi_domain(nb::module_& m) {
  m.def(
      "multi_domain_rdma_bytes_hint",
      [](std::int64_t t, std::int64_t h, int k, int e, int r, int g, bool fp8, int num_sms) {
        return multi_domain_rdma_bytes_hint(shape_of(t, h, k, e, r, g, fp8), num_sms);
      },
      nb::arg("num_tokens"), nb::arg("hidden"), nb::arg("num_topk"), nb::arg("num_experts"), nb::arg("num_ranks"),
      nb::arg("ranks_per_domain"), nb::arg("fp8"), nb::arg("num_sms"));
  m.def(
      "multi_domain_nvl_bytes_hint",
      [](std::int64_t t, std::int64_t h, int k, int e, int r, int g, bool fp8, std::int64_t received_rows) {
        return multi_domain_nvl_bytes_hint(shape_of(t, h, k, e, r, g, fp8), received_rows);
      },
      nb::arg("num_tokens"), nb::arg("hidden"), nb::arg("num_topk"), nb::arg("num_experts"), nb::arg("num_ranks"),
      nb::arg("ranks_per_domain"), nb::arg("fp8"), nb::arg("received_rows"));
  m.def(
      "multi_domain_row_bytes",
      [](std::int64_t t, std::int64_t h, int k, int e, int r, int g, bool fp8) {
        const MultiDomainRowBytes b = multi_domain_row_bytes(shape_of(t, h, k, e, r, g, fp8));
        nb::dict d;
        d["dispatch_put"] = b.dispatch_put;
        d["combine_put_f32"] = b.combine_put_f32;
        d["combine_put_bf16"] = b.combine_put_bf16;
        d["nvl_dispatch_row"] = b.nvl_dispatch_row;
        d["nvl_combine_row"] = b.nvl_combine_row;
        return d;
      },
      nb::arg("num_tokens"), nb::arg("hidden"), nb::arg("num_topk"), nb::arg("num_experts"), nb::arg("num_ranks"),
      nb::arg("ranks_per_domain"), nb::arg("fp8"));
}

}  // namespace

void bind_reliability(nb::module_& m, nb::class_<PyBuffer>& buffer) {
  bind_masking(buffer);
  bind_diagnostics(buffer);
  bind_multi_domain(m);
  m.def("slowest_peer", [](const std::vector<TrafficTuple>& traffic) {
    std::vector<PeerTraffic> records;
    records.reserve(traffic.size());
    for (const TrafficTuple& t : traffic) records.push_back(from_tuple(t));
    return slowest_peer(records);
  });
  // Whether this extension carries the NVSHMEM transport (multi-domain high-throughput mode,
  // ll_transport='nvshmem'): python/CMakeLists.txt defines EPCOMM_PY_WITH_NVSHMEM where it links
  // epcomm_nvshmem (EPCOMM_WITH_NVSHMEM=ON); without it the package refuses those modes by name.
#ifdef EPCOMM_PY_WITH_NVSHMEM
  m.attr("WITH_NVSHMEM") = true;
#else
  m.attr("WITH_NVSHMEM") = false;
#endif
}

}  // namespace epcomm::py
