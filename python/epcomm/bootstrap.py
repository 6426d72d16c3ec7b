"""How the ranks of a group find each other (before and outside the GPU data path), and how the
survivors of a failure find each other again (recovery, docs/reliability.md)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Optional, Sequence

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


@dataclass(frozen=True)
class TcpBootstrapOptions:
    """What a TCP bootstrap is made from (C++ ``TcpBootstrapOptions``); ``job_token`` "" resolves as
    :func:`tcp_bootstrap` says."""
    master_addr: str = "127.0.0.1"
    master_port: int = 29500
    rank: int = 0
    world_size: int = 1
    timeout_ms: int = 30000
    job_token: str = ""

    def bootstrap(self):
        """The TCP bootstrap of these options (collective: every rank calls it)."""
        return _C.tcp_bootstrap(**asdict(self))


def tcp_bootstrap_options_from_env() -> TcpBootstrapOptions:
    """torchrun's environment (MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE, EPCOMM_BOOTSTRAP_TIMEOUT_MS)
    as options, the job token filled in (EPCOMM_JOB_TOKEN, else derived); a missing or malformed
    variable raises InvalidArgumentError. Keep them: recovery starts from them."""
    return TcpBootstrapOptions(**_C.tcp_bootstrap_options_from_env())


def tcp_bootstrap_from_env():
    """The TCP bootstrap from torchrun's environment (MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE,
    EPCOMM_BOOTSTRAP_TIMEOUT_MS; the job token from EPCOMM_JOB_TOKEN, else derived as in
    :func:`tcp_bootstrap`); a missing or malformed variable raises InvalidArgumentError."""
    return tcp_bootstrap_options_from_env().bootstrap()


def _survivor_args(old: TcpBootstrapOptions, survivors: Sequence[int], attempt: int, master_addr: Optional[str],
                   master_port: int) -> dict:
    return dict(asdict(old), survivors=list(survivors), attempt=attempt, new_master_addr=master_addr or "",
                new_master_port=master_port)


def survivor_bootstrap_options(old: TcpBootstrapOptions, *, survivors: Sequence[int], attempt: int = 1,
                               master_addr: Optional[str] = None, master_port: int = 0) -> TcpBootstrapOptions:
    """The options of the survivors' new bootstrap, from this rank's ``old`` ones (pure: checks and
    arithmetic). Old rank ``survivors[i]`` becomes rank i; the new rank 0 listens on ``master_addr``
    (None: the old one) and ``master_port`` (0: the old port + ``attempt``). The job token is the old
    one extended with the attempt and a digest of ``survivors``, so no one outside the group (a stale
    peer, a survivor that counted other survivors) is admitted. Every survivor passes the same
    ``survivors`` (ascending, no repeats, this rank among them) and ``attempt`` (1, then 2, ...);
    otherwise InvalidArgumentError names the argument."""
    return TcpBootstrapOptions(**_C.survivor_bootstrap_options(
        **_survivor_args(old, survivors, attempt, master_addr, master_port)))


def survivor_bootstrap(old: TcpBootstrapOptions, *, survivors: Sequence[int], attempt: int = 1,
                       master_addr: Optional[str] = None, master_port: int = 0):
    """The survivors' new TCP bootstrap (collective over ``survivors``), without restarting the
    process: :func:`survivor_bootstrap_options` then the rendezvous. A survivor that does not arrive
    within the old timeout raises TimeoutError naming who is missing. Make new Buffers on it."""
    return _C.survivor_bootstrap(**_survivor_args(old, survivors, attempt, master_addr, master_port))
