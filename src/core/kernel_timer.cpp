#include "core/kernel_timer.hpp"

#include <cstdio>

#include "core/cuda_check.hpp"

namespace epcomm {

namespace {

std::string fixed1(double v) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f", v);
  return text;
}

// Microseconds from `a` to `b` (both recorded and complete).
double us_between(const Event& a, const Event& b) {
  float ms = 0.0f;
  EPCOMM_CUDA_CHECK(cudaEventElapsedTime(&ms, a.get(), b.get()));
  return 1000.0 * ms;
}

}  // namespace

std::string format_timeline(const std::vector<TimelineKernel>& kernels,
                            const std::vector<TimelineHostStep>& host,
                            const std::vector<TimelineCopy>& copies) {
  std::string out = "gpu:";
  for (const TimelineKernel& k : kernels)
    out += " +" + fixed1(k.gap_before_us) + " " + k.label + " " + fixed1(k.kernel_us);
  out += " | host:";
  for (std::size_t i = 0; i < host.size(); ++i)
    out += std::string(i == 0 ? " " : ", ") + host[i].label + " " + fixed1(host[i].at_us);
  if (copies.empty()) return out;
  out += " | copies:";
  for (std::size_t i = 0; i < copies.size(); ++i)
    out += std::string(i == 0 ? " " : ", ") + copies[i].label + " @" + fixed1(copies[i].start_us) + " " +
           fixed1(copies[i].copy_us);
  return out;
}

void KernelTimer::reset(cudaStream_t stream) {
  used_ = 0;
  labels_.clear();
  host_.clear();
  copies_used_ = 0;
  copy_labels_.clear();
  if (!enabled_) return;
  host_start_ = Clock::now();
  if (events_.empty()) events_.emplace_back(/*timing=*/true);
  events_[0].record(stream);
  used_ = 1;
}

void KernelTimer::begin(cudaStream_t stream, const char* label) {
  if (!enabled_) return;
  while (events_.size() < used_ + 2) events_.emplace_back(/*timing=*/true);
  events_[used_].record(stream);
  labels_.push_back(label);
}

void KernelTimer::end(cudaStream_t stream) {
  if (!enabled_) return;
  events_[used_ + 1].record(stream);
  used_ += 2;
}

void KernelTimer::begin_copy(cudaStream_t stream, const char* label) {
  if (!enabled_) return;
  while (copy_events_.size() < copies_used_ + 2) copy_events_.emplace_back(/*timing=*/true);
  copy_events_[copies_used_].record(stream);
  copy_labels_.push_back(label);
}

void KernelTimer::end_copy(cudaStream_t stream) {
  if (!enabled_) return;
  copy_events_[copies_used_ + 1].record(stream);
  copies_used_ += 2;
}

void KernelTimer::host_step(const char* label) {
  if (!enabled_) return;
  const std::chrono::duration<double, std::micro> since = Clock::now() - host_start_;
  host_.push_back({label, since.count()});
}

std::vector<TimelineKernel> KernelTimer::kernels() {
  std::vector<TimelineKernel> out;
  if (!enabled_ || used_ < 3) return out;
  EPCOMM_CUDA_CHECK(cudaEventSynchronize(events_[used_ - 1].get()));
  for (std::size_t i = 1; i + 1 < used_; i += 2)
    out.push_back({labels_[(i - 1) / 2], us_between(events_[i - 1], events_[i]),
                   us_between(events_[i], events_[i + 1])});
  return out;
}

std::vector<TimelineCopy> KernelTimer::copies() {
  std::vector<TimelineCopy> out;
  if (used_ == 0 || copies_used_ == 0) return out;
  // Entries may be on several streams: wait for each one's end.
  for (std::size_t i = 1; i < copies_used_; i += 2)
    EPCOMM_CUDA_CHECK(cudaEventSynchronize(copy_events_[i].get()));
  for (std::size_t i = 0; i + 1 < copies_used_; i += 2)
    out.push_back({copy_labels_[i / 2], us_between(events_[0], copy_events_[i]),
                   us_between(copy_events_[i], copy_events_[i + 1])});
  return out;
}

double KernelTimer::total_us() {
  if (!enabled_) return -1.0;
  double total = 0.0;
  for (const TimelineKernel& k : kernels()) total += k.kernel_us;
  return total;
}

std::string KernelTimer::timeline() {
  if (!enabled_) return {};
  return format_timeline(kernels(), host_, copies());
}

}  // namespace epcomm
