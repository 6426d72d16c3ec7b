#include "faults/mem_probe.hpp"

#include <dirent.h>

#include <fstream>
#include <sstream>

namespace epcomm::faults {

std::int64_t status_kib(const std::string& status_text, const std::string& key) {
  std::istringstream in(status_text);
  for (std::string line; std::getline(in, line);) {
    // "VmRSS:\t  123456 kB"
    if (line.size() <= key.size() || line.compare(0, key.size(), key) != 0 || line[key.size()] != ':')
      continue;
    std::istringstream value(line.substr(key.size() + 1));
    std::int64_t kib = -1;
    std::string unit;
    if (value >> kib >> unit && unit == "kB") return kib;
    return -1;
  }
  return -1;
}

std::int64_t rss_kib() {
  std::ifstream file("/proc/self/status");
  if (!file) return -1;
  std::stringstream text;
  text << file.rdbuf();
  return status_kib(text.str(), "VmRSS");
}

int open_fd_count() {
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  int count = 0;
  while (const dirent* entry = ::readdir(dir))
    if (entry->d_name[0] != '.') ++count;
  ::closedir(dir);
  return count - 1;  // the directory stream's own descriptor
}

}  // namespace epcomm::faults
