"""C++ errors become epcomm.Error with the right category and subclass; none needs a GPU."""

import pytest

import epcomm
from epcomm import deep_ep

_C = epcomm._C

SUBCLASS = {"timeout": epcomm.TimeoutError, "invalid_argument": epcomm.InvalidArgumentError,
            "unsupported": epcomm.UnsupportedError, "cuda": epcomm.CudaError, "nccl": epcomm.NcclError,
            "nvshmem": epcomm.NvshmemError, "bootstrap": epcomm.BootstrapError, "internal": epcomm.InternalError}


def test_every_cpp_category_has_a_class():
    assert sorted(_C._category_names()) == sorted(SUBCLASS)


@pytest.mark.parametrize("category", sorted(SUBCLASS))
def test_cpp_error_becomes_its_subclass(category):
    with pytest.raises(SUBCLASS[category]) as e:
        _C._raise_error(category, "what failed")
    error = e.value
    assert isinstance(error, epcomm.Error) and isinstance(error, RuntimeError)
    assert error.category == category
    assert error.message == "what failed"
    assert error.file.endswith("errors.cpp") and error.line > 0
    assert "what failed" in str(error)


def test_invalid_argument_is_also_a_value_error():
    assert issubclass(epcomm.InvalidArgumentError, ValueError)
    assert epcomm.TimeoutError is not TimeoutError  # epcomm's own, under epcomm.


def single_rank_bootstrap():
    return epcomm.callback_bootstrap(0, 1, lambda data: data)


@pytest.mark.parametrize("options, name", [
    (dict(num_nvl_bytes=-1), "num_nvl_bytes"),
    (dict(num_nvl_bytes=1 << 20, timeout_ms=0), "timeout_ms"),
])
def test_buffer_with_bad_options_is_refused_before_cuda(options, name):
    with pytest.raises(epcomm.InvalidArgumentError, match=name):
        epcomm.Buffer(single_rank_bootstrap(), **options)


@pytest.mark.skipif(epcomm.WITH_NVSHMEM, reason="this extension has NVSHMEM: num_rdma_bytes is accepted")
def test_rdma_bytes_need_an_nvshmem_extension():
    with pytest.raises(epcomm.UnsupportedError, match="num_rdma_bytes"):
        _C.Buffer(single_rank_bootstrap(), num_nvl_bytes=1 << 20, num_rdma_bytes=1 << 20)


@pytest.mark.parametrize("ll, name", [
    (epcomm.LowLatencyOptions(128, 100, 8), "hidden"),
    (epcomm.LowLatencyOptions(128, 7168, 8, max_topk=17), "max_topk"),
    (epcomm.LowLatencyOptions(0, 7168, 8), "max_tokens_per_rank"),
])
def test_low_latency_buffer_with_bad_options_is_refused(ll, name):
    with pytest.raises(epcomm.InvalidArgumentError, match=name):
        epcomm.Buffer(single_rank_bootstrap(), num_nvl_bytes=1 << 30, low_latency=ll)


def test_unknown_ll_transport_is_refused():
    with pytest.raises(epcomm.InvalidArgumentError, match="ll_transport"):
        epcomm.Buffer(single_rank_bootstrap(), num_nvl_bytes=1 << 20, ll_transport="ib")


@pytest.mark.skipif(epcomm.cuda_device_count() > 0, reason="a GPU is present: the Buffer would be made")
def test_buffer_without_gpu_is_a_cuda_error():
    calls = []

    def all_gather(data):
        calls.append(len(data))
        return data

    with pytest.raises(epcomm.CudaError):
        epcomm.Buffer(epcomm.callback_bootstrap(0, 1, all_gather), num_nvl_bytes=1 << 20)


def test_callback_bootstrap_exchanges_through_python():
    # Rank 0 of 2 whose callback plays both ranks: they report the same host, so one domain of 2.
    seen = []

    def all_gather(data):
        seen.append(data)
        return data + data

    info = _C.discover_domains(epcomm.callback_bootstrap(0, 2, all_gather), "host-a")
    assert seen and info["ranks_per_domain"] == 2 and info["num_domains"] == 1
    assert info["domain_of_rank"] == [0, 0]
    boot = epcomm.callback_bootstrap(1, 2, lambda d: b"x" * len(d) + d)
    assert boot.rank == 1 and boot.size == 2
    assert boot.all_gather(b"ab") == b"xxab"


def test_callback_bootstrap_errors_are_bootstrap_errors():
    def failing(data):
        raise ConnectionError("peer went away")

    with pytest.raises(epcomm.BootstrapError, match="peer went away"):
        _C.discover_domains(epcomm.callback_bootstrap(0, 2, failing), "host-a")
    with pytest.raises(epcomm.BootstrapError, match="returned 3 bytes"):
        epcomm.callback_bootstrap(0, 2, lambda d: b"abc").all_gather(b"xy")
    with pytest.raises(epcomm.BootstrapError, match="must return bytes"):
        epcomm.callback_bootstrap(0, 1, lambda d: 42).all_gather(b"xy")
    with pytest.raises(epcomm.InvalidArgumentError, match="rank"):
        epcomm.callback_bootstrap(2, 2, lambda d: d)


def test_tcp_bootstrap_from_env_names_the_missing_variable(monkeypatch):
    for name in ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(epcomm.InvalidArgumentError, match="MASTER_ADDR|MASTER_PORT|RANK|WORLD_SIZE"):
        epcomm.tcp_bootstrap_from_env()


def test_single_rank_tcp_bootstrap():
    boot = epcomm.tcp_bootstrap("127.0.0.1", 0, rank=0, world_size=1, timeout_ms=2000)
    assert boot.size == 1 and boot.all_gather(b"abc") == b"abc"


@pytest.mark.parametrize("kwargs, name", [
    (dict(low_latency_mode=True, num_rdma_bytes=1 << 20, allow_nvlink_for_low_latency_mode=False),
     "allow_nvlink_for_low_latency_mode"),
    (dict(allow_mnnvl=True), "allow_mnnvl"),
    (dict(use_fabric=True), "use_fabric"),
    (dict(comm=object()), "comm"),
])
def test_deep_ep_buffer_refuses_what_epcomm_cannot_honour(kwargs, name):
    # Refused before the group is touched (None here) and before torch is imported.
    with pytest.raises(epcomm.UnsupportedError, match=name):
        deep_ep.Buffer(None, **kwargs)


def test_deep_ep_event_overlap_without_event():
    with deep_ep.EventOverlap() as overlap:  # a synchronous call's: nothing to wait for
        assert overlap.event is None and overlap.extra_tensors is None
    with pytest.raises(AssertionError):
        deep_ep.EventOverlap().current_stream_wait()


def test_renamed_names_the_reference_librarys_argument():
    from epcomm.deep_ep.utils import renamed
    e = epcomm.errors._from_native("invalid_argument", "epcomm [invalid argument] y: expected 3 dimensions (t.cpp:1)",
                                   "y: expected 3 dimensions", "t.cpp", 1)
    r = renamed(e, "y", "x")
    assert type(r) is epcomm.InvalidArgumentError and r.category == "invalid_argument"
    assert str(r) == "epcomm [invalid argument] x: expected 3 dimensions (t.cpp:1)"
    assert (r.message, r.file, r.line) == ("x: expected 3 dimensions", "t.cpp", 1)
    other = epcomm.errors._from_native("invalid_argument", "epcomm [invalid argument] yy: bad", "yy: bad", "", 0)
    assert renamed(other, "y", "x") is other  # another argument's name is left alone
