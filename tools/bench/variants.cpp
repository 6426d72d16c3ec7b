#include "bench/variants.hpp"

namespace epcomm::bench {

namespace {
bool same(const CombineSchedule& a, const CombineSchedule& b) {
  if (a.copy_chunks > 0 || b.copy_chunks > 0) return (a.copy_chunks > 0) == (b.copy_chunks > 0);
  return a.pull == b.pull;
}
}  // namespace

std::vector<CombineVariant> combine_variants(const CombineSchedule& own) {
  const CombineVariant all[] = {{"epcomm-push", {0}},
                                {"epcomm-pull", {1}},
                                {"epcomm-pull-ce", {2}},
                                {"epcomm-push-ce", {0, kBenchCopyChunks}}};
  std::vector<CombineVariant> variants{{"epcomm", own}};
  for (const CombineVariant& v : all)
    if (!same(v.schedule, own)) variants.push_back(v);
  return variants;
}

std::vector<DispatchVariant> dispatch_variants(int own_copy_chunks, const std::vector<int>& ce_chunks) {
  if (own_copy_chunks > 0) return {{"epcomm", own_copy_chunks}, {"epcomm-sm", 0}};
  std::vector<DispatchVariant> variants{{"epcomm", 0}};
  for (const int k : ce_chunks)
    variants.push_back({k == kBenchCopyChunks ? "epcomm-ce" : "epcomm-ce" + std::to_string(k), k});
  return variants;
}

}  // namespace epcomm::bench
