"""A CUDA array on another device than the Buffer's is refused by name before anything runs, in the
extension (C++) and in epcomm.deep_ep. Fake DLPack arrays claim the device ids; no GPU is needed."""

import pytest

import epcomm
from epcomm import deep_ep
from epcomm.deep_ep.utils import check_devices
from fake_dlpack import CPU, FakeArray, cuda

_C = epcomm._C

ON_OTHER_DEVICE = r"{name}: expected a CUDA tensor on cuda:0 \(the Buffer's device\), got one on cuda:1"


def test_extension_check_names_the_array_and_both_devices():
    _C._check_device(cuda((4, 128), "bfloat16", device_id=3), "x", 3)
    _C._check_device(None, "x", 0)  # optional arrays may be absent
    _C._check_device(FakeArray((4, 128), 4, 16, device_type=CPU, device_id=5), "x", 0)  # CPU: to_tensor's refusal
    with pytest.raises(epcomm.InvalidArgumentError, match=ON_OTHER_DEVICE.format(name="topk_idx")):
        _C._check_device(cuda((4, 2), "int64", device_id=1), "topk_idx", 0)


@pytest.mark.parametrize("name, array", [
    ("x", cuda((4, 128), "bfloat16", 1)), ("x_scales", cuda((4, 1), "float32", 1)),
    ("topk_idx", cuda((4, 2), "int64", 1)), ("topk_weights", cuda((4, 2), "float32", 1)),
    ("num_tokens_per_rank", cuda((2,), "int32", 1)), ("is_token_in_rank", cuda((4, 2), "bool", 1)),
    ("num_tokens_per_expert", cuda((8,), "int32", 1)),
])
def test_dispatch_args_refuse_an_array_on_another_device(name, array):
    args = dict(x=cuda((4, 128), "float8_e4m3fn"), x_scales=cuda((4, 1), "float32"), topk_idx=cuda((4, 2), "int64"),
                topk_weights=cuda((4, 2), "float32"), num_tokens_per_rank=cuda((2,), "int32"),
                is_token_in_rank=cuda((4, 2), "bool"), num_tokens_per_expert=cuda((8,), "int32"))
    if name == "x":
        args["x_scales"] = None
    args[name] = array
    made = _C.DispatchArgs(**args)  # made without a Buffer: the device is checked against the Buffer's
    with pytest.raises(epcomm.InvalidArgumentError, match=ON_OTHER_DEVICE.format(name=name)):
        made.check_device(0)


def test_dispatch_args_all_on_the_buffer_device_pass():
    made = _C.DispatchArgs(x=cuda((4, 128), "bfloat16", 2), topk_idx=cuda((4, 2), "int32", 2),
                           topk_weights=cuda((4, 2), "float32", 2))
    made.check_device(2)
    with pytest.raises(epcomm.InvalidArgumentError, match="x: expected a CUDA tensor on cuda:0"):
        made.check_device(0)


def test_deep_ep_check_devices():
    check_devices(0, x=cuda((4, 128), "bfloat16"), topk_idx=None, group=object())
    check_devices(0, x=FakeArray((4, 128), 4, 16, device_type=CPU, device_id=7))
    with pytest.raises(epcomm.InvalidArgumentError, match=ON_OTHER_DEVICE.format(name="topk_weights")):
        check_devices(0, x=cuda((4, 128), "bfloat16"), topk_weights=cuda((4, 2), "float32", 1))


def buffer_on_device_0():
    """A deep_ep.Buffer with nothing but its device set: an operation that touched anything else
    before checking devices (the group, torch, the epcomm Buffers) would raise AttributeError."""
    buffer = deep_ep.Buffer.__new__(deep_ep.Buffer)
    buffer.device = 0
    return buffer


def other(shape, dtype):
    return cuda(shape, dtype, device_id=1)


def ok(shape, dtype):
    return cuda(shape, dtype, device_id=0)


@pytest.mark.parametrize("name, call", [
    ("topk_idx", lambda b: b.get_dispatch_layout(other((4, 2), "int64"), 8)),
    ("x", lambda b: b.dispatch(other((4, 128), "bfloat16"), topk_idx=ok((4, 2), "int64"))),
    ("x_scales", lambda b: b.dispatch((ok((4, 128), "float8_e4m3fn"), other((4, 1), "float32")))),
    ("is_token_in_rank", lambda b: b.dispatch(ok((4, 128), "bfloat16"), is_token_in_rank=other((4, 2), "bool"))),
    ("num_tokens_per_expert", lambda b: b.dispatch(ok((4, 128), "bfloat16"),
                                                   num_tokens_per_expert=other((8,), "int32"))),
    ("x", lambda b: b.combine(other((4, 128), "bfloat16"), None)),
    ("bias1", lambda b: b.combine(ok((4, 128), "bfloat16"), None, bias=(ok((4, 128), "bfloat16"),
                                                                        other((4, 128), "bfloat16")))),
    ("topk_idx", lambda b: b.low_latency_dispatch(ok((4, 128), "bfloat16"), other((4, 2), "int64"), 8, 8)),
    ("cumulative_local_expert_recv_stats", lambda b: b.low_latency_dispatch(
        ok((4, 128), "bfloat16"), ok((4, 2), "int64"), 8, 8, cumulative_local_expert_recv_stats=other((4,), "int32"))),
    ("out", lambda b: b.low_latency_combine(ok((2, 16, 128), "bfloat16"), ok((4, 2), "int64"),
                                            ok((4, 2), "float32"), None, out=other((4, 128), "bfloat16"))),
])
def test_deep_ep_buffer_refuses_a_tensor_on_another_device_first(name, call):
    with pytest.raises(epcomm.InvalidArgumentError, match=ON_OTHER_DEVICE.format(name=name)):
        call(buffer_on_device_0())
