"""Defaults and size hints of the Python layers equal the C++ values."""

import inspect

import pytest

import epcomm
from epcomm import deep_ep

_C = epcomm._C


def test_config_defaults_are_the_cpp_ones():
    assert _C.DEFAULT_NUM_SMS == 24  # epcomm::Config{}.num_sms
    config = deep_ep.Config()
    assert config.num_sms == _C.DEFAULT_NUM_SMS
    assert deep_ep.Buffer.num_sms == _C.DEFAULT_NUM_SMS
    assert deep_ep.Buffer.get_dispatch_config(8) == deep_ep.Config(_C.DEFAULT_NUM_SMS)
    assert deep_ep.Buffer.get_combine_config(2).num_sms == _C.DEFAULT_NUM_SMS
    sig = inspect.signature(epcomm.Buffer.dispatch)
    assert sig.parameters["num_sms"].default == _C.DEFAULT_NUM_SMS


def test_config_keeps_the_five_fields():
    config = deep_ep.Config(20, 6, 256, 6, 128)
    assert (config.num_sms, config.num_max_nvl_chunked_send_tokens, config.num_max_nvl_chunked_recv_tokens,
            config.num_max_rdma_chunked_send_tokens, config.num_max_rdma_chunked_recv_tokens) == (20, 6, 256, 6, 128)
    assert config.get_rdma_buffer_size_hint(7168 * 2, 8) == 0


def test_set_num_sms():
    old = deep_ep.Buffer.num_sms
    try:
        deep_ep.Buffer.set_num_sms(32)
        assert deep_ep.Buffer.get_dispatch_config(4).num_sms == 32
        with pytest.raises(epcomm.InvalidArgumentError, match="new_num_sms"):
            deep_ep.Buffer.set_num_sms(33)
    finally:
        deep_ep.Buffer.num_sms = old


@pytest.mark.parametrize("tokens, hidden, ranks, experts", [
    (128, 7168, 8, 288), (128, 7168, 2, 256), (1, 128, 1, 1), (256, 4096, 4, 64), (64, 2048, 16, 128)])
def test_low_latency_size_hint_is_the_cpp_one(tokens, hidden, ranks, experts):
    hint = deep_ep.Buffer.get_low_latency_rdma_size_hint(tokens, hidden, ranks, experts)
    assert hint == _C.ll_region_bytes_hint(tokens, hidden, ranks, experts, _C.LL_MAX_TOPK)
    assert hint == epcomm.LowLatencyOptions(tokens, hidden, experts).region_bytes(ranks)
    assert hint > 0
    # More tokens never need less memory.
    assert _C.ll_region_bytes_hint(tokens + 1, hidden, ranks, experts) >= hint


def test_low_latency_bounds():
    assert _C.LL_MAX_TOPK == 16 and _C.LL_MAX_HIDDEN == 8192 and _C.LL_HIDDEN_MULTIPLE == 128


@pytest.mark.parametrize("args, name", [
    ((128, 100, 8, 288), "hidden"),  # not a multiple of 128
    ((128, 7168, 8, 100), "num_experts"),  # not a multiple of the ranks
    ((0, 7168, 8, 288), "max_tokens_per_rank"),
])
def test_low_latency_size_hint_refuses_bad_shapes(args, name):
    with pytest.raises(epcomm.InvalidArgumentError, match=name):
        deep_ep.Buffer.get_low_latency_rdma_size_hint(*args)


@pytest.mark.parametrize("hidden, ranks", [(7168, 8), (4096, 2), (2048, 4), (8, 1), (7168, 72)])
def test_nvl_buffer_size_hint_is_the_cpp_one_for_the_default_token_count(hidden, ranks):
    assert deep_ep.DEFAULT_HT_TOKENS_PER_RANK == 4096
    hint = deep_ep.Config().get_nvl_buffer_size_hint(hidden * 2, ranks)
    assert hint == _C.ht_nvl_bytes_hint(4096, hidden, ranks, _C.HT_MAX_TOPK)
    assert hint == epcomm.ht_nvl_bytes_hint(4096, hidden, ranks)
    # Worst case: every rank's 4096 tokens land on one rank, BF16 rows with 32 int64 top-k.
    assert hint >= ranks * 4096 * (hidden * 2 + 32 * 12 + 4)
    assert hint % 4096 == 0


def test_nvl_buffer_size_hint_keywords_and_odd_row_bytes():
    config = deep_ep.Config()
    assert (config.get_nvl_buffer_size_hint(7168 * 2, 8, max_tokens_per_rank=128, max_topk=8)
            == _C.ht_nvl_bytes_hint(128, 7168, 8, 8))
    # A row of 100 bytes is sized as the 7 16-byte vectors (56 BF16 values) holding it.
    assert config.get_nvl_buffer_size_hint(100, 2) == _C.ht_nvl_bytes_hint(4096, 56, 2)
    assert config.get_nvl_buffer_size_hint(7168 * 2, 8, max_tokens_per_rank=8192) > config.get_nvl_buffer_size_hint(
        7168 * 2, 8)


@pytest.mark.parametrize("call, name", [
    (lambda c: c.get_nvl_buffer_size_hint(0, 8), "hidden_bytes"),
    (lambda c: c.get_nvl_buffer_size_hint(14336, 0), "num_ranks"),
    (lambda c: c.get_nvl_buffer_size_hint(14336, 73), "num_ranks"),
    (lambda c: c.get_nvl_buffer_size_hint(14336, 8, max_tokens_per_rank=0), "max_tokens_per_rank"),
    (lambda c: c.get_nvl_buffer_size_hint(14336, 8, max_topk=33), "max_topk"),
])
def test_nvl_buffer_size_hint_refuses_bad_arguments_by_name(call, name):
    with pytest.raises(epcomm.InvalidArgumentError, match=name):
        call(deep_ep.Config())
