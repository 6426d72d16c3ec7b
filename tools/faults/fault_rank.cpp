#include "faults/fault_rank.hpp"

#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <thread>
#include <vector>

#include "epcomm/error.hpp"
#include "faults/context_probe.hpp"
#include "faults/fault_report.hpp"
#include "faults/rank_session.hpp"

namespace epcomm::faults {

namespace {

constexpr int kSurvivor = 0;
constexpr int kPeer = 1;

using Step = std::function<void(Session&, const Shape&)>;

// What both ranks do for a phase: the Buffer's mode, the calls before the phase (the prelude), and
// the calls from the phase on (the first is the phase's own).
struct Plan {
  bool ll = false;
  std::vector<Step> prelude;
  std::vector<Step> steps;
};

const Step kLayout = [](Session& s, const Shape& sh) { s.layout(sh); };
const Step kDispatch = [](Session& s, const Shape& sh) { s.dispatch(sh); };
const Step kCombine = [](Session& s, const Shape& sh) { s.combine(sh); };
const Step kCached = [](Session& s, const Shape& sh) { s.cached_dispatch(sh); };
const Step kBarrier = [](Session& s, const Shape&) { s.barrier(); };
const Step kLlDispatch = [](Session& s, const Shape& sh) { s.ll_dispatch(sh); };
const Step kLlCombine = [](Session& s, const Shape& sh) { s.ll_combine(sh); };
const Step kLlCombineZc = [](Session& s, const Shape& sh) { s.ll_combine(sh, /*zero_copy=*/true); };
const Step kLlSplit = [](Session& s, const Shape& sh) {
  s.ll_send(sh);
  s.ll_receive();
};
const Step kCreateLl = [](Session& s, const Shape& sh) { s.create_ll(sh, false); };
const Step kDestroy = [](Session& s, const Shape&) { s.destroy(); };

Plan plan_of(Phase phase) {
  switch (phase) {
    case Phase::kLayout:
      return {false, {}, {kLayout, kDispatch, kCombine}};
    case Phase::kNotify:
    case Phase::kHtTransfer:
      return {false, {kLayout}, {kDispatch, kCombine}};
    case Phase::kHtCombine:
      return {false, {kLayout, kDispatch}, {kCombine}};
    case Phase::kCachedDispatch:
      return {false, {kLayout, kDispatch}, {kCached}};
    case Phase::kBarrier:
      return {false, {}, {kBarrier}};
    case Phase::kLlDispatch:  // a first pair, so the peer holds a handle for another call
      return {true, {kLlDispatch, kLlCombine}, {kLlDispatch, kLlCombine}};
    case Phase::kLlCombine:
      return {true, {kLlDispatch}, {kLlCombine}};
    case Phase::kLlCombineZc:
      return {true, {kLlDispatch}, {kLlCombineZc}};
    case Phase::kLlSplit:
      return {true, {kLlDispatch, kLlCombine}, {kLlSplit, kLlCombine}};
    case Phase::kCreate:
      return {true, {}, {kCreateLl, kLlDispatch, kLlCombine}};
    case Phase::kDestroy:
      return {false, {kBarrier}, {kDestroy}};
  }
  return {};
}

// The call the peer makes instead of the phase's (Fault::kOtherOp).
Step other_op(Phase phase) {
  switch (phase) {
    case Phase::kBarrier:
      return kDispatch;
    case Phase::kLlDispatch:
    case Phase::kLlSplit:
      return kLlCombine;  // with the prelude's handle
    case Phase::kLlCombine:
    case Phase::kLlCombineZc:
      return kLlDispatch;
    case Phase::kCreate:
      return [](Session& s, const Shape&) { s.create_ht(false); };
    default:
      return kBarrier;
  }
}

// The peer's shapes in a mismatch case: one value changed.
Shape changed(Shape s, Field field) {
  switch (field) {
    case Field::kHidden:
      s.hidden *= 2;
      s.ll_hidden *= 2;
      break;
    case Field::kTopk:
      s.num_topk = 2;
      break;
    case Field::kNumSms:
      s.num_sms -= 2;
      break;
    case Field::kTokens:
      s.num_worst_tokens = s.tokens * 2;  // HT: worst-case mode on one rank only
      s.tokens /= 2;                      // LL (create): T
      break;
    case Field::kNone:
      break;
  }
  return s;
}

void write_file(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    out << text;
  }
  std::rename(tmp.c_str(), path.c_str());
}

void run_steps(Session& s, const std::vector<Step>& steps, const Shape& shape) {
  for (const Step& step : steps) step(s, shape);
}

// Rank 1: the prelude, then the fault at the phase. Never returns.
[[noreturn]] void commit_fault(const Case& c, const RankContext& ctx, Session& s, const Plan& plan) {
  const Shape shape;
  if (c.phase != Phase::kCreate) plan.ll ? s.create_ll(shape, false) : s.create_ht(false);
  run_steps(s, plan.prelude, shape);
  // Work the fault interrupts: the dispatch kernel just launched, or a split dispatch's send.
  if (c.fault == Fault::kKill || c.fault == Fault::kStall) {
    if (c.phase == Phase::kHtTransfer) s.dispatch(shape, /*synchronise=*/false);
    if (c.phase == Phase::kLlSplit) s.ll_send(shape);
  }
  write_file(ctx.dir + "/" + kFaultTimeFile, std::to_string(monotonic_ns()) + "\n");
  try {
    switch (c.fault) {
      case Fault::kKill:
        ::raise(SIGKILL);
        break;
      case Fault::kStall:  // the driver kills it once the survivor is done
        std::this_thread::sleep_for(std::chrono::milliseconds(ctx.timeout_ms * 10));
        break;
      case Fault::kOtherOp:
        other_op(c.phase)(s, shape);
        break;
      case Fault::kMismatch:
        run_steps(s, plan.steps, changed(shape, c.field));
        break;
    }
  } catch (const Error& e) {
    // Kept for the report: a call the peer's own checks refused never reached the survivor.
    write_file(ctx.dir + "/" + kPeerErrorFile, e.what());
  }
  std::fflush(nullptr);
  ::_exit(0);  // no teardown: the peer is gone as far as the survivor is concerned
}

// Rank 0: the same calls, recording the first error, the context's health and (mask cases) whether
// it carries on.
Observation survive(const Case& c, Session& s, const Plan& plan) {
  const Shape shape;
  Observation o;
  if (c.phase != Phase::kCreate)
    plan.ll ? s.create_ll(shape, c.mask_on_timeout) : s.create_ht(c.mask_on_timeout);
  run_steps(s, plan.prelude, shape);
  try {
    run_steps(s, plan.steps, shape);
  } catch (const Error& e) {
    o.got_error = true;
    o.category = to_string(e.category());
    o.message = e.message();
  }
  o.event_ns = monotonic_ns();
  // RECOVERY (branch rel): once the bootstrap can be rebuilt among the survivors, a case can also
  // destroy this Buffer, make one on the survivors and run a call there; mark it in Observation.
  o.context_error = check_cuda_context();
  o.context_ok = o.context_error.empty();
  if (c.mask_on_timeout && s.has_buffer()) {
    const std::vector<bool> masked = s.buffer().masked_ranks();
    o.peer_masked = masked.size() > static_cast<std::size_t>(kPeer) && masked[kPeer];
    try {
      run_steps(s,
                plan.ll ? std::vector<Step>{kLlDispatch, kLlCombine}
                        : std::vector<Step>{kLayout, kDispatch, kCombine},
                shape);
      o.carried_on = true;
    } catch (const Error& e) {
      o.carry_error = e.what();
    }
  }
  return o;
}

}  // namespace

std::int64_t monotonic_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

int run_case_rank(const Case& c, const RankContext& ctx) {
  if (ctx.world != 2)
    throw Error(ErrorCategory::kInvalidArgument,
                "WORLD_SIZE: a fault case runs on exactly 2 ranks, not " + std::to_string(ctx.world),
                __FILE__, __LINE__);
  int count = 0;
  cuda_check(cudaGetDeviceCount(&count), "cudaGetDeviceCount");
  cuda_check(cudaSetDevice(ctx.local_rank % count), "cudaSetDevice");
  cudaStream_t stream = nullptr;
  cuda_check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
  Session s(make_tcp_bootstrap(tcp_bootstrap_options_from_env()), ctx.rank, ctx.world, ctx.timeout_ms,
            stream, ctx.ranks_per_domain);
  const Plan plan = plan_of(c.phase);
  if (ctx.rank == kPeer) commit_fault(c, ctx, s, plan);
  Observation o = survive(c, s, plan);
  write_file(ctx.dir + "/" + kObservationFile, format_observation(o));
  return 0;  // the Buffer's teardown follows (it must not hang: the watchdog bounds it)
}

}  // namespace epcomm::faults
