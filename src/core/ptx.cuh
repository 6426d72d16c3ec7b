// Every inline PTX instruction epcomm uses, one small function each, with the ordering or caching
// it gives and why it is needed. Device code only.
#pragma once

#include <cstdint>

namespace epcomm::ptx {

// Nanoseconds from the GPU's global timer; used to bound every spin-wait.
__device__ __forceinline__ std::uint64_t globaltimer() {
  std::uint64_t t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

// Grid dependency control (sm_90; no-ops below it and when the launch did not allow an early
// start). Waits until every grid this one depends on (the kernel ahead of it on the stream) has
// completed and its memory operations are visible here.
__device__ __forceinline__ void wait_prior_grids() {
#if __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
// Lets the grid launched behind this one be scheduled once every block of this one has called it
// or exited (a hint; the dependent still waits in wait_prior_grids for this grid to complete).
__device__ __forceinline__ void allow_dependent_grids() {
#if __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// Acquire load at system scope: a flag written by a peer GPU (over NVLink) or by the host. Reads
// after it observe everything the writer released before setting the flag.
__device__ __forceinline__ std::uint64_t ld_acquire_sys(const std::uint64_t* p) {
  std::uint64_t v;
  asm volatile("ld.acquire.sys.global.u64 %0, [%1];" : "=l"(v) : "l"(p) : "memory");
  return v;
}
__device__ __forceinline__ int ld_acquire_sys(const int* p) {
  int v;
  asm volatile("ld.acquire.sys.global.s32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  return v;
}

// Relaxed load at system scope: polls a flag a peer GPU writes without the cost of an acquire on
// every spin; once the value moved, one ld_acquire_sys of it orders the reads that follow.
__device__ __forceinline__ std::uint64_t ld_relaxed_sys(const std::uint64_t* p) {
  std::uint64_t v;
  asm volatile("ld.relaxed.sys.global.u64 %0, [%1];" : "=l"(v) : "l"(p) : "memory");
  return v;
}

// Relaxed load and store at device scope: a word blocks of one kernel pass each other whole (it
// carries its own tag, so nothing else needs ordering with it).
__device__ __forceinline__ std::uint64_t ld_relaxed_gpu(const std::uint64_t* p) {
  std::uint64_t v;
  asm volatile("ld.relaxed.gpu.global.u64 %0, [%1];" : "=l"(v) : "l"(p) : "memory");
  return v;
}
__device__ __forceinline__ void st_relaxed_gpu(std::uint64_t* p, std::uint64_t v) {
  asm volatile("st.relaxed.gpu.global.u64 [%0], %1;" ::"l"(p), "l"(v) : "memory");
}
// The same at system scope: a word a peer GPU polls, whole (it carries its own tag).
__device__ __forceinline__ void st_relaxed_sys(std::uint64_t* p, std::uint64_t v) {
  asm volatile("st.relaxed.sys.global.u64 [%0], %1;" ::"l"(p), "l"(v) : "memory");
}

__device__ __forceinline__ int ld_relaxed_sys(const int* p) {
  int v;
  asm volatile("ld.relaxed.sys.global.s32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  return v;
}

// Sleeps about `ns` nanoseconds: a poller that found nothing new backs off, so spinning warps do
// not flood the memory system that the incoming rows are written through.
__device__ __forceinline__ void backoff(unsigned ns) {
  __nanosleep(ns);
}

// Release store at system scope: publishes a flag to a peer GPU; every write this thread made
// before it (and, after a CTA barrier, its block's writes it has observed: releases are cumulative)
// is visible to a peer that acquires the flag. NOTE: no fence before it: ptxas already emits
// MEMBAR.ALL.SYS for the release itself, so a fence.acq_rel.sys in front only adds a second one
// (seen in the SASS of the low-latency kernels: two MEMBAR.ALL.SYS back to back per signal).
__device__ __forceinline__ void st_release_sys(std::uint64_t* p, std::uint64_t v) {
  asm volatile("st.release.sys.global.u64 [%0], %1;" ::"l"(p), "l"(v) : "memory");
}
__device__ __forceinline__ void st_release_sys(int* p, int v) {
  asm volatile("st.release.sys.global.s32 [%0], %1;" ::"l"(p), "r"(v) : "memory");
}

// Release add at system scope: a counter that several writers bump (rows arrived from one source
// written by several blocks). As st_release_sys: no fence needed before it.
__device__ __forceinline__ void red_add_release_sys(std::uint64_t* p, std::uint64_t v) {
  asm volatile("red.release.sys.global.add.u64 [%0], %1;" ::"l"(p), "l"(v) : "memory");
}
__device__ __forceinline__ void red_add_release_sys(int* p, int v) {
  asm volatile("red.release.sys.global.add.s32 [%0], %1;" ::"l"(p), "r"(v) : "memory");
}

// Release store at GPU scope: a flag read only by this GPU's own blocks (a low-latency block's
// flag to its own rank). Its fence waits for this GPU's L2, not for the system's.
__device__ __forceinline__ void st_release_gpu(std::uint64_t* p, std::uint64_t v) {
  asm volatile("st.release.gpu.global.u64 [%0], %1;" ::"l"(p), "l"(v) : "memory");
}

// Relaxed add at system scope: a counter that carries no data, only "I am done reading" (the
// low-latency credits). It waits for nothing: a release would first drain every write this SM
// has outstanding (ll_sync.cuh, ll_give_credits, says why the reads need no fence).
__device__ __forceinline__ void red_add_relaxed_sys(std::uint64_t* p, std::uint64_t v) {
  asm volatile("red.relaxed.sys.global.add.u64 [%0], %1;" ::"l"(p), "l"(v) : "memory");
}

// Full fence at system scope: orders this thread's earlier writes (and, after a block or warp
// barrier, those of the threads it synchronised with) before its later operations. Needed where
// no release of this thread follows: before an NVSHMEM signal that a NIC or a proxy may carry,
// before NVSHMEM puts whose source other warps of the block wrote, or where every lane's writes
// must be ordered before a flag another lane sets.
// An acquire-release add at device scope, returning the old value: a release of what the thread
// (and, through a block barrier before it, its block) wrote, and an acquire of what the earlier adds'
// writers wrote.
__device__ __forceinline__ unsigned atom_add_acq_rel_gpu(unsigned* p, unsigned v) {
  unsigned old;
  asm volatile("atom.acq_rel.gpu.global.add.u32 %0, [%1], %2;" : "=r"(old) : "l"(p), "r"(v) : "memory");
  return old;
}

__device__ __forceinline__ void fence_acq_rel_sys() {
  asm volatile("fence.acq_rel.sys;" ::: "memory");
}

// Barrier `id` (1-15; 0 is __syncthreads') of `threads` threads, whole warps: the warps that reach
// it wait for each other, the block's other warps go on.
__device__ __forceinline__ void bar_sync(int id, int threads) {
  asm volatile("bar.sync %0, %1;" ::"r"(id), "r"(threads) : "memory");
}

// 16-byte load of an input read once, through the coherent path without L1 allocation. Not the
// non-coherent path (ld.global.nc): as fast alone, but on one H200 a 24-SM copy kernel with
// non-coherent loads took 232 us, with these 80 us, while a device-to-device cudaMemcpyAsync of the
// same size ran on another stream (60 us alone; tools/probes/local_copy_probe.cu).
__device__ __forceinline__ int4 ld_na_v4(const int4* p) {
  int4 v;
  asm volatile("ld.global.L1::no_allocate.v4.s32 {%0, %1, %2, %3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}

// Asks for the 128-byte line holding p in L2, without a register or a wait: a later load of it
// finds it there.
__device__ __forceinline__ void prefetch_l2(const void* p) {
  asm volatile("prefetch.global.L2 [%0];" ::"l"(p));
}

// 8-byte load, otherwise as ld_na_v4.
__device__ __forceinline__ uint2 ld_na_v2(const uint2* p) {
  uint2 v;
  asm volatile("ld.global.L1::no_allocate.v2.u32 {%0, %1}, [%2];" : "=r"(v.x), "=r"(v.y) : "l"(p));
  return v;
}

// 16-byte load of data another GPU wrote and we acquired: must not use the non-coherent path.
__device__ __forceinline__ int4 ld_v4(const int4* p) {
  int4 v;
  asm volatile("ld.global.v4.s32 {%0, %1, %2, %3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p)
               : "memory");
  return v;
}

// 16-byte store without L1 allocation (streams to a peer or to an output read later by others).
__device__ __forceinline__ void st_na_v4(int4* p, const int4& v) {
  asm volatile("st.global.L1::no_allocate.v4.s32 [%0], {%1, %2, %3, %4};" ::"l"(p), "r"(v.x), "r"(v.y),
               "r"(v.z), "r"(v.w)
               : "memory");
}

// 8-byte store, otherwise as st_na_v4.
__device__ __forceinline__ void st_na_v2(uint2* p, const uint2& v) {
  asm volatile("st.global.L1::no_allocate.v2.u32 [%0], {%1, %2};" ::"l"(p), "r"(v.x), "r"(v.y) : "memory");
}

// Asynchronous 16-byte copy from global to shared memory, cached in L2 only. It holds no register
// while in flight, so a warp can keep many more bytes on their way than loads into registers allow.
// The copy belongs to the group that the issuing thread's next commit_group closes.
__device__ __forceinline__ void cp_async_16(void* smem_dst, const void* src) {
  const auto dst = static_cast<std::uint32_t>(__cvta_generic_to_shared(smem_dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(dst), "l"(src) : "memory");
}
__device__ __forceinline__ void cp_async_commit() {
  asm volatile("cp.async.commit_group;" ::: "memory");
}
// Waits until at most N of this thread's committed groups are still in flight.
template <int N>
__device__ __forceinline__ void cp_async_wait_pending() {
  asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
}

}  // namespace epcomm::ptx
