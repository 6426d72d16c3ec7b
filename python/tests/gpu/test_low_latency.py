"""Low-latency mode through epcomm.deep_ep on 2 and 4 ranks, checked against PyTorch written here:
BF16 and each FP8 option, zero-copy combine, the receive hook, and CUDA-graph replay."""

import pytest

import ranks

T = 32  # num_max_dispatch_tokens_per_rank
HIDDEN = 512
EXPERTS_PER_RANK = 2
TOPK = 3


def inputs(rank, num_ranks, step=0):
    import torch
    g = torch.Generator().manual_seed(7000 + 97 * rank + step)
    num_tokens = T - 3 * rank  # fewer than T, different per rank
    x = (torch.randn(num_tokens, HIDDEN, generator=g) * (1 + rank)).bfloat16()
    scores = torch.rand(num_tokens, EXPERTS_PER_RANK * num_ranks, generator=g)
    topk_idx = scores.topk(TOPK, dim=1).indices
    topk_idx[torch.rand(num_tokens, TOPK, generator=g) < 0.15] = -1
    weights = torch.rand(num_tokens, TOPK, generator=g)
    return x, topk_idx, weights


def dequantize(recv_x, scales, ue8m0):
    """[rows, HIDDEN] float32 from FP8 rows and their per-128-channel scales."""
    import torch
    if ue8m0:  # four exponent bytes per int32: byte j of word w is block 4w + j
        # Taken apart arithmetically: a view as uint8 needs stride 1 in the last dimension, which the
        # column-major [rows, 1] words lack (contiguous() keeps that stride: the dimension has size 1).
        shifts = 8 * torch.arange(4, device=scales.device)
        exps = ((scales.long()[..., None] >> shifts) & 0xFF).flatten(-2)[..., :HIDDEN // 128].float()
        scales = torch.pow(2.0, exps - 127)
    return recv_x.float() * scales.repeat_interleave(128, dim=-1)


def check_dispatch(rank, num_ranks, recv_x, recv_count, handle_views, use_fp8, ue8m0=False, step=0):
    import torch
    src_info, layout_range = handle_views
    nle = EXPERTS_PER_RANK
    per_rank = [inputs(s, num_ranks, step) for s in range(num_ranks)]
    for e in range(nle):
        expert = rank * nle + e
        total = 0
        for s in range(num_ranks):
            x_s, idx_s, _ = per_rank[s]
            value = int(layout_range[e, s])
            begin, count = value >> 32, value & 0xFFFFFFFF
            tokens = sorted(src_info[e, begin:begin + count].tolist())
            assert tokens == torch.nonzero((idx_s == expert).any(dim=1)).flatten().tolist()
            got = recv_x[0][e, begin:begin + count] if use_fp8 else recv_x[e, begin:begin + count]
            want = x_s[src_info[e, begin:begin + count].long()].float()
            if use_fp8:
                scales = recv_x[1][e, begin:begin + count]
                torch.testing.assert_close(dequantize(got.cpu(), scales.cpu(), ue8m0), want, rtol=0.13, atol=0.05)
            else:
                assert torch.equal(got.cpu().float(), want)
            total += count
        assert int(recv_count[e]) == total


def expected_combine(rank, num_ranks, step=0):
    """The expert side multiplies each row by (global expert + 1); out[t] = sum_k w[t,k] (e+1) x[t]."""
    import torch
    x, idx, w = inputs(rank, num_ranks, step)
    factor = (torch.where(idx >= 0, (idx + 1).float() * w, torch.zeros_like(w))).sum(dim=1)
    return x.float() * factor[:, None]


def expert_output(recv_x_bf16, rank):
    import torch
    scale = torch.arange(EXPERTS_PER_RANK, device=recv_x_bf16.device).float() + rank * EXPERTS_PER_RANK + 1
    return (recv_x_bf16.float() * scale[:, None, None]).bfloat16()


def make_buffer(group, num_ranks):
    from epcomm import deep_ep
    hint = deep_ep.Buffer.get_low_latency_rdma_size_hint(T, HIDDEN, num_ranks, EXPERTS_PER_RANK * num_ranks)
    return deep_ep.Buffer(group, 0, hint, low_latency_mode=True, num_qps_per_rank=EXPERTS_PER_RANK)


def body_modes(rank, num_ranks, group, use_fp8, round_scale, use_ue8m0, zero_copy, hook):
    import torch
    buffer = make_buffer(group, num_ranks)
    x, idx, w = (a.cuda() for a in inputs(rank, num_ranks))
    num_experts = EXPERTS_PER_RANK * num_ranks
    stats = torch.zeros(EXPERTS_PER_RANK, dtype=torch.int32, device="cuda")
    recv_x, recv_count, handle, event, recv_hook = buffer.low_latency_dispatch(
        x, idx, T, num_experts, cumulative_local_expert_recv_stats=stats, use_fp8=use_fp8,
        round_scale=round_scale, use_ue8m0=use_ue8m0, return_recv_hook=hook)
    if hook:
        recv_hook()
    torch.cuda.synchronize()
    assert torch.equal(stats, recv_count)
    src_info, layout_range = handle[0].cpu(), handle[1].cpu()
    assert handle[2:5] == (T, HIDDEN, num_experts)
    check_dispatch(rank, num_ranks, (recv_x[0].cpu(), recv_x[1].cpu()) if use_fp8 else recv_x.cpu(),
                   recv_count.cpu(), (src_info, layout_range), use_fp8, use_ue8m0)
    if use_fp8 and round_scale and not use_ue8m0:
        scales = recv_x[1][recv_x[1] > 0]
        assert torch.equal(torch.exp2(torch.log2(scales).round()), scales)  # powers of two

    # A BF16 dispatch (the second alive: the first's outputs stay valid) feeds the combine.
    bf16, count2, handle2, _, _ = buffer.low_latency_dispatch(x, idx, T, num_experts, use_fp8=False)
    assert torch.equal(count2, recv_count)
    y = expert_output(bf16, rank)
    if zero_copy:
        buffer.get_next_low_latency_combine_buffer(handle2).copy_(y)
    out = torch.full((x.size(0), HIDDEN), float("nan"), dtype=torch.bfloat16, device="cuda")  # poisoned
    combined, event, combine_hook = buffer.low_latency_combine(y, idx, w, handle2, zero_copy=zero_copy,
                                                               return_recv_hook=hook, out=out)
    if hook:
        combine_hook()
    assert combined is out
    torch.testing.assert_close(combined.float().cpu(), expected_combine(rank, num_ranks), rtol=2e-2, atol=2e-2)


def body_graph(rank, num_ranks, group):
    import torch
    buffer = make_buffer(group, num_ranks)
    num_experts = EXPERTS_PER_RANK * num_ranks
    x, idx, w = (a.cuda() for a in inputs(rank, num_ranks))
    buffer.clean_low_latency_buffer(T, HIDDEN, num_experts)  # makes the Buffer outside the capture

    def step():
        recv_x, _, handle, _, _ = buffer.low_latency_dispatch(x, idx, T, num_experts, use_fp8=False)
        combined, _, _ = buffer.low_latency_combine(expert_output(recv_x, rank), idx, w, handle)
        return combined

    step()  # warm-up
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = step()
    for replay in range(1, 4):
        new_x, new_idx, new_w = inputs(rank, num_ranks, step=replay)
        x.copy_(new_x)
        idx.copy_(new_idx)
        w.copy_(new_w)
        group_barrier(group)
        graph.replay()
        torch.cuda.synchronize()
        torch.testing.assert_close(out.float().cpu(), expected_combine(rank, num_ranks, replay), rtol=2e-2,
                                   atol=2e-2)


def group_barrier(group):
    import torch.distributed as dist
    dist.barrier(group=group)


MODES = [  # use_fp8, round_scale, use_ue8m0, zero_copy, hook
    (False, False, False, False, False), (True, False, False, False, False), (True, True, False, True, False),
    (True, True, True, False, True), (False, False, False, True, True)]


@pytest.mark.parametrize("num_ranks", [2, 4])
@pytest.mark.parametrize("mode", MODES)
def test_low_latency(num_ranks, mode):
    ranks.run(num_ranks, body_modes, *mode)


@pytest.mark.parametrize("num_ranks", [2, 4])
def test_cuda_graph_replay(num_ranks):
    ranks.run(num_ranks, body_graph)
