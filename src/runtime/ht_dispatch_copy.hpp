// The copy-engine dispatch (EPCOMM_HT_DISPATCH_CE): the SMs pack, the copy engine carries.
#pragma once

#include "epcomm/dispatch.hpp"
#include "kernels/ht_args.hpp"
#include "runtime/buffer_impl.hpp"
#include "runtime/ht_plan.hpp"

namespace epcomm {

// Queued after notify or prepare (the opening barrier), with the host's counts in `h`
// (count_matrix_host, send_prefix_host). For each of the plan's chunks: a launch of sender blocks
// packs the chunk's rows for the peers (payload into local staging) on the communication stream;
// the copy stream then copies each peer's packed rows into that peer's region and marks the
// chunk's channels arrived there. A last launch writes this rank's own rows to the outputs while
// the copies run, then every warp receives (copies out). The communication stream joins the copy
// stream before returning, so the call's event covers it.
// `d` holds everything but the launch-specific fields.
void queue_copy_engine_dispatch(Buffer::Impl& m, HtDispatchArgs d, const HtDispatchPlan& plan,
                                const DispatchHandle& h, CommScope& scope);

}  // namespace epcomm
