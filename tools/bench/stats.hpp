// The statistics of docs/benchmark.md: median per rank, then the worst (max) over ranks.
#pragma once

#include <optional>
#include <vector>

#include "epcomm/bootstrap.hpp"

namespace epcomm::bench {

// Median of the samples (the mean of the two middle ones for an even count). Throws epcomm::Error
// (invalid argument) for no samples.
double median(std::vector<double> samples);

// Collective: every rank calls these at the same point, in the same order.
double max_over_ranks(Bootstrap& bootstrap, double value);
// The max over ranks of a value each rank may lack (a diagnostic it could not measure): nothing
// unless every rank has one.
std::optional<double> max_over_ranks_if_all(Bootstrap& bootstrap, std::optional<double> value);
// The value of every rank, indexed by rank.
std::vector<double> gather_values(Bootstrap& bootstrap, double value);
bool all_ranks_true(Bootstrap& bootstrap, bool value);

}  // namespace epcomm::bench
