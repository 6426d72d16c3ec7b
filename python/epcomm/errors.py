"""epcomm's exceptions: one class per category of the C++ ``epcomm::Error``.

Every error epcomm raises is an :class:`Error` (a ``RuntimeError``) with

- ``category``: ``"timeout"``, ``"invalid_argument"``, ``"unsupported"``, ``"cuda"``, ``"nccl"``,
  ``"nvshmem"``, ``"bootstrap"`` or ``"internal"``;
- ``message``: the text without decoration (it names the argument or call that failed, what was
  expected and what was given);
- ``file``, ``line``: where the check that raised it sits (C++ or Python).

Catch a category by its subclass, e.g. ``except epcomm.TimeoutError``. A peer whose call differs from
this rank's (another shape, another handle: C++ reports it as an invalid argument whose message
starts "peer mismatch:") raises :class:`PeerMismatchError`, an InvalidArgumentError.
"""

from __future__ import annotations

from typing import Optional

__all__ = [
    "Error", "InvalidArgumentError", "UnsupportedError", "CudaError", "NcclError", "NvshmemError",
    "BootstrapError", "TimeoutError", "InternalError", "PeerMismatchError", "CATEGORIES",
]


class Error(RuntimeError):
    """An epcomm failure; ``category`` says which kind."""

    category = "internal"

    def __init__(self, text: str, *, message: Optional[str] = None, file: Optional[str] = None,
                 line: Optional[int] = None):
        super().__init__(text)
        self.message = text if message is None else message
        self.file = file
        self.line = line


class InvalidArgumentError(Error, ValueError):
    """A caller's input broke a documented precondition (the message names the argument)."""
    category = "invalid_argument"


class PeerMismatchError(InvalidArgumentError):
    """A peer called with other arguments than this rank (the message names the rank, the peer, the
    operation and the field that differs). Category "invalid_argument", as in C++."""


_PEER_MISMATCH = "peer mismatch:"


class UnsupportedError(Error, NotImplementedError):
    """A valid request this build or machine cannot serve (yet)."""
    category = "unsupported"


class CudaError(Error):
    """A CUDA runtime or driver call failed."""
    category = "cuda"


class NcclError(Error):
    category = "nccl"


class NvshmemError(Error):
    category = "nvshmem"


class BootstrapError(Error):
    """Rendezvous or exchange between ranks failed."""
    category = "bootstrap"


class TimeoutError(Error):  # noqa: A001 (epcomm.TimeoutError, not the builtin)
    """A peer did not answer within the configured timeout."""
    category = "timeout"


class InternalError(Error):
    """A broken invariant inside epcomm (a bug: please report it)."""
    category = "internal"


_BY_CATEGORY = {cls.category: cls for cls in (
    InvalidArgumentError, UnsupportedError, CudaError, NcclError, NvshmemError, BootstrapError,
    TimeoutError, InternalError)}
CATEGORIES = tuple(_BY_CATEGORY)


def _from_native(category: str, text: str, message: str, file: str, line: int) -> Error:
    """Called by the extension to turn a C++ epcomm::Error into its Python class."""
    cls = _BY_CATEGORY.get(category, Error)
    if cls is InvalidArgumentError and message.startswith(_PEER_MISMATCH):
        cls = PeerMismatchError
    return cls(text, message=message, file=file, line=line)


def invalid_argument(message: str) -> InvalidArgumentError:
    """An InvalidArgumentError raised by the Python layers (message names the argument)."""
    return InvalidArgumentError(f"epcomm [invalid argument] {message}", message=message)


def unsupported(message: str) -> UnsupportedError:
    return UnsupportedError(f"epcomm [unsupported] {message}", message=message)
