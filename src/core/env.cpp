#include "core/env.hpp"

#include <array>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <limits>
#include <sstream>

#include "core/check.hpp"

namespace epcomm::env {
namespace {

constexpr std::int64_t kMaxInt32 = std::numeric_limits<std::int32_t>::max();

// NOTE: every variable epcomm reads is listed here; add new ones here, never call getenv elsewhere.
constexpr std::array kRegistry = {
    Entry{.name = "EPCOMM_LOG",
          .type = Type::kString,
          .default_value = "warn",
          .doc = "Logging threshold: messages at this level and more severe go to stderr.",
          .choices = "off|error|warn|info|debug"},
    Entry{.name = "EPCOMM_BOOTSTRAP_TIMEOUT_MS",
          .type = Type::kDuration,
          .default_value = "30000",
          .doc = "How long a bootstrap operation (connect, all-gather) waits for a peer before failing.",
          .min_value = 1,
          .max_value = kMaxInt32},
    Entry{.name = "EPCOMM_TIMEOUT_MS",
          .type = Type::kDuration,
          .default_value = "20000",
          .doc = "How long a device-side wait on a peer spins before the kernel reports a timeout.",
          .min_value = 1,
          .max_value = kMaxInt32},
    Entry{.name = "EPCOMM_RANKS_PER_DOMAIN",
          .type = Type::kInt,
          .default_value = "0",
          .doc = "Ranks per NVLink domain (G), overriding BufferOptions::ranks_per_domain when set: 0 "
                 "discovers one domain per host; G > 0 splits each host's ranks into domains of G "
                 "consecutive ranks (G must divide every host's ranks), so one machine can run the "
                 "multi-domain mode.",
          .min_value = 0,
          .max_value = 72},
    Entry{.name = "EPCOMM_HT_COMBINE_PULL",
          .type = Type::kInt,
          .default_value = "0",
          .doc = "High-throughput combine: 0 (default): each rank writes the rows it computed into their "
                 "owners' regions, then the owners reduce; 1: each rank's SMs stage them in its own "
                 "region and the owners' reducers read them over NVLink as they sum; 2: the same with "
                 "the rows staged by the copy engine before the kernel (1 in worst-case mode, where "
                 "the host lacks the counts). Overrides HtOptions::combine when set.",
          .min_value = 0,
          .max_value = 2},
    Entry{.name = "EPCOMM_HT_DISPATCH_CE",
          .type = Type::kInt,
          .default_value = "0",
          .doc = "High-throughput dispatch: 0 (default): the SMs store each row into its destination's "
                 "region; n > 0: the SMs pack the rows for each peer into local staging in n chunks "
                 "and the copy engine moves each chunk to the peers while the next is packed (SM "
                 "stores in worst-case mode, where the host lacks the counts). Overrides "
                 "HtOptions::dispatch_copy_chunks when set.",
          .min_value = 0,
          .max_value = 8},
    Entry{.name = "EPCOMM_HT_DISPATCH_STRAIGHT",
          .type = Type::kInt,
          .default_value = "1",
          .doc = "Copy-engine dispatch (EPCOMM_HT_DISPATCH_CE > 0): 1 (default): a peer that gets all "
                 "but at most 4 of the tokens gets its rows copied by the copy engine straight from "
                 "x, one copy per run of consecutive tokens, instead of packed by the SMs first; 2: "
                 "the same for this rank's own rows (else written by the SMs), on a second copy "
                 "stream; 0: every peer's rows are packed. Overrides HtOptions::dispatch_straight when set.",
          .min_value = 0,
          .max_value = 2},
    Entry{.name = "EPCOMM_HT_COMBINE_CE",
          .type = Type::kInt,
          .default_value = "0",
          .doc = "High-throughput combine: n > 0: the copy engine writes the rows each rank computed "
                 "into their owners' regions in n chunks (each a contiguous block of x per owner), "
                 "published by stream memory operations, while every SM reduces what has landed; "
                 "overrides EPCOMM_HT_COMBINE_PULL (which applies in worst-case mode, where the host "
                 "lacks the counts). 0 (default): off. Overrides HtOptions::combine_copy_chunks when set.",
          .min_value = 0,
          .max_value = 8},
    Entry{.name = "EPCOMM_LL_BLOCKS",
          .type = Type::kInt,
          .default_value = "0",
          .doc = "Blocks of a low-latency launch (one per SM at most); 0: one per SM of the device. Every "
                 "rank launches the smallest grid any rank asks for. Overrides LowLatencyOptions::num_blocks "
                 "when set, read when a low-latency Buffer is made.",
          .min_value = 0,
          .max_value = 1 << 20},
    Entry{.name = "EPCOMM_PDL",
          .type = Type::kBool,
          .default_value = "1",
          .doc = "1 (default): epcomm's single-domain kernels are launched with programmatic dependent "
                 "launch (PDL, sm_90), so each may be placed on the GPU while the kernel ahead of it on "
                 "the stream drains, and waits for it there; 0: ordinary launches (as on devices before "
                 "sm_90). Read once per process, at its first kernel launch."},
    Entry{.name = "EPCOMM_LL_DIRECT_DISPATCH",
          .type = Type::kBool,
          .default_value = "1",
          .doc = "CUDA IPC low-latency dispatch: 1 (default): the direct form (each receiving block "
                 "copies the rows its same-numbered sender blocks sent as soon as their flags are set); "
                 "0: the staging form, which NVSHMEM and multi-domain Buffers always use (every "
                 "receiver waits for every sender block, then copies by selection lists). Every rank "
                 "uses the direct form only if every rank asks for it. Read when a low-latency Buffer "
                 "is made."},
    Entry{.name = "EPCOMM_LL_PULL_COMBINE",
          .type = Type::kBool,
          .default_value = "1",
          .doc = "CUDA IPC low-latency combine with a zero-copy y: 1 (default): pulled (each rank reads "
                 "its tokens' rows straight from the holders' y and sums them, one phase); 0: pushed (each "
                 "holder sends a float32 partial sum per token to its owner, as without zero-copy and on "
                 "NVSHMEM and multi-domain Buffers). Every rank pulls only if every rank asks for it. Read "
                 "when a low-latency Buffer is made."},
    Entry{.name = "EPCOMM_CALLER_STREAM",
          .type = Type::kBool,
          .default_value = "1",
          .doc = "1 (default): get_dispatch_layout, and a low-latency dispatch or combine without a receive "
                 "hook, launch their kernel on the caller's stream when called without previous_event, "
                 "async_finish and allocate_on_comm_stream; 0: on the Buffer's communication stream, "
                 "ordered against the caller's by events, as every other call. Read when a Buffer is made "
                 "(to compare the two)."},
    Entry{.name = "EPCOMM_LL_TRACE",
          .type = Type::kInt,
          .default_value = "0",
          .doc = "1 or 2: low-latency kernels record a device timestamp per block at each phase boundary "
                 "(the benchmark prints where a launch spends its time; with 2 also each block's "
                 "median per point). A diagnostic, read when a low-latency Buffer is made.",
          .min_value = 0,
          .max_value = 2},
    Entry{.name = "EPCOMM_HT_TRACE",
          .type = Type::kBool,
          .default_value = "0",
          .doc = "1: the count exchange that opens a high-throughput dispatch (notify) records a device "
                 "timestamp at each of its phases (Buffer::notify_trace; the benchmark prints them after "
                 "its preamble pass). A diagnostic, read when a Buffer is made."},
    Entry{.name = "EPCOMM_KERNEL_TIMING",
          .type = Type::kBool,
          .default_value = "0",
          .doc = "Time each operation's kernels with CUDA events (Buffer::last_kernel_us, the benchmark's "
                 "kernel_us column) and keep the last call's timeline (Buffer::last_call_timeline). Costs "
                 "host time per call."},
    Entry{.name = "EPCOMM_JOB_TOKEN",
          .type = Type::kString,
          .default_value = "",
          .doc = "The job's identity (at most 256 bytes, equal on every rank): the TCP bootstrap's rank 0 "
                 "refuses a connection that does not present it. Unset: derived from MASTER_PORT, "
                 "WORLD_SIZE and TORCHELASTIC_RUN_ID."},
    Entry{.name = "MASTER_ADDR",
          .type = Type::kString,
          .default_value = std::nullopt,
          .doc = "torchrun: host name or address where rank 0 listens for the bootstrap."},
    Entry{.name = "MASTER_PORT",
          .type = Type::kInt,
          .default_value = std::nullopt,
          .doc = "torchrun: TCP port where rank 0 listens for the bootstrap.",
          .min_value = 1,
          .max_value = 65535},
    Entry{.name = "RANK",
          .type = Type::kInt,
          .default_value = std::nullopt,
          .doc = "torchrun: this process's rank in [0, WORLD_SIZE).",
          .min_value = 0,
          .max_value = kMaxInt32 - 1},
    Entry{.name = "WORLD_SIZE",
          .type = Type::kInt,
          .default_value = std::nullopt,
          .doc = "torchrun: number of processes in the job.",
          .min_value = 1,
          .max_value = kMaxInt32},
    Entry{.name = "LOCAL_RANK",
          .type = Type::kInt,
          .default_value = std::nullopt,
          .doc = "torchrun: this process's index among the processes on its host.",
          .min_value = 0,
          .max_value = kMaxInt32 - 1},
    Entry{.name = "LOCAL_WORLD_SIZE",
          .type = Type::kInt,
          .default_value = std::nullopt,
          .doc = "torchrun: number of processes on this host.",
          .min_value = 1,
          .max_value = kMaxInt32},
    Entry{.name = "TORCHELASTIC_RUN_ID",
          .type = Type::kString,
          .default_value = "",
          .doc = "torchrun: the run's id; part of the derived job token when EPCOMM_JOB_TOKEN is unset."},
};

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

const Entry& typed_entry(std::string_view name, Type a, Type b) {
  const Entry& e = entry(name);
  EPCOMM_REQUIRE(e.type == a || e.type == b, ErrorCategory::kInternal, "environment variable ", name,
                 " is registered as ", to_string(e.type), " but was read as ", to_string(a));
  return e;
}

// The value to parse: the environment's, else the default; throws when neither exists.
std::string value_or_default(const Entry& e) {
  if (auto value = raw(e.name)) return *value;
  EPCOMM_CHECK_ARG(e.default_value.has_value(), "environment variable ", e.name, " is not set (", e.doc, ")");
  return std::string(*e.default_value);
}

void check_range(const Entry& e, std::int64_t value, std::string_view text) {
  EPCOMM_CHECK_ARG(value >= e.min_value && value <= e.max_value, "environment variable ", e.name, "='", text,
                   "' is out of range: expected a value in [", e.min_value, ", ", e.max_value, "]",
                   e.type == Type::kDuration ? " ms" : "");
}

bool is_choice(std::string_view choices, std::string_view value) {
  while (!choices.empty()) {
    const std::size_t bar = choices.find('|');
    if (choices.substr(0, bar) == value) return true;
    if (bar == std::string_view::npos) break;
    choices.remove_prefix(bar + 1);
  }
  return false;
}

}  // namespace

const char* to_string(Type type) noexcept {
  switch (type) {
    case Type::kInt:
      return "int";
    case Type::kBool:
      return "bool";
    case Type::kString:
      return "string";
    case Type::kDuration:
      return "duration";
  }
  return "unknown";
}

std::span<const Entry> registry() noexcept {
  return kRegistry;
}

const Entry& entry(std::string_view name) {
  for (const Entry& e : kRegistry) {
    if (e.name == name) return e;
  }
  EPCOMM_THROW(ErrorCategory::kInternal, "environment variable ", name,
               " is not registered in src/core/env.cpp");
}

std::string registry_markdown() {
  std::ostringstream os;
  os << "| Variable | Type | Default | Meaning |\n|---|---|---|---|\n";
  for (const Entry& e : kRegistry) {
    os << "| `" << e.name << "` | " << to_string(e.type);
    if (!e.choices.empty()) os << " (" << e.choices << ")";
    os << " | " << (e.default_value ? std::string(*e.default_value) : std::string("(required)")) << " | "
       << e.doc << " |\n";
  }
  return os.str();
}

std::optional<std::string> raw(std::string_view name) {
  const Entry& e = entry(name);
  // e.name is a NUL-terminated literal from the table.
  const char* value = std::getenv(e.name.data());
  if (value == nullptr || *value == '\0') return std::nullopt;
  return std::string(value);
}

bool is_set(std::string_view name) {
  return raw(name).has_value();
}

std::int64_t parse_int(std::string_view name, std::string_view text) {
  std::string_view digits = text;
  // One optional sign: "+5" and "-5", never "+-5".
  if (!digits.empty() && digits.front() == '+' && (digits.size() < 2 || digits[1] != '-'))
    digits.remove_prefix(1);
  std::int64_t value = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  EPCOMM_CHECK_ARG(!digits.empty() && ec == std::errc() && end == digits.data() + digits.size(),
                   "environment variable ", name, "='", text, "' is not a decimal integer",
                   ec == std::errc::result_out_of_range ? " (out of range of int64)" : "");
  return value;
}

bool parse_bool(std::string_view name, std::string_view text) {
  const std::string v = lower(text);
  if (v == "1" || v == "true" || v == "yes" || v == "on") return true;
  if (v == "0" || v == "false" || v == "no" || v == "off") return false;
  EPCOMM_THROW(ErrorCategory::kInvalidArgument, "environment variable ", name, "='", text,
               "' is not a boolean (expected 1|0, true|false, yes|no, on|off)");
}

std::chrono::milliseconds parse_duration(std::string_view name, std::string_view text) {
  std::size_t split = (!text.empty() && (text[0] == '+' || text[0] == '-')) ? 1 : 0;
  while (split < text.size() && std::isdigit(static_cast<unsigned char>(text[split]))) ++split;
  const std::string unit = lower(text.substr(split));
  std::int64_t scale = 0;
  if (unit.empty() || unit == "ms") scale = 1;
  if (unit == "s") scale = 1000;
  if (unit == "m" || unit == "min") scale = 60 * 1000;
  const bool has_digits = split > 0 && std::isdigit(static_cast<unsigned char>(text[split - 1]));
  EPCOMM_CHECK_ARG(scale != 0 && has_digits, "environment variable ", name, "='", text,
                   "' is not a duration (expected an integer with an optional unit ms|s|m; "
                   "no unit means milliseconds)");
  std::int64_t count = 0;
  try {
    count = parse_int(name, text.substr(0, split));
  } catch (const Error&) {
    EPCOMM_THROW(ErrorCategory::kInvalidArgument, "environment variable ", name, "='", text,
                 "' is not a duration (the number does not fit in int64)");
  }
  EPCOMM_CHECK_ARG(count <= std::numeric_limits<std::int64_t>::max() / scale &&
                       count >= std::numeric_limits<std::int64_t>::min() / scale,
                   "environment variable ", name, "='", text, "' is too large");
  return std::chrono::milliseconds(count * scale);
}

std::string get_string(std::string_view name) {
  const Entry& e = typed_entry(name, Type::kString, Type::kString);
  std::string value = value_or_default(e);
  EPCOMM_CHECK_ARG(e.choices.empty() || is_choice(e.choices, value), "environment variable ", e.name, "='",
                   value, "' is not one of ", e.choices);
  return value;
}

std::int64_t get_int(std::string_view name) {
  const Entry& e = typed_entry(name, Type::kInt, Type::kDuration);
  if (e.type == Type::kDuration) return get_duration(name).count();
  const std::string text = value_or_default(e);
  const std::int64_t value = parse_int(e.name, text);
  check_range(e, value, text);
  return value;
}

bool get_bool(std::string_view name) {
  const Entry& e = typed_entry(name, Type::kBool, Type::kBool);
  return parse_bool(e.name, value_or_default(e));
}

std::chrono::milliseconds get_duration(std::string_view name) {
  const Entry& e = typed_entry(name, Type::kDuration, Type::kDuration);
  const std::string text = value_or_default(e);
  const std::chrono::milliseconds value = parse_duration(e.name, text);
  check_range(e, value.count(), text);
  return value;
}

}  // namespace epcomm::env
