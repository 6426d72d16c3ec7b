"""A torch CUDA tensor is read through its attributes, not DLPack (the eager calls' host time). On the
CPU a torch.Tensor subclass that says it lies on cuda:0 stands in for one: the fast path takes it as
CUDA, while DLPack (which asks the tensor's real device) would see a CPU array. Needs PyTorch; skipped
without it."""

import os
import sys
import types

import pytest

import epcomm
from fake_dlpack import cuda

torch = pytest.importorskip("torch")
_C = epcomm._C


class OnCuda0(torch.Tensor):
    """A CPU tensor that answers is_cuda and get_device() as a tensor on cuda:0 would."""

    @property
    def is_cuda(self):
        return True

    def get_device(self):
        return 0


def on_cuda0(tensor):
    return tensor.as_subclass(OnCuda0)


def test_a_tensor_is_read_through_its_attributes():
    x = on_cuda0(torch.zeros(4, 128, dtype=torch.bfloat16))
    _C.DispatchArgs(x=x)  # DLPack would have refused a CPU array
    with pytest.raises(epcomm.InvalidArgumentError, match=r"x: expected a CUDA tensor on cuda:1 .*got one on cuda:0"):
        _C.DispatchArgs(x=x).check_device(1)


def test_the_checks_read_the_tensor_shape_and_dtype():
    with pytest.raises(epcomm.InvalidArgumentError, match=r"x: expected 2 dimensions, got 3 \[2, 3, 128\]"):
        _C.DispatchArgs(x=on_cuda0(torch.zeros(2, 3, 128, dtype=torch.bfloat16)))
    with pytest.raises(epcomm.InvalidArgumentError, match=r"topk_idx: expected int64 or int32, got float32"):
        _C.DispatchArgs(x=on_cuda0(torch.zeros(4, 128, dtype=torch.bfloat16)),
                        topk_idx=on_cuda0(torch.zeros(4, 2, dtype=torch.float32)))
    _C.DispatchArgs(x=on_cuda0(torch.zeros(4, 128, dtype=torch.bfloat16)),
                    topk_idx=on_cuda0(torch.zeros(4, 2, dtype=torch.int64)),
                    is_token_in_rank=on_cuda0(torch.zeros(4, 2, dtype=torch.bool)))


@pytest.mark.parametrize("make", [
    lambda: torch.zeros(4, 128, dtype=torch.float16),      # a dtype epcomm does not take
    lambda: torch.zeros(4, 128, dtype=torch.bfloat16),     # really on the CPU
    lambda: torch.zeros(1, 1, 1, 1, 4, dtype=torch.bfloat16),  # more dimensions than a Tensor holds
])
def test_anything_else_goes_through_dlpack_and_its_refusal(make):
    tensor = make()
    if tensor.dtype == torch.float16 or tensor.dim() > 4:
        tensor = on_cuda0(tensor)
    with pytest.raises(epcomm.InvalidArgumentError, match=r"x: expected a CUDA tensor, got a CPU array"):
        _C.DispatchArgs(x=tensor)


def test_a_lazily_negated_tensor_goes_through_dlpack():
    negated = torch._neg_view(torch.ones(4, 128, dtype=torch.bfloat16))
    assert negated.is_neg()
    with pytest.raises(Exception):  # DLPack refuses it (torch), or names the CPU array (epcomm)
        _C.DispatchArgs(x=on_cuda0(negated))


def test_the_arguments_keep_the_tensor_alive():
    x = on_cuda0(torch.zeros(4, 128, dtype=torch.bfloat16))
    before = sys.getrefcount(x)
    args = _C.DispatchArgs(x=x)
    assert sys.getrefcount(x) == before + 1
    del args
    assert sys.getrefcount(x) == before


def test_deep_ep_device_check_reads_torch_attributes():
    from epcomm.deep_ep.utils import check_devices
    x = on_cuda0(torch.zeros(4, 128, dtype=torch.bfloat16))
    check_devices(0, x=x, topk_idx=None, scales=(x, x))  # same device; None and tuples pass
    with pytest.raises(epcomm.InvalidArgumentError,
                       match=r"topk_idx: expected a CUDA tensor on cuda:1 \(the Buffer's device\), got one on cuda:0"):
        check_devices(1, x=None, topk_idx=x)
    check_devices(1, x=torch.zeros(2))  # a CPU tensor is left to the extension, which names it
    with pytest.raises(epcomm.InvalidArgumentError, match=r"y: expected a CUDA tensor on cuda:0 .*got one on cuda:1"):
        check_devices(0, x=x, y=cuda((4, 2), "int64", device_id=1))  # a DLPack array after a torch tensor


def test_only_tensors_that_require_grad_are_detached():
    from epcomm import torch_support
    plain = torch.zeros(3)
    assert torch_support.detached(plain) is plain
    leaf = torch.zeros(3, requires_grad=True)
    out = torch_support.detached(leaf)
    assert out is not leaf and not out.requires_grad and out.data_ptr() == leaf.data_ptr()
    array, fp8 = torch_support.as_input(leaf, "x")
    assert not array.requires_grad and not fp8
    assert torch_support.as_input(plain, "x") == (plain, False)


@pytest.fixture
def stream_readers(monkeypatch):
    """torch_support with no raw readers yet, and a record of what current_stream() calls in torch."""
    from epcomm import torch_support
    calls = []
    monkeypatch.setattr(torch_support, "_stream_readers", None)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: calls.append("current_device") or 3)
    monkeypatch.setattr(torch._C, "_cuda_getDevice", lambda: calls.append("getDevice") or 3, raising=False)
    monkeypatch.setattr(torch._C, "_cuda_getCurrentRawStream", lambda d: calls.append(("stream", d)) or 1000 + d,
                        raising=False)
    return torch_support, calls


def test_current_stream_goes_through_torch_cuda_once_then_reads_raw(stream_readers):
    torch_support, calls = stream_readers
    assert torch_support.current_stream() == torch_support.current_stream() == 1003
    assert calls == ["current_device", ("stream", 3), "getDevice", ("stream", 3)]


def test_current_stream_without_the_raw_readers_uses_the_public_api(stream_readers, monkeypatch):
    torch_support, calls = stream_readers
    monkeypatch.delattr(torch._C, "_cuda_getDevice")
    monkeypatch.setattr(torch.cuda, "current_stream", lambda: types.SimpleNamespace(cuda_stream=42))
    assert torch_support.current_stream() == torch_support.current_stream() == 42
    assert calls == [] and torch_support._stream_readers is None


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded")  # the child only exits
def test_a_forked_child_goes_through_torch_cuda_again(stream_readers):
    torch_support, _ = stream_readers
    torch_support.current_stream()
    assert torch_support._stream_readers is not None
    pid = os.fork()
    if pid == 0:  # the child: torch.cuda refuses a CUDA its parent initialised, so no raw read here
        os._exit(0 if torch_support._stream_readers is None else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
