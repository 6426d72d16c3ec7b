"""How the ranks of a group find each other (before and outside the GPU data path)."""

from __future__ import annotations

from typing import Callable, Optional

from . import _native

_C = _native.load()


def callback_bootstrap(rank: int, size: int, all_gather: Callable[[bytes], bytes]):
    """A bootstrap whose exchange is ``all_gather(data) -> bytes``: every rank's ``data`` (equal
    lengths), concatenated in rank order. epcomm calls it collectively, from the thread that made
    the call, with the GIL held while it runs; an exception in it becomes ``epcomm.BootstrapError``."""
    return _C.callback_bootstrap(rank, size, all_gather)


def tcp_bootstrap(master_addr: str = "127.0.0.1", master_port: int = 29500, *, rank: int, world_size: int,
                  timeout_ms: int = 30000, job_token: Optional[str] = None):
    """TCP rendezvous: rank 0 listens on master_addr:master_port, the others connect to it. A rank
    that does not answer within ``timeout_ms`` raises epcomm.TimeoutError or BootstrapError.

    Rank 0 admits only ranks of its own job: each presents ``job_token`` (equal on every rank, at
    most 256 bytes). None (or ""): the environment's EPCOMM_JOB_TOKEN (epcomm-run sets one per
    launch), else one derived from master_port and world_size (plus TORCHELASTIC_RUN_ID when set), as
    in C++ (``TcpBootstrapOptions::job_token``). A rank presenting another token is refused: it
    raises BootstrapError with the reason, and rank 0 carries on waiting for its own ranks. The token
    tells jobs apart; it is not authentication."""
    return _C.tcp_bootstrap(master_addr, master_port, rank, world_size, timeout_ms, job_token or "")


def tcp_bootstrap_from_env():
    """The TCP bootstrap from torchrun's environment (MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE,
    EPCOMM_BOOTSTRAP_TIMEOUT_MS; the job token from EPCOMM_JOB_TOKEN, else derived as in
    :func:`tcp_bootstrap`); a missing or malformed variable raises InvalidArgumentError."""
    o = _C.tcp_bootstrap_options_from_env()
    return _C.tcp_bootstrap(o["master_addr"], o["master_port"], o["rank"], o["world_size"], o["timeout_ms"],
                            o["job_token"])
