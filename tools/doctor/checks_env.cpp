// The doctor's verdicts on the launch environment and on NVSHMEM (checks.hpp).
#include <algorithm>
#include <charconv>
#include <regex>

#include "core/env.hpp"
#include "doctor/checks.hpp"
#include "epcomm/error.hpp"

namespace epcomm::doctor {
namespace {

// The rendezvous variables torchrun and epcomm-run set (the TCP bootstrap reads the first four).
constexpr std::string_view kRendezvous[] = {"MASTER_ADDR", "MASTER_PORT", "RANK",
                                            "WORLD_SIZE",  "LOCAL_RANK",  "LOCAL_WORLD_SIZE"};
constexpr std::string_view kBootstrapNeeds[] = {"MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE"};

// NVLink multicast switches: the value epcomm's machines need (epcomm-run forces it).
struct MulticastSwitch {
  std::string_view name, safe_value;
};
constexpr MulticastSwitch kMulticast[] = {
    {"NCCL_NVLS_ENABLE", "0"}, {"NVSHMEM_DISABLE_NVLS", "1"}, {"TORCH_SYMM_MEM_DISABLE_MULTICAST", "1"}};

// EPCOMM_* variables read outside the library (the test tiers and the doctor): not typos.
constexpr std::string_view kReadElsewhere[] = {"EPCOMM_REQUIRE_GPU", "EPCOMM_TEST_SHARE_GPUS"};

// Why `text` is not a valid value of the registered variable `e`; empty when it is.
std::string registry_error(const env::Entry& e, const std::string& text) {
  try {
    std::int64_t value = 0;
    switch (e.type) {
      case env::Type::kInt:
        value = env::parse_int(e.name, text);
        break;
      case env::Type::kDuration:
        value = env::parse_duration(e.name, text).count();
        break;
      case env::Type::kBool:
        env::parse_bool(e.name, text);
        return {};
      case env::Type::kString: {
        if (e.choices.empty()) return {};
        std::string_view rest = e.choices;
        while (true) {
          const std::size_t bar = rest.find('|');
          if (rest.substr(0, bar) == text) return {};
          if (bar == std::string_view::npos) break;
          rest.remove_prefix(bar + 1);
        }
        return std::string(e.name) + "='" + text + "' is not one of " + std::string(e.choices);
      }
    }
    if (value < e.min_value || value > e.max_value) {
      return std::string(e.name) + "='" + text + "' is out of range [" + std::to_string(e.min_value) + ", " +
             std::to_string(e.max_value) + "]" + (e.type == env::Type::kDuration ? " ms" : "");
    }
    return {};
  } catch (const Error& error) {
    return error.message();
  }
}

std::int64_t int_of(const Environment& env, std::string_view name) {
  const std::string& text = env.find(name)->second;
  std::int64_t value = 0;
  std::from_chars(text.data(), text.data() + text.size(), value);
  return value;
}

bool has(const Environment& env, std::string_view name) {
  const auto it = env.find(name);
  return it != env.end() && !it->second.empty();
}

// Consistency of the rendezvous variables that are set (each already well-formed).
void check_rendezvous(const Environment& env, int num_gpus, std::vector<std::string>& problems) {
  for (std::string_view name : kBootstrapNeeds) {
    if (!has(env, name)) {
      problems.push_back(std::string(name) +
                         " is unset while other rendezvous variables are set (the TCP bootstrap needs "
                         "MASTER_ADDR, MASTER_PORT, RANK and WORLD_SIZE)");
    }
  }
  if (has(env, "RANK") && has(env, "WORLD_SIZE") && int_of(env, "RANK") >= int_of(env, "WORLD_SIZE")) {
    problems.push_back("RANK=" + env.find("RANK")->second +
                       " is not below WORLD_SIZE=" + env.find("WORLD_SIZE")->second);
  }
  const bool local = has(env, "LOCAL_RANK") && has(env, "LOCAL_WORLD_SIZE");
  if (local && int_of(env, "LOCAL_RANK") >= int_of(env, "LOCAL_WORLD_SIZE")) {
    problems.push_back("LOCAL_RANK=" + env.find("LOCAL_RANK")->second +
                       " is not below LOCAL_WORLD_SIZE=" + env.find("LOCAL_WORLD_SIZE")->second);
  }
  if (has(env, "LOCAL_WORLD_SIZE") && has(env, "WORLD_SIZE")) {
    const std::int64_t local_size = int_of(env, "LOCAL_WORLD_SIZE"), world = int_of(env, "WORLD_SIZE");
    if (local_size > world || world % local_size != 0) {
      problems.push_back("WORLD_SIZE=" + std::to_string(world) + " is not a multiple of LOCAL_WORLD_SIZE=" +
                         std::to_string(local_size) + " (every host runs the same number of ranks)");
    }
    if (num_gpus > 0 && local_size > num_gpus) {
      problems.push_back("LOCAL_WORLD_SIZE=" + std::to_string(local_size) + " ranks on a host with " +
                         std::to_string(num_gpus) +
                         " GPUs: ranks would share GPUs (a correctness mode for tests, "
                         "never for speed)");
    }
  }
  if (has(env, "LOCAL_RANK") && num_gpus > 0 && int_of(env, "LOCAL_RANK") >= num_gpus) {
    problems.push_back("LOCAL_RANK=" + env.find("LOCAL_RANK")->second + " but this host has " +
                       std::to_string(num_gpus) + " GPUs");
  }
}

}  // namespace

Environment environment_of(const std::vector<std::string>& assignments) {
  Environment env;
  for (const std::string& a : assignments) {
    const std::size_t eq = a.find('=');
    if (eq != std::string::npos && eq > 0) env[a.substr(0, eq)] = a.substr(eq + 1);
  }
  return env;
}

CheckResult decide_launch_env(const Environment& env, int num_gpus) {
  std::vector<std::string> problems;
  const auto is_rendezvous = [](std::string_view n) {
    return std::find(std::begin(kRendezvous), std::end(kRendezvous), n) != std::end(kRendezvous);
  };
  bool rendezvous_well_formed = true;
  for (const env::Entry& e : env::registry()) {
    const auto it = env.find(e.name);
    if (it == env.end() || it->second.empty()) continue;
    if (std::string error = registry_error(e, it->second); !error.empty()) {
      problems.push_back(error);
      rendezvous_well_formed = rendezvous_well_formed && !is_rendezvous(e.name);
    }
  }
  const bool launched = std::any_of(std::begin(kRendezvous), std::end(kRendezvous),
                                    [&](std::string_view n) { return has(env, n); });
  if (launched && rendezvous_well_formed) check_rendezvous(env, num_gpus, problems);
  std::vector<std::string> advice;
  for (const MulticastSwitch& s : kMulticast) {
    const auto it = env.find(s.name);
    if (it == env.end() || it->second.empty()) {
      advice.push_back(std::string(s.name) + "=" + std::string(s.safe_value));
    } else if (it->second != s.safe_value) {
      problems.push_back(std::string(s.name) + "=" + it->second +
                         " lets NVLink multicast be used; epcomm's machines need " + std::string(s.name) +
                         "=" + std::string(s.safe_value) + " (epcomm-run sets it)");
    }
  }
  if (!problems.empty()) {
    std::string text;
    for (const std::string& p : problems) text += (text.empty() ? "" : "; ") + p;
    return {Status::kFail, "launch", text};
  }
  std::string seen;
  if (launched) {
    seen = "rank " + env.find("RANK")->second + " of " + env.find("WORLD_SIZE")->second;
    if (has(env, "LOCAL_RANK")) seen += " (local rank " + env.find("LOCAL_RANK")->second + ")";
    seen += ", rendezvous " + env.find("MASTER_ADDR")->second + ":" + env.find("MASTER_PORT")->second;
  } else {
    seen = "not started as a rank (no RANK or WORLD_SIZE; epcomm-run and torchrun set them)";
  }
  seen += advice.empty() ? "; NVLink multicast off" : "; advice: set";
  for (const std::string& a : advice) seen += " " + a;
  if (!advice.empty()) seen += " (epcomm-run sets them)";
  std::string unknown;
  for (const auto& [name, value] : env) {
    if (name.rfind("EPCOMM_", 0) != 0) continue;
    const auto& reg = env::registry();
    const bool registered =
        std::any_of(reg.begin(), reg.end(), [&](const env::Entry& e) { return e.name == name; });
    const bool elsewhere =
        std::find(std::begin(kReadElsewhere), std::end(kReadElsewhere), name) != std::end(kReadElsewhere);
    if (!registered && !elsewhere) unknown += (unknown.empty() ? "" : ", ") + name;
  }
  if (!unknown.empty()) seen += "; not read by epcomm (a typo?): " + unknown;
  return {Status::kOk, "launch", seen};
}

// ---- NVSHMEM ------------------------------------------------------------------------------------

std::string parse_nvshmem_version(std::string_view header_text) {
  const std::string text(header_text);
  std::string parts[3];
  const char* names[3] = {"MAJOR", "MINOR", "PATCH"};
  for (int i = 0; i < 3; ++i) {
    const std::regex define(std::string("#define\\s+NVSHMEM_VENDOR_") + names[i] + "_VERSION\\s+([0-9]+)");
    std::smatch m;
    if (!std::regex_search(text, m, define)) return {};
    parts[i] = m[1];
  }
  return parts[0] + "." + parts[1] + "." + parts[2];
}

CheckResult decide_nvshmem(const NvshmemFacts& f) {
  std::string looked;
  for (const std::string& l : f.looked) looked += (looked.empty() ? "" : "; ") + l;
  const std::string build =
      f.built_with_nvshmem
          ? ""
          : " (this build has no NVSHMEM transport: configure with -DEPCOMM_WITH_NVSHMEM=ON)";
  if (f.home.empty()) {
    return {Status::kSkip, "nvshmem",
            "not found (optional: only LlTransport::kNvshmem needs it; python3 -m pip install "
            "nvidia-nvshmem-cu13==3.4.5); looked at: " +
                looked + build};
  }
  const std::string where = f.home + " (from " + f.found_by + ")";
  if (!f.host_library) {
    return {Status::kFail, "nvshmem", where + " has no lib/libnvshmem_host.so.3: an incomplete install"};
  }
  if (!f.version.empty() && f.version.rfind("3.", 0) != 0) {
    return {Status::kFail, "nvshmem", where + " holds NVSHMEM " + f.version + "; epcomm needs 3.x"};
  }
  if (!f.load_error.empty()) {
    return {Status::kFail, "nvshmem", where + ": libnvshmem_host.so.3 does not load: " + f.load_error};
  }
  const std::string version =
      f.version.empty() ? "version unknown (no include/non_abi/nvshmem_version.h)" : f.version;
  return {Status::kOk, "nvshmem",
          version + " at " + where + ", libnvshmem_host.so.3 loads" +
              (f.device_library ? "" : " (no lib/libnvshmem_device.a: enough to run, not to build)") + build};
}

}  // namespace epcomm::doctor
