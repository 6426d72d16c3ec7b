"""epcomm's outputs (DeviceArray) go back in as inputs: a layout handed to dispatch, a handle's rows to
combine. A DeviceArray labelled cuda:0 over host memory stands in for one; no GPU is needed."""

import ctypes
import sys

import pytest

import epcomm

_C = epcomm._C

np = pytest.importorskip("numpy")


def device_array(values, shape, device=0):
    return _C._device_array_for_test(values.ctypes.data, list(shape), device, values)


def test_a_view_has_no_allocation_owner_and_describes_itself():
    values = np.arange(8, dtype=np.int32)
    array = device_array(values, (2, 4))
    assert array.alloc_owner is None
    assert (array.shape, array.strides, array.dtype, array.device) == ((2, 4), (4, 1), "int32", 0)
    assert array.data_ptr == values.ctypes.data


def test_dlpack_gives_a_capsule_whatever_the_consumer_asks():
    values = np.arange(6, dtype=np.int32)
    array = device_array(values, (6,))
    assert array.__dlpack_device__() == (2, 0)  # kDLCUDA, device 0
    for kwargs in ({}, {"stream": None}, {"max_version": (1, 1)}, {"stream": 1, "max_version": (1, 0)}):
        capsule = array.__dlpack__(**kwargs)
        assert type(capsule).__name__ == "PyCapsule"
        name = ctypes.pythonapi.PyCapsule_GetName
        name.restype, name.argtypes = ctypes.c_char_p, [ctypes.py_object]
        assert name(capsule) == b"dltensor"


def test_the_array_keeps_its_owner_alive_and_is_released():
    values = np.arange(4, dtype=np.int32)
    before = sys.getrefcount(values)
    array = device_array(values, (4,))
    capsule = array.__dlpack__()
    assert sys.getrefcount(values) > before
    del array, capsule
    assert sys.getrefcount(values) == before


@pytest.mark.parametrize("field", ["num_tokens_per_rank", "num_tokens_per_expert"])
def test_dispatch_args_take_a_device_array_as_input(field):
    """What get_dispatch_layout returns is accepted where dispatch takes it (the array itself, or
    its capsule); the refusal that follows is about x, the argument that is missing."""
    counts = device_array(np.arange(4, dtype=np.int32), (4,))
    for value in (counts, counts.__dlpack__()):
        with pytest.raises(epcomm.InvalidArgumentError, match="x: expected a CUDA tensor, got None"):
            _C.DispatchArgs(x=None, **{field: value})
