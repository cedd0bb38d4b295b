"""Run under torchrun (2 gloo processes) by tests/clip/test_method.py: our rocket_loss against the
reference's CLIPLoss with utils.all_gather_batch (gathered rows carry no gradient), and BarLIP's
correlation averaged over ranks. Writes ``OUT/rank<r>.json``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F

from pretrainlab.clip.barlip import barlip_pair_loss
from pretrainlab.clip.rocket import rocket_loss


def main(out: Path) -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    g = torch.Generator().manual_seed(10 + rank)
    zi, zt = torch.randn(4, 8, generator=g, requires_grad=True), torch.randn(4, 8, generator=g, requires_grad=True)
    loss = rocket_loss(zi, zt, [], [], 5.0)["loss"]
    loss.backward()
    # ref losses.CLIPLoss with utils.all_gather_batch: gathered rows carry no gradient
    zi2, zt2 = zi.detach().clone().requires_grad_(), zt.detach().clone().requires_grad_()
    a, b = F.normalize(zi2), F.normalize(zt2)
    outs = [[torch.empty_like(a) for _ in range(world)] for _ in range(2)]
    dist.all_gather(outs[0], a.detach())
    dist.all_gather(outs[1], b.detach())
    a_all, b_all = torch.cat(outs[0]), torch.cat(outs[1])
    labels = torch.arange(4) + 4 * rank
    ref = (F.cross_entropy(5.0 * a @ b_all.t(), labels) + F.cross_entropy(5.0 * b @ a_all.t(), labels)) / 2
    ref.backward()
    # BarLIP: corr all-reduced and averaged (value), this rank's gradient
    v1, v2 = torch.randn(4, 6, generator=g), torch.randn(4, 6, generator=g)
    bt = barlip_pair_loss(v1, v2)
    corr = torch.einsum("bi,bj->ij", v1, v2) / 4
    dist.all_reduce(corr)
    corr /= world
    diag = torch.eye(6)
    cdif = (corr - diag).pow(2)
    cdif[~diag.bool()] *= 5e-3
    (out / f"rank{rank}.json").write_text(json.dumps({
        "loss": float(loss), "ref": float(ref), "grad_diff": float((zi.grad - zi2.grad).abs().max()),
        "bt": float(bt), "bt_ref": float(0.025 * cdif.sum())}))
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
