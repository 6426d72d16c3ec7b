"""Masking, telemetry, kernel timing, multi-domain hints and peer-mismatch errors from Python, on the
CPU: the Buffer's new options reach C++ (refused by name, or a CUDA error without a GPU), telemetry
records with made-up counts, the hints' checks, and the PeerMismatchError class."""

import pytest

import epcomm

_C = epcomm._C


def single_rank_bootstrap():
    return epcomm.callback_bootstrap(0, 1, lambda data: data)


# ---- errors -------------------------------------------------------------------------------------
def test_peer_mismatch_is_an_invalid_argument_of_its_own_class():
    with pytest.raises(epcomm.PeerMismatchError) as e:
        _C._raise_error("invalid_argument", "peer mismatch: rank 0: dispatch: rank 1 has hidden 256, here 128")
    assert isinstance(e.value, epcomm.InvalidArgumentError) and isinstance(e.value, ValueError)
    assert e.value.category == "invalid_argument"
    assert e.value.message.startswith("peer mismatch: rank 0")


@pytest.mark.parametrize("category, message", [
    ("invalid_argument", "hidden: expected a multiple of 128, got 100 (peer mismatch: later)"),
    ("timeout", "peer mismatch: not an invalid argument"),
])
def test_other_errors_are_not_peer_mismatches(category, message):
    with pytest.raises(epcomm.Error) as e:
        _C._raise_error(category, message)
    assert not isinstance(e.value, epcomm.PeerMismatchError)


# ---- the Buffer's new options --------------------------------------------------------------------
@pytest.mark.parametrize("ranks_per_domain", [-1, 73])
def test_ranks_per_domain_out_of_range_is_refused_by_name(ranks_per_domain):
    with pytest.raises(epcomm.InvalidArgumentError, match="ranks_per_domain"):
        epcomm.Buffer(single_rank_bootstrap(), num_nvl_bytes=1 << 20, ranks_per_domain=ranks_per_domain)


@pytest.mark.skipif(epcomm.cuda_device_count() > 0, reason="a GPU is present: the Buffer would be made")
def test_masking_and_telemetry_options_reach_the_buffer():
    # Accepted by every layer (a TypeError or InvalidArgumentError otherwise); only CUDA is missing.
    with pytest.raises(epcomm.CudaError):
        epcomm.Buffer(single_rank_bootstrap(), num_nvl_bytes=1 << 20, mask_on_timeout=True, peer_telemetry=True,
                      ranks_per_domain=1)


def test_buffer_methods_of_masking_and_diagnostics_exist_on_the_extension():
    for name in ("mask_rank", "masked_ranks", "clear_rank_mask", "peer_telemetry", "set_kernel_timing",
                 "last_kernel_times", "last_call_timeline"):
        assert callable(getattr(_C.Buffer, name)), name


# ---- telemetry records ---------------------------------------------------------------------------
def traffic(operation, peer, wait_ns, bytes_sent=0, bytes_received=0, waits=1):
    return epcomm.PeerTraffic(operation, peer, bytes_sent, bytes_received, wait_ns, waits)


def test_slowest_peer_sums_waits_over_operations():
    records = epcomm.PeerTelemetry([
        traffic("dispatch", 1, 900), traffic("combine", 1, 0, waits=0),
        traffic("dispatch", 2, 600), traffic("combine", 2, 600),  # 1200 in all: the slowest
        traffic("dispatch", 3, 1000),  # the largest single record, not the largest sum
    ])
    assert records.slowest_peer() == 2
    assert records.wait_ns_by_peer() == {1: 900, 2: 1200, 3: 1000}
    assert [r.peer for r in records.of_operation("combine")] == [1, 2]
    assert isinstance(records.of_operation("combine"), epcomm.PeerTelemetry)


def test_slowest_peer_without_polled_waits_is_minus_one():
    assert epcomm.PeerTelemetry().slowest_peer() == -1
    assert epcomm.PeerTelemetry([traffic("dispatch", 1, 0, bytes_sent=4096, waits=0)]).slowest_peer() == -1


def test_telemetry_records_from_the_extension_tuples():
    records = epcomm.PeerTelemetry._from_native([("barrier", 3, 0, 0, 250, 2), ("dispatch", 0, 64, 32, 0, 0)])
    assert records[0] == epcomm.PeerTraffic("barrier", 3, 0, 0, 250, 2)
    assert records[1].bytes_sent == 64 and records[1].bytes_received == 32
    assert records.slowest_peer() == 3


def test_counts_beyond_int64_cross_to_cpp():
    big = 2**63 + 5  # the counters are uint64 in C++
    records = epcomm.PeerTelemetry([traffic("dispatch", 0, big), traffic("dispatch", 1, big - 10)])
    assert records.slowest_peer() == 0
    with pytest.raises(TypeError):
        epcomm.PeerTelemetry([traffic("dispatch", 0, -1)]).slowest_peer()


# ---- multi-domain hints --------------------------------------------------------------------------
def shape(**overrides):
    fields = dict(num_tokens=4096, hidden=7168, num_topk=8, num_experts=256, num_ranks=16, ranks_per_domain=8)
    fields.update(overrides)
    return epcomm.MultiDomainShape(**fields)


def test_multi_domain_hints_are_positive_and_follow_the_shape():
    assert shape().rdma_bytes() > 0
    assert shape().nvl_bytes() > 0
    # Room for every token of every rank grows with the tokens; room for fewer received rows is smaller.
    assert shape(num_tokens=8192).nvl_bytes() > shape().nvl_bytes()
    assert shape().nvl_bytes(received_rows=1024) < shape().nvl_bytes()


def test_multi_domain_row_bytes_fp8_rows_are_smaller():
    bf16, fp8 = shape().row_bytes(), shape(fp8=True).row_bytes()
    assert isinstance(bf16, epcomm.MultiDomainRowBytes)
    assert 0 < fp8.dispatch_put < bf16.dispatch_put
    assert bf16.combine_put_bf16 < bf16.combine_put_f32


@pytest.mark.parametrize("overrides, name", [
    (dict(num_experts=255), "num_experts"),
    (dict(ranks_per_domain=0), "ranks_per_domain"),
    (dict(num_tokens=-1), "num_tokens"),
    (dict(hidden=0), "hidden"),
])
def test_multi_domain_hint_names_the_bad_field(overrides, name):
    with pytest.raises(epcomm.InvalidArgumentError, match=name):
        shape(**overrides).rdma_bytes()
