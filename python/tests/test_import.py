"""The package builds, imports without PyTorch, and shows the API."""

import importlib.util
import subprocess
import sys

import epcomm
from epcomm import deep_ep


def test_extension_is_loaded_from_the_package():
    assert epcomm._C.__name__ == "epcomm._C"
    assert epcomm.__version__


def test_import_needs_no_torch():
    # A fresh interpreter: importing both layers must not import torch.
    code = "import sys, epcomm, epcomm.deep_ep; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_epcomm_api_names():
    for name in epcomm.__all__:
        assert hasattr(epcomm, name), name
    for method in ("get_dispatch_layout", "dispatch", "combine", "low_latency_dispatch", "low_latency_combine",
                   "get_next_low_latency_combine_buffer", "barrier", "check_status", "destroy", "mask_rank",
                   "masked_ranks", "masked_rank_ids", "clear_rank_mask", "peer_telemetry", "last_kernel_times",
                   "last_kernel_us", "last_call_timeline"):
        assert callable(getattr(epcomm.Buffer, method)), method


def test_deep_ep_api_names():
    assert set(deep_ep.__all__) >= {"Buffer", "Config", "EventOverlap", "topk_idx_t"}
    for method in ("get_dispatch_layout", "dispatch", "combine", "low_latency_dispatch", "low_latency_combine",
                   "get_next_low_latency_combine_buffer", "clean_low_latency_buffer",
                   "get_low_latency_rdma_size_hint", "get_dispatch_config", "get_combine_config", "set_num_sms",
                   "capture", "get_local_buffer_tensor", "destroy", "get_comm_stream",
                   "low_latency_update_mask_buffer", "low_latency_query_mask_buffer",
                   "low_latency_clean_mask_buffer"):
        assert callable(getattr(deep_ep.Buffer, method)), method
    for method in ("current_stream_wait", "__enter__", "__exit__"):
        assert callable(getattr(deep_ep.EventOverlap, method)), method


def test_topk_idx_t_is_torch_int64_when_torch_is_there():
    if importlib.util.find_spec("torch") is None:
        return  # looked up lazily: nothing to compare with
    import torch
    assert deep_ep.topk_idx_t is torch.int64
