"""Argument checks of the extension with NumPy and DLPack inputs: refused by name, before any launch."""

import numpy as np
import pytest

import epcomm
from fake_dlpack import CPU, CUDA_HOST, FakeArray, cuda

_C = epcomm._C


def dispatch_args(**overrides):
    args = dict(x=cuda((4, 128), "bfloat16"))
    args.update(overrides)
    return _C.DispatchArgs(**args)


def test_valid_device_arrays_are_accepted():
    keep = dict(x=cuda((4, 256), "bfloat16"), topk_idx=cuda((4, 2), "int64"), topk_weights=cuda((4, 2), "float32"),
                num_tokens_per_rank=cuda((2,), "int32"), is_token_in_rank=cuda((4, 2), "bool"),
                num_tokens_per_expert=cuda((8,), "int32"))
    _C.DispatchArgs(**keep, expert_alignment=4, num_worst_tokens=16, num_sms=8)
    _C.DispatchArgs(x=cuda((4, 256), "float8_e4m3fn"), x_scales=cuda((4, 2), "float32"))
    _C.DispatchArgs(x=cuda((4, 256), "uint8"), x_fp8=True, topk_idx=cuda((4, 2), "int32"))


@pytest.mark.parametrize("name", ["x", "topk_idx", "topk_weights", "is_token_in_rank"])
def test_numpy_cpu_array_is_refused_by_name(name):
    host = {"x": np.zeros((4, 128), np.float32), "topk_idx": np.zeros((4, 2), np.int64),
            "topk_weights": np.zeros((4, 2), np.float32), "is_token_in_rank": np.zeros((4, 2), np.bool_)}[name]
    with pytest.raises(epcomm.InvalidArgumentError, match=f"{name}: expected a CUDA tensor, got a CPU array") as e:
        dispatch_args(**{name: host})
    assert e.value.category == "invalid_argument"
    assert e.value.message.startswith(name)


def test_dlpack_cpu_and_pinned_host_arrays_are_refused():
    with pytest.raises(epcomm.InvalidArgumentError, match="x: expected a CUDA tensor, got a CPU array"):
        _C.DispatchArgs(x=FakeArray((4, 128), 4, 16, device_type=CPU))
    with pytest.raises(epcomm.InvalidArgumentError, match="x: .*CUDA host"):
        _C.DispatchArgs(x=FakeArray((4, 128), 4, 16, device_type=CUDA_HOST))


@pytest.mark.parametrize("name, array, expected", [
    ("x", cuda((4, 128), "float32"), "x: expected bfloat16 or float8_e4m3fn, got float32"),
    ("x", cuda((4, 128), "uint8"), "x: expected bfloat16 or float8_e4m3fn, got uint8"),
    ("x", cuda((4, 128), "float64"), "got float64"),
    ("topk_idx", cuda((4, 2), "float32"), "topk_idx: expected int64 or int32, got float32"),
    ("topk_weights", cuda((4, 2), "bfloat16"), "topk_weights: expected float32, got bfloat16"),
    ("num_tokens_per_rank", cuda((2,), "int64"), "num_tokens_per_rank: expected int32, got int64"),
    ("is_token_in_rank", cuda((4, 2), "uint8"), "is_token_in_rank: expected bool, got uint8"),
    ("x_scales", cuda((4, 1), "bfloat16"), "x_scales: expected float32, got bfloat16"),
])
def test_wrong_dtype_is_refused_by_name(name, array, expected):
    with pytest.raises(epcomm.InvalidArgumentError, match=expected):
        dispatch_args(**{name: array})


@pytest.mark.parametrize("name, array, expected", [
    ("x", cuda((2, 4, 128), "bfloat16"), r"x: expected 2 dimensions, got 3 \[2, 4, 128\]"),
    ("x", cuda((128,), "bfloat16"), "x: expected 2 dimensions, got 1"),
    ("topk_idx", cuda((8,), "int64"), "topk_idx: expected 2 dimensions, got 1"),
    ("num_tokens_per_expert", cuda((2, 4), "int32"), "num_tokens_per_expert: expected 1 dimensions, got 2"),
])
def test_wrong_ndim_is_refused_by_name(name, array, expected):
    with pytest.raises(epcomm.InvalidArgumentError, match=expected):
        dispatch_args(**{name: array})


def test_missing_required_tensor_is_refused_by_name():
    with pytest.raises(epcomm.InvalidArgumentError, match="x: expected a CUDA tensor, got None"):
        _C.DispatchArgs(x=None)


def test_combine_needs_a_handle_from_a_dispatch():
    # Handles come only from a dispatch: None is refused by the binding (a TypeError, never a crash).
    with pytest.raises(TypeError):
        _C.CombineArgs(x=cuda((4, 128), "bfloat16"), handle=None)
    with pytest.raises(TypeError):
        _C.DispatchHandle()


def test_objects_without_dlpack_are_a_type_error():
    with pytest.raises(TypeError):
        _C.DispatchArgs(x="not an array")
