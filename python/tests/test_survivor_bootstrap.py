"""Recovery's survivor bootstrap from Python: the new options (pure arithmetic and checks), and the
survivors' new group formed over localhost, ranks as threads, refusing a stale rank of the old group."""

import socket
import threading

import pytest

import epcomm


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def old_options(rank, port=29500, world_size=3, token="job-r"):
    return epcomm.TcpBootstrapOptions("127.0.0.1", port, rank, world_size, 10000, token)


def test_survivors_are_renumbered_densely_on_the_next_port():
    new = epcomm.survivor_bootstrap_options(old_options(2), survivors=[0, 2], attempt=1)
    assert (new.rank, new.world_size, new.master_port, new.master_addr) == (1, 2, 29501, "127.0.0.1")
    assert new.timeout_ms == 10000
    second = epcomm.survivor_bootstrap_options(old_options(2), survivors=[0, 2], attempt=2, master_port=40000,
                                               master_addr="10.0.0.2")
    assert (second.master_port, second.master_addr) == (40000, "10.0.0.2")


def test_the_new_token_tells_groups_and_attempts_apart():
    def token(survivors, attempt=1):
        return epcomm.survivor_bootstrap_options(old_options(0), survivors=survivors, attempt=attempt).job_token
    assert token([0, 2]) != "job-r"
    assert token([0, 2]) == token([0, 2])
    assert token([0, 2]) != token([0, 1])
    assert token([0, 2]) != token([0, 2], attempt=2)


@pytest.mark.parametrize("kwargs, name", [
    (dict(survivors=[0, 2]), "survivors"),  # this rank (1) is not among them
    (dict(survivors=[2, 1]), "survivors"),  # not ascending
    (dict(survivors=[1, 5]), "survivors"),  # beyond the old world
    (dict(survivors=[0, 1], attempt=0), "attempt"),
])
def test_bad_survivor_groups_are_refused_by_name(kwargs, name):
    with pytest.raises(epcomm.InvalidArgumentError, match=name):
        epcomm.survivor_bootstrap_options(old_options(1), **kwargs)


class Survivor(threading.Thread):
    def __init__(self, old, survivors, new_port):
        super().__init__(daemon=True)
        self.old, self.survivors, self.new_port = old, survivors, new_port
        self.boot = self.gathered = self.error = None

    def run(self):
        try:
            self.boot = epcomm.survivor_bootstrap(self.old, survivors=self.survivors, master_port=self.new_port)
            self.gathered = self.boot.all_gather(bytes([65 + self.old.rank]))
            self.boot.barrier()
        except epcomm.Error as e:
            self.error = e


def finish(thread):
    thread.join(30)
    assert not thread.is_alive(), "a rank hung"


def test_survivors_form_a_group_without_a_stale_rank():
    old_port, new_port = free_port(), free_port()
    # Old ranks 0 and 2 survive; old rank 1 comes back believing everyone survived. It knocks while
    # the new rank 0 waits for its peer (after the group formed nobody would listen): refused.
    root, last = (Survivor(old_options(r, old_port), [0, 2], new_port) for r in (0, 2))
    stale = Survivor(old_options(1, old_port), [0, 1, 2], new_port)
    root.start()
    stale.start()
    finish(stale)
    last.start()
    finish(root)
    finish(last)
    assert isinstance(stale.error, epcomm.BootstrapError), stale.error
    assert [root.error, last.error] == [None, None]
    assert [root.boot.rank, last.boot.rank] == [0, 1] and [root.boot.size, last.boot.size] == [2, 2]
    assert root.gathered == last.gathered == b"AC"
