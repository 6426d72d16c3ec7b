"""The reference library's (DeepEP's) Python API on epcomm: switch with an import change,

    from epcomm import deep_ep            # instead of: import deep_ep
    from epcomm.deep_ep import Buffer, Config, EventOverlap

Importing needs no PyTorch; using the Buffer does. docs/python.md lists what differs.
"""

from .buffer import Buffer
from .utils import DEFAULT_HT_TOKENS_PER_RANK, Config, EventHandle, EventOverlap

__all__ = ["Buffer", "Config", "EventHandle", "EventOverlap", "topk_idx_t"]


def __getattr__(name):
    if name == "topk_idx_t":  # torch.int64, looked up when asked for (import without torch)
        import torch
        return torch.int64
    raise AttributeError(f"module 'epcomm.deep_ep' has no attribute '{name}'")
