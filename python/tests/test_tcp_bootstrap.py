"""The TCP bootstrap from Python, ranks as threads on localhost (every collective releases the GIL
while it waits): its job token (rank 0 admits only ranks presenting its job's token, refuses another
job's, which raises BootstrapError, and carries on) and its collectives."""

import socket
import threading

import pytest

import epcomm

REFUSED = "presented another job's token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Rank(threading.Thread):
    """One rank's tcp_bootstrap on a thread; afterwards `.boot` or `.error` holds what it got."""

    def __init__(self, port, rank, world_size=2, timeout_ms=10000, **kwargs):
        super().__init__(daemon=True)
        self.args = dict(rank=rank, world_size=world_size, timeout_ms=timeout_ms, **kwargs)
        self.port, self.boot, self.error = port, None, None

    def run(self):
        try:
            self.boot = epcomm.tcp_bootstrap("127.0.0.1", self.port, **self.args)
            self.gathered = self.boot.all_gather(bytes([65 + self.boot.rank]))
            self.domains = epcomm._C.discover_domains(self.boot, "one-host")
            self.boot.barrier()
        except epcomm.Error as e:
            self.error = e


def run_ranks(*ranks):
    for r in ranks:
        r.start()
    for r in ranks:
        r.join(30)
        assert not r.is_alive(), "a rank hung"
    return ranks


def test_ranks_with_the_same_token_form_a_group():
    port = free_port()
    root, other = run_ranks(Rank(port, 0, job_token="job-a"), Rank(port, 1, job_token="job-a"))
    assert root.error is None and other.error is None, (root.error, other.error)
    assert root.gathered == other.gathered == b"AB"


def test_collectives_of_threads_in_one_process():
    # all_gather, discover_domains and barrier each wait for the other thread: they must not hold the GIL.
    port = free_port()
    ranks = run_ranks(*(Rank(port, r, world_size=3, job_token="job-c") for r in range(3)))
    assert [r.error for r in ranks] == [None] * 3
    assert [r.gathered for r in ranks] == [b"ABC"] * 3
    assert [(r.domains["num_domains"], r.domains["ranks_per_domain"], r.domains["local_index"]) for r in ranks] == [
        (1, 3, 0), (1, 3, 1), (1, 3, 2)]


def test_ranks_with_different_tokens_do_not_admit_each_other():
    port = free_port()
    root, stranger = run_ranks(Rank(port, 0, timeout_ms=1500, job_token="job-a"),
                               Rank(port, 1, timeout_ms=1500, job_token="job-b"))
    assert isinstance(stranger.error, epcomm.BootstrapError), stranger.error
    assert REFUSED in str(stranger.error)
    # Rank 0 never got its rank 1: it times out, quoting the refusal.
    assert isinstance(root.error, epcomm.TimeoutError), root.error
    assert REFUSED in str(root.error)


def test_rank_0_carries_on_after_refusing_another_job():
    port = free_port()
    root = Rank(port, 0, timeout_ms=10000, job_token="job-a")
    root.start()
    (stranger,) = run_ranks(Rank(port, 1, timeout_ms=5000, job_token="job-b"))
    assert isinstance(stranger.error, epcomm.BootstrapError) and REFUSED in str(stranger.error)
    (member,) = run_ranks(Rank(port, 1, job_token="job-a"))
    root.join(30)
    assert root.error is None and member.error is None, (root.error, member.error)
    assert root.gathered == member.gathered == b"AB"


def test_token_defaults_to_the_environment(monkeypatch):
    monkeypatch.setenv("EPCOMM_JOB_TOKEN", "from-env")
    port = free_port()
    root, member = run_ranks(Rank(port, 0), Rank(port, 1, job_token="from-env"))
    assert root.error is None and member.error is None, (root.error, member.error)
    port = free_port()
    root, stranger = run_ranks(Rank(port, 0, timeout_ms=1500), Rank(port, 1, timeout_ms=1500, job_token="other"))
    assert isinstance(stranger.error, epcomm.BootstrapError) and REFUSED in str(stranger.error)


def test_token_from_env_options(monkeypatch):
    for name, value in (("MASTER_ADDR", "127.0.0.1"), ("MASTER_PORT", "29555"), ("RANK", "0"), ("WORLD_SIZE", "2")):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    monkeypatch.setenv("EPCOMM_JOB_TOKEN", "job-42")
    assert epcomm._C.tcp_bootstrap_options_from_env()["job_token"] == "job-42"
    monkeypatch.delenv("EPCOMM_JOB_TOKEN")
    assert epcomm._C.tcp_bootstrap_options_from_env()["job_token"] == "epcomm:port=29555:world=2"
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "run7")
    assert epcomm._C.tcp_bootstrap_options_from_env()["job_token"] == "epcomm:port=29555:world=2:run=run7"


def test_too_long_a_token_is_refused_by_name():
    with pytest.raises(epcomm.InvalidArgumentError, match="job_token"):
        epcomm.tcp_bootstrap("127.0.0.1", free_port(), rank=0, world_size=2, timeout_ms=1000, job_token="x" * 257)
