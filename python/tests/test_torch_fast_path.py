"""A torch CUDA tensor is read through its attributes, not DLPack (the eager calls' host time). On the
CPU a torch.Tensor subclass that says it lies on cuda:0 stands in for one: the fast path takes it as
CUDA, while DLPack (which asks the tensor's real device) would see a CPU array. Needs PyTorch; skipped
without it."""

import sys

import pytest

import epcomm

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
