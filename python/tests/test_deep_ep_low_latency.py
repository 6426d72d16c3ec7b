"""epcomm.deep_ep's low-latency dispatch on the CPU, over a stand-in native Buffer whose outputs lie at
fixed addresses, two halves used in turn (as epcomm's): the torch views of a half's outputs are made
once per (half, use_fp8, use_ue8m0), the handle is each call's own, and destroy() forgets the views.
Needs no PyTorch: the views are stood in for by the names of the arrays they were made from."""

import pytest

import epcomm
from epcomm import deep_ep, torch_support
from epcomm.buffer import Buffer as EpcommBuffer

T, HIDDEN, EXPERTS = 4, 128, 2


class Output:
    """An output array as the extension returns it: a new object each call over fixed memory."""

    def __init__(self, data_ptr, name):
        self.data_ptr, self.name = data_ptr, name


class FakeLlNative:
    """Stands in for the extension's low-latency Buffer. recv_x lies at its half's address whatever
    its dtype; the names say which half, dtype and scale format each array is."""

    def __init__(self):
        self.dispatches = 0
        self.destroyed = False

    def low_latency_dispatch(self, x, topk_idx, *, use_fp8, use_ue8m0, **options):
        half = self.dispatches % 2
        self.dispatches += 1
        base = 0x10000 * (half + 1)
        recv_x = Output(base, f"recv_x{half} {'fp8' if use_fp8 else 'bf16'}")
        scales = Output(base + 0x100, f"scales{half} {'ue8m0' if use_ue8m0 else 'f32'}") if use_fp8 else None
        return (recv_x, scales, Output(base + 0x200, f"count{half}"), Output(base + 0x300, f"range{half}"),
                Output(base + 0x400, f"src{half}"), f"handle{self.dispatches}", None, None)

    def destroy(self):
        self.destroyed = True


class Tensor:
    """What dispatch reads of an input: its device, its sizes, whether it requires grad."""
    requires_grad = False

    def __init__(self, *shape):
        self.shape = shape

    def get_device(self):
        return 0

    def size(self, dim):
        return self.shape[dim]


@pytest.fixture
def buffer(monkeypatch):
    """(a deep_ep.Buffer over the stand-in, the names of the arrays turned into views, in order)."""
    made = []
    monkeypatch.setattr(torch_support, "to_torch", lambda array: made.append(array.name) or array.name)
    monkeypatch.setattr(torch_support, "current_stream", lambda: 0)
    ll = EpcommBuffer.__new__(EpcommBuffer)
    ll._native = FakeLlNative()
    ll.low_latency = epcomm.LowLatencyOptions(T, HIDDEN, EXPERTS)
    b = deep_ep.Buffer.__new__(deep_ep.Buffer)
    b.device, b.low_latency_mode, b.explicitly_destroy = 0, True, True
    b._ht, b._ll, b._ll_views, b._ll_outputs = None, ll, {}, {}
    return b, made


def dispatch(buffer, **options):
    recv_x, recv_count, handle, event, hook = buffer.low_latency_dispatch(Tensor(T, HIDDEN), Tensor(T, 2), T,
                                                                          EXPERTS, **options)
    assert event.event is None and hook is None
    return recv_x, recv_count, handle


def test_views_follow_the_half_and_the_dtypes(buffer):
    b, made = buffer
    assert dispatch(b) == (("recv_x0 fp8", "scales0 f32"), "count0",
                           ("src0", "range0", T, HIDDEN, EXPERTS, "handle1"))
    assert dispatch(b) == (("recv_x1 fp8", "scales1 f32"), "count1",
                           ("src1", "range1", T, HIDDEN, EXPERTS, "handle2"))
    assert len(made) == 10
    assert dispatch(b) == (("recv_x0 fp8", "scales0 f32"), "count0",
                           ("src0", "range0", T, HIDDEN, EXPERTS, "handle3"))  # half 0 again: no view made
    assert len(made) == 10
    # BF16 at half 1's address, then UE8M0 scales at half 0's: views of their own.
    assert dispatch(b, use_fp8=False) == ("recv_x1 bf16", "count1", ("src1", "range1", T, HIDDEN, EXPERTS, "handle4"))
    assert dispatch(b, use_ue8m0=True)[0] == ("recv_x0 fp8", "scales0 ue8m0")
    assert made[10:] == ["recv_x1 bf16", "count1", "src1", "range1", "recv_x0 fp8", "scales0 ue8m0", "count0",
                         "src0", "range0"]
    assert dispatch(b, use_fp8=False)[0] == "recv_x1 bf16" and len(made) == 19


def test_destroy_forgets_the_views(buffer):
    b, made = buffer
    dispatch(b)
    assert b._ll_outputs
    b.destroy()
    assert b._ll.destroyed and b._ll_outputs == {} and b._ll_views == {}


class CheckingLlNative(FakeLlNative):
    """The stand-in, refusing a combine's y as the extension refuses a bad tensor, by its own name."""

    def low_latency_combine(self, y, topk_idx, topk_weights, handle, **options):
        message = "y: expected bfloat16, got float32"
        raise epcomm.errors._from_native("invalid_argument", f"epcomm [invalid argument] {message} (tensors.cpp:156)",
                                         message, "tensors.cpp", 156)


def test_combine_names_its_x_where_the_extension_says_y(buffer):
    b, _ = buffer
    b._ll._native = CheckingLlNative()
    _, _, handle = dispatch(b)
    with pytest.raises(epcomm.InvalidArgumentError, match=r"^epcomm \[invalid argument\] x: expected bfloat16, "
                                                          r"got float32 \(tensors.cpp:156\)$") as caught:
        b.low_latency_combine(Tensor(EXPERTS, T, HIDDEN), Tensor(T, 2), Tensor(T, 2), handle, out=Tensor(T, HIDDEN))
    assert caught.value.message == "x: expected bfloat16, got float32"
    assert (caught.value.file, caught.value.line) == ("tensors.cpp", 156)


def test_after_the_first_call_the_extension_checks_the_devices(buffer):
    """The Python pass over the tensors' devices runs only before the low-latency Buffer exists (the
    first call makes it, collectively); afterwards the extension refuses another device by name."""
    b, _ = buffer

    class OnCuda1(Tensor):
        is_cuda = True

        def get_device(self):
            return 1

    dispatch(b)
    b.low_latency_dispatch(OnCuda1(T, HIDDEN), Tensor(T, 2), T, EXPERTS)  # the stand-in does not check
    b._ll = None
    with pytest.raises(epcomm.InvalidArgumentError, match=r"^epcomm \[invalid argument\] x: expected a CUDA tensor on cuda:0"):
        b.low_latency_dispatch(OnCuda1(T, HIDDEN), Tensor(T, 2), T, EXPERTS)
