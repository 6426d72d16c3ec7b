// The doctor's verdict on peer access, NVLink topology and measured peer bandwidth (checks.hpp).
#include <algorithm>
#include <cstdio>
#include <sstream>

#include "doctor/checks.hpp"

namespace epcomm::doctor {
namespace {

constexpr std::size_t kMaxProblemsListed = 6;  // more are counted, not listed

std::string pair_name(const PeerPair& p) {
  return "GPU " + std::to_string(p.src) + " -> GPU " + std::to_string(p.dst);
}

std::string gbps_text(double gbps) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.0f GB/s", gbps);
  return text;
}

bool is_nvlink(const std::string& link) {
  return link.rfind("NV", 0) == 0;
}

double median_of(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const std::size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

// The distinct link types of the pairs: "NV18" or "NV18, SYS"; empty when unknown.
std::string link_types(const std::vector<PeerPair>& pairs) {
  std::vector<std::string> kinds;
  for (const PeerPair& p : pairs) {
    if (!p.link.empty() && std::find(kinds.begin(), kinds.end(), p.link) == kinds.end())
      kinds.push_back(p.link);
  }
  std::string text;
  for (const std::string& k : kinds) text += (text.empty() ? "" : ", ") + k;
  return text;
}

}  // namespace

CheckResult decide_peers(const PeerFacts& f) {
  if (f.num_gpus < 2) {
    return {Status::kSkip, "peers",
            "one GPU: no peer to reach (ranks sharing it reach each other through CUDA IPC, checked below)"};
  }
  std::vector<std::string> problems;
  std::vector<double> measured;
  for (const PeerPair& p : f.pairs) {
    if (p.gbps >= 0) measured.push_back(p.gbps);
  }
  const double median = measured.empty() ? 0 : median_of(measured);
  for (const PeerPair& p : f.pairs) {
    if (!p.can_access) {
      problems.push_back(pair_name(p) +
                         ": no peer access (cudaDeviceCanAccessPeer = 0): every GPU of an NVLink domain "
                         "must reach every other");
      continue;  // the rest follows from it
    }
    if (!p.native_atomics) {
      problems.push_back(pair_name(p) +
                         ": no native atomics on peer memory (epcomm's counters are atomic adds into peers' "
                         "memory: NVLink needed)");
    }
    if (!p.error.empty()) {
      problems.push_back(pair_name(p) + ": the peer copy failed: " + p.error);
    } else if (p.gbps >= 0 && p.gbps < f.min_gbps) {
      problems.push_back(pair_name(p) + ": " + gbps_text(p.gbps) + ", below the minimum " +
                         gbps_text(f.min_gbps) + (p.link.empty() ? "" : " over " + p.link) +
                         " (PCIe-class; NVLink 4 copies ~300-400 GB/s one way): see nvidia-smi topo -m and "
                         "nvidia-smi nvlink -s");
    } else if (p.gbps >= 0 && p.gbps < kSlowPairFraction * median) {
      problems.push_back(pair_name(p) + ": " + gbps_text(p.gbps) + ", under half the median " +
                         gbps_text(median) + " of all pairs (a degraded or missing NVLink?)");
    }
    if (!p.link.empty() && !is_nvlink(p.link) && p.can_access) {
      problems.push_back(pair_name(p) + ": linked by " + p.link +
                         ", not NVLink (nvidia-smi topo -m): epcomm's intranode mode expects NVLink");
    }
  }
  if (!problems.empty()) {
    std::string text;
    for (std::size_t i = 0; i < problems.size() && i < kMaxProblemsListed; ++i) {
      text += (i ? "; " : "") + problems[i];
    }
    if (problems.size() > kMaxProblemsListed) {
      text += "; and " + std::to_string(problems.size() - kMaxProblemsListed) + " more";
    }
    return {Status::kFail, "peers", text};
  }
  std::ostringstream os;
  os << "all " << f.pairs.size() << " ordered pairs of " << f.num_gpus
     << " GPUs have peer access with native atomics";
  const std::string links = link_types(f.pairs);
  os << "; links: "
     << (links.empty() ? "unknown (" + f.topology_note + ")" : links + " (nvidia-smi topo -m)");
  if (!measured.empty()) {
    const auto slowest =
        std::min_element(f.pairs.begin(), f.pairs.end(), [](const PeerPair& a, const PeerPair& b) {
          return (a.gbps < 0 ? 1e300 : a.gbps) < (b.gbps < 0 ? 1e300 : b.gbps);
        });
    const double fastest = *std::max_element(measured.begin(), measured.end());
    os << "; copies of " << (f.copy_bytes >> 20) << " MiB one way: median " << gbps_text(median) << ", max "
       << gbps_text(fastest) << ", slowest " << pair_name(*slowest) << " " << gbps_text(slowest->gbps);
  }
  return {Status::kOk, "peers", os.str()};
}

std::vector<std::vector<std::string>> parse_topo_matrix(std::string_view text) {
  std::vector<std::vector<std::string>> rows;
  std::istringstream in{std::string(text)};
  std::size_t num_gpus = 0;
  for (std::string line; std::getline(in, line);) {
    // A terminal gets underlined headers (ESC [ 4 m ... ESC [ 0 m): drop escape sequences.
    for (std::size_t esc = line.find('\x1b'); esc != std::string::npos; esc = line.find('\x1b', esc)) {
      const std::size_t end = line.find('m', esc);
      line.erase(esc, end == std::string::npos ? std::string::npos : end - esc + 1);
    }
    std::istringstream words(line);
    std::vector<std::string> tokens;
    for (std::string w; words >> w;) tokens.push_back(w);
    if (num_gpus == 0) {  // the header: "GPU0 GPU1 ... NIC0 ... CPU Affinity ..."
      while (num_gpus < tokens.size() && tokens[num_gpus] == "GPU" + std::to_string(num_gpus)) ++num_gpus;
      continue;
    }
    if (tokens.empty() || tokens[0] != "GPU" + std::to_string(rows.size())) continue;
    if (tokens.size() < num_gpus + 1) return {};
    rows.emplace_back(tokens.begin() + 1, tokens.begin() + 1 + static_cast<std::ptrdiff_t>(num_gpus));
    if (rows.size() == num_gpus) break;
  }
  if (num_gpus == 0 || rows.size() != num_gpus) return {};
  return rows;
}

std::string normalize_bus_id(std::string_view bus_id) {
  const std::size_t colon = bus_id.find(':');
  if (colon == std::string_view::npos || colon == 0) return {};
  unsigned long long domain = 0;
  for (char c : bus_id.substr(0, colon)) {
    const char l = static_cast<char>(c | 0x20);
    if (!((c >= '0' && c <= '9') || (l >= 'a' && l <= 'f'))) return {};
    domain = domain * 16 + static_cast<unsigned>(c <= '9' ? c - '0' : l - 'a' + 10);
  }
  std::string rest(bus_id.substr(colon + 1));
  for (char& c : rest) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c | 0x20 : c);
  while (!rest.empty() && (rest.back() == ' ' || rest.back() == '\r' || rest.back() == '\n')) rest.pop_back();
  char prefix[24];
  std::snprintf(prefix, sizeof(prefix), "%llx:", domain);
  return prefix + rest;
}

}  // namespace epcomm::doctor
