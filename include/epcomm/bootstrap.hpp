// Bootstrap: how the ranks of an EP group find each other and exchange small host messages
// (IPC handles, counts, host identities) before and outside the GPU data path.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "epcomm/export.hpp"

namespace epcomm {

class EPCOMM_API Bootstrap {
 public:
  virtual ~Bootstrap() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Every rank contributes `bytes` bytes; `out` (size() * bytes) receives rank r's bytes at r * bytes.
  virtual void all_gather(const void* in, void* out, std::size_t bytes) = 0;
  // Rank `root`'s `bytes` bytes at `data` are copied to `data` on every rank.
  virtual void broadcast(void* data, std::size_t bytes, int root);
  // Returns once every rank has entered it.
  virtual void barrier();
};

// TCP rendezvous: rank 0 listens on master_addr:master_port; the others connect to it.
// Every operation fails with epcomm::Error (category kTimeout or kBootstrap) naming the rank that
// did not answer, instead of hanging, once `timeout` has passed.
//
// Rank 0 admits only its own job: each rank's hello carries the job token, its rank and the world
// size. A connection that presents another token, claims a rank out of range or already taken, has
// another world size or protocol version, or sends anything but a well-formed hello (a stranger on
// the port, a truncated or garbled message) is refused: logged as a warning, told why when it
// listens (the refused process throws kBootstrap with the reason), closed; the group carries on and
// completes once the real ranks arrive. If they do not arrive within `timeout`, rank 0's kTimeout
// error also quotes the refusals (a duplicate RANK shows up there).
// NOTE: the token tells jobs apart; it is not authentication. It travels in plain text, and any
// process that can read a rank's environment or its traffic can present it.
struct TcpBootstrapOptions {
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  int rank = 0;
  int world_size = 1;
  std::chrono::milliseconds timeout{30000};
  // The job's identity, equal on every rank, at most 256 bytes. Empty: EPCOMM_JOB_TOKEN when set
  // (epcomm-run or the job's launcher sets one per job), else derived from what every rank of a
  // torchrun-style launch shares: "epcomm:port=<master_port>:world=<world_size>", plus
  // ":run=<TORCHELASTIC_RUN_ID>" when that is set. master_addr is left out on purpose: ranks may
  // name rank 0's host differently ("localhost", an address, a host name). A derived token cannot
  // tell apart two jobs of equal port and world size without a run id; set EPCOMM_JOB_TOKEN for that.
  std::string job_token;
};
EPCOMM_API std::unique_ptr<Bootstrap> make_tcp_bootstrap(const TcpBootstrapOptions& options);

// Recovery (docs/reliability.md): after a peer failed, the ranks that survive make a new TCP
// bootstrap among themselves, without restarting. Old rank survivors[i] becomes rank i (dense, in
// the old order); the new rank 0 (old rank survivors[0]) listens. Every survivor passes the same
// group. The new rendezvous admits no one from the old group: its job token is the old one
// (resolved as TcpBootstrapOptions::job_token says) extended with the attempt and a digest of the
// survivor list, and it listens on another port, so a stale peer, or a survivor that counted other
// survivors, is refused (logged) and the group completes without it, or times out naming who is
// missing.
struct SurvivorGroup {
  std::vector<int> survivors;  // old ranks that go on, ascending, without repeats; this rank among them
  int attempt = 1;             // 1 for the first rebuild, 2 for the next...: equal on every survivor
  std::string master_addr;     // the new rank 0's host; empty: the old master_addr (it survived, or one host)
  int master_port = 0;         // 0: the old master_port + attempt
};
// The new bootstrap's options, from this rank's old ones (pure: checks and arithmetic; the old
// token is resolved from the environment when the old options name none). Throws epcomm::Error
// (invalid argument) naming survivors, attempt or master_port.
EPCOMM_API TcpBootstrapOptions survivor_bootstrap_options(const TcpBootstrapOptions& old,
                                                          const SurvivorGroup& group);
// make_tcp_bootstrap(survivor_bootstrap_options(old, group)).
EPCOMM_API std::unique_ptr<Bootstrap> make_survivor_bootstrap(const TcpBootstrapOptions& old,
                                                              const SurvivorGroup& group);

// Reads torchrun's environment: MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE (and the timeout from
// EPCOMM_BOOTSTRAP_TIMEOUT_MS); job_token as described above, filled in (EPCOMM_JOB_TOKEN, else
// derived). Throws epcomm::Error naming the missing or malformed variable.
EPCOMM_API TcpBootstrapOptions tcp_bootstrap_options_from_env();

// The caller supplies the all-gather (for example torch.distributed's); broadcast and barrier are
// built on it.
using AllGatherFn = std::function<void(const void* in, void* out, std::size_t bytes)>;
EPCOMM_API std::unique_ptr<Bootstrap> make_callback_bootstrap(int rank, int size, AllGatherFn all_gather);

// Which ranks share an NVLink domain, derived from what ranks exchange (never assumed).
struct DomainInfo {
  int ranks_per_domain = 1;         // G
  int num_domains = 1;              // R / G
  int domain = 0;                   // this rank's domain
  int local_index = 0;              // this rank's index inside its domain
  std::vector<int> domain_of_rank;  // [R]
};

// Domains are contiguous blocks of G ranks (rank r in domain r / G), each on one host:
// - ranks_per_domain = 0 (default): each host is one domain; hosts must hold equally many ranks,
//   each host's ranks a contiguous block, and at most 72 (kUnsupported beyond, naming the option).
// - ranks_per_domain = G in [1, 72]: each host's ranks split into domains of G consecutive ranks, so
//   one host may hold several domains (how multi-domain mode runs on one machine); G must divide
//   every host's rank count, and no block of G may span two hosts.
// Every rank must pass the same ranks_per_domain (it travels with the identity). A violation is an
// epcomm::Error on every rank naming ranks_per_domain, the host, its ranks or the offending ranks.
EPCOMM_API DomainInfo discover_domains(Bootstrap& bootstrap, const std::string& host_identity,
                                       int ranks_per_domain = 0);
// What discover_domains decides once every rank's host identity is known (identity_of_rank[r] is
// rank r's), for `rank`; nothing is exchanged. The same rules and errors.
EPCOMM_API DomainInfo plan_domains(const std::vector<std::string>& identity_of_rank, int rank,
                                   int ranks_per_domain = 0);
// A string that is equal for processes on one host (hostname plus boot id where available).
EPCOMM_API std::string local_host_identity();

}  // namespace epcomm
