#include "bench/stats.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "bench/require.hpp"

namespace epcomm::bench {

double median(std::vector<double> samples) {
  BENCH_CHECK_ARG(!samples.empty(), "median: expected at least one sample, given none");
  const std::size_t n = samples.size();
  const auto mid = samples.begin() + static_cast<std::ptrdiff_t>(n / 2);
  std::nth_element(samples.begin(), mid, samples.end());
  const double upper = *mid;
  if (n % 2 == 1) return upper;
  const double lower = *std::max_element(samples.begin(), mid);
  return (lower + upper) / 2.0;
}

std::vector<double> gather_values(Bootstrap& bootstrap, double value) {
  std::vector<double> all(static_cast<std::size_t>(bootstrap.size()));
  bootstrap.all_gather(&value, all.data(), sizeof(double));
  return all;
}

double max_over_ranks(Bootstrap& bootstrap, double value) {
  const std::vector<double> all = gather_values(bootstrap, value);
  return *std::max_element(all.begin(), all.end());
}

std::optional<double> max_over_ranks_if_all(Bootstrap& bootstrap, std::optional<double> value) {
  // NOTE: NaN stands for "none" in the exchange; a measured value is never NaN.
  const std::vector<double> all = gather_values(bootstrap, value.value_or(std::nan("")));
  if (std::any_of(all.begin(), all.end(), [](double v) { return std::isnan(v); })) return std::nullopt;
  return *std::max_element(all.begin(), all.end());
}

bool all_ranks_true(Bootstrap& bootstrap, bool value) {
  const uint8_t mine = value ? 1 : 0;
  std::vector<uint8_t> all(static_cast<std::size_t>(bootstrap.size()));
  bootstrap.all_gather(&mine, all.data(), 1);
  return std::all_of(all.begin(), all.end(), [](uint8_t v) { return v == 1; });
}

}  // namespace epcomm::bench
