"""What a Buffer can tell about its own calls: per-peer telemetry and kernel timing.

Per-peer telemetry (``Buffer(..., peer_telemetry=True)``, ``Buffer.peer_telemetry()``) counts on the
device, per operation and peer, the bytes sent to and received from the peer and the time the
kernels waited on it, so CUDA-graph replays count too. A straggler shows as the peer this rank
waited on longest: :meth:`PeerTelemetry.slowest_peer`. What is counted: include/epcomm/telemetry.hpp.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterable, List, Tuple

from . import _native

_C = _native.load()


@dataclass(frozen=True)
class PeerTraffic:
    """One operation's traffic with one peer since the Buffer was made or its telemetry cleared."""
    operation: str  # "dispatch", "combine", "low-latency dispatch", "barrier", ...
    peer: int  # the peer's global rank
    bytes_sent: int  # rows (with their scales and top-k data) written for the peer
    bytes_received: int  # the same, received from the peer
    wait_ns: int  # nanoseconds in waits on the peer that had to poll, summed over waiting threads
    waits: int  # how many such waits

    def _native(self) -> Tuple[str, int, int, int, int, int]:
        return (self.operation, self.peer, self.bytes_sent, self.bytes_received, self.wait_ns, self.waits)


class PeerTelemetry(List[PeerTraffic]):
    """The records of :meth:`epcomm.Buffer.peer_telemetry` (a list), with summaries."""

    @classmethod
    def _from_native(cls, records: Iterable[Tuple[str, int, int, int, int, int]]) -> "PeerTelemetry":
        return cls(PeerTraffic(*r) for r in records)

    def slowest_peer(self) -> int:
        """The peer with the largest wait_ns summed over all operations, or -1 when no wait polled
        (epcomm::slowest_peer)."""
        return _C.slowest_peer([r._native() for r in self])

    def wait_ns_by_peer(self) -> Dict[int, int]:
        """wait_ns summed over operations, per peer."""
        totals: Dict[int, int] = {}
        for r in self:
            totals[r.peer] = totals.get(r.peer, 0) + r.wait_ns
        return totals

    def of_operation(self, operation: str) -> "PeerTelemetry":
        """The records of one operation (``"dispatch"``, ``"combine"``, ...)."""
        return PeerTelemetry(r for r in self if r.operation == operation)


@dataclass(frozen=True)
class KernelTime:
    """The device time of one kernel of an operation (a diagnostic: labels may change)."""
    name: str  # the launch's label ("layout", "notify", "dispatch", ...)
    us: float  # its duration on the device, in microseconds
