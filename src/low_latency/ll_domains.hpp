// Low-latency mode across NVLink domains, host side (docs/multi_domain.md, "Low-latency across
// domains"): which kernels a Buffer uses (LlPath), the view they get when the ranks span several
// domains, and the peer's domain in a timeout's message. Pure host code, covered by CPU tests.
#pragma once

#include <cstddef>
#include <string>

#include "core/device_status.hpp"
#include "core/domain_view.hpp"
#include "epcomm/bootstrap.hpp"
#include "epcomm/buffer.hpp"
#include "epcomm/error.hpp"
#include "transport/ll_transport.hpp"

namespace epcomm {

// The domains known before any exchange: R / G when the requested G (BufferOptions or
// EPCOMM_RANKS_PER_DOMAIN) is set and divides R; 0 when discovery decides (or will refuse G).
int ll_requested_num_domains(int num_ranks, int requested_ranks_per_domain);

// The path of a low-latency Buffer whose `num_ranks` ranks form domains of `ranks_per_domain`:
// kNvshmem when asked for; else kIpc for one domain and kHybrid for several, which needs the
// NVSHMEM transport (`hooks`): without it, or while another owner holds NVSHMEM in this process,
// kUnsupported naming what is missing. Every rank decides alike (same options, same domains).
LlPath select_ll_path(const BufferOptions& options, int num_ranks, int ranks_per_domain,
                      const LlNvshmemHooks* hooks);

// The view of the low-latency kernels on a Buffer with several domains: every rank (domain_rank =
// rank, num_domain_ranks = R, base 0), the status, timeout and mask of `domain_view`; with kHybrid
// this rank's domain [rank - rank % G, + G) is reached by stores (nvl_first, nvl_ranks), its
// peer_base entries left null for the caller to fill with the peers' workspaces; with kNvshmem
// none. R must not exceed kLlMaxRanks, nor G kMaxDomainRanks (checked before).
DomainView ll_world_view(const DomainView& domain_view, int rank, int num_ranks, int ranks_per_domain,
                         LlPath path);

// Collective over `bootstrap` (bounded, as its exchanges are): every rank asks for the same
// symmetric workspace of `bytes`, else kInvalidArgument on every rank alike, naming the first rank
// that differs from this one. Before nvshmem_malloc, a collective that would wait unbounded.
void check_same_ll_workspace_bytes(Bootstrap& bootstrap, std::size_t bytes);

// Fills view.peer_base with the load/store address, in this process, of the workspace of every
// rank of this rank's NVLink domain (slot ll_nvl_slot(view, d) for rank d, ll_reach.hpp):
// `workspace` itself for this rank, else peer_pointer(workspace, NVSHMEM PE of d) (nvshmem_ptr).
// Returns the first rank of the domain that has no such address (peer_pointer gave null), or -1.
// A view without NVLink-domain ranks (nvl_ranks 0) is left alone.
int map_domain_workspaces(DomainView& view, void* (*peer_pointer)(void* workspace, int pe), char* workspace);

// `error` (from a low-latency call on a Buffer with several domains of `ranks_per_domain`) with the
// waited-on peer's domain appended when it is a timeout naming a peer; otherwise `error` itself.
Error with_peer_domain(const Error& error, const DeviceStatus& status, int ranks_per_domain);

}  // namespace epcomm
