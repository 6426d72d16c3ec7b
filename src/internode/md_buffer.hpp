// Multi-domain mode's part of a Buffer (docs/multi_domain.md): which options it accepts, and the
// symmetric (NVSHMEM) region it owns when the ranks form more than one NVLink domain.
//
// When the checks run: check_md_transport before any collective step (every rank refuses alike,
// none is left waiting); check_md_domains once discovery has found the domains; open_md_state
// last, collectively. With one domain a Buffer ignores num_rdma_bytes (logged): the same options
// then serve one host and many.
#pragma once

#include <cstdint>
#include <memory>

#include "buffer/buffer_impl.hpp"
#include "core/cuda_raii.hpp"
#include "epcomm/bootstrap.hpp"
#include "epcomm/buffer.hpp"
#include "internode/md_layout.hpp"

namespace epcomm {

struct LlNvshmemHooks;  // transport/ll_transport.hpp

struct MdState {
  std::shared_ptr<void> nvshmem;  // owns NVSHMEM's state and the region (frees them collectively)
  char* region = nullptr;         // this rank's symmetric region; the same address names every PE's
  std::int64_t region_bytes = 0;  // BufferOptions::num_rdma_bytes, equal on every rank
  MdHeader header;                // fixed for the region's life (its counters are cumulative)
  // Per-call device scratch (notify's scan, the forwarders' stream states), sized for
  // kMdMaxChannels when the Buffer is made (no call allocates); only the communication stream uses it.
  DeviceBuffer scratch;
};

struct MdStreamState;  // md_args.hpp

// The scratch of one call in MdState::scratch: notify's scan [C][R + D] int32, then the streams'
// states [P][C] (stream_bytes, zeroed by the caller on its stream).
struct MdScratch {
  std::int32_t* scan;
  MdStreamState* streams;
  std::size_t stream_bytes;
};
MdScratch md_scratch(MdState& md, int num_ranks, int num_domains, int num_channels);

// Buffer::dispatch and Buffer::combine on a multi-domain Buffer (md_dispatch_op.cpp, md_combine_op.cpp).
DispatchResult md_dispatch(Buffer::Impl& m, const DispatchArgs& args, const CallOptions& options);
CombineResult md_combine(Buffer::Impl& m, const CombineArgs& args, const CallOptions& options);

namespace checks {

// num_rdma_bytes > 0 needs the NVSHMEM transport in this program, not yet in use in this process,
// and a high-throughput Buffer; kUnsupported naming num_rdma_bytes otherwise. `hooks`: what
// ll_nvshmem_hooks() returns (null without epcomm_nvshmem).
void check_md_transport(const BufferOptions& options, const LlNvshmemHooks* hooks);

// After discovery, for a high-throughput Buffer (a low-latency Buffer spans domains by its own
// path, low_latency/ll_domains.hpp): true when it runs multi-domain mode (more than one domain),
// which needs low_latency_mode unset, at most kMdMaxDomains domains and num_rdma_bytes of at least the
// region's fixed header (kUnsupported / kInvalidArgument naming the value otherwise).
bool check_md_domains(const BufferOptions& options, const DomainInfo& domains);

}  // namespace checks

// Collective over `bootstrap`: checks that every rank passed the same num_rdma_bytes (kInvalidArgument
// naming it and the rank), initialises NVSHMEM on the current device and allocates the region,
// zeroed on every rank before this returns anywhere (hooks->open_workspace, shared with
// low-latency mode's NVSHMEM transport).
std::shared_ptr<MdState> open_md_state(Bootstrap& bootstrap, const BufferOptions& options,
                                       const DomainInfo& domains, const LlNvshmemHooks& hooks);

}  // namespace epcomm
