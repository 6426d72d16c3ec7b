// epcomm._C: the extension module. Python code uses it through the `epcomm` package.
#include "binding.hpp"

NB_MODULE(_C, m) {
  // Python callables held by C++ objects (a bootstrap's all_gather, an allocator) can form cycles the
  // garbage collector cannot see; at exit nanobind would report them as leaks.
  nanobind::set_leak_warnings(false);
  using namespace epcomm::py;
  m.doc() = "epcomm's C++ core (use the epcomm package, not this module)";
  bind_errors(m);
  bind_tensors(m);
  bind_bootstrap(m);
  auto buffer = bind_buffer(m);
  bind_high_throughput(m, buffer);
  bind_low_latency(m, buffer);
  bind_reliability(m, buffer);
}
