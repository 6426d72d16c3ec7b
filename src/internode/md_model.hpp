// The traffic model of multi-domain high-throughput dispatch and combine (docs/multi_domain.md,
// "Model"): expected bytes per rank through its NIC and over NVLink, under uniform routing (each
// token picks k distinct experts of E uniformly at random, no empty slots), with the byte counts
// of the slot formats the kernels use (md_slot.hpp, ht_layout.hpp).
#pragma once

#include "internode/md_sizes.hpp"

namespace epcomm {

// What crosses back between domains in combine (md_slot.hpp): the forwarder's float32 partial
// sum; float32 unless one rank of the domain contributed (then exact in BF16); or always BF16
// (what the reference library sends: a second rounding).
enum class MdPartial : int { kFloat32 = 0, kAdaptive = 1, kBFloat16 = 2 };
inline constexpr int kMdNumPartials = 3;

// Per token, under uniform routing.
struct MdRoutingOdds {
  double p_rank = 0;            // a given rank holds at least one of the token's experts
  double p_domain = 0;          // a given domain does
  double p_one_rank = 0;        // a given domain does, on exactly one of its ranks
  double ranks_per_token = 0;   // R x p_rank: distinct destination ranks
  double domains_per_token = 0; // D x p_domain: distinct destination domains, its own included
  double remote_domains_per_token = 0;  // (D - 1) x p_domain: those that cross a NIC
};
MdRoutingOdds md_uniform_routing(int num_experts, int num_topk, int ranks_per_domain, int num_domains);

// Expected traffic of one rank in one operation.
struct MdTraffic {
  MdRoutingOdds odds;
  double dispatch_put_bytes = 0;                 // one (token, domain) row crossing a NIC
  double combine_put_bytes[kMdNumPartials] = {};  // one partial crossing back (average for kAdaptive)
  double nic_rows = 0;            // rows leaving its NIC in dispatch (= arriving; back in combine)
  double nic_dispatch_bytes = 0;
  double nic_combine_bytes[kMdNumPartials] = {};
  double nvl_rows = 0;            // rows it writes to the other GPUs of its domain as a forwarder
  double nvl_dispatch_bytes = 0;  // those rows (payload, scales, top-k, weights, source index)
  double nvl_combine_bytes = 0;   // the same rows read back (BF16 + weights) in combine
  // The reference library's published accounting of the same operation (its tests/test_internode.py):
  // every (token, destination domain) pair, its own domain included, times hidden x 2 bytes
  // (x (1 + 4/128) / 2 for FP8).
  double reference_counted_dispatch_bytes = 0;
  double reference_counted_combine_bytes = 0;
};
MdTraffic md_traffic(const MdShape& shape);

// Microseconds to move `bytes` at `gb_per_s` (1 GB = 1e9 bytes).
double md_transfer_us(double bytes, double gb_per_s);

inline constexpr double kNic400GbGBps = 50.0;  // a 400 Gb/s NIC's line rate, before protocol overhead

}  // namespace epcomm
