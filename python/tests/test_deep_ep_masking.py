"""epcomm.deep_ep's mask buffer API and multi-domain arguments on the CPU: argument checks, and the
mapping onto epcomm's masking checked against stand-in epcomm Buffers that record what they are asked."""

import pytest

import epcomm
from epcomm import deep_ep


class FakeNative:
    """Stands in for an epcomm.Buffer: masks as asked, or as a timeout would (pre_masked)."""

    def __init__(self, num_ranks, pre_masked=()):
        self.mask = [r in pre_masked for r in range(num_ranks)]
        self.destroyed = False
        self.calls = []

    def mask_rank(self, rank):
        self.calls.append(("mask_rank", rank))
        self.mask[rank] = True

    def masked_ranks(self):
        return list(self.mask)

    def clear_rank_mask(self):
        self.calls.append(("clear_rank_mask",))
        self.mask = [False] * len(self.mask)


def deep_ep_buffer(num_ranks=4, ht=None, ll=None):
    """A deep_ep.Buffer with its group size and stand-in epcomm Buffers, made without torch."""
    buffer = deep_ep.Buffer.__new__(deep_ep.Buffer)
    buffer.group_size = num_ranks
    buffer._masked = set()
    buffer._ht, buffer._ll = ht, ll
    return buffer


class FakeTensor:
    def __init__(self, shape, dtype):
        self.shape, self.dtype = shape, dtype


@pytest.mark.parametrize("rank, expected", [(4, r"rank_to_mask: expected a rank in \[0, 4\), got 4"),
                                            (-1, "got -1"), (True, "expected an int rank, got bool"),
                                            ("1", "got str")])
def test_update_refuses_a_bad_rank_by_name(rank, expected):
    ht = FakeNative(4)
    with pytest.raises(epcomm.InvalidArgumentError, match=expected):
        deep_ep_buffer(ht=ht).low_latency_update_mask_buffer(rank, True)
    assert ht.calls == []


def test_update_masks_every_epcomm_buffer_held():
    ht, ll = FakeNative(4), FakeNative(4)
    buffer = deep_ep_buffer(ht=ht, ll=ll)
    buffer.low_latency_update_mask_buffer(2, mask=True)
    assert ht.calls == ll.calls == [("mask_rank", 2)]
    assert buffer._masked == {2}


def test_unmasking_an_unmasked_rank_does_nothing_and_a_masked_one_is_unsupported():
    ht = FakeNative(4, pre_masked=(3,))  # masked by a timeout, not by the caller
    buffer = deep_ep_buffer(ht=ht)
    buffer.low_latency_update_mask_buffer(1, mask=False)
    assert ht.calls == []
    with pytest.raises(epcomm.UnsupportedError, match="low_latency_clean_mask_buffer"):
        buffer.low_latency_update_mask_buffer(3, mask=False)
    buffer.low_latency_update_mask_buffer(0, True)
    with pytest.raises(epcomm.UnsupportedError, match="rank_to_mask=0"):
        buffer.low_latency_update_mask_buffer(0)


def test_clean_clears_every_epcomm_buffer_and_the_remembered_ranks():
    ht, ll = FakeNative(4), FakeNative(4)
    buffer = deep_ep_buffer(ht=ht, ll=ll)
    buffer.low_latency_update_mask_buffer(1, True)
    buffer.low_latency_clean_mask_buffer()
    assert ht.calls[-1] == ll.calls[-1] == ("clear_rank_mask",)
    assert buffer._masked == set() and ht.mask == ll.mask == [False] * 4


def test_the_masked_state_joins_the_callers_and_the_buffers_own():
    from epcomm.deep_ep import masking
    ht = FakeNative(4, pre_masked=(3,))
    assert masking.masked_union(4, {1}, [ht]) == [False, True, False, True]
    assert masking.masked_union(4, {0}, []) == [True, False, False, False]


@pytest.mark.parametrize("tensor, expected", [
    (FakeTensor((3,), "torch.int32"), r"mask_status: expected shape \(4,\), got \(3,\)"),
    (FakeTensor((4, 1), "torch.int32"), "expected shape"),
    (FakeTensor((4,), "torch.float32"), "mask_status: expected an integer or bool dtype, got float32"),
    ([0, 0, 0, 0], "mask_status: expected a tensor of 4 integers, got list"),
])
def test_query_refuses_a_bad_mask_status_by_name(tensor, expected):
    with pytest.raises(epcomm.InvalidArgumentError, match=expected):
        deep_ep_buffer(ht=FakeNative(4)).low_latency_query_mask_buffer(tensor)


# ---- multi-domain arguments ----------------------------------------------------------------------
@pytest.mark.skipif(epcomm.WITH_NVSHMEM, reason="this extension has NVSHMEM: num_rdma_bytes is accepted")
def test_rdma_bytes_outside_low_latency_need_an_nvshmem_build():
    with pytest.raises(epcomm.UnsupportedError, match="num_rdma_bytes.*NVSHMEM"):
        deep_ep.Buffer(None, num_nvl_bytes=1 << 20, num_rdma_bytes=1 << 20)


def test_enable_shrink_is_accepted():
    # Past the option checks, the Buffer needs the group (None here) or torch: anything but refusal.
    with pytest.raises(Exception) as e:
        deep_ep.Buffer(None, num_nvl_bytes=1 << 20, enable_shrink=True)
    assert not isinstance(e.value, epcomm.Error)


@pytest.fixture
def no_rpd_env(monkeypatch):
    monkeypatch.delenv("EPCOMM_RANKS_PER_DOMAIN", raising=False)
    return monkeypatch


def test_rdma_hint_is_zero_for_one_domain(no_rpd_env):
    config = deep_ep.Config(20)
    assert config.get_rdma_buffer_size_hint(7168 * 2, 8) == 0
    assert config.get_rdma_buffer_size_hint(7168 * 2, 4, ranks_per_domain=4) == 0


def test_rdma_hint_sizes_several_domains(no_rpd_env):
    config = deep_ep.Config(20)
    hint = config.get_rdma_buffer_size_hint(7168 * 2, 16)  # two domains of 8, as the reference assumes
    expected = epcomm.MultiDomainShape(num_tokens=deep_ep.DEFAULT_HT_TOKENS_PER_RANK, hidden=7168,
                                       num_topk=epcomm.HT_MAX_TOPK, num_experts=16, num_ranks=16,
                                       ranks_per_domain=8).rdma_bytes(num_sms=20)
    assert hint == expected > 0
    assert config.get_rdma_buffer_size_hint(7168 * 2, 8, ranks_per_domain=2) > 0
    no_rpd_env.setenv("EPCOMM_RANKS_PER_DOMAIN", "2")
    with_two = config.get_rdma_buffer_size_hint(7168 * 2, 8)
    assert with_two > 0
    no_rpd_env.delenv("EPCOMM_RANKS_PER_DOMAIN")
    assert with_two == config.get_rdma_buffer_size_hint(7168 * 2, 8, ranks_per_domain=2)
    no_rpd_env.setenv("EPCOMM_RANKS_PER_DOMAIN", "8")  # the environment wins over the keyword
    assert config.get_rdma_buffer_size_hint(7168 * 2, 8, ranks_per_domain=2) == 0


@pytest.mark.parametrize("env, args, name", [
    ("x", (7168 * 2, 8), "EPCOMM_RANKS_PER_DOMAIN"),
    (None, (0, 16), "hidden_bytes"),
    (None, (7168 * 2, 0), "num_ranks"),
    ("3", (7168 * 2, 8), "ranks_per_domain"),  # G must divide the ranks
])
def test_rdma_hint_refuses_bad_arguments_by_name(no_rpd_env, env, args, name):
    if env is not None:
        no_rpd_env.setenv("EPCOMM_RANKS_PER_DOMAIN", env)
    with pytest.raises(epcomm.InvalidArgumentError, match=name):
        deep_ep.Config().get_rdma_buffer_size_hint(*args)
