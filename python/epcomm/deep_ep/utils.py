"""The reference library's Config, EventHandle and EventOverlap, on epcomm (torch imported lazily)."""

from __future__ import annotations

from typing import Any, Optional, Tuple

from .. import _native
from ..errors import unsupported

_C = _native.load()


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

    def get_nvl_buffer_size_hint(self, hidden_bytes: int, num_ranks: int) -> int:
        raise unsupported(
            "Config.get_nvl_buffer_size_hint: epcomm's high-throughput region holds every row a rank "
            "receives, so its size depends on the token count, not on the chunk sizes; size num_nvl_bytes "
            "as (most rows one rank receives) x (hidden_bytes + 128) and see docs/python.md")

    def get_rdma_buffer_size_hint(self, hidden_bytes: int, num_ranks: int) -> int:
        return 0  # one NVLink domain: no RDMA buffer (num_rdma_bytes must be 0 outside low-latency mode)


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


def overlap(native_event, extra_tensors=None) -> EventOverlap:
    """EventOverlap of a call's native event (None when the call finished synchronously)."""
    return EventOverlap(EventHandle(native_event) if native_event is not None else None, extra_tensors)


def native_event(previous_event: Optional[EventOverlap]):
    """The epcomm event to wait on for ``previous_event`` (None: the current stream)."""
    if previous_event is None or previous_event.event is None:
        return None
    return previous_event.event.native
