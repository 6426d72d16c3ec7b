"""Sizing a multi-domain Buffer (docs/multi_domain.md): ranks in several NVLink domains, rows
crossing between domains through NVSHMEM. Pure arithmetic: no GPU, no NVSHMEM needed to ask.

    shape = epcomm.MultiDomainShape(num_tokens=4096, hidden=7168, num_topk=8, num_experts=256,
                                    num_ranks=16, ranks_per_domain=8)
    epcomm.Buffer(bootstrap, num_nvl_bytes=shape.nvl_bytes(), num_rdma_bytes=shape.rdma_bytes(),
                  ranks_per_domain=8)

A Buffer with more than one domain also needs an extension built with NVSHMEM
(``epcomm.WITH_NVSHMEM``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from . import _native

_C = _native.load()


@dataclass(frozen=True)
class MultiDomainRowBytes:
    """The bytes one row costs on each link (docs/multi_domain.md's slot formats)."""
    dispatch_put: int  # one (token, other domain) row through the NIC
    combine_put_f32: int  # one partial sum back through the NIC, float32 ...
    combine_put_bf16: int  # ... or BF16 when one rank of that domain alone contributed
    nvl_dispatch_row: int  # one row a forwarder writes to another rank of its domain
    nvl_combine_row: int  # one row (BF16 + weights) a forwarder reads back in combine


@dataclass(frozen=True)
class MultiDomainShape:
    """The largest calls a multi-domain Buffer will serve (equal on every rank). A field out of
    range raises InvalidArgumentError naming it when a hint is asked for."""
    num_tokens: int  # T: most tokens one rank dispatches per call
    hidden: int  # channels per token (a multiple of 128 with fp8)
    num_topk: int  # k of topk_idx; 0 without top-k
    num_experts: int  # E, a multiple of num_ranks
    num_ranks: int  # R = ranks_per_domain x domains
    ranks_per_domain: int  # G, 1 to 72
    fp8: bool = False  # FP8 E4M3 rows with one float32 scale per 128 channels

    def rdma_bytes(self, num_sms: int = _C.DEFAULT_NUM_SMS) -> int:
        """num_rdma_bytes: the symmetric region's rings at the default ring configuration."""
        return _C.multi_domain_rdma_bytes_hint(**asdict(self), num_sms=num_sms)

    def nvl_bytes(self, received_rows: int = -1) -> int:
        """num_nvl_bytes: room for ``received_rows`` rows arriving at one rank; -1: any routing
        (R x T rows), which grows with R."""
        return _C.multi_domain_nvl_bytes_hint(**asdict(self), received_rows=received_rows)

    def row_bytes(self) -> MultiDomainRowBytes:
        return MultiDomainRowBytes(**_C.multi_domain_row_bytes(**asdict(self)))
