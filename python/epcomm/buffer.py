"""epcomm.Buffer: epcomm's own Python API (keyword arguments, named results), framework-neutral.

Tensors go in as any DLPack array on the current CUDA device (torch, CuPy, JAX, ...) and come out
as :class:`epcomm.DeviceArray` (a DLPack producer: ``torch.from_dlpack(a)``). Streams are integers
(a ``cudaStream_t``; ``torch.cuda.current_stream().cuda_stream``); 0 is the legacy default stream.

Every operation takes ``stream``, ``previous_event`` (an :class:`epcomm.Event` to wait on instead of
``stream``), ``async_finish`` (return an event instead of making ``stream`` wait) and, where outputs
are allocated, ``allocate_on_comm_stream``. See include/epcomm/*.hpp for each operation's contract.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, List, Optional

from . import _native
from .telemetry import KernelTime, PeerTelemetry

_C = _native.load()


@dataclass(frozen=True)
class LowLatencyOptions:
    """Fixed when a low-latency Buffer is made (equal on every rank); they size its memory."""
    max_tokens_per_rank: int  # T: tokens one rank may dispatch per call
    hidden: int  # channels per token, a multiple of 128, at most 8192
    num_experts: int  # E, a multiple of the number of ranks
    max_topk: int = _C.LL_MAX_TOPK  # largest k of topk_idx

    def region_bytes(self, num_ranks: int) -> int:
        """The workspace bytes (num_nvl_bytes) these options need on each of num_ranks ranks."""
        return _C.ll_region_bytes_hint(self.max_tokens_per_rank, self.hidden, num_ranks, self.num_experts,
                                       self.max_topk)


@dataclass
class DispatchLayout:
    num_tokens_per_rank: Any  # [R] int32
    num_tokens_per_domain: Any  # [num_domains] int32
    num_tokens_per_expert: Any  # [E] int32
    is_token_in_rank: Any  # [T, R] bool
    event: Optional[Any]  # epcomm.Event with async_finish, else None


@dataclass
class DispatchResult:
    recv_x: Any  # [rows, hidden], dtype of x; rows by source rank, then token
    recv_x_scales: Optional[Any]  # FP8: [rows, hidden / 128] float32
    recv_topk_idx: Optional[Any]  # [rows, k]: local expert id, or -1
    recv_topk_weights: Optional[Any]  # [rows, k] float32, 0 where recv_topk_idx is -1
    num_recv_tokens_per_expert: List[int]  # aligned counts; empty in worst-case mode
    handle: Any  # epcomm.DispatchHandle: for combine and cached dispatch
    event: Optional[Any]


@dataclass
class CombineResult:
    x: Any  # [T, hidden] bfloat16
    topk_weights: Optional[Any]  # [T, k] float32 when topk_weights was given
    event: Optional[Any]


@dataclass
class LowLatencyDispatchResult:
    recv_x: Any  # [nle, R*T, hidden]: float8_e4m3fn (exported as uint8) with use_fp8, else bfloat16
    recv_scales: Optional[Any]  # FP8: [nle, R*T, hidden/128] float32 (int32 with use_ue8m0), column-major
    recv_count: Any  # [nle] int32: valid rows of each local expert
    layout_range: Any  # [nle, R] int64: (first row << 32) | rows, per source rank
    src_info: Any  # [nle, R*T] int32: each row's token index on its source rank
    handle: Any  # epcomm.LlHandle
    event: Optional[Any]
    receive: Optional[Callable[[], None]]  # with return_recv_hook: completes the dispatch


@dataclass
class LowLatencyCombineResult:
    out: Any  # [T_r, hidden] bfloat16: the caller's ``out``, else a view of the Buffer's memory (see the lifetime rule)
    event: Optional[Any]
    receive: Optional[Callable[[], None]]


class Buffer:
    """The communication memory of one expert-parallel group in one mode, and its operations.

    Collective: every rank makes its Buffer in the same order and calls operations in the same
    order. ``low_latency`` makes a low-latency Buffer (``num_nvl_bytes`` then defaults to what the
    options need); otherwise it serves the high-throughput operations. ``allocator(nbytes, stream)
    -> (data_ptr, owner)`` supplies the outputs' memory (epcomm keeps ``owner`` until it frees it);
    None uses cudaMallocAsync. ``destroy()`` (or leaving a ``with`` block) frees it collectively.

    Multi-domain mode (docs/multi_domain.md): ``num_rdma_bytes`` > 0 (:class:`MultiDomainShape`
    sizes it) gives a high-throughput Buffer its symmetric NVSHMEM region, needed when the ranks form
    more than one NVLink domain; it needs an extension built with NVSHMEM (``epcomm.WITH_NVSHMEM``),
    else UnsupportedError before anything collective. ``ranks_per_domain`` = G splits each host's
    ranks into domains of G consecutive ranks (0: one domain per host; EPCOMM_RANKS_PER_DOMAIN
    overrides it). A low-latency Buffer spans domains by itself (no num_rdma_bytes).

    Reliability (docs/reliability.md): ``mask_on_timeout`` makes a rank whose wait on a peer times
    out mask that peer (:meth:`mask_rank`) before raising TimeoutError, so the survivors go on with
    this Buffer. ``peer_telemetry`` counts per-peer bytes and waits on the device
    (:meth:`peer_telemetry`).
    """

    def __init__(self, bootstrap, *, num_nvl_bytes: Optional[int] = None,
                 low_latency: Optional[LowLatencyOptions] = None, timeout_ms: int = -1,
                 allocator: Optional[Callable[[int, int], Any]] = None, ll_transport: str = "auto",
                 num_rdma_bytes: int = 0, ranks_per_domain: int = 0, mask_on_timeout: bool = False,
                 peer_telemetry: bool = False):
        ll = None
        if low_latency is not None:
            ll = _C.LowLatencyOptions(low_latency.max_tokens_per_rank, low_latency.hidden,
                                      low_latency.num_experts, low_latency.max_topk)
            if num_nvl_bytes is None:
                num_nvl_bytes = low_latency.region_bytes(bootstrap.size)
        self._native = _C.Buffer(bootstrap, num_nvl_bytes=num_nvl_bytes or 0, low_latency_mode=ll is not None,
                                 timeout_ms=timeout_ms, allocator=allocator, low_latency=ll,
                                 ll_transport=ll_transport, num_rdma_bytes=num_rdma_bytes,
                                 ranks_per_domain=ranks_per_domain, mask_on_timeout=mask_on_timeout,
                                 peer_telemetry=peer_telemetry)
        self.low_latency = low_latency

    # ---- properties ---------------------------------------------------------------------------
    rank = property(lambda self: self._native.rank)
    num_ranks = property(lambda self: self._native.num_ranks)
    num_domain_ranks = property(lambda self: self._native.num_domain_ranks, doc="ranks in this NVLink domain")
    num_domains = property(lambda self: self._native.num_domains)
    num_nvl_bytes = property(lambda self: self._native.num_nvl_bytes)
    device = property(lambda self: self._native.device, doc="the CUDA device the Buffer was made on")
    comm_stream = property(lambda self: self._native.comm_stream, doc="the communication stream (int)")

    # ---- high-throughput mode -----------------------------------------------------------------
    def get_dispatch_layout(self, topk_idx, num_experts: int, *, stream: int = 0, previous_event=None,
                            async_finish: bool = False, allocate_on_comm_stream: bool = False) -> DispatchLayout:
        """Token counts per rank, domain and expert, and the token-to-rank mask of topk_idx [T, k]."""
        return DispatchLayout(*self._native.get_dispatch_layout(
            topk_idx, num_experts, stream=stream, previous_event=previous_event, async_finish=async_finish,
            allocate_on_comm_stream=allocate_on_comm_stream))

    def dispatch(self, x, *, x_scales=None, x_fp8: bool = False, topk_idx=None, topk_weights=None,
                 layout: Optional[DispatchLayout] = None, num_tokens_per_rank=None, is_token_in_rank=None,
                 num_tokens_per_expert=None, handle=None, expert_alignment: int = 1, num_worst_tokens: int = 0,
                 zero_copy: bool = False, num_sms: int = _C.DEFAULT_NUM_SMS, stream: int = 0,
                 previous_event=None, async_finish: bool = False,
                 allocate_on_comm_stream: bool = False, num_experts: int = 0) -> DispatchResult:
        """Sends each token once to every rank holding one of its experts. x: [T, hidden] bfloat16,
        or FP8 with x_scales [T, hidden/128] float32 (x_fp8: x is uint8 holding float8_e4m3fn bytes).
        The routing comes from ``layout`` (or its three tensors), from ``topk_idx`` and ``num_experts``
        alone (the layout is derived in the launch of the count exchange: no get_dispatch_layout call),
        or from ``handle`` (cached dispatch: same routing, new x, no host synchronisation). num_worst_tokens > 0: no host synchronisation,
        outputs of that many rows."""
        if layout is not None:
            num_tokens_per_rank = layout.num_tokens_per_rank
            is_token_in_rank = layout.is_token_in_rank
            num_tokens_per_expert = layout.num_tokens_per_expert
        args = _C.DispatchArgs(x=x, x_scales=x_scales, x_fp8=x_fp8, topk_idx=topk_idx, topk_weights=topk_weights,
                               num_tokens_per_rank=num_tokens_per_rank, is_token_in_rank=is_token_in_rank,
                               num_tokens_per_expert=num_tokens_per_expert, handle=handle,
                               expert_alignment=expert_alignment, num_worst_tokens=num_worst_tokens,
                               zero_copy=zero_copy, num_sms=num_sms, num_experts=num_experts)
        return DispatchResult(*self._native.dispatch(
            args, stream=stream, previous_event=previous_event, async_finish=async_finish,
            allocate_on_comm_stream=allocate_on_comm_stream))

    def combine(self, x, handle, *, topk_weights=None, bias0=None, bias1=None, num_sms: int = _C.DEFAULT_NUM_SMS,
                stream: int = 0, previous_event=None, async_finish: bool = False,
                allocate_on_comm_stream: bool = False) -> CombineResult:
        """The reverse of the dispatch that made ``handle``: out[t] = bias0[t] + bias1[t] + the sum of
        t's rows (unweighted, float32, one rounding to bfloat16). x: [rows, hidden] bfloat16."""
        args = _C.CombineArgs(x=x, handle=handle, topk_weights=topk_weights, bias0=bias0, bias1=bias1,
                              num_sms=num_sms)
        return CombineResult(*self._native.combine(
            args, stream=stream, previous_event=previous_event, async_finish=async_finish,
            allocate_on_comm_stream=allocate_on_comm_stream))

    # ---- low-latency mode ---------------------------------------------------------------------
    def low_latency_dispatch(self, x, topk_idx, *, use_fp8: bool = True, round_scale: bool = False,
                             use_ue8m0: bool = False, return_recv_hook: bool = False,
                             cumulative_local_expert_recv_stats=None, stream: int = 0, previous_event=None,
                             async_finish: bool = False) -> LowLatencyDispatchResult:
        """Delivers each (token, expert) pair to its expert. No host synchronisation, no allocation:
        outputs are views of the Buffer's memory, valid until the dispatch after next."""
        return LowLatencyDispatchResult(*self._native.low_latency_dispatch(
            x, topk_idx, use_fp8=use_fp8, round_scale=round_scale, use_ue8m0=use_ue8m0,
            return_recv_hook=return_recv_hook,
            cumulative_local_expert_recv_stats=cumulative_local_expert_recv_stats, stream=stream,
            previous_event=previous_event, async_finish=async_finish))

    def low_latency_combine(self, y, topk_idx, topk_weights, handle, *, zero_copy: bool = False,
                            return_recv_hook: bool = False, out=None, stream: int = 0, previous_event=None,
                            async_finish: bool = False) -> LowLatencyCombineResult:
        """out[t] = sum over k of topk_weights[t, k] * (expert topk_idx[t, k]'s row of t in y).
        ``out``: [T, hidden] bfloat16 on the Buffer's device, contiguous, not overlapping y: the
        result is written there (and returned as ``.out``) instead of into the Buffer's memory."""
        result = LowLatencyCombineResult(*self._native.low_latency_combine(
            y, topk_idx, topk_weights, handle, zero_copy=zero_copy, return_recv_hook=return_recv_hook,
            out=out, stream=stream, previous_event=previous_event, async_finish=async_finish))
        if out is not None:
            result.out = out
        return result

    def get_next_low_latency_combine_buffer(self, handle):
        """[nle, R*T, hidden] bfloat16 the caller may write y into for the next combine (zero_copy)."""
        return self._native.get_next_low_latency_combine_buffer(handle)

    # ---- the rest -----------------------------------------------------------------------------
    def barrier(self, *, stream: int = 0, previous_event=None, async_finish: bool = False):
        """A barrier across the NVLink domain, on the communication stream."""
        return self._native.barrier(stream=stream, previous_event=previous_event, async_finish=async_finish)

    def check_status(self) -> None:
        """Raises epcomm.Error if a kernel of this Buffer reported a failure (a timeout, a bad index)."""
        self._native.check_status()

    # ---- rank masking (docs/reliability.md) -----------------------------------------------------
    def mask_rank(self, rank: int) -> None:
        """Masks ``rank`` on this rank: it then holds no tokens and no experts here (dispatch sends it
        nothing, slots naming its experts behave as -1, combine takes nothing from it, no wait waits
        on it), in high-throughput and low-latency mode and in captured graphs; a multi-domain
        high-throughput Buffer refuses it (UnsupportedError). Local and ordered on the communication stream:
        every survivor masks the same ranks before its next call. Handles made before are refused by
        cached dispatch and combine (dispatch again). A rank out of range raises InvalidArgumentError."""
        self._native.mask_rank(rank)

    def masked_ranks(self) -> List[bool]:
        """[num_ranks]: True where the rank is masked here."""
        return list(self._native.masked_ranks())

    def masked_rank_ids(self) -> List[int]:
        """The masked ranks, ascending."""
        return [r for r, masked in enumerate(self.masked_ranks()) if masked]

    def clear_rank_mask(self) -> None:
        """Unmasks every rank. Collective over every rank of the Buffer, the masked ones included (they
        are back): waits for this rank's work and resets the counters ranks keep in step, so a rank
        that missed calls can rejoin. Receive every split low-latency call (return_recv_hook) first."""
        self._native.clear_rank_mask()

    # ---- diagnostics --------------------------------------------------------------------------
    def peer_telemetry(self, *, clear: bool = False) -> PeerTelemetry:
        """Per-peer records since the Buffer was made or last cleared (empty unless made with
        ``peer_telemetry=True``): waits for this rank's queued work; ``clear`` zeroes the counters
        after reading. ``.slowest_peer()`` names the peer waited on longest."""
        return PeerTelemetry._from_native(self._native.peer_telemetry(clear))

    @property
    def kernel_timing(self) -> bool:
        """Whether the next operations time their kernels (initially EPCOMM_KERNEL_TIMING). Setting
        it (between operations; every launch then records events) is ``set_kernel_timing``."""
        return self._native.kernel_timing

    @kernel_timing.setter
    def kernel_timing(self, enabled: bool) -> None:
        self._native.set_kernel_timing(bool(enabled))

    def last_kernel_times(self) -> List[KernelTime]:
        """With kernel timing on, the last operation's kernels in launch order with their device times
        (waits for them); empty when off."""
        return [KernelTime(name, us) for name, us in self._native.last_kernel_times()]

    def last_kernel_us(self) -> float:
        """The summed device time of the last operation's kernels; -1 with kernel timing off."""
        return self._native.last_kernel_us()

    def last_call_timeline(self) -> str:
        """With kernel timing on, the last operation's timeline as text (a diagnostic; format may change)."""
        return self._native.last_call_timeline()

    def destroy(self) -> None:
        """Frees the Buffer now; collective. Later calls raise InvalidArgumentError."""
        self._native.destroy()

    @property
    def destroyed(self) -> bool:
        return self._native.destroyed

    def __enter__(self) -> "Buffer":
        return self

    def __exit__(self, *exc) -> None:
        self.destroy()
