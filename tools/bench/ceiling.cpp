#include "bench/ceiling.hpp"

#include <cuda_runtime_api.h>

#include <functional>
#include <vector>

#include "bench/cuda.hpp"
#include "bench/stats.hpp"

namespace epcomm::bench {

namespace {

// Runs `launch` warmup + iters times; before each, this rank waits for its previous round and meets
// the others at a barrier, so every round starts together. Returns this rank's median in seconds.
double median_round_seconds(Bootstrap& bootstrap, const TimingOptions& options, cudaStream_t stream,
                            const std::function<void()>& launch, Event& start, Event& stop) {
  std::vector<double> seconds;
  const int iters = options.iters < 1 ? 1 : options.iters;
  for (int i = 0; i < options.warmup + iters; ++i) {
    BENCH_CUDA(cudaStreamSynchronize(stream));
    bootstrap.barrier();
    start.record(stream);
    launch();
    stop.record(stream);
    BENCH_CUDA(cudaEventSynchronize(stop.get()));
    float ms = 0;
    BENCH_CUDA(cudaEventElapsedTime(&ms, start.get(), stop.get()));
    if (i >= options.warmup) seconds.push_back(static_cast<double>(ms) * 1e-3);
  }
  return median(std::move(seconds));
}

}  // namespace

void enable_peer_access(Bootstrap& bootstrap, int device) {
  std::vector<int> devices(static_cast<std::size_t>(bootstrap.size()));
  bootstrap.all_gather(&device, devices.data(), sizeof(int));
  for (const int peer_device : devices) {
    if (peer_device == device) continue;
    int can_access = 0;
    BENCH_CUDA(cudaDeviceCanAccessPeer(&can_access, device, peer_device));
    if (!can_access) continue;
    const cudaError_t status = cudaDeviceEnablePeerAccess(peer_device, 0);
    if (status == cudaErrorPeerAccessAlreadyEnabled) {
      (void)cudaGetLastError();  // reset the last-error state: a later launch check must not see it
      continue;
    }
    BENCH_CUDA(status);
  }
}

Ceiling measure_ceiling(Bootstrap& bootstrap, int device, std::size_t bytes_per_peer,
                        const TimingOptions& options) {
  const int num_ranks = bootstrap.size();
  const int rank = bootstrap.rank();
  Ceiling ceiling;
  if (num_ranks < 2) return ceiling;
  BENCH_CHECK_ARG(bytes_per_peer > 0, "bytes_per_peer: expected > 0, given 0");
  BENCH_CUDA(cudaSetDevice(device));
  enable_peer_access(bootstrap, device);

  // recv: [R - 1 slots, bytes_per_peer]; sender s writes slot (s < receiver ? s : s - 1).
  DeviceBuffer src(bytes_per_peer);
  DeviceBuffer recv(bytes_per_peer * static_cast<std::size_t>(num_ranks - 1));
  BENCH_CUDA(cudaMemset(src.get(), rank + 1, src.bytes()));
  BENCH_CUDA(cudaDeviceSynchronize());
  const cudaIpcMemHandle_t mine = ipc_handle_of(recv);
  std::vector<cudaIpcMemHandle_t> handles(static_cast<std::size_t>(num_ranks));
  bootstrap.all_gather(&mine, handles.data(), sizeof(cudaIpcMemHandle_t));

  std::vector<IpcMapping> peers(static_cast<std::size_t>(num_ranks));
  std::vector<Stream> streams;
  std::vector<Event> done;
  streams.reserve(num_ranks);
  done.reserve(num_ranks);
  for (int peer = 0; peer < num_ranks; ++peer) {
    if (peer != rank) peers[peer] = IpcMapping(handles[peer]);
    streams.emplace_back();
    done.emplace_back(false);
  }
  const auto slot_on = [&](int peer) {
    const std::size_t slot = static_cast<std::size_t>(rank < peer ? rank : rank - 1);
    return static_cast<char*>(peers[peer].get()) + slot * bytes_per_peer;
  };

  Stream main_stream;
  Event start(true);
  Event stop(true);
  Event fork(false);
  // One round: every copy of this rank starts when the round starts; the round ends when all are done.
  const auto copy_to = [&](const std::vector<int>& targets) {
    fork.record(main_stream.get());
    for (const int peer : targets) {
      BENCH_CUDA(cudaStreamWaitEvent(streams[peer].get(), fork.get(), 0));
      BENCH_CUDA(cudaMemcpyAsync(slot_on(peer), src.get(), bytes_per_peer, cudaMemcpyDeviceToDevice,
                                 streams[peer].get()));
      done[peer].record(streams[peer].get());
      BENCH_CUDA(cudaStreamWaitEvent(main_stream.get(), done[peer].get(), 0));
    }
  };

  std::vector<int> all_peers;
  for (int peer = 0; peer < num_ranks; ++peer)
    if (peer != rank) all_peers.push_back(peer);
  const double all_pairs_s = median_round_seconds(
      bootstrap, options, main_stream.get(), [&] { copy_to(all_peers); }, start, stop);
  const double worst_s = max_over_ranks(bootstrap, all_pairs_s);
  ceiling.all_pairs_gbps = static_cast<double>(bytes_per_peer) * (num_ranks - 1) / worst_s / 1e9;

  // One direction: rank 0 -> rank 1 while the others wait at the barriers.
  const std::vector<int> one_way_targets = rank == 0 ? std::vector<int>{1} : std::vector<int>{};
  const double one_way_s = median_round_seconds(
      bootstrap, options, main_stream.get(), [&] { copy_to(one_way_targets); }, start, stop);
  double one_way_gbps = static_cast<double>(bytes_per_peer) / one_way_s / 1e9;
  bootstrap.broadcast(&one_way_gbps, sizeof one_way_gbps, 0);
  ceiling.one_way_gbps = one_way_gbps;
  ceiling.measured = true;

  // NOTE: every rank closes its mappings before any rank frees the buffer they point to.
  BENCH_CUDA(cudaDeviceSynchronize());
  peers.clear();
  bootstrap.barrier();
  return ceiling;
}

}  // namespace epcomm::bench
