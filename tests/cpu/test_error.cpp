// epcomm::Error names the file that raised it from the repository's root, not by the absolute path
// of the machine that built it. Catches a message that leaks "/home/..." or "../" into a report.
#include <gtest/gtest.h>

#include <string>

#include "epcomm/error.hpp"

namespace epcomm {
namespace {

TEST(Error, NamesItsFileFromTheRepositoryRoot) {
  const Error absolute(ErrorCategory::kInvalidArgument, "x: bad", "/home/me/work/epcomm/src/core/env.cpp", 12);
  EXPECT_STREQ(absolute.file(), "src/core/env.cpp");
  EXPECT_NE(std::string(absolute.what()).find("(src/core/env.cpp:12)"), std::string::npos) << absolute.what();
  const Error relative(ErrorCategory::kTimeout, "late", "../src/intranode/ht_dispatch_op.cpp", 7);
  EXPECT_STREQ(relative.file(), "src/intranode/ht_dispatch_op.cpp");
  const Error tool(ErrorCategory::kInternal, "bug", "/build/x/tools/bench/cli.cpp", 3);
  EXPECT_STREQ(tool.file(), "tools/bench/cli.cpp");
  const Error bare(ErrorCategory::kInternal, "bug", "cli.cpp", 3);
  EXPECT_STREQ(bare.file(), "cli.cpp");
  // The file this test raises from, whatever folder it was built in.
  try {
    throw Error(ErrorCategory::kInternal, "here", __FILE__, __LINE__);
  } catch (const Error& e) {
    EXPECT_STREQ(e.file(), "tests/cpu/test_error.cpp");
  }
}

}  // namespace
}  // namespace epcomm
