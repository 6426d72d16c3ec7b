// The source tree keeps its rooms (docs/architecture.md): device code never includes host-only
// headers. Catches a .cuh (or a plain-data header it includes) that pulls in the Buffer's
// internals, the bootstrap, a mode's host planning or checks, or the public API's host classes.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
const fs::path kRoot = EPCOMM_SOURCE_DIR;

// Headers only host code may include, as written in an #include ("folder/name").
bool host_only(const std::string& name) {
  static const std::set<std::string> kHostOnly = {
      "epcomm/buffer.hpp",         "epcomm/bootstrap.hpp",        "epcomm/device_tensor.hpp",
      "epcomm/dispatch.hpp",       "epcomm/low_latency.hpp",      "epcomm/stream.hpp",
      "buffer/buffer_impl.hpp",    "core/env.hpp",
      "core/log.hpp",              "core/cuda_raii.hpp",          "core/kernel_timer.hpp",
      "core/status_message.hpp",   "core/tensor_checks.hpp",      "core/stream_write.hpp",
      "core/handle_access.hpp",    "intranode/op_checks.hpp",     "intranode/ht_plan.hpp",
      "intranode/copy_batch.hpp",  "intranode/dispatch_handle.hpp", "intranode/ht_dispatch_copy.hpp",
      "low_latency/ll_state.hpp",  "low_latency/ll_checks.hpp",   "low_latency/ll_handle.hpp",
      "transport/ll_transport.hpp", "transport/nvshmem_ll.hpp",   "transport/nvshmem_transport.hpp",
      "internode/md_plan.hpp",     "internode/md_sizes.hpp",      "internode/md_model.hpp"};
  return kHostOnly.count(name) > 0 || name.rfind("bootstrap/", 0) == 0;
}

// The project's own includes of a file ("folder/name" relative to src/ or include/).
std::vector<std::string> includes_of(const fs::path& file) {
  static const std::regex kInclude(R"re(^\s*#\s*include\s+"([a-z_]+/[A-Za-z0-9_.]+)")re");
  std::vector<std::string> out;
  std::ifstream in(file);
  std::string line;
  std::smatch m;
  while (std::getline(in, line))
    if (std::regex_search(line, m, kInclude)) out.push_back(m[1]);
  return out;
}

fs::path locate(const std::string& name) {
  for (const fs::path& base : {kRoot / "src", kRoot / "include"})
    if (fs::exists(base / name)) return base / name;
  return {};
}

// Every host-only header reachable from `start` through the project's includes, with the path to it.
std::vector<std::string> host_only_reached(const fs::path& start) {
  std::vector<std::string> found;
  std::set<std::string> seen;
  std::vector<std::pair<fs::path, std::string>> todo{{start, start.filename().string()}};
  while (!todo.empty()) {
    auto [file, chain] = todo.back();
    todo.pop_back();
    for (const std::string& name : includes_of(file)) {
      if (!seen.insert(name).second) continue;
      const std::string next = chain + " -> " + name;
      if (host_only(name)) found.push_back(next);
      if (const fs::path p = locate(name); !p.empty()) todo.emplace_back(p, next);
    }
  }
  return found;
}

TEST(SourceLayout, DeviceHeadersIncludeNoHostOnlyHeader) {
  int checked = 0;
  for (const auto& entry : fs::recursive_directory_iterator(kRoot / "src")) {
    if (entry.path().extension() != ".cuh") continue;
    ++checked;
    for (const std::string& chain : host_only_reached(entry.path())) ADD_FAILURE() << chain;
  }
  EXPECT_GE(checked, 10) << "found too few .cuh files under " << (kRoot / "src");
}

// The checker itself: a device header that includes the Buffer's internals is caught.
TEST(SourceLayout, CheckerCatchesAHostOnlyInclude) {
  const fs::path dir = fs::temp_directory_path() / "epcomm_source_layout_test";
  fs::create_directories(dir);
  const fs::path bad = dir / "bad.cuh";
  std::ofstream(bad) << "#include \"core/ptx.cuh\"\n#include \"intranode/ht_args.hpp\"\n"
                        "#include \"buffer/buffer_impl.hpp\"\n";
  const std::vector<std::string> found = host_only_reached(bad);
  fs::remove_all(dir);
  ASSERT_FALSE(found.empty());
  EXPECT_NE(found.front().find("buffer/buffer_impl.hpp"), std::string::npos) << found.front();
}

}  // namespace
