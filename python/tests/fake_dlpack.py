"""A DLPack producer that claims CUDA memory over a host buffer nothing reads: it lets the CPU tier
check what the extension does with device arrays (dtype, dimensions) without a GPU."""

import ctypes
import math

CUDA, CPU, CUDA_HOST = 2, 1, 3
# DLPack dtype codes
INT, UINT, FLOAT, BFLOAT, BOOL, FLOAT8_E4M3FN = 0, 1, 2, 4, 6, 10

_CAPSULE_NAME = b"dltensor"  # must outlive every capsule (the capsule keeps the pointer)


class _Device(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class _DType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class _Tensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("device", _Device), ("ndim", ctypes.c_int32), ("dtype", _DType),
                ("shape", ctypes.POINTER(ctypes.c_int64)), ("strides", ctypes.POINTER(ctypes.c_int64)),
                ("byte_offset", ctypes.c_uint64)]


class _Managed(ctypes.Structure):
    _fields_ = [("dl_tensor", _Tensor), ("manager_ctx", ctypes.c_void_p), ("deleter", ctypes.c_void_p)]


_new_capsule = ctypes.pythonapi.PyCapsule_New
_new_capsule.restype = ctypes.py_object
_new_capsule.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]


class FakeArray:
    """shape, DLPack (code, bits), device type and id; row-major. Keep it alive while it is used."""

    def __init__(self, shape, code, bits, device_type=CUDA, device_id=0):
        self.device_type = device_type
        self.device_id = device_id
        self._host = (ctypes.c_uint8 * max(1, math.prod(shape) * bits // 8))()
        self._shape = (ctypes.c_int64 * len(shape))(*shape)
        self._managed = _Managed()
        t = self._managed.dl_tensor
        t.data = ctypes.addressof(self._host)
        t.device = _Device(device_type, device_id)
        t.ndim = len(shape)
        t.dtype = _DType(code, bits, 1)
        t.shape = self._shape
        t.strides = None  # row-major
        self.data_ptr = t.data

    def __dlpack_device__(self):
        return (self.device_type, self.device_id)

    def __dlpack__(self, stream=None, max_version=None, dl_device=None, copy=None):
        return _new_capsule(ctypes.addressof(self._managed), _CAPSULE_NAME, None)


def cuda(shape, dtype, device_id=0):
    """A fake CUDA array of a dtype named as torch names it, on CUDA device ``device_id``."""
    code, bits = {"bfloat16": (BFLOAT, 16), "float8_e4m3fn": (FLOAT8_E4M3FN, 8), "float32": (FLOAT, 32),
                  "float64": (FLOAT, 64), "int32": (INT, 32), "int64": (INT, 64), "bool": (BOOL, 8),
                  "uint8": (UINT, 8)}[dtype]
    return FakeArray(shape, code, bits, device_id=device_id)
