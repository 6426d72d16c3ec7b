"""PyTorch glue for epcomm's framework-neutral layer (imports torch when first used).

- :func:`allocator`: outputs from PyTorch's caching allocator (memory accounting, record_stream and
  CUDA-graph pools keep working);
- :func:`to_torch`: an epcomm output as a torch.Tensor (a view of the caching allocator's block
  when it came from :func:`allocator`, else through DLPack), FP8 as torch.float8_e4m3fn;
- :func:`as_input`: a torch tensor as an epcomm input (FP8 crosses as uint8 plus a flag, which works
  with every PyTorch version's DLPack).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Tuple

from .errors import invalid_argument


def _torch():
    import torch
    return torch


def current_stream() -> int:
    """The current CUDA stream of PyTorch, as the integer epcomm takes. Read raw where PyTorch has the
    call its compiled code uses (no torch.cuda.Stream object per call: a few microseconds of every
    eager call's host time), else through the public API."""
    torch = _torch()
    raw = getattr(torch._C, "_cuda_getCurrentRawStream", None)
    if raw is None:
        return torch.cuda.current_stream().cuda_stream
    return raw(torch.cuda.current_device())


def allocator(device: int) -> Callable[[int, int], Tuple[int, Any]]:
    """``allocate(nbytes, stream) -> (data_ptr, owner)``: a uint8 tensor from PyTorch's caching
    allocator, allocated on ``stream``; epcomm keeps it until it frees the memory."""
    torch = _torch()
    streams: Dict[int, Any] = {}

    def stream_of(handle: int):
        s = streams.get(handle)
        if s is None:
            s = (torch.cuda.default_stream(device) if handle == 0 else
                 torch.cuda.ExternalStream(handle, device=torch.device("cuda", device)))
            streams[handle] = s
        return s

    def allocate(nbytes: int, stream: int):
        with torch.cuda.stream(stream_of(stream)):
            owner = torch.empty(max(nbytes, 1), dtype=torch.uint8, device=torch.device("cuda", device))
        return owner.data_ptr(), owner

    return allocate


def _dtype(name: str):
    torch = _torch()
    return {"bfloat16": torch.bfloat16, "float8_e4m3fn": torch.float8_e4m3fn, "float32": torch.float32,
            "int32": torch.int32, "int64": torch.int64, "bool": torch.bool, "uint8": torch.uint8}[name]


def to_torch(array):
    """An epcomm DeviceArray (or None) as a torch.Tensor sharing its memory."""
    if array is None:
        return None
    torch = _torch()
    dtype = _dtype(array.dtype)
    owner = array.alloc_owner
    shape, strides = tuple(array.shape), tuple(array.strides)
    if isinstance(owner, torch.Tensor):
        if 0 in shape:
            return torch.empty(shape, dtype=dtype, device=owner.device)
        span = (sum((n - 1) * s for n, s in zip(shape, strides)) + 1) * array.itemsize
        flat = owner[array.alloc_offset:array.alloc_offset + span]
        return flat.view(dtype).as_strided(shape, strides)
    tensor = torch.from_dlpack(array)
    return tensor.view(dtype) if dtype == torch.float8_e4m3fn else tensor


def as_input(tensor, name: str):
    """(array, is_fp8) for an epcomm input: detached (DLPack exports no autograd tensor), and
    float8_e4m3fn tensors as uint8 bytes."""
    if tensor is None:
        return None, False
    torch = _torch()
    if not isinstance(tensor, torch.Tensor):
        raise invalid_argument(f"{name}: expected a torch.Tensor, got {type(tensor).__name__}")
    tensor = detached(tensor)
    if tensor.dtype == torch.float8_e4m3fn:
        return tensor.view(torch.uint8), True
    return tensor, False


def detached(tensor):
    """``tensor.detach()`` for a torch tensor that requires grad (DLPack exports no autograd tensor);
    anything else unchanged (None stays None). Detaching costs ~0.75 us a tensor, so only when needed."""
    return tensor.detach() if getattr(tensor, "requires_grad", False) else tensor
