"""Runs a test body on N ranks (processes) with a gloo group; the oracle is PyTorch code in the test."""

import os
import socket
import traceback


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, num_ranks, port, body, args):
    import torch
    import torch.distributed as dist
    torch.cuda.set_device(rank % torch.cuda.device_count())  # ranks share GPUs when there are few
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=num_ranks)
    try:
        body(rank, num_ranks, dist.new_group(list(range(num_ranks))), *args)
        torch.cuda.synchronize()
        dist.barrier()
    except BaseException:
        traceback.print_exc()
        raise
    finally:
        dist.destroy_process_group()


def run(num_ranks: int, body, *args) -> None:
    """body(rank, num_ranks, group, *args) on every rank; raises if any rank failed."""
    import torch.multiprocessing as mp
    os.environ.setdefault("EPCOMM_TIMEOUT_MS", "60000")  # time-sliced ranks on one GPU are slow
    mp.start_processes(_worker, args=(num_ranks, _free_port(), body, args), nprocs=num_ranks, join=True,
                       start_method="spawn")
