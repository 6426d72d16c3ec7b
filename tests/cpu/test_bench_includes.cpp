// epcomm-bench uses the public API only (STYLE.md, "Tools use the public API"): every project
// include of tools/bench/ names a public header (include/epcomm/), one of the benchmark's own, or
// one the tools share (tools/common/, plain C++ that includes no private header either).
// Its build puts no src/ folder on an include path (tools/bench/CMakeLists.txt); this catches a
// private include in a configuration that would still compile it.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
const fs::path kRoot = EPCOMM_SOURCE_DIR;

// Each quoted include of a file that is neither "bench/x" nor "common/x" (a file of tools/bench or
// tools/common) nor "epcomm/x" (a public header), as "file:line: name".
std::vector<std::string> private_includes(const fs::path& file) {
  static const std::regex kInclude(R"re(^\s*#\s*include\s+"([^"]+)")re");
  std::vector<std::string> found;
  std::ifstream in(file);
  std::string line;
  std::smatch m;
  for (int number = 1; std::getline(in, line); ++number) {
    if (!std::regex_search(line, m, kInclude)) continue;
    const std::string name = m[1];
    if (name.find("..") != std::string::npos) {  // climbs out of its folder
      found.push_back(file.filename().string() + ":" + std::to_string(number) + ": " + name);
      continue;
    }
    const bool tool = name.rfind("bench/", 0) == 0 || name.rfind("common/", 0) == 0;
    const bool own = tool && fs::exists(kRoot / "tools" / name);
    const bool pub = name.rfind("epcomm/", 0) == 0 && fs::exists(kRoot / "include" / name);
    if (!own && !pub) found.push_back(file.filename().string() + ":" + std::to_string(number) + ": " + name);
  }
  return found;
}

TEST(BenchIncludes, OnlyPublicHeadersAndItsOwn) {
  int checked = 0;
  std::vector<fs::directory_entry> sources;
  for (const char* folder : {"bench", "common"})  // the benchmark and what it shares with other tools
    for (const auto& entry : fs::directory_iterator(kRoot / "tools" / folder)) sources.push_back(entry);
  for (const auto& entry : sources) {
    const std::string ext = entry.path().extension().string();
    if (ext != ".cpp" && ext != ".hpp" && ext != ".cu" && ext != ".cuh") continue;
    ++checked;
    for (const std::string& hit : private_includes(entry.path())) ADD_FAILURE() << hit;
  }
  EXPECT_GE(checked, 40) << "found too few sources under " << (kRoot / "tools" / "bench");
}

// The checker itself: a private header, a path that climbs out of bench/ and a public name that
// does not exist are caught; the public, own and shared tool headers pass.
TEST(BenchIncludes, CheckerCatchesAPrivateInclude) {
  const fs::path dir = fs::temp_directory_path() / "epcomm_bench_includes_test";
  fs::create_directories(dir);
  const fs::path file = dir / "op.cpp";
  std::ofstream(file) << "#include \"epcomm/buffer.hpp\"\n#include \"bench/cuda.hpp\"\n"
                         "#include \"core/cuda_check.hpp\"\n#include \"bench/../../src/core/check.hpp\"\n"
                         "#include \"epcomm/internal.hpp\"\n#include <cuda_runtime_api.h>\n"
                         "#include \"common/json_quote.hpp\"\n#include \"common/absent.hpp\"\n";
  const std::vector<std::string> found = private_includes(file);
  fs::remove_all(dir);
  ASSERT_EQ(found.size(), 4u);
  EXPECT_EQ(found[0], "op.cpp:3: core/cuda_check.hpp");
  EXPECT_EQ(found[2], "op.cpp:5: epcomm/internal.hpp");
  EXPECT_EQ(found[3], "op.cpp:8: common/absent.hpp");
}

}  // namespace
