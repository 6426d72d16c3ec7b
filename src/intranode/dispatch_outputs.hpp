// The outputs of a high-throughput dispatch, one domain or several: fresh tensors, or views of the
// rows where they arrive in the NVLink region (zero-copy).
#pragma once

#include "buffer/buffer_impl.hpp"
#include "epcomm/dispatch.hpp"
#include "intranode/dispatch_handle.hpp"
#include "intranode/ht_layout.hpp"
#include "intranode/op_checks.hpp"

namespace epcomm {

// Where the dispatch kernel writes its outputs.
struct OutputPointers {
  void *x, *scales, *topk, *weights, *src_idx;
};

// The region's sections of `layout`, indexed like the outputs.
OutputPointers region_pointers(void* region, const HtDispatchLayout& layout);

// Fresh outputs of h.num_rows rows in one allocation: [x, src_idx, scales (FP8), topk_idx and
// weights (with top-k)]; returns where the kernel writes them.
OutputPointers allocate_outputs(Buffer::Impl& m, const DispatchArgs& a, const checks::DispatchShape& shape,
                                CommScope& scope, DispatchResult& out, DispatchHandle::State& h);

// Zero-copy outputs: views of the h.num_rows rows at `dst`.
void region_views(const DispatchArgs& a, const checks::DispatchShape& shape, const OutputPointers& dst,
                  DispatchResult& out, DispatchHandle::State& h);

}  // namespace epcomm
