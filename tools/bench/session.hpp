// What lives for the whole run of one epcomm-bench process: its rank, GPU, bootstrap, NCCL
// communicator and the options that every workload shares.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "bench/nccl_comm.hpp"
#include "bench/poison_device.hpp"
#include "epcomm/bootstrap.hpp"

namespace epcomm::bench {

class Session {
 public:
  Session(Bootstrap& bootstrap, int device, std::vector<int> sms, std::vector<int> ce_chunks = {4},
          bool shared_gpus = false, int ranks_per_domain = 0, bool telemetry = false,
          bool split_layout = false)
      : bootstrap_(bootstrap),
        device_(device),
        shared_gpus_(shared_gpus),
        ranks_per_domain_(ranks_per_domain),
        telemetry_(telemetry),
        split_layout_(split_layout),
        sms_(std::move(sms)),
        ce_chunks_(std::move(ce_chunks)),
        allocator_(std::make_shared<PoisonAllocator>()) {}

  Bootstrap& bootstrap() const { return bootstrap_; }
  int rank() const { return bootstrap_.rank(); }
  int num_ranks() const { return bootstrap_.size(); }
  int device() const { return device_; }
  // Some ranks run on one GPU (--shared-gpu-timing): no NVLink between them, and no NCCL (which
  // refuses two ranks on one device).
  bool shared_gpus() const { return shared_gpus_; }
  // G of a multi-domain run (--ranks-per-domain): the high-throughput ops make their Buffer with
  // it; 0: one domain, as the Buffer finds it.
  int ranks_per_domain() const { return ranks_per_domain_; }
  // --telemetry: the ops make their Buffers with BufferOptions::peer_telemetry and set
  // BenchOp::telemetry.
  bool telemetry() const { return telemetry_; }
  // --split-layout: a whole high-throughput dispatch is get_dispatch_layout, then dispatch with its
  // tensors; otherwise dispatch given topk_idx alone (layout and notify in one launch).
  bool split_layout() const { return split_layout_; }
  // SM budgets to sweep for epcomm's own ops (--sms).
  const std::vector<int>& sms() const { return sms_; }
  // Chunk counts of the copy-engine dispatch rows (--ce-chunks).
  const std::vector<int>& ce_chunks() const { return ce_chunks_; }
  // The allocator of every Buffer the ops make (BufferOptions::allocator); the runner arms it for
  // the checked call.
  const std::shared_ptr<PoisonAllocator>& allocator() const { return allocator_; }
  // The NCCL communicator of all ranks, created on first use. Collective: every rank must reach
  // its first call at the same point.
  NcclComm& nccl() {
    if (!nccl_) nccl_ = std::make_unique<NcclComm>(bootstrap_);
    return *nccl_;
  }

 private:
  Bootstrap& bootstrap_;
  int device_ = 0;
  bool shared_gpus_ = false;
  int ranks_per_domain_ = 0;
  bool telemetry_ = false;
  bool split_layout_ = false;
  std::vector<int> sms_;
  std::vector<int> ce_chunks_;
  std::shared_ptr<PoisonAllocator> allocator_;
  std::unique_ptr<NcclComm> nccl_;
};

}  // namespace epcomm::bench
