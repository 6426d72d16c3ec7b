"""High-throughput mode through epcomm.deep_ep on 2 and 4 ranks, checked against PyTorch written here.

Every rank rebuilds every rank's inputs from one seed, so each computes its expected outputs alone.
"""

import pytest

import ranks

HIDDEN = 256  # two FP8 scale blocks
EXPERTS_PER_RANK = 3
TOPK = 4


def inputs(rank, num_ranks):
    """Rank `rank`'s tokens: x [T, HIDDEN] bf16, topk_idx [T, TOPK] int64 (some -1), weights float32."""
    import torch
    g = torch.Generator().manual_seed(1000 + rank)
    num_tokens = 40 + 9 * rank  # ranks differ
    num_experts = EXPERTS_PER_RANK * num_ranks
    x = (torch.randn(num_tokens, HIDDEN, generator=g) + 0.5).bfloat16()  # never all zero
    scores = torch.rand(num_tokens, num_experts, generator=g)
    topk_idx = scores.topk(TOPK, dim=1).indices
    topk_idx[torch.rand(num_tokens, TOPK, generator=g) < 0.2] = -1  # masked slots
    weights = torch.rand(num_tokens, TOPK, generator=g)
    scales = torch.rand(num_tokens, HIDDEN // 128, generator=g) + 0.5
    return x, topk_idx, weights, scales


def expected_dispatch(dst, num_ranks, alignment=1):
    """Rows for rank dst in source-rank, then token order; topk as local ids (-1 elsewhere)."""
    import torch
    nle = EXPERTS_PER_RANK
    rows, idx, w, src = [], [], [], []
    counts = [0] * nle
    for s in range(num_ranks):
        x, topk_idx, weights, scales = inputs(s, num_ranks)
        for t in range(x.size(0)):
            mine = (topk_idx[t] >= 0) & (topk_idx[t] // nle == dst)
            if not mine.any():
                continue
            rows.append((s, t))
            local = torch.where(mine, topk_idx[t] % nle, torch.full_like(topk_idx[t], -1))
            idx.append(local)
            w.append(torch.where(mine, weights[t], torch.zeros_like(weights[t])))
            for e in local[local >= 0].tolist():
                counts[e] += 1
    counts = [(c + alignment - 1) // alignment * alignment for c in counts]
    return rows, torch.stack(idx), torch.stack(w), counts


def gathered_x(rows, num_ranks, fp8=False):
    import torch
    per_rank = [inputs(s, num_ranks) for s in range(num_ranks)]
    x = torch.stack([per_rank[s][0][t] for s, t in rows])
    scales = torch.stack([per_rank[s][3][t] for s, t in rows])
    return (x.to(torch.float8_e4m3fn), scales) if fp8 else x


def body_dispatch_combine(rank, num_ranks, group, fp8, async_mode):
    import torch
    from epcomm import deep_ep

    x, topk_idx, weights, scales = (a.cuda() for a in inputs(rank, num_ranks))
    num_experts = EXPERTS_PER_RANK * num_ranks
    buffer = deep_ep.Buffer(group, num_nvl_bytes=256 << 20, explicitly_destroy=True)
    previous = deep_ep.Buffer.capture() if async_mode else None
    per_rank, per_rdma, per_expert, in_rank, event = buffer.get_dispatch_layout(
        topk_idx, num_experts, previous_event=previous, async_finish=async_mode,
        allocate_on_comm_stream=async_mode)
    if async_mode:
        event.current_stream_wait()
    # Layout against PyTorch.
    owner = torch.where(topk_idx >= 0, topk_idx // EXPERTS_PER_RANK, torch.full_like(topk_idx, -1))
    ref_in_rank = torch.stack([(owner == r).any(dim=1) for r in range(num_ranks)], dim=1)
    assert per_rdma is None
    assert torch.equal(in_rank, ref_in_rank)
    assert torch.equal(per_rank.cpu(), ref_in_rank.sum(0).int().cpu())
    ref_per_expert = torch.bincount(topk_idx[topk_idx >= 0], minlength=num_experts).int()
    assert torch.equal(per_expert, ref_per_expert)

    # Dispatch with every argument.
    x_in = (x.to(torch.float8_e4m3fn), scales.t().contiguous().t()) if fp8 else x  # column-major scales
    recv_x, recv_idx, recv_w, counts, handle, event = buffer.dispatch(
        x_in, num_tokens_per_rank=per_rank, is_token_in_rank=in_rank, num_tokens_per_expert=per_expert,
        topk_idx=topk_idx, topk_weights=weights, expert_alignment=2, config=deep_ep.Config(8),
        previous_event=deep_ep.Buffer.capture() if async_mode else None, async_finish=async_mode)
    if async_mode:
        event.current_stream_wait()
    rows, ref_idx, ref_w, ref_counts = expected_dispatch(rank, num_ranks, alignment=2)
    assert handle.num_recv_tokens == len(rows)
    if fp8:
        ref_x, ref_scales = gathered_x(rows, num_ranks, fp8=True)
        assert torch.equal(recv_x[0].view(torch.uint8).cpu(), ref_x.view(torch.uint8))
        assert torch.equal(recv_x[1].cpu(), ref_scales)
    else:
        assert torch.equal(recv_x.cpu(), gathered_x(rows, num_ranks))
    assert torch.equal(recv_idx.cpu(), ref_idx) and torch.equal(recv_w.cpu(), ref_w)
    assert counts == ref_counts

    # Cached dispatch: same routing, new x, no layout.
    x2 = (x.float() * 2 - 1).bfloat16()
    cached, none1, none2, none3, none4, _ = buffer.dispatch(x2, handle=handle)
    assert (none1, none2, none3, none4) == (None, None, None, None)
    assert torch.equal(cached.cpu(), (gathered_x(rows, num_ranks).float() * 2 - 1).bfloat16())

    # Combine: the expert side scales its rows by (rank + 1); out[t] sums over t's ranks.
    y = (cached.float() * (rank + 1)).bfloat16()
    bias = torch.full_like(x, 0.25)
    combined, combined_w, event = buffer.combine(y, handle, topk_weights=recv_w, bias=bias,
                                                 async_finish=async_mode)
    if async_mode:
        event.current_stream_wait()
    factor = sum((owner == r).any(dim=1).float() * (r + 1) for r in range(num_ranks))
    expected = x2.float() * factor[:, None] + 0.25
    torch.testing.assert_close(combined.float(), expected, rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(combined_w, torch.where(topk_idx >= 0, weights, torch.zeros_like(weights)))
    buffer.destroy()


def body_worst_tokens(rank, num_ranks, group):
    import torch
    from epcomm import deep_ep

    x, topk_idx, weights, _ = (a.cuda() for a in inputs(rank, num_ranks))
    buffer = deep_ep.Buffer(group, num_nvl_bytes=256 << 20)
    per_rank, _, per_expert, in_rank, _ = buffer.get_dispatch_layout(topk_idx, EXPERTS_PER_RANK * num_ranks)
    worst = 60 * num_ranks
    recv_x, recv_idx, recv_w, counts, handle, _ = buffer.dispatch(
        x, num_tokens_per_rank=per_rank, is_token_in_rank=in_rank, num_tokens_per_expert=per_expert,
        topk_idx=topk_idx, topk_weights=weights, num_worst_tokens=worst)
    rows, ref_idx, _, _ = expected_dispatch(rank, num_ranks)
    assert recv_x.size(0) == worst and recv_idx.size(0) == worst
    assert torch.equal(recv_x[:len(rows)].cpu(), gathered_x(rows, num_ranks))
    assert torch.equal(recv_idx[:len(rows)].cpu(), ref_idx)
    assert bool((recv_idx[len(rows):] == -1).all())


@pytest.mark.parametrize("num_ranks", [2, 4])
@pytest.mark.parametrize("fp8", [False, True])
@pytest.mark.parametrize("async_mode", [False, True])
def test_dispatch_combine(num_ranks, fp8, async_mode):
    ranks.run(num_ranks, body_dispatch_combine, fp8, async_mode)


@pytest.mark.parametrize("num_ranks", [2, 4])
def test_worst_case_tokens(num_ranks):
    ranks.run(num_ranks, body_worst_tokens)


def body_size_hint_worst_case(rank, num_ranks, group):
    """Every token of every rank goes to every rank: the routing ht_nvl_bytes_hint sizes for. A Buffer
    of Config.get_nvl_buffer_size_hint's bytes takes it (BF16 and FP8 dispatch, worst-case mode,
    combine); one of 4096 bytes less refuses it, naming num_nvl_bytes."""
    import torch
    import epcomm
    from epcomm import deep_ep

    tokens = 64  # every rank: max_tokens_per_rank

    def rank_inputs(r):
        g = torch.Generator().manual_seed(3000 + r)
        return ((torch.randn(tokens, HIDDEN, generator=g) + 0.5).bfloat16(), torch.rand(tokens, TOPK, generator=g),
                torch.rand(tokens, HIDDEN // 128, generator=g) + 0.5)

    x, weights, scales = (a.cuda() for a in rank_inputs(rank))
    topk_idx = torch.full((tokens, TOPK), -1, dtype=torch.int64)
    for r in range(num_ranks):  # one expert on each rank (TOPK >= 4 >= num_ranks)
        topk_idx[:, r] = r * EXPERTS_PER_RANK + torch.arange(tokens) % EXPERTS_PER_RANK
    topk_idx = topk_idx.cuda()
    hint = deep_ep.Config().get_nvl_buffer_size_hint(HIDDEN * 2, num_ranks, max_tokens_per_rank=tokens,
                                                     max_topk=TOPK)
    assert hint == epcomm.ht_nvl_bytes_hint(tokens, HIDDEN, num_ranks, TOPK)
    num_experts = EXPERTS_PER_RANK * num_ranks
    expected_x = torch.cat([rank_inputs(s)[0] for s in range(num_ranks)])  # by source rank, then token

    buffer = deep_ep.Buffer(group, num_nvl_bytes=hint, explicitly_destroy=True)
    per_rank, _, per_expert, in_rank, _ = buffer.get_dispatch_layout(topk_idx, num_experts)
    layout = dict(num_tokens_per_rank=per_rank, is_token_in_rank=in_rank, num_tokens_per_expert=per_expert,
                  topk_idx=topk_idx, topk_weights=weights)
    recv_x, _, recv_w, _, handle, _ = buffer.dispatch(x, **layout)
    assert torch.equal(recv_x.cpu(), expected_x)
    (recv_fp8, recv_scales), _, _, _, _, _ = buffer.dispatch((x.to(torch.float8_e4m3fn), scales), **layout)
    assert torch.equal(recv_fp8.view(torch.uint8).cpu(), expected_x.to(torch.float8_e4m3fn).view(torch.uint8))
    worst, _, _, _, _, _ = buffer.dispatch(x, num_worst_tokens=num_ranks * tokens, **layout)
    assert torch.equal(worst.cpu(), expected_x)
    combined, _, _ = buffer.combine(recv_x, handle, topk_weights=recv_w)
    torch.testing.assert_close(combined.float(), x.float() * num_ranks, rtol=2e-2, atol=2e-2)
    buffer.destroy()

    small = deep_ep.Buffer(group, num_nvl_bytes=hint - 4096, explicitly_destroy=True)
    with pytest.raises(epcomm.InvalidArgumentError, match="num_nvl_bytes"):
        small.dispatch(x, **layout)
    torch.cuda.synchronize()
    small.destroy()


@pytest.mark.parametrize("num_ranks", [2, 4])
def test_size_hint_holds_the_worst_case(num_ranks):
    ranks.run(num_ranks, body_size_hint_worst_case)


def body_derived_layout(rank, num_ranks, group):
    """epcomm.Buffer.dispatch given topk_idx and num_experts alone (no layout call) receives what
    PyTorch computes here, and combine brings it back."""
    import torch
    from epcomm import deep_ep

    x, topk_idx, weights, _ = (a.cuda() for a in inputs(rank, num_ranks))
    buffer = deep_ep.Buffer(group, num_nvl_bytes=64 << 20, explicitly_destroy=True)
    native = buffer._ht  # the epcomm Buffer beneath
    got = native.dispatch(x, topk_idx=topk_idx, topk_weights=weights, num_experts=EXPERTS_PER_RANK * num_ranks)
    torch.cuda.synchronize()
    rows, ref_idx, ref_w, ref_counts = expected_dispatch(rank, num_ranks)
    host = lambda a: torch.from_dlpack(a).cpu()  # noqa: E731 (epcomm's outputs are DLPack producers)
    assert torch.equal(host(got.recv_x), gathered_x(rows, num_ranks))
    assert torch.equal(host(got.recv_topk_idx), ref_idx)
    assert torch.equal(host(got.recv_topk_weights), ref_w)
    assert list(got.num_recv_tokens_per_expert) == ref_counts
    combined = native.combine(got.recv_x, got.handle)
    torch.cuda.synchronize()
    sent = torch.tensor([sum(1 for r in range(num_ranks) if ((topk_idx[t] >= 0) &
                                                             (topk_idx[t] // EXPERTS_PER_RANK == r)).any())
                         for t in range(x.size(0))], dtype=torch.float32)
    want = (x.float().cpu() * sent[:, None]).bfloat16()
    assert torch.allclose(host(combined.x).float(), want.float(), rtol=1e-2, atol=1e-2)
    buffer.destroy()


@pytest.mark.parametrize("num_ranks", [2, 4])
def test_dispatch_derives_the_layout(num_ranks):
    ranks.run(num_ranks, body_derived_layout)


def body_other_device(rank, num_ranks, group):
    """A Buffer on cuda:0 refuses tensors on cuda:1 by name, in epcomm.deep_ep and in the extension."""
    import torch
    import epcomm
    from epcomm import deep_ep

    torch.cuda.set_device(0)
    x, topk_idx, _, _ = (a.cuda(0) for a in inputs(rank, num_ranks))
    buffer = deep_ep.Buffer(group, num_nvl_bytes=64 << 20, explicitly_destroy=True)
    with pytest.raises(epcomm.InvalidArgumentError, match=r"topk_idx: .*cuda:0.*cuda:1"):
        buffer.get_dispatch_layout(topk_idx.cuda(1), EXPERTS_PER_RANK * num_ranks)
    native = buffer._ht  # the epcomm Buffer beneath: the extension's own check
    with pytest.raises(epcomm.InvalidArgumentError, match=r"topk_idx: .*cuda:0.*cuda:1"):
        native.get_dispatch_layout(topk_idx.cuda(1), EXPERTS_PER_RANK * num_ranks)
    layout = native.get_dispatch_layout(topk_idx, EXPERTS_PER_RANK * num_ranks)
    with pytest.raises(epcomm.InvalidArgumentError, match=r"x: .*cuda:0.*cuda:1"):
        native.dispatch(x.cuda(1), layout=layout)
    buffer.destroy()


def test_tensor_on_another_device_is_refused():
    import torch
    if torch.cuda.device_count() < 2:
        pytest.skip("needs two GPUs")
    ranks.run(1, body_other_device)
