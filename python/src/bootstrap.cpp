// Bootstraps from Python: a callback whose all_gather is a Python function (the deep_ep layer
// passes one built on torch.distributed.all_gather_object), the TCP bootstrap and the survivors'
// bootstrap of recovery (docs/reliability.md).
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <chrono>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "binding.hpp"

namespace epcomm::py {

namespace {

// A Python callable owned from C++: released with the GIL, or leaked after interpreter shutdown.
struct PyCallable {
  nb::callable fn;
  ~PyCallable() {
    if (!nb::is_alive()) {
      fn.release();
      return;
    }
    nb::gil_scoped_acquire gil;
    fn.reset();
  }
};

// all_gather(data: bytes) -> bytes: every rank's `data` (equal lengths), concatenated in rank order.
// Runs on whatever thread epcomm calls from; a Python exception becomes a bootstrap error.
std::shared_ptr<Bootstrap> callback_bootstrap(int rank, int size, nb::callable all_gather) {
  auto callable = std::make_shared<PyCallable>(PyCallable{std::move(all_gather)});
  AllGatherFn fn = [callable, size](const void* in, void* out, std::size_t bytes) {
    nb::gil_scoped_acquire gil;
    std::string got;
    try {
      nb::object result = callable->fn(nb::bytes(static_cast<const char*>(in), bytes));
      nb::bytes gathered = nb::cast<nb::bytes>(result);
      got.assign(gathered.c_str(), gathered.size());
    } catch (const nb::python_error& e) {
      throw Error(ErrorCategory::kBootstrap, std::string("all_gather: the Python callback raised: ") + e.what(),
                  __FILE__, __LINE__);
    } catch (const nb::cast_error&) {
      throw Error(ErrorCategory::kBootstrap, "all_gather: the Python callback must return bytes", __FILE__,
                  __LINE__);
    }
    const std::size_t expected = bytes * static_cast<std::size_t>(size);
    if (got.size() != expected)
      throw Error(ErrorCategory::kBootstrap,
                  "all_gather: the Python callback returned " + std::to_string(got.size()) + " bytes, expected " +
                      std::to_string(expected) + " (" + std::to_string(size) + " ranks x " +
                      std::to_string(bytes) + ")",
                  __FILE__, __LINE__);
    std::memcpy(out, got.data(), expected);
  };
  return make_callback_bootstrap(rank, size, std::move(fn));
}

// The TCP options from the keyword arguments tcp_bootstrap takes.
TcpBootstrapOptions tcp_options(const std::string& master_addr, int master_port, int rank, int world_size,
                                std::int64_t timeout_ms, const std::string& job_token) {
  return {.master_addr = master_addr,
          .master_port = master_port,
          .rank = rank,
          .world_size = world_size,
          .timeout = std::chrono::milliseconds(timeout_ms),
          .job_token = job_token};
}

nb::dict options_dict(const TcpBootstrapOptions& o) {
  nb::dict d;
  d["master_addr"] = o.master_addr;
  d["master_port"] = o.master_port;
  d["rank"] = o.rank;
  d["world_size"] = o.world_size;
  d["timeout_ms"] = static_cast<std::int64_t>(o.timeout.count());
  d["job_token"] = o.job_token;
  return d;
}

// job_token "": EPCOMM_JOB_TOKEN, else derived from the port and world size (TcpBootstrapOptions).
std::shared_ptr<Bootstrap> tcp_bootstrap(const std::string& master_addr, int master_port, int rank,
                                         int world_size, std::int64_t timeout_ms, const std::string& job_token) {
  const TcpBootstrapOptions options = tcp_options(master_addr, master_port, rank, world_size, timeout_ms, job_token);
  nb::gil_scoped_release release;  // the rendezvous waits for the other ranks
  return make_tcp_bootstrap(options);
}

// Recovery: this rank's old TCP options (as tcp_bootstrap takes them) and the survivors' group.
void bind_survivors(nb::module_& m) {
  m.def(
      "survivor_bootstrap_options",
      [](const std::string& master_addr, int master_port, int rank, int world_size, std::int64_t timeout_ms,
         const std::string& job_token, std::vector<int> survivors, int attempt, const std::string& new_master_addr,
         int new_master_port) {
        const SurvivorGroup group{std::move(survivors), attempt, new_master_addr, new_master_port};
        return options_dict(survivor_bootstrap_options(
            tcp_options(master_addr, master_port, rank, world_size, timeout_ms, job_token), group));
      },
      nb::arg("master_addr"), nb::arg("master_port"), nb::arg("rank"), nb::arg("world_size"), nb::arg("timeout_ms"),
      nb::arg("job_token"), nb::arg("survivors"), nb::arg("attempt"), nb::arg("new_master_addr"),
      nb::arg("new_master_port"));
  m.def(
      "survivor_bootstrap",
      [](const std::string& master_addr, int master_port, int rank, int world_size, std::int64_t timeout_ms,
         const std::string& job_token, std::vector<int> survivors, int attempt, const std::string& new_master_addr,
         int new_master_port) {
        const TcpBootstrapOptions old = tcp_options(master_addr, master_port, rank, world_size, timeout_ms, job_token);
        const SurvivorGroup group{std::move(survivors), attempt, new_master_addr, new_master_port};
        nb::gil_scoped_release release;  // the rendezvous waits for the other survivors
        return std::shared_ptr<Bootstrap>(make_survivor_bootstrap(old, group));
      },
      nb::arg("master_addr"), nb::arg("master_port"), nb::arg("rank"), nb::arg("world_size"), nb::arg("timeout_ms"),
      nb::arg("job_token"), nb::arg("survivors"), nb::arg("attempt"), nb::arg("new_master_addr"),
      nb::arg("new_master_port"));
}

}  // namespace

void bind_bootstrap(nb::module_& m) {
  nb::class_<Bootstrap>(m, "Bootstrap", "How the ranks of a group exchange small host messages.")
      .def_prop_ro("rank", &Bootstrap::rank)
      .def_prop_ro("size", &Bootstrap::size)
      .def("all_gather",
           [](Bootstrap& b, nb::bytes data) {
             const std::string in(data.c_str(), data.size());
             std::string out(in.size() * static_cast<std::size_t>(b.size()), '\0');
             {
               // Collective: other ranks' threads in this process (and a Python callback) need the GIL.
               nb::gil_scoped_release release;
               b.all_gather(in.data(), out.data(), in.size());
             }
             return nb::bytes(out.data(), out.size());
           })
      .def("barrier", &Bootstrap::barrier, nb::call_guard<nb::gil_scoped_release>());

  m.def("callback_bootstrap", &callback_bootstrap, nb::arg("rank"), nb::arg("size"), nb::arg("all_gather"),
        "A bootstrap whose all_gather(data: bytes) -> bytes is a Python function returning every rank's "
        "data concatenated in rank order.");
  m.def("tcp_bootstrap", &tcp_bootstrap, nb::arg("master_addr"), nb::arg("master_port"), nb::arg("rank"),
        nb::arg("world_size"), nb::arg("timeout_ms") = 30000, nb::arg("job_token") = "",
        "TCP rendezvous: rank 0 listens on master_addr:master_port, the others connect; rank 0 admits only "
        "ranks presenting the same job_token (empty: EPCOMM_JOB_TOKEN, else derived from port and world size).");
  m.def("tcp_bootstrap_options_from_env", [] { return options_dict(tcp_bootstrap_options_from_env()); });
  bind_survivors(m);
  m.def("local_host_identity", &local_host_identity);
  m.def(
      "discover_domains",
      [](Bootstrap& b, const std::string& host_identity, int ranks_per_domain) {
        DomainInfo d;
        {
          nb::gil_scoped_release release;  // collective, like all_gather
          d = discover_domains(b, host_identity, ranks_per_domain);
        }
        nb::dict out;
        out["ranks_per_domain"] = d.ranks_per_domain;
        out["num_domains"] = d.num_domains;
        out["domain"] = d.domain;
        out["local_index"] = d.local_index;
        nb::list of_rank;
        for (int r : d.domain_of_rank) of_rank.append(r);
        out["domain_of_rank"] = of_rank;
        return out;
      },
      nb::arg("bootstrap"), nb::arg("host_identity"), nb::arg("ranks_per_domain") = 0);
}

}  // namespace epcomm::py
