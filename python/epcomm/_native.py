"""Loads the extension epcomm._C.

The extension links libepcomm (next to it in the package), which needs the CUDA 13 runtime
(libcudart.so.13). It is found through the system's library path or, failing that, in the
``nvidia`` pip packages PyTorch installs (loaded here before a second attempt). An extension built
with NVSHMEM (epcomm.WITH_NVSHMEM) also needs libnvshmem_host.so.3: through its rpath (the build's
NVSHMEM), else from the pip package nvidia-nvshmem-cu13, loaded here the same way.
"""

from __future__ import annotations

import ctypes
import glob
import os
import sys


# The shared libraries the extension may need that pip packages ship, by the name the loader's error
# quotes, with where they lie under a sys.path entry.
_PIP_LIBRARIES = {
    "libcudart": ("nvidia/cu13/lib/libcudart.so.13", "nvidia/cuda_runtime/lib/libcudart.so.13"),
    "libnvshmem_host": ("nvidia/nvshmem/lib/libnvshmem_host.so.3",),
}


def _preload(patterns) -> bool:
    for base in sys.path:
        for pattern in patterns:
            for path in glob.glob(os.path.join(base, pattern)):
                try:
                    ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
                    return True
                except OSError:
                    continue
    return False


def _preload_missing(error: ImportError) -> bool:
    """Loads the pip package's copy of the library `error` says is missing; False if none."""
    return any(name in str(error) and _preload(patterns) for name, patterns in _PIP_LIBRARIES.items())


def load():
    for _ in _PIP_LIBRARIES:  # each missing library at most once
        try:
            from . import _C
            return _C
        except ImportError as error:
            if not _preload_missing(error):
                raise ImportError(
                    f"epcomm: cannot load the extension epcomm._C ({error}). It needs the CUDA 13 runtime "
                    "(libcudart.so.13) on the library path, e.g. from the CUDA toolkit or the pip package "
                    "nvidia-cuda-runtime, and, built with NVSHMEM, libnvshmem_host.so.3 (nvidia-nvshmem-cu13)"
                ) from error
    from . import _C
    return _C
