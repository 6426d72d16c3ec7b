// The doctor's end-to-end run: one worker process per GPU, started through the launcher core,
// each running the tiny case's two phases and reporting one line per phase (probes.hpp).
#include <cuda_runtime_api.h>

#include <chrono>
#include <cstdio>

#include "core/cuda_raii.hpp"
#include "core/env.hpp"
#include "doctor/probes.hpp"
#include "doctor/telemetry_words.hpp"
#include "doctor/worker.hpp"
#include "epcomm/error.hpp"

namespace epcomm::doctor {
namespace {

void report(std::string_view phase, Status status, const std::string& detail) {
  std::printf("%s\n", worker_line(phase, status, detail).c_str());
  std::fflush(stdout);
}

// Whether every rank passed `mine`: all ranks learn all results, so all skip the next phase alike.
bool all_passed(Bootstrap& bootstrap, bool mine) {
  const int value = mine ? 1 : 0;
  std::vector<int> all(static_cast<std::size_t>(bootstrap.size()));
  bootstrap.all_gather(&value, all.data(), sizeof(int));
  for (int v : all) {
    if (v == 0) return false;
  }
  return true;
}

// Collective: every rank's telemetry of a phase summed per peer, gathered, in words
// (doctor/telemetry_words.hpp); the same words on every rank.
std::string gathered_telemetry_words(Bootstrap& bootstrap, const std::vector<PeerTraffic>& mine) {
  const int R = bootstrap.size();
  const std::vector<std::uint64_t> words = to_words(sum_by_peer(mine, R));
  std::vector<std::uint64_t> all(words.size() * static_cast<std::size_t>(R));
  bootstrap.all_gather(words.data(), all.data(), words.size() * sizeof(std::uint64_t));
  std::vector<std::vector<PeerSums>> by_rank;
  for (int r = 0; r < R; ++r)
    by_rank.push_back(from_words(all.data() + static_cast<std::size_t>(r) * words.size(), R));
  return telemetry_words(by_rank);
}

// Collective: reports `phase`: a failure at once (sharing verdicts may wait on a dead peer), a
// match once every rank's verdict is known, with the gathered telemetry when every rank matched.
// Returns whether every rank did; a rendezvous that fails while sharing fails the phase.
bool report_phase(Bootstrap& bootstrap, std::string_view phase, bool ok, std::string detail,
                  const std::vector<PeerTraffic>& traffic) {
  if (!ok) report(phase, Status::kFail, detail);
  bool every = false;
  try {
    every = all_passed(bootstrap, ok);
    if (every) detail += "; " + gathered_telemetry_words(bootstrap, traffic);
  } catch (const Error& e) {
    if (ok) report(phase, Status::kFail, std::string("sharing the ranks' results: ") + e.what());
    return false;
  }
  if (ok) report(phase, Status::kOk, detail);
  return every;
}

}  // namespace

launcher::LocalRun run_workers(int num_gpus, const Self& self) {
  launcher::LocalRunOptions o;
  o.command = {self.executable, "--worker"};
  o.num_ranks = num_gpus;
  o.parent_environment = self.environment;
  o.timeout = std::chrono::milliseconds(static_cast<std::int64_t>(kWorkerTimeoutSeconds * 1000));
  return launcher::run_local(o);
}

int worker_main() {
  std::shared_ptr<Bootstrap> bootstrap;
  TinyCase c;
  int rank = 0;
  std::unique_ptr<Stream> stream;
  try {
    rank = static_cast<int>(env::get_int("RANK"));
    const int local_rank = static_cast<int>(env::get_int("LOCAL_RANK"));
    int num_gpus = 0;
    EPCOMM_CUDA_CHECK(cudaGetDeviceCount(&num_gpus));
    EPCOMM_CUDA_CHECK(cudaSetDevice(local_rank % num_gpus));
    bootstrap = make_tcp_bootstrap(tcp_bootstrap_options_from_env());
    c.num_ranks = bootstrap->size();
    stream = std::make_unique<Stream>();
  } catch (const Error& e) {
    const std::string why = std::string("setting up the rank: ") + e.message();
    report("ht", Status::kFail, why);
    report("ll", Status::kFail, why);
    return 1;
  }
  std::vector<PeerTraffic> traffic;
  bool ok = false;
  std::string detail;
  try {
    std::int64_t rows = 0;
    const std::string diff = run_ht_phase(c, rank, bootstrap, stream->get(), rows, traffic);
    ok = diff.empty();
    detail = ok ? c.describe() + ": layout, BF16 dispatch (" + std::to_string(rows) + " rows to rank " +
                      std::to_string(rank) + ") and combine match the CPU reference"
                : diff;
  } catch (const Error& e) {
    detail = e.what();
  }
  if (!report_phase(*bootstrap, "ht", ok, detail, traffic)) {
    report("ll", Status::kSkip, "not run: the high-throughput phase failed");
    return 1;
  }
  ok = false;
  traffic.clear();
  try {
    const std::string diff = run_ll_phase(c, rank, bootstrap, stream->get(), traffic);
    ok = diff.empty();
    detail = ok ? c.describe() + ": " + std::to_string(kLlRounds) +
                      " round trips (FP8 dispatch, BF16 combine) match the CPU reference"
                : diff;
  } catch (const Error& e) {
    detail = e.what();
  }
  if (!report_phase(*bootstrap, "ll", ok, detail, traffic)) return 1;
  try {
    bootstrap->barrier();  // no rank leaves while a peer may still need the rendezvous
  } catch (const Error& e) {
    std::fprintf(stderr, "epcomm-doctor worker %d: the final barrier failed: %s\n", rank, e.what());
    return 1;
  }
  return 0;
}

}  // namespace epcomm::doctor
