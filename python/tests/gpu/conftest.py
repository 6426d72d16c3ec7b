"""GPU tier: needs torch with CUDA; skipped cleanly otherwise. Ranks run as processes sharing GPU 0
(or one GPU each where there are enough), joined by a gloo process group."""

import importlib.util

import pytest


def _gpu_available() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    import torch
    return torch.cuda.is_available()


def pytest_collection_modifyitems(config, items):
    if _gpu_available():
        return
    skip = pytest.mark.skip(reason="GPU tier: needs PyTorch with a CUDA GPU")
    for item in items:
        if "/gpu/" in str(item.fspath):
            item.add_marker(skip)
