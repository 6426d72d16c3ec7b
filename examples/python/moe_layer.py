"""A Mixture-of-Experts layer, forward and backward, with epcomm.deep_ep (high-throughput mode).

    torchrun --nproc-per-node 2 examples/python/moe_layer.py
    build/tools/epcomm-run -n 2 python examples/python/moe_layer.py

Each rank holds EXPERTS_PER_RANK experts (two-layer MLPs). Forward: the router picks TOPK experts per
token, dispatch sends each token to the ranks holding them, every local expert runs on its rows,
and combine sums the weighted expert outputs back at the token's owner. Backward retraces it: the
gradient of combine is a cached dispatch (same routing, no layout), the gradient of dispatch a
combine. The result is checked against the same layer computed on one rank without communication.
"""

import os

import torch
import torch.distributed as dist

from epcomm import deep_ep

HIDDEN, FFN, EXPERTS_PER_RANK, TOPK, TOKENS = 256, 512, 4, 2, 64


class Dispatch(torch.autograd.Function):
    """x [T, hidden] -> rows received by this rank; backward is a combine."""

    @staticmethod
    def forward(ctx, x, topk_idx, topk_weights, buffer, num_experts):
        per_rank, per_rdma, per_expert, in_rank, _ = buffer.get_dispatch_layout(topk_idx, num_experts)
        recv_x, recv_idx, recv_w, counts, handle, _ = buffer.dispatch(
            x, num_tokens_per_rank=per_rank, num_tokens_per_rdma_rank=per_rdma, is_token_in_rank=in_rank,
            num_tokens_per_expert=per_expert, topk_idx=topk_idx, topk_weights=topk_weights)
        ctx.buffer, ctx.handle = buffer, handle
        ctx.mark_non_differentiable(recv_idx)
        return recv_x, recv_idx, recv_w, handle

    @staticmethod
    def backward(ctx, grad_x, grad_idx, grad_w, grad_handle):
        grad_in, grad_in_w, _ = ctx.buffer.combine(grad_x.contiguous(), ctx.handle,
                                                   topk_weights=None if grad_w is None else grad_w.contiguous())
        return grad_in, None, grad_in_w, None, None


class Combine(torch.autograd.Function):
    """Rows (in dispatch order) -> [T, hidden] sums at each token's owner; backward is a cached dispatch."""

    @staticmethod
    def forward(ctx, y, handle, buffer):
        out, _, _ = buffer.combine(y, handle)
        ctx.buffer, ctx.handle = buffer, handle
        return out

    @staticmethod
    def backward(ctx, grad_out):
        grad_y, _, _, _, _, _ = ctx.buffer.dispatch(grad_out.contiguous(), handle=ctx.handle)
        return grad_y, None, None


class MoE(torch.nn.Module):
    def __init__(self, buffer, rank, num_ranks):
        super().__init__()
        self.buffer, self.num_experts = buffer, EXPERTS_PER_RANK * num_ranks
        g = torch.Generator().manual_seed(0)  # every rank builds every expert's weights alike
        self.router = torch.nn.Parameter(torch.randn(HIDDEN, self.num_experts, generator=g) / HIDDEN ** 0.5)
        w1 = torch.randn(self.num_experts, HIDDEN, FFN, generator=g) / HIDDEN ** 0.5
        w2 = torch.randn(self.num_experts, FFN, HIDDEN, generator=g) / FFN ** 0.5
        mine = slice(rank * EXPERTS_PER_RANK, (rank + 1) * EXPERTS_PER_RANK)
        self.w1, self.w2 = torch.nn.Parameter(w1[mine].clone()), torch.nn.Parameter(w2[mine].clone())
        self.all_w1, self.all_w2 = w1, w2  # for the single-rank check only

    def route(self, x):
        weights, topk_idx = torch.softmax(x.float() @ self.router, dim=1).topk(TOPK, dim=1)
        return topk_idx, weights

    def forward(self, x):
        topk_idx, weights = self.route(x)
        recv_x, recv_idx, recv_w, handle = Dispatch.apply(x, topk_idx, weights, self.buffer, self.num_experts)
        y = torch.zeros_like(recv_x, dtype=torch.float32)
        for e in range(EXPERTS_PER_RANK):  # each local expert on the rows that selected it, weighted
            rows, slot = torch.nonzero(recv_idx == e, as_tuple=True)
            h = torch.relu(recv_x[rows].float() @ self.w1[e]) @ self.w2[e]
            y = y.index_add(0, rows, h * recv_w[rows, slot, None])
        return Combine.apply(y.bfloat16(), handle, self.buffer)

    def reference(self, x):
        """The same layer on one rank, no communication (what the distributed layer must equal)."""
        topk_idx, weights = self.route(x)
        out = torch.zeros_like(x, dtype=torch.float32)
        for k in range(TOPK):
            for e in range(self.num_experts):
                rows = torch.nonzero(topk_idx[:, k] == e).flatten()
                w1, w2 = self.all_w1[e].to(x.device), self.all_w2[e].to(x.device)
                h = torch.relu(x[rows].float() @ w1) @ w2
                out = out.index_add(0, rows, h * weights[rows, k, None])
        return out


def main():
    dist.init_process_group("gloo")  # the Buffer bootstraps over the group; NCCL works alike
    rank, num_ranks = dist.get_rank(), dist.get_world_size()
    torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", rank)) % torch.cuda.device_count())
    group = dist.new_group(list(range(num_ranks)))
    buffer = deep_ep.Buffer(group, num_nvl_bytes=64 << 20)
    layer = MoE(buffer, rank, num_ranks).cuda()

    x = torch.randn(TOKENS, HIDDEN, generator=torch.Generator().manual_seed(rank)).bfloat16().cuda()
    x.requires_grad_(True)
    out = layer(x)
    out.float().square().sum().backward()  # backward: cached dispatch, then combine

    ref = layer.reference(x.detach())
    torch.testing.assert_close(out.float(), ref, rtol=5e-2, atol=5e-2)
    assert x.grad is not None and x.grad.shape == x.shape and layer.w1.grad is not None
    print(f"rank {rank}: forward matches the single-rank layer; backward ran "
          f"(|dx| = {x.grad.float().norm():.3f}, |dw1| = {layer.w1.grad.norm():.3f})")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
