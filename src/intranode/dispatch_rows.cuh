// A dispatched row's five pieces (payload, scales, top-k ids, weights, source index), in this
// rank's outputs or in a region laid out by HtDispatchLayout, and one warp's copy of a run of rows
// from the region into the outputs. Shared by the single- and multi-domain dispatch kernels
// (ht_dispatch.cu, internode/md_dispatch.cu). Device code only.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/copy.cuh"
#include "intranode/ht_layout.hpp"
#include "transport/region_layout.hpp"

namespace epcomm {

struct DispatchRowDst {
  std::uint8_t* x;
  float* scales;
  char* topk;
  float* weights;
  std::int32_t* src_idx;
};

// Row `row` of a region laid out by HtDispatchLayout.
__device__ __forceinline__ DispatchRowDst region_row(const HtDispatchLayout& l, void* region,
                                                     std::int64_t row) {
  char* base = RegionLayout::data(region);
  return {reinterpret_cast<std::uint8_t*>(base + l.x_offset) + row * l.row_bytes,
          reinterpret_cast<float*>(base + l.scales_offset) + row * l.num_scales,
          base + l.topk_offset + row * l.num_topk * l.idx_bytes,
          reinterpret_cast<float*>(base + l.weights_offset) + row * l.num_topk,
          reinterpret_cast<std::int32_t*>(base + l.src_idx_offset) + row};
}

// Row `row` of the outputs of a dispatch whose kernel arguments are `a` (HtDispatchArgs or
// MdDispatchArgs: the same output fields, shaped by a.region).
template <typename Args>
__device__ __forceinline__ DispatchRowDst output_row(const Args& a, std::int64_t row) {
  const HtDispatchLayout& l = a.region;
  return {a.recv_x + row * l.row_bytes, a.recv_scales + row * l.num_scales,
          static_cast<char*>(a.recv_topk_idx) + row * l.num_topk * l.idx_bytes,
          a.recv_topk_weights + row * l.num_topk, a.recv_src_idx + row};
}

// One warp copies `rows` rows, every piece the layout has, from `src` (a region other ranks wrote:
// acquired loads) to `dst`.
__device__ __forceinline__ void warp_copy_rows(const HtDispatchLayout& l, const DispatchRowDst& dst,
                                               const DispatchRowDst& src, std::size_t rows) {
  warp_copy_v4<CopySource::kAcquired>(dst.x, src.x, rows * static_cast<std::size_t>(l.row_bytes));
  if (l.num_scales > 0) warp_copy_acquired_b32(dst.scales, src.scales, rows * 4u * l.num_scales);
  if (l.num_topk > 0) {
    warp_copy_acquired_b32(dst.topk, src.topk, rows * static_cast<std::size_t>(l.num_topk * l.idx_bytes));
    warp_copy_acquired_b32(dst.weights, src.weights, rows * 4u * l.num_topk);
  }
  warp_copy_acquired_b32(dst.src_idx, src.src_idx, rows * 4u);
}

}  // namespace epcomm
