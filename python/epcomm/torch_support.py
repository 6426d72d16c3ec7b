"""PyTorch glue for epcomm's framework-neutral layer (imports torch when first used).

- :func:`allocator`: outputs from PyTorch's caching allocator (memory accounting, record_stream and
  CUDA-graph pools keep working);
- :func:`to_torch`: an epcomm output as a torch.Tensor (a view of the caching allocator's block
  when it came from :func:`allocator`, else through DLPack), FP8 as torch.float8_e4m3fn;
- :func:`as_input`: a torch tensor as an epcomm input (FP8 crosses as uint8 plus a flag, which works
  with every PyTorch version's DLPack).
"""

from __future__ import annotations

import os
from typing import Any, Callable, Dict, Optional, Tuple

from .errors import invalid_argument

_torch_module = None
# torch._C's readers of the current device and of a device's current raw stream, once a first
# current_stream() has initialised CUDA in PyTorch; None before (and in a forked child).
_stream_readers: Optional[Tuple[Callable[[], int], Callable[[int], int]]] = None


def torch_module():
    """The torch module, imported on first use (a module global: ~0.1 us less than an import
    statement per call)."""
    global _torch_module
    if _torch_module is None:
        import torch
        _torch_module = torch
    return _torch_module



def current_stream() -> int:
    """The current CUDA stream of PyTorch, as the integer epcomm takes. After a first call, read raw
    where PyTorch has the calls its compiled code uses (no torch.cuda.Stream object, no lazy-init
    check per call: a few microseconds of every eager call's host time), else through the public API."""
    global _stream_readers
    if _stream_readers is not None:
        get_device, get_stream = _stream_readers
        return get_stream(get_device())
    torch = torch_module()
    get_device = getattr(torch._C, "_cuda_getDevice", None)
    get_stream = getattr(torch._C, "_cuda_getCurrentRawStream", None)
    if get_device is None or get_stream is None:
        return torch.cuda.current_stream().cuda_stream
    stream = get_stream(torch.cuda.current_device())  # current_device() initialises CUDA in PyTorch
    _stream_readers = get_device, get_stream
    return stream


def _forget_stream_readers() -> None:
    global _stream_readers
    _stream_readers = None


# A forked child goes through torch.cuda again, which refuses a CUDA its parent initialised by name.
os.register_at_fork(after_in_child=_forget_stream_readers)


def allocator(device: int) -> Callable[[int, int], Tuple[int, Any]]:
    """``allocate(nbytes, stream) -> (data_ptr, owner)``: a uint8 tensor from PyTorch's caching
    allocator, allocated on ``stream``; epcomm keeps it until it frees the memory."""
    torch = torch_module()
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
    torch = torch_module()
    return {"bfloat16": torch.bfloat16, "float8_e4m3fn": torch.float8_e4m3fn, "float32": torch.float32,
            "int32": torch.int32, "int64": torch.int64, "bool": torch.bool, "uint8": torch.uint8}[name]


def to_torch(array):
    """An epcomm DeviceArray (or None) as a torch.Tensor sharing its memory."""
    if array is None:
        return None
    torch = torch_module()
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
    torch = torch_module()
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
