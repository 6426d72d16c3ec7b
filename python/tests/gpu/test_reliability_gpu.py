"""Rank masking and multi-domain mode through epcomm.deep_ep, and per-peer telemetry and kernel
timing through epcomm, ranks as processes sharing the GPU(s), checked against PyTorch written here
(inputs and oracle of test_high_throughput)."""

import pytest

import ranks
from test_high_throughput import EXPERTS_PER_RANK, HIDDEN, expected_dispatch, gathered_x, inputs


def expected_rows(dst, num_ranks, sources):
    """expected_dispatch's rows for rank dst, from `sources` only (a masked rank sends nothing)."""
    import torch
    rows, idx, _, _ = expected_dispatch(dst, num_ranks)
    keep = [i for i, (s, _) in enumerate(rows) if s in sources]
    kept_idx = idx[keep]
    counts = [int((kept_idx == e).sum()) for e in range(EXPERTS_PER_RANK)]
    return [rows[i] for i in keep], kept_idx, counts


def dispatch_combine(buffer, rank, num_ranks, sources):
    """One dispatch and combine of rank's inputs; checks both against the rows of `sources`."""
    import torch
    x, topk_idx, weights, _ = (a.cuda() for a in inputs(rank, num_ranks))
    per_rank, _, per_expert, in_rank, _ = buffer.get_dispatch_layout(topk_idx, EXPERTS_PER_RANK * num_ranks)
    recv_x, recv_idx, recv_w, counts, handle, _ = buffer.dispatch(
        x, num_tokens_per_rank=per_rank, is_token_in_rank=in_rank, num_tokens_per_expert=per_expert,
        topk_idx=topk_idx, topk_weights=weights)
    rows, ref_idx, ref_counts = expected_rows(rank, num_ranks, sources)
    assert torch.equal(recv_x.cpu(), gathered_x(rows, num_ranks))
    assert torch.equal(recv_idx.cpu(), ref_idx)
    assert counts == ref_counts
    # Unweighted combine of the received rows: x[t] times the live ranks holding an expert of t.
    combined, _, _ = buffer.combine(recv_x, handle, topk_weights=recv_w)
    owner = torch.where(topk_idx >= 0, topk_idx // EXPERTS_PER_RANK, torch.full_like(topk_idx, -1))
    live = sum((owner == r).any(dim=1).float() for r in sources)
    torch.testing.assert_close(combined.float(), x.float() * live[:, None], rtol=2e-2, atol=2e-2)


def body_mask(rank, num_ranks, group):
    """The last rank is masked by the others (it sits out), then every rank cleans the mask
    (collective) and the whole group works again."""
    import torch
    from epcomm import deep_ep

    masked = num_ranks - 1
    everyone = set(range(num_ranks))
    buffer = deep_ep.Buffer(group, num_nvl_bytes=256 << 20, explicitly_destroy=True)
    status = torch.full((num_ranks,), 7, dtype=torch.int32)
    if rank != masked:
        buffer.low_latency_update_mask_buffer(masked, True)
        buffer.low_latency_query_mask_buffer(status)
        assert status.tolist() == [int(r == masked) for r in range(num_ranks)]
        dispatch_combine(buffer, rank, num_ranks, everyone - {masked})
    buffer.low_latency_clean_mask_buffer()
    buffer.low_latency_query_mask_buffer(status)
    assert status.tolist() == [0] * num_ranks
    dispatch_combine(buffer, rank, num_ranks, everyone)
    torch.cuda.synchronize()
    buffer.destroy()


@pytest.mark.parametrize("num_ranks", [3, 4])
def test_masked_rank_sits_out_until_the_mask_is_cleaned(num_ranks):
    ranks.run(num_ranks, body_mask)


def body_multi_domain(rank, num_ranks, group, ranks_per_domain):
    """A multi-domain high-throughput Buffer (domains of ranks_per_domain ranks on one machine) sized
    by Config.get_rdma_buffer_size_hint: num_tokens_per_rdma_rank counts tokens per domain, and
    dispatch and combine move every row as in one domain."""
    import torch
    from epcomm import deep_ep

    config = deep_ep.Config()
    rdma = config.get_rdma_buffer_size_hint(HIDDEN * 2, num_ranks, max_tokens_per_rank=128,
                                            ranks_per_domain=ranks_per_domain)
    assert rdma > 0
    buffer = deep_ep.Buffer(group, num_nvl_bytes=256 << 20, num_rdma_bytes=rdma, explicitly_destroy=True,
                            ranks_per_domain=ranks_per_domain)
    _, topk_idx, _, _ = (a.cuda() for a in inputs(rank, num_ranks))
    _, per_domain, _, _, _ = buffer.get_dispatch_layout(topk_idx, EXPERTS_PER_RANK * num_ranks)
    domain_of_expert = topk_idx // (EXPERTS_PER_RANK * ranks_per_domain)
    expected = [int(((domain_of_expert == d) & (topk_idx >= 0)).any(dim=1).sum())
                for d in range(num_ranks // ranks_per_domain)]
    assert per_domain is not None and per_domain.tolist() == expected
    dispatch_combine(buffer, rank, num_ranks, set(range(num_ranks)))
    torch.cuda.synchronize()
    buffer.destroy()


@pytest.mark.parametrize("num_ranks, ranks_per_domain", [(2, 1), (4, 2), (4, 1)])
def test_multi_domain_through_deep_ep(num_ranks, ranks_per_domain):
    import epcomm
    if not epcomm.WITH_NVSHMEM:
        pytest.skip("the extension was built without NVSHMEM (epcomm.WITH_NVSHMEM is False)")
    ranks.run(num_ranks, body_multi_domain, ranks_per_domain)


def body_telemetry_and_timing(rank, num_ranks, group):
    """epcomm's own layer: per-peer telemetry counts the dispatch's bytes to every peer that gets
    tokens, clears on request; kernel timing names the kernels of the last call; no rank is masked."""
    import torch
    import epcomm
    from epcomm import torch_support as ts
    from epcomm.deep_ep.buffer import _group_all_gather

    boot = epcomm.callback_bootstrap(rank, num_ranks, _group_all_gather(group))
    device = torch.cuda.current_device()
    x, topk_idx, weights, _ = (a.cuda() for a in inputs(rank, num_ranks))
    with epcomm.Buffer(boot, num_nvl_bytes=256 << 20, allocator=ts.allocator(device), peer_telemetry=True) as buf:
        assert buf.masked_ranks() == [False] * num_ranks and buf.masked_rank_ids() == []
        buf.kernel_timing = True
        assert buf.kernel_timing
        s = ts.current_stream()
        layout = buf.get_dispatch_layout(topk_idx, EXPERTS_PER_RANK * num_ranks, stream=s)
        r = buf.dispatch(x, topk_idx=topk_idx, topk_weights=weights, layout=layout, stream=s)
        times = buf.last_kernel_times()
        assert times and all(isinstance(t, epcomm.KernelTime) and t.us > 0 for t in times)
        buf.combine(ts.to_torch(r.recv_x), r.handle, stream=s)
        torch.cuda.synchronize()
        records = buf.peer_telemetry(clear=True)
        owner = torch.where(topk_idx >= 0, topk_idx // EXPERTS_PER_RANK, torch.full_like(topk_idx, -1))
        sent = {p: 0 for p in range(num_ranks)}
        for rec in records.of_operation("dispatch"):
            sent[rec.peer] += rec.bytes_sent
        for p in range(num_ranks):
            if p != rank and bool((owner == p).any()):
                assert sent[p] > 0, (p, records)
        assert -1 <= records.slowest_peer() < num_ranks
        after = buf.peer_telemetry()
        assert all(rec.bytes_sent == rec.bytes_received == rec.wait_ns == 0 for rec in after)
        buf.kernel_timing = False
        buf.barrier(stream=s)
        assert buf.last_kernel_times() == []


@pytest.mark.parametrize("num_ranks", [2, 4])
def test_telemetry_and_kernel_timing(num_ranks):
    ranks.run(num_ranks, body_telemetry_and_timing)
