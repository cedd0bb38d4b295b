"""torchrun / DDP helpers.

Launching any pretrainlab command under ``torchrun --nproc_per_node=N`` makes it data-parallel:
``init_distributed`` reads torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``...) and joins the process group with NCCL on GPUs and gloo on CPUs. Multi-node
runs use torchrun's rendezvous, e.g. on every node::

    torchrun --nnodes=2 --nproc_per_node=8 --rdzv_backend=c10d \
        --rdzv_endpoint=HOST0:29500 --rdzv_id=myrun -m pretrainlab.core.cli clip pretrain ...
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    return rank() == 0


def init_distributed(device: torch.device | None = None) -> bool:
    """Join the process group when launched by torchrun; returns True when distributed."""
    if is_distributed():
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    use_cuda = device is not None and device.type == "cuda"
    backend = "nccl" if use_cuda else "gloo"
    if use_cuda:
        torch.cuda.set_device(device)
    dist.init_process_group(backend=backend)
    return True


def cleanup() -> None:
    if is_distributed():
        dist.destroy_process_group()


def barrier() -> None:
    if is_distributed():
        dist.barrier()


@contextlib.contextmanager
def rank_zero_first() -> Iterator[None]:
    """One-time preparation under torchrun (a cache, feature networks, geocells): rank 0 runs the
    body first while the other ranks wait at a barrier, then they run it (and find rank 0's result).
    Outside torchrun it just runs the body."""
    if not is_distributed():
        yield
        return
    if rank() != 0:
        dist.barrier()
    try:
        yield
    finally:
        if rank() == 0:
            dist.barrier()


class _AllGatherWithGrad(torch.autograd.Function):
    """All-gather whose backward sums the gradients of every rank and returns this rank's slice."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.batch = x.shape[0]
        out = [torch.empty_like(x) for _ in range(world_size())]
        dist.all_gather(out, x.contiguous())
        return torch.cat(out, dim=0)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        r = rank()
        return grad[r * ctx.batch:(r + 1) * ctx.batch]


def all_gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """``(B, ...)`` on each rank -> ``(world * B, ...)`` with gradients flowing to every rank.

    Identity when not distributed. Equal per-rank batch sizes are assumed (the trainer drops the
    last incomplete batch).
    """
    if not is_distributed() or world_size() == 1:
        return x
    return _AllGatherWithGrad.apply(x)


def all_reduce_grads(params: list[torch.nn.Parameter]) -> None:
    """Average gradients over ranks (used for tasks with several optimizer groups, outside DDP)."""
    if not is_distributed():
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= world_size()
    off = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[off:off + n].view_as(g))
        off += n
