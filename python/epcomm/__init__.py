"""epcomm: expert-parallel dispatch and combine for Mixture-of-Experts models.

Two Python layers over the C++ library (neither needs PyTorch to import):

- this package: epcomm's own API, keyword arguments and named results, framework-neutral (tensors
  in and out through DLPack);
- ``epcomm.deep_ep``: the reference library's (DeepEP's) ``Buffer`` API on PyTorch, for frameworks
  that switch with an import change.

See docs/python.md.
"""

from . import _native

_C = _native.load()

from .errors import (BootstrapError, CudaError, Error, InternalError, InvalidArgumentError,  # noqa: E402
                     NcclError, NvshmemError, PeerMismatchError, TimeoutError, UnsupportedError)
from .buffer import (Buffer, CombineResult, DispatchLayout, DispatchResult,  # noqa: E402
                     LowLatencyCombineResult, LowLatencyDispatchResult, LowLatencyOptions)
from .bootstrap import (TcpBootstrapOptions, callback_bootstrap, survivor_bootstrap,  # noqa: E402
                        survivor_bootstrap_options, tcp_bootstrap, tcp_bootstrap_from_env,
                        tcp_bootstrap_options_from_env)
from .multi_domain import MultiDomainRowBytes, MultiDomainShape  # noqa: E402
from .telemetry import KernelTime, PeerTelemetry, PeerTraffic  # noqa: E402

Bootstrap = _C.Bootstrap
DeviceArray = _C.DeviceArray
DispatchHandle = _C.DispatchHandle
LlHandle = _C.LlHandle
Event = _C.EventHandle
ll_region_bytes_hint = _C.ll_region_bytes_hint
ht_nvl_bytes_hint = _C.ht_nvl_bytes_hint
cuda_device_count = _C.cuda_device_count
DEFAULT_NUM_SMS = _C.DEFAULT_NUM_SMS
LL_MAX_TOPK = _C.LL_MAX_TOPK
HT_MAX_TOPK = _C.HT_MAX_TOPK
WITH_NVSHMEM = _C.WITH_NVSHMEM  # the extension carries the NVSHMEM transport (multi-domain HT mode)

__version__ = "0.1.0"

__all__ = [
    "Buffer", "LowLatencyOptions", "DispatchLayout", "DispatchResult", "CombineResult",
    "LowLatencyDispatchResult", "LowLatencyCombineResult", "Bootstrap", "DeviceArray", "DispatchHandle",
    "LlHandle", "Event", "callback_bootstrap", "tcp_bootstrap", "tcp_bootstrap_from_env",
    "TcpBootstrapOptions", "tcp_bootstrap_options_from_env", "survivor_bootstrap", "survivor_bootstrap_options",
    "MultiDomainShape", "MultiDomainRowBytes", "PeerTraffic", "PeerTelemetry", "KernelTime", "WITH_NVSHMEM",
    "ll_region_bytes_hint", "ht_nvl_bytes_hint", "cuda_device_count", "DEFAULT_NUM_SMS", "LL_MAX_TOPK",
    "HT_MAX_TOPK", "Error",
    "InvalidArgumentError", "UnsupportedError", "CudaError", "NcclError", "NvshmemError", "BootstrapError",
    "TimeoutError", "InternalError", "PeerMismatchError",
]
