// Runs a Python tool of the source tree from a CPU test (the scripts that turn the C++ writers'
// JSON and the profilers' CSV into the README's tables), with its input in a temporary file.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

namespace epcomm::test {

// A file holding `text`, removed with the object; its name is unique (tests run in parallel).
struct TempFile {
  std::string path;
  explicit TempFile(const std::string& text) {
    char name[] = "/tmp/epcomm_tool_inputXXXXXX";
    const int fd = ::mkstemp(name);
    path = name;
    if (fd >= 0) ::close(fd);
    std::ofstream(path) << text;
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  ~TempFile() { std::remove(path.c_str()); }
};

// `python3 <source tree>/<script> <args>`: its exit code, stdout and stderr in `out`; -1 when
// python3 is missing (the caller skips) or the pipe fails.
inline int run_python_tool(const std::string& script, const std::string& args, std::string& out) {
  if (std::system("python3 --version > /dev/null 2>&1") != 0) return -1;
  const std::string command = "python3 " EPCOMM_SOURCE_DIR "/" + script + " " + args + " 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return -1;
  char buf[4096];
  while (std::size_t n = std::fread(buf, 1, sizeof buf, pipe)) out.append(buf, n);
  const int status = ::pclose(pipe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace epcomm::test
