// The logger: prefix and level filtering, EPCOMM_LOG parsing, whole lines under concurrency.
#include <gtest/gtest.h>

#include <cstdlib>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/log.hpp"

namespace epcomm {
namespace {

// Restores the logger's threshold and rank after each test.
class LogTest : public ::testing::Test {
 protected:
  void SetUp() override { saved_level_ = log::level(); }
  void TearDown() override {
    log::set_level(saved_level_);
    log::set_rank(-1);
  }
  log::Level saved_level_ = log::Level::kWarn;
};

TEST_F(LogTest, PrefixAndLevels) {
  log::set_level(log::Level::kInfo);
  log::set_rank(3);
  int evaluated = 0;
  auto count = [&] { return ++evaluated; };
  ::testing::internal::CaptureStderr();
  EPCOMM_LOG_INFO("x=", 5, " y=", 2.5);
  EPCOMM_LOG_WARN("careful");
  EPCOMM_LOG_DEBUG("hidden ", count());  // arguments of a disabled level are not evaluated
  const std::string out = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(out, "[epcomm rank 3] info: x=5 y=2.5\n[epcomm rank 3] warn: careful\n");
  EXPECT_EQ(evaluated, 0);
}

TEST_F(LogTest, RankUnsetAndOff) {
  log::set_rank(-1);
  log::set_level(log::Level::kError);
  ::testing::internal::CaptureStderr();
  EPCOMM_LOG_ERROR("bad");
  log::set_level(log::Level::kOff);
  EPCOMM_LOG_ERROR("silenced");
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "[epcomm rank ?] error: bad\n");
}

TEST_F(LogTest, LevelNamesAndEnvironment) {
  for (log::Level l :
       {log::Level::kOff, log::Level::kError, log::Level::kWarn, log::Level::kInfo, log::Level::kDebug}) {
    EXPECT_EQ(log::parse_level(log::to_string(l)), l);
  }
  EXPECT_EQ(log::parse_level("verbose"), std::nullopt);

  const char* old = std::getenv("EPCOMM_LOG");
  const std::string saved = old ? old : "";
  ::setenv("EPCOMM_LOG", "debug", 1);
  EXPECT_EQ(log::level_from_env(), log::Level::kDebug);
  ::setenv("EPCOMM_LOG", "loud", 1);
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(log::level_from_env(), log::Level::kWarn);  // never throws: falls back and says so
  const std::string warning = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(warning.find("EPCOMM_LOG='loud'"), std::string::npos) << warning;
  if (old) {
    ::setenv("EPCOMM_LOG", saved.c_str(), 1);
  } else {
    ::unsetenv("EPCOMM_LOG");
  }
}

TEST_F(LogTest, ConcurrentLinesStayWhole) {
  log::set_level(log::Level::kInfo);
  log::set_rank(0);
  constexpr int kThreads = 8;
  constexpr int kLines = 200;
  ::testing::internal::CaptureStderr();
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([t] {
      for (int i = 0; i < kLines; ++i) EPCOMM_LOG_INFO("thread ", t, " line ", i, " ", std::string(100, 'x'));
    });
  }
  for (auto& th : threads) th.join();
  std::istringstream lines(::testing::internal::GetCapturedStderr());
  int count = 0;
  for (std::string line; std::getline(lines, line); ++count) {
    ASSERT_EQ(line.rfind("[epcomm rank 0] info: thread ", 0), 0u) << line;
    ASSERT_EQ(line.substr(line.size() - 100), std::string(100, 'x')) << line;
  }
  EXPECT_EQ(count, kThreads * kLines);
}

}  // namespace
}  // namespace epcomm
