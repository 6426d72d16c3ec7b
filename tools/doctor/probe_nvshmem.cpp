// The doctor's NVSHMEM probe: where it is, its version, whether its host library loads (probes.hpp).
#include <dlfcn.h>
#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "doctor/probes.hpp"

#ifndef EPCOMM_DOCTOR_NVSHMEM_HOME
#define EPCOMM_DOCTOR_NVSHMEM_HOME ""  // the NVSHMEM_HOME CMake found (EPCOMM_WITH_NVSHMEM builds)
#endif
#ifndef EPCOMM_DOCTOR_WITH_NVSHMEM
#define EPCOMM_DOCTOR_WITH_NVSHMEM 0
#endif

namespace epcomm::doctor {
namespace {

constexpr const char* kHostLibrary = "/lib/libnvshmem_host.so.3";
constexpr const char* kDeviceLibrary = "/lib/libnvshmem_device.a";
constexpr const char* kVersionHeader = "/include/non_abi/nvshmem_version.h";

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

// What CMake's `python3 -c "import nvidia.nvshmem as m; print(m.__path__[0])"` prints; empty
// (with `why`) when it fails.
std::string python_package_dir(std::string& why) {
  FILE* pipe = ::popen("python3 -c 'import nvidia.nvshmem as m; print(m.__path__[0])' 2>&1", "r");
  if (pipe == nullptr) {
    why = "python3 could not be started";
    return {};
  }
  std::string text;
  char buf[1024];
  while (std::size_t n = std::fread(buf, 1, sizeof(buf), pipe)) text.append(buf, n);
  const int status = ::pclose(pipe);
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  if (status != 0) {
    const std::size_t nl = text.rfind('\n');
    why = text.empty() ? "python3 failed" : text.substr(nl == std::string::npos ? 0 : nl + 1);
    return {};
  }
  return text;
}

}  // namespace

NvshmemFacts probe_nvshmem(const Environment& env) {
  NvshmemFacts f;
  f.built_with_nvshmem = EPCOMM_DOCTOR_WITH_NVSHMEM != 0;
  const auto home_env = env.find("NVSHMEM_HOME");
  if (home_env != env.end() && !home_env->second.empty()) {  // as CMake: when set, it is the one
    f.home = home_env->second;
    f.found_by = "NVSHMEM_HOME";
  } else {
    f.looked.push_back("NVSHMEM_HOME (unset)");
    std::string why;
    const std::string dir = python_package_dir(why);
    if (!dir.empty() && exists(dir)) {
      f.home = dir;
      f.found_by = "python3 nvidia.nvshmem";
    } else {
      f.looked.push_back("python3 nvidia.nvshmem (" + (why.empty() ? dir + " does not exist" : why) + ")");
      const std::string built = EPCOMM_DOCTOR_NVSHMEM_HOME;
      if (!built.empty() && exists(built + kHostLibrary)) {
        f.home = built;
        f.found_by = "the build's NVSHMEM_HOME";
      } else if (!built.empty()) {
        f.looked.push_back("the build's NVSHMEM_HOME " + built + " (no lib/libnvshmem_host.so.3)");
      }
    }
  }
  if (f.home.empty()) return f;
  f.host_library = exists(f.home + kHostLibrary);
  f.device_library = exists(f.home + kDeviceLibrary);
  std::ifstream header(f.home + kVersionHeader);
  if (header) {
    std::ostringstream text;
    text << header.rdbuf();
    f.version = parse_nvshmem_version(text.str());
  }
  if (f.host_library) {
    // Loading runs no NVSHMEM initialisation (that needs nvshmem_init); it resolves the library's
    // dependencies, which is what a program linking it needs at start.
    void* library = ::dlopen((f.home + kHostLibrary).c_str(), RTLD_LAZY | RTLD_LOCAL);
    if (library == nullptr) {
      const char* error = ::dlerror();
      f.load_error = error ? error : "dlopen failed";
    } else {
      ::dlclose(library);
    }
  }
  return f;
}

}  // namespace epcomm::doctor
