"""deep_ep.Buffer on epcomm: the reference library's names, arguments, defaults and return tuples.

One epcomm Buffer per mode lives inside: a high-throughput one when num_nvl_bytes > 0, and a
low-latency one, made on the first low-latency call (or clean_low_latency_buffer), when the shapes
it needs (tokens per rank, hidden, experts) are known. Differences: docs/python.md.
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional, Set, Tuple, Union

from .. import _native, torch_support
from ..buffer import Buffer as _Buffer, LowLatencyOptions
from ..errors import InvalidArgumentError, invalid_argument, unsupported
from . import masking
from .utils import Config, EventHandle, EventOverlap, check_devices, native_event, overlap, renamed

_C = _native.load()


def _group_all_gather(group) -> Callable[[bytes], bytes]:
    """The bootstrap's exchange over torch.distributed (gloo and NCCL groups alike)."""
    import torch.distributed as dist

    def all_gather(data: bytes) -> bytes:
        gathered: List[Any] = [None] * group.size()
        dist.all_gather_object(gathered, data, group=group)
        return b"".join(gathered)

    return all_gather


def _check_options(num_nvl_bytes, num_rdma_bytes, low_latency_mode, allow_nvlink_for_low_latency_mode,
                   allow_mnnvl, use_fabric, comm) -> None:
    """Refuses, by name, what epcomm cannot honour (before anything collective happens)."""
    if num_nvl_bytes < 0 or num_rdma_bytes < 0:
        raise invalid_argument(f"num_nvl_bytes, num_rdma_bytes: expected >= 0, got {num_nvl_bytes}, {num_rdma_bytes}")
    if num_rdma_bytes > 0 and not low_latency_mode and not _C.WITH_NVSHMEM:
        raise unsupported(f"num_rdma_bytes: {num_rdma_bytes} outside low_latency_mode asks for epcomm's multi-domain "
                          "mode, which needs NVSHMEM, and this build of the extension has none "
                          "(epcomm.WITH_NVSHMEM is False); pass 0 for one NVLink domain")
    if low_latency_mode and not allow_nvlink_for_low_latency_mode:
        raise unsupported("allow_nvlink_for_low_latency_mode=False: epcomm's low-latency mode reaches the peers "
                          "of its NVLink domain over NVLink")
    for name, value in (("allow_mnnvl", allow_mnnvl), ("use_fabric", use_fabric)):
        if value:
            raise unsupported(f"{name}=True: not supported by epcomm yet (domains are found from hosts or "
                              "ranks_per_domain)")
    if comm is not None:
        raise unsupported("comm: an MPI communicator is not supported; pass a torch.distributed group")


def _native_ll_handle(handle):
    """epcomm's handle in a low-latency handle tuple (src_info, layout_range, tokens, hidden, experts, native)."""
    return handle[-1] if isinstance(handle, tuple) else handle


class Buffer:
    """deep_ep.Buffer(group, num_nvl_bytes, num_rdma_bytes, low_latency_mode, num_qps_per_rank,
    allow_nvlink_for_low_latency_mode, allow_mnnvl, explicitly_destroy, ...) on epcomm.

    In low_latency_mode, num_rdma_bytes (get_low_latency_rdma_size_hint) sizes the low-latency
    workspace. Outside it, num_rdma_bytes > 0 makes the high-throughput Buffer a multi-domain one
    (rows between NVLink domains through NVSHMEM; Config.get_rdma_buffer_size_hint sizes it), which
    needs an extension built with NVSHMEM. Domains: of EPCOMM_RANKS_PER_DOMAIN ranks when set, else
    of ``ranks_per_domain`` (epcomm's keyword), else one per host. num_qps_per_rank sizes the
    reference library's RDMA queue pairs; epcomm has none to size. ``enable_shrink`` makes a rank
    whose wait on a peer times out mask that peer (epcomm's mask_on_timeout); the mask API works
    either way."""

    num_sms: int = _C.DEFAULT_NUM_SMS
    _ll: Optional[_Buffer] = None  # the low-latency epcomm Buffer, made by the first low-latency call

    def __init__(self, group, num_nvl_bytes: int = 0, num_rdma_bytes: int = 0, low_latency_mode: bool = False,
                 num_qps_per_rank: int = 24, allow_nvlink_for_low_latency_mode: bool = True,
                 allow_mnnvl: bool = False, explicitly_destroy: bool = False, *, use_fabric: bool = False,
                 enable_shrink: bool = False, comm: Any = None, ranks_per_domain: int = 0):
        _check_options(num_nvl_bytes, num_rdma_bytes, low_latency_mode, allow_nvlink_for_low_latency_mode,
                       allow_mnnvl, use_fabric, comm)
        import torch
        self.group = group
        self.rank = group.rank()
        self.group_size = group.size()
        self.num_nvl_bytes = num_nvl_bytes
        self.num_rdma_bytes = num_rdma_bytes
        self.low_latency_mode = low_latency_mode
        self.num_qps_per_rank = num_qps_per_rank
        self.explicitly_destroy = explicitly_destroy
        self.enable_shrink = enable_shrink
        self._masked: Set[int] = set()  # ranks the caller masked (low_latency_update_mask_buffer)
        self.device = torch.cuda.current_device()
        self._torch_device = torch.device("cuda", self.device)  # made once: ~0.3 us a call otherwise
        self._bootstrap = _C.callback_bootstrap(self.rank, self.group_size, _group_all_gather(group))
        self._allocate = torch_support.allocator(self.device)
        # What every epcomm Buffer of this one is made with besides its sizes.
        self._options = dict(allocator=self._allocate, ranks_per_domain=ranks_per_domain,
                             mask_on_timeout=enable_shrink)
        self._ht = (_Buffer(self._bootstrap, num_nvl_bytes=num_nvl_bytes,
                            num_rdma_bytes=0 if low_latency_mode else num_rdma_bytes, **self._options)
                    if num_nvl_bytes > 0 else None)
        self._ll: Optional[_Buffer] = None
        # Torch views of the low-latency Buffer's output memory, which stays put: of one array (a
        # combine buffer) by _ll_view, and of a dispatch's outputs, (recv_x or (recv_x, recv_x_scales),
        # recv_count, src_info, layout_range), by (recv_x's address: the half; use_fp8, use_ue8m0: the
        # dtypes and shapes), so that a dispatch reads one property of its outputs.
        self._ll_views: dict = {}
        self._ll_outputs: dict = {}

    # ---- static helpers -----------------------------------------------------------------------
    @staticmethod
    def set_num_sms(new_num_sms: int) -> None:
        if new_num_sms < 2 or new_num_sms % 2 != 0:
            raise invalid_argument(f"new_num_sms: expected an even number >= 2, got {new_num_sms}")
        Buffer.num_sms = new_num_sms

    @staticmethod
    def capture() -> EventOverlap:
        """An event recorded on the current stream."""
        return EventOverlap(EventHandle())

    @staticmethod
    def get_low_latency_rdma_size_hint(num_max_dispatch_tokens_per_rank: int, hidden: int, num_ranks: int,
                                       num_experts: int) -> int:
        """Bytes of num_rdma_bytes a low-latency Buffer needs (epcomm's ll_region_bytes_hint)."""
        return _C.ll_region_bytes_hint(num_max_dispatch_tokens_per_rank, hidden, num_ranks, num_experts)

    @staticmethod
    def get_dispatch_config(num_ranks: int) -> Config:
        if num_ranks < 1:
            raise invalid_argument(f"num_ranks: expected >= 1, got {num_ranks}")
        return Config(Buffer.num_sms)

    @staticmethod
    def get_combine_config(num_ranks: int) -> Config:
        return Buffer.get_dispatch_config(num_ranks)

    # ---- plumbing -----------------------------------------------------------------------------
    def _need_ht(self, op: str) -> _Buffer:
        if self._ht is None:
            raise invalid_argument(f"{op}: this Buffer has no high-throughput memory (num_nvl_bytes=0)")
        return self._ht

    def _call(self, previous_event, async_finish: bool) -> dict:
        return dict(stream=torch_support.current_stream(), previous_event=native_event(previous_event),
                    async_finish=async_finish)

    def get_comm_stream(self):
        import torch
        buffer = self._ht or self._ll
        if buffer is None:
            raise invalid_argument("get_comm_stream: no epcomm Buffer made yet")
        return torch.cuda.ExternalStream(buffer.comm_stream, device=self._torch_device)

    def get_local_buffer_tensor(self, dtype, size=None, offset: int = 0, use_rdma_buffer: bool = False):
        raise unsupported("get_local_buffer_tensor: epcomm does not hand out its communication memory; "
                          "use get_next_low_latency_combine_buffer for zero-copy low-latency combine")

    def destroy(self) -> None:
        """Frees the communication memory now (collective; needs explicitly_destroy=True)."""
        if not self.explicitly_destroy:
            raise invalid_argument("destroy: the Buffer was made with explicitly_destroy=False")
        for buffer in (self._ht, self._ll):
            if buffer is not None and not buffer.destroyed:
                buffer.destroy()
        self._ll_views.clear()
        self._ll_outputs.clear()

    # ---- rank masking -------------------------------------------------------------------------
    def _native_buffers(self) -> List[_Buffer]:
        return [b for b in (self._ht, self._ll) if b is not None and not b.destroyed]

    def low_latency_update_mask_buffer(self, rank_to_mask: int, mask: bool = False) -> None:
        """mask=True: masks ``rank_to_mask`` on this rank, in every epcomm Buffer held (high-throughput
        too) and in the low-latency one when it is made later; local, as in the reference library.
        mask=False: nothing to do when the rank is not masked; epcomm cannot unmask one rank, so a
        masked one raises UnsupportedError pointing to low_latency_clean_mask_buffer."""
        rank = masking.check_rank_to_mask(rank_to_mask, self.group_size)
        if not mask:
            if masking.masked_union(self.group_size, self._masked, self._native_buffers())[rank]:
                masking.refuse_single_unmask(rank)
            return
        self._masked.add(rank)
        for buffer in self._native_buffers():
            buffer.mask_rank(rank)

    def low_latency_query_mask_buffer(self, mask_status) -> None:
        """Writes 1 where a rank is masked, else 0, into ``mask_status`` (a tensor of group_size
        integers): masked by low_latency_update_mask_buffer or by a timeout (enable_shrink). Waits for
        nothing on the device; a host read."""
        masking.check_mask_status(mask_status, self.group_size)
        import torch
        status = masking.masked_union(self.group_size, self._masked, self._native_buffers())
        mask_status.copy_(torch.tensor(status, dtype=mask_status.dtype))

    def low_latency_clean_mask_buffer(self) -> None:
        """Unmasks every rank. Unlike the reference library's (local), epcomm's is collective over every
        rank of the group, the masked ones included, and resets the counters ranks keep in step."""
        for buffer in self._native_buffers():
            buffer.clear_rank_mask()
        self._masked.clear()

    # ---- high-throughput mode -----------------------------------------------------------------
    def get_dispatch_layout(self, topk_idx, num_experts: int, previous_event: Optional[EventOverlap] = None,
                            async_finish: bool = False, allocate_on_comm_stream: bool = False):
        """-> (num_tokens_per_rank, num_tokens_per_rdma_rank, num_tokens_per_expert, is_token_in_rank,
        event). num_tokens_per_rdma_rank: tokens per NVLink domain (epcomm's num_tokens_per_domain)
        when the ranks form several domains; None with one, as the reference library's intranode."""
        check_devices(self.device, topk_idx=topk_idx)
        to = torch_support.to_torch
        buffer = self._need_ht("get_dispatch_layout")
        layout = buffer.get_dispatch_layout(
            torch_support.detached(topk_idx), num_experts, allocate_on_comm_stream=allocate_on_comm_stream,
            **self._call(previous_event, async_finish))
        per_domain = to(layout.num_tokens_per_domain) if buffer.num_domains > 1 else None
        return (to(layout.num_tokens_per_rank), per_domain, to(layout.num_tokens_per_expert),
                to(layout.is_token_in_rank), overlap(layout.event))

    def dispatch(self, x: Union[Any, Tuple[Any, Any]], handle: Optional[Any] = None,
                 num_tokens_per_rank=None, num_tokens_per_rdma_rank=None, is_token_in_rank=None,
                 num_tokens_per_expert=None, topk_idx=None, topk_weights=None, expert_alignment: int = 1,
                 num_worst_tokens: int = 0, config: Optional[Config] = None,
                 previous_event: Optional[EventOverlap] = None, async_finish: bool = False,
                 allocate_on_comm_stream: bool = False):
        """-> (recv_x or (recv_x, recv_x_scales), recv_topk_idx, recv_topk_weights,
        num_recv_tokens_per_expert_list, handle, event); cached (handle given):
        (recv_x..., None, None, None, None, event)."""
        x, x_scales = x if isinstance(x, tuple) else (x, None)
        check_devices(self.device, x=x, x_scales=x_scales, topk_idx=topk_idx, topk_weights=topk_weights,
                      num_tokens_per_rank=num_tokens_per_rank, is_token_in_rank=is_token_in_rank,
                      num_tokens_per_expert=num_tokens_per_expert)
        x, fp8 = torch_support.as_input(x, "x")
        d = torch_support.detached
        x_scales, topk_idx, topk_weights = d(x_scales), d(topk_idx), d(topk_weights)
        config = config or self.get_dispatch_config(self.group_size)
        result = self._need_ht("dispatch").dispatch(
            x, x_scales=x_scales, x_fp8=fp8, topk_idx=topk_idx, topk_weights=topk_weights,
            num_tokens_per_rank=num_tokens_per_rank, is_token_in_rank=is_token_in_rank,
            num_tokens_per_expert=num_tokens_per_expert, handle=handle, expert_alignment=expert_alignment,
            num_worst_tokens=num_worst_tokens, num_sms=config.num_sms,
            allocate_on_comm_stream=allocate_on_comm_stream, **self._call(previous_event, async_finish))
        to = torch_support.to_torch
        recv_x = (to(result.recv_x), to(result.recv_x_scales)) if x_scales is not None else to(result.recv_x)
        if handle is not None:
            return recv_x, None, None, None, None, overlap(result.event)
        return (recv_x, to(result.recv_topk_idx), to(result.recv_topk_weights),
                list(result.num_recv_tokens_per_expert), result.handle, overlap(result.event))

    def combine(self, x, handle, topk_weights=None, bias: Union[Any, Tuple[Any, Any], None] = None,
                config: Optional[Config] = None, previous_event: Optional[EventOverlap] = None,
                async_finish: bool = False, allocate_on_comm_stream: bool = False):
        """-> (combined_x, combined_topk_weights, event)"""
        bias0, bias1 = bias if isinstance(bias, tuple) else (bias, None)
        check_devices(self.device, x=x, topk_weights=topk_weights, bias0=bias0, bias1=bias1)
        d = torch_support.detached
        x, topk_weights, bias0, bias1 = d(x), d(topk_weights), d(bias0), d(bias1)
        config = config or self.get_combine_config(self.group_size)
        result = self._need_ht("combine").combine(
            x, handle, topk_weights=topk_weights, bias0=bias0, bias1=bias1, num_sms=config.num_sms,
            allocate_on_comm_stream=allocate_on_comm_stream, **self._call(previous_event, async_finish))
        to = torch_support.to_torch
        return to(result.x), to(result.topk_weights), overlap(result.event)

    # ---- low-latency mode ---------------------------------------------------------------------
    def _need_ll(self, op: str, num_max_dispatch_tokens_per_rank: int, hidden: int, num_experts: int) -> _Buffer:
        """The low-latency epcomm Buffer, made (collectively) on first use with these shapes."""
        if not self.low_latency_mode:
            raise invalid_argument(f"{op}: the Buffer was made with low_latency_mode=False")
        if self._ll is not None:  # every call after the first: no LowLatencyOptions built (~1.5 us)
            made = self._ll.low_latency
            if (made.max_tokens_per_rank, made.hidden, made.num_experts) == (
                    num_max_dispatch_tokens_per_rank, hidden, num_experts):
                return self._ll
        options = LowLatencyOptions(num_max_dispatch_tokens_per_rank, hidden, num_experts)
        if self._ll is None:
            needed = options.region_bytes(self.group_size)
            if needed > self.num_rdma_bytes:
                raise invalid_argument(
                    f"num_rdma_bytes: {self.num_rdma_bytes} is too small for num_max_dispatch_tokens_per_rank="
                    f"{num_max_dispatch_tokens_per_rank}, hidden={hidden}, num_experts={num_experts}: "
                    f"get_low_latency_rdma_size_hint gives {needed}")
            self._ll = _Buffer(self._bootstrap, num_nvl_bytes=needed, low_latency=options, **self._options)
            for rank in sorted(self._masked):  # what the caller masked before this Buffer existed
                self._ll.mask_rank(rank)
        elif self._ll.low_latency != options:
            raise invalid_argument(
                f"{op}: num_max_dispatch_tokens_per_rank, hidden, num_experts = {num_max_dispatch_tokens_per_rank}, "
                f"{hidden}, {num_experts} differ from the first low-latency call's {self._ll.low_latency}")
        return self._ll

    def _ll_view(self, array):
        """A torch view of low-latency output memory; cached, since the Buffer's outputs stay put."""
        if array is None:
            return None
        key = (array.data_ptr, array.dtype, array.shape)  # each output's strides follow from these
        view = self._ll_views.get(key)
        if view is None:
            view = self._ll_views[key] = torch_support.to_torch(array)
        return view

    def clean_low_latency_buffer(self, num_max_dispatch_tokens_per_rank: int, hidden: int, num_experts: int) -> None:
        """Makes the low-latency Buffer now (collective) if the first call has not; epcomm's protocol
        needs no cleaning between calls, so there is nothing else to do."""
        self._need_ll("clean_low_latency_buffer", num_max_dispatch_tokens_per_rank, hidden, num_experts)

    def low_latency_dispatch(self, x, topk_idx, num_max_dispatch_tokens_per_rank: int, num_experts: int,
                             cumulative_local_expert_recv_stats=None, dispatch_wait_recv_cost_stats=None,
                             use_fp8: bool = True, round_scale: bool = False, use_ue8m0: bool = False,
                             async_finish: bool = False, return_recv_hook: bool = False):
        """-> (recv_x or (recv_x, recv_x_scales), recv_count, handle, event, hook)"""
        if dispatch_wait_recv_cost_stats is not None:
            raise unsupported("dispatch_wait_recv_cost_stats: not supported by epcomm yet")
        if self._ll is None:  # before the (collective) first call makes the low-latency Buffer; then
            check_devices(self.device, x=x, topk_idx=topk_idx,  # the extension checks them, by the same names
                          cumulative_local_expert_recv_stats=cumulative_local_expert_recv_stats)
        hidden = x.size(1)
        buffer = self._need_ll("low_latency_dispatch", num_max_dispatch_tokens_per_rank, hidden, num_experts)
        d = torch_support.detached
        r = buffer.low_latency_dispatch(
            d(x), d(topk_idx), use_fp8=use_fp8, round_scale=round_scale, use_ue8m0=use_ue8m0,
            return_recv_hook=return_recv_hook, cumulative_local_expert_recv_stats=cumulative_local_expert_recv_stats,
            stream=torch_support.current_stream(), async_finish=async_finish)
        key = (r.recv_x.data_ptr, use_fp8, use_ue8m0)
        views = self._ll_outputs.get(key)
        if views is None:
            to = torch_support.to_torch
            recv_x = (to(r.recv_x), to(r.recv_scales)) if use_fp8 else to(r.recv_x)
            views = self._ll_outputs[key] = (recv_x, to(r.recv_count), to(r.src_info), to(r.layout_range))
        recv_x, recv_count, src_info, layout_range = views
        # The reference library's handle tuple, with epcomm's own handle last.
        handle = (src_info, layout_range, num_max_dispatch_tokens_per_rank, hidden, num_experts, r.handle)
        return recv_x, recv_count, handle, overlap(r.event), r.receive

    def low_latency_combine(self, x, topk_idx, topk_weights, handle, use_logfmt: bool = False,
                            zero_copy: bool = False, async_finish: bool = False, return_recv_hook: bool = False,
                            out=None, combine_wait_recv_cost_stats=None):
        """-> (combined_x, event, hook). combined_x is ``out`` or a new tensor, as in the reference
        library: epcomm's combine writes its result there directly (no copy after the call)."""
        if use_logfmt:
            raise unsupported("use_logfmt=True: LogFMT-compressed combine is not supported by epcomm")
        if combine_wait_recv_cost_stats is not None:
            raise unsupported("combine_wait_recv_cost_stats: not supported by epcomm yet")
        if self._ll is None:
            check_devices(self.device, x=x, topk_idx=topk_idx, topk_weights=topk_weights, out=out)
            raise invalid_argument("low_latency_combine: no low_latency_dispatch was made on this Buffer")
        d = torch_support.detached
        native = _native_ll_handle(handle)
        if zero_copy:  # x was written into the combine buffer: epcomm reads that buffer itself
            x = self._ll_view(self._ll.get_next_low_latency_combine_buffer(native))
        if out is None:
            torch = torch_support.torch_module()
            combined_x = torch.empty((topk_idx.size(0), x.size(-1)), dtype=torch.bfloat16, device=self._torch_device)
        else:
            combined_x = out
        try:  # the extension checks each tensor (device, dtype, shape) by its own names: x is its y
            r = self._ll.low_latency_combine(d(x), d(topk_idx), d(topk_weights), native, zero_copy=zero_copy,
                                             return_recv_hook=return_recv_hook, out=d(combined_x),
                                             stream=torch_support.current_stream(), async_finish=async_finish)
        except InvalidArgumentError as e:
            raise renamed(e, "y", "x") from None
        if async_finish:  # written on the low-latency Buffer's communication stream: the allocator must know
            torch = torch_support.torch_module()
            combined_x.record_stream(torch.cuda.ExternalStream(self._ll.comm_stream, device=self._torch_device))
        return combined_x, overlap(r.event), r.receive

    def get_next_low_latency_combine_buffer(self, handle):
        """[num_local_experts, num_ranks * num_max_dispatch_tokens_per_rank, hidden] bfloat16 to write the
        next combine's x into (then pass zero_copy=True)."""
        if self._ll is None:
            raise invalid_argument("get_next_low_latency_combine_buffer: no low_latency_dispatch was made")
        return self._ll_view(self._ll.get_next_low_latency_combine_buffer(_native_ll_handle(handle)))
