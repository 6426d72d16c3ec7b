"""The reference library's low-latency mask buffer API, mapped onto epcomm's rank masking.

epcomm masks a rank per Buffer, in every mode, and unmasks only all ranks at once, collectively
(Buffer.clear_rank_mask). The deep_ep Buffer keeps the set of ranks the caller masked, applies it to
each epcomm Buffer it holds (and to the low-latency one when it is made later), and reads the state
back from them. Differences from the reference library: docs/python.md, "Rank masking".
"""

from __future__ import annotations

from typing import Iterable, List, Set

from ..errors import invalid_argument, unsupported

_INTEGER_DTYPES = ("int8", "int16", "int32", "int64", "uint8", "bool")


def check_rank_to_mask(rank_to_mask, num_ranks: int) -> int:
    """The rank, checked: an int in [0, num_ranks)."""
    if isinstance(rank_to_mask, bool) or not isinstance(rank_to_mask, int):
        raise invalid_argument(f"rank_to_mask: expected an int rank, got {type(rank_to_mask).__name__}")
    if not 0 <= rank_to_mask < num_ranks:
        raise invalid_argument(f"rank_to_mask: expected a rank in [0, {num_ranks}), got {rank_to_mask}")
    return rank_to_mask


def check_mask_status(mask_status, num_ranks: int) -> None:
    """mask_status must be a tensor of num_ranks integers (or bools) to write the state into."""
    shape = getattr(mask_status, "shape", None)
    if shape is None:
        raise invalid_argument(f"mask_status: expected a tensor of {num_ranks} integers, "
                               f"got {type(mask_status).__name__}")
    if tuple(shape) != (num_ranks,):
        raise invalid_argument(f"mask_status: expected shape ({num_ranks},), got {tuple(shape)}")
    dtype = str(getattr(mask_status, "dtype", "")).rsplit(".", 1)[-1]
    if dtype not in _INTEGER_DTYPES:
        raise invalid_argument(f"mask_status: expected an integer or bool dtype, got {dtype}")


def masked_union(num_ranks: int, requested: Set[int], buffers: Iterable) -> List[bool]:
    """[num_ranks]: True where the caller masked the rank or an epcomm Buffer masked it itself (a
    timeout with mask_on_timeout)."""
    status = [r in requested for r in range(num_ranks)]
    for buffer in buffers:
        for r, masked in enumerate(buffer.masked_ranks()):
            status[r] = status[r] or masked
    return status


def refuse_single_unmask(rank: int) -> None:
    raise unsupported(f"low_latency_update_mask_buffer(rank_to_mask={rank}, mask=False): epcomm unmasks "
                      "every rank at once, collectively; call low_latency_clean_mask_buffer() on every rank")
