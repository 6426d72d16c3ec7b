"""The reference library's Config, EventHandle and EventOverlap, on epcomm (torch imported lazily)."""

from __future__ import annotations

import os
from typing import Any, Optional, Tuple

from .. import _native
from ..errors import invalid_argument

_C = _native.load()

# Tokens per rank Config.get_nvl_buffer_size_hint sizes for when not told (its reference signature
# takes no token count).
DEFAULT_HT_TOKENS_PER_RANK = 4096
# Ranks of one NVLink domain Config.get_rdma_buffer_size_hint assumes when neither its keyword nor
# EPCOMM_RANKS_PER_DOMAIN says: the reference library's NVLink peers per node.
DEFAULT_RANKS_PER_DOMAIN = 8


def _hidden_of(hidden_bytes: int) -> int:
    """BF16 values in the whole 16-byte vectors holding hidden_bytes (the hints take a hidden size)."""
    if hidden_bytes < 1:
        raise invalid_argument(f"hidden_bytes: expected >= 1, got {hidden_bytes}")
    return -(-hidden_bytes // 16) * 8


def _ranks_per_domain(ranks_per_domain: int, num_ranks: int) -> int:
    """G as the Buffer will see it: EPCOMM_RANKS_PER_DOMAIN wins when set (as in C++), then the keyword."""
    env = os.environ.get("EPCOMM_RANKS_PER_DOMAIN", "")
    if env:
        try:
            return int(env)
        except ValueError:
            raise invalid_argument(f"EPCOMM_RANKS_PER_DOMAIN: expected an integer, got '{env}'") from None
    if ranks_per_domain > 0:
        return ranks_per_domain
    return min(num_ranks, DEFAULT_RANKS_PER_DOMAIN)


class Config:
    """Config(num_sms, num_max_nvl_chunked_send_tokens, num_max_nvl_chunked_recv_tokens,
    num_max_rdma_chunked_send_tokens, num_max_rdma_chunked_recv_tokens).

    epcomm uses ``num_sms`` (the SMs a high-throughput call occupies). Its single-domain kernels
    write rows straight to their final place, without the chunked staging the other four fields
    size, so those are kept (and compared) but change nothing."""

    def __init__(self, num_sms: int = _C.DEFAULT_NUM_SMS, num_max_nvl_chunked_send_tokens: int = 6,
                 num_max_nvl_chunked_recv_tokens: int = 256, num_max_rdma_chunked_send_tokens: int = 6,
                 num_max_rdma_chunked_recv_tokens: int = 256):
        self.num_sms = num_sms
        self.num_max_nvl_chunked_send_tokens = num_max_nvl_chunked_send_tokens
        self.num_max_nvl_chunked_recv_tokens = num_max_nvl_chunked_recv_tokens
        self.num_max_rdma_chunked_send_tokens = num_max_rdma_chunked_send_tokens
        self.num_max_rdma_chunked_recv_tokens = num_max_rdma_chunked_recv_tokens

    def _fields(self) -> Tuple[int, ...]:
        return (self.num_sms, self.num_max_nvl_chunked_send_tokens, self.num_max_nvl_chunked_recv_tokens,
                self.num_max_rdma_chunked_send_tokens, self.num_max_rdma_chunked_recv_tokens)

    def __eq__(self, other) -> bool:
        return isinstance(other, Config) and self._fields() == other._fields()

    def __repr__(self) -> str:
        return "Config(%d, %d, %d, %d, %d)" % self._fields()

    def get_nvl_buffer_size_hint(self, hidden_bytes: int, num_ranks: int, *,
                                 max_tokens_per_rank: int = DEFAULT_HT_TOKENS_PER_RANK,
                                 max_topk: int = _C.HT_MAX_TOPK) -> int:
        """num_nvl_bytes for a Buffer whose dispatch and combine never run out of room when every
        rank passes at most ``max_tokens_per_rank`` tokens (epcomm's keyword; the reference library's
        signature has none, so it defaults to DEFAULT_HT_TOKENS_PER_RANK = 4096) with rows of
        ``hidden_bytes`` bytes (as BF16: hidden = hidden_bytes / 2, rounded up to whole 16-byte rows)
        and at most ``max_topk`` top-k columns. epcomm's region holds every row a rank receives, so
        the size follows the token count, not this Config's chunk sizes: epcomm.ht_nvl_bytes_hint."""
        return _C.ht_nvl_bytes_hint(max_tokens_per_rank, _hidden_of(hidden_bytes), num_ranks, max_topk)

    def get_rdma_buffer_size_hint(self, hidden_bytes: int, num_ranks: int, *,
                                  max_tokens_per_rank: int = DEFAULT_HT_TOKENS_PER_RANK,
                                  max_topk: int = _C.HT_MAX_TOPK, num_experts: int = 0,
                                  ranks_per_domain: int = 0) -> int:
        """num_rdma_bytes of a multi-domain Buffer (epcomm's multi_domain_rdma_bytes_hint at this
        Config's num_sms), 0 when the num_ranks ranks form one NVLink domain. Domains: of
        EPCOMM_RANKS_PER_DOMAIN ranks when set (it wins, as in the Buffer), else ``ranks_per_domain``
        (epcomm's keyword), else 8, the reference library's NVLink peers per node. ``max_tokens_per_rank``, ``max_topk``: as get_nvl_buffer_size_hint;
        ``num_experts`` 0: num_ranks (the rings do not depend on the routing)."""
        if num_ranks < 1:
            raise invalid_argument(f"num_ranks: expected >= 1, got {num_ranks}")
        hidden = _hidden_of(hidden_bytes)
        group = _ranks_per_domain(ranks_per_domain, num_ranks)
        if group >= num_ranks:
            return 0
        return _C.multi_domain_rdma_bytes_hint(
            num_tokens=max_tokens_per_rank, hidden=hidden, num_topk=max_topk, num_experts=num_experts or num_ranks,
            num_ranks=num_ranks, ranks_per_domain=group, fp8=False, num_sms=self.num_sms)


class EventHandle:
    """A CUDA event: ``EventHandle()`` records one on the current PyTorch stream."""

    def __init__(self, native: Optional[Any] = None):
        if native is None:
            import torch
            native = _C.EventHandle.record(torch.cuda.current_stream().cuda_stream)
        self.native = native

    def current_stream_wait(self) -> None:
        import torch
        self.native.wait(torch.cuda.current_stream().cuda_stream)


class EventOverlap:
    """An event of an asynchronous call (``async_finish=True``), and tensors kept alive with it.

    ``current_stream_wait()`` makes the current stream wait for it; as a context manager, the code
    inside the ``with`` block overlaps the communication and the exit waits."""

    def __init__(self, event: Optional[EventHandle] = None, extra_tensors: Optional[Tuple[Any, ...]] = None):
        self.event = event
        self.extra_tensors = extra_tensors

    def current_stream_wait(self) -> None:
        assert self.event is not None, "EventOverlap.current_stream_wait: no event (the call was not async)"
        self.event.current_stream_wait()

    def __enter__(self) -> "EventOverlap":
        return self

    def __exit__(self, exc_type, exc_val, exc_tb) -> None:
        if self.event is not None:
            self.event.current_stream_wait()


_DLPACK_CUDA = 2  # DLPack's kDLCUDA


def check_devices(device: int, **arrays) -> None:
    """Refuses, by name, a CUDA tensor (any DLPack producer) on another device than ``device``, the
    Buffer's, before anything runs: a kernel would fault on, or silently read, another GPU's memory.
    None and non-arrays pass (the layers below name those)."""
    for name, array in arrays.items():
        if array is None:
            continue
        get_device = getattr(array, "get_device", None)  # a torch tensor: ~0.2 us against ~2.7 for DLPack's
        if get_device is not None and isinstance(getattr(array, "is_cuda", None), bool):
            index = get_device()  # -1 on the CPU: named by the layers below
            if index >= 0 and index != device:
                raise invalid_argument(f"{name}: expected a CUDA tensor on cuda:{device} (the Buffer's device), "
                                       f"got one on cuda:{index}")
            continue
        dlpack_device = getattr(array, "__dlpack_device__", None)
        if dlpack_device is None:
            continue
        kind, index = dlpack_device()
        if kind == _DLPACK_CUDA and index != device:
            raise invalid_argument(f"{name}: expected a CUDA tensor on cuda:{device} (the Buffer's device), "
                                   f"got one on cuda:{index}")


def renamed(error, native_name: str, name: str):
    """``error`` with the argument its message starts with, ``native_name`` (epcomm's name), called
    ``name`` (the reference library's); ``error`` itself when its message names another."""
    if not error.message.startswith(native_name + ":"):
        return error
    message = name + error.message[len(native_name):]
    return type(error)(str(error).replace(error.message, message, 1), message=message, file=error.file,
                       line=error.line)


def overlap(native_event, extra_tensors=None) -> EventOverlap:
    """EventOverlap of a call's native event (None when the call finished synchronously)."""
    return EventOverlap(EventHandle(native_event) if native_event is not None else None, extra_tensors)


def native_event(previous_event: Optional[EventOverlap]):
    """The epcomm event to wait on for ``previous_event`` (None: the current stream)."""
    if previous_event is None or previous_event.event is None:
        return None
    return previous_event.event.native
