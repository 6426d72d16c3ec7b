"""Loads the extension epcomm._C.

The extension links libepcomm (next to it in the package), which needs the CUDA 13 runtime
(libcudart.so.13). It is found through the system's library path or, failing that, in the
``nvidia`` pip packages PyTorch installs (loaded here before a second attempt).
"""

from __future__ import annotations

import ctypes
import glob
import os
import sys


def _preload_cudart() -> bool:
    for base in sys.path:
        for pattern in ("nvidia/cu13/lib/libcudart.so.13", "nvidia/cuda_runtime/lib/libcudart.so.13"):
            for path in glob.glob(os.path.join(base, pattern)):
                try:
                    ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
                    return True
                except OSError:
                    continue
    return False


def load():
    try:
        from . import _C
    except ImportError as first:
        if "libcudart" not in str(first) or not _preload_cudart():
            raise ImportError(
                f"epcomm: cannot load the extension epcomm._C ({first}). It needs the CUDA 13 runtime "
                "(libcudart.so.13) on the library path, e.g. from the CUDA toolkit or the pip package "
                "nvidia-cuda-runtime") from first
        from . import _C
    return _C
