"""The generator and discriminator losses of the paper (Sec. 3.2), one function per term.

- content (ref: losses/vgg_loss.py): ``2 * sum((phi(G(x)) - phi(ref))^2) / (numel / B)`` on VGG
  relu5_4 features of the Lab L channel; ``ref`` = the conventional-ISP render of the same RAW
  (unpaired) or the target (paired);
- total variation (ref: losses/tv_loss.py, DPED): ``2 * (tv_x / N_x + tv_y / N_y) / B`` with
  ``tv = sum(diff^2) / 2`` (TF ``l2_loss``) and ``N = C * (H - 1) * W`` etc.;
- relativistic softplus GAN (ref: losses/gan_loss.py, R3GAN): D minimises ``softplus(D(fake) - D(real))``,
  G minimises ``softplus(D(real) - D(fake))``; D adds the zero-centred R1 (real) and R2 (fake)
  penalties ``gamma / 2 * 100 * ||grad_input D||^2`` per sample (the reference multiplies each squared
  gradient norm by 100 before ``gamma / 2``: effective weight 500 at gamma 10; ``loss.r_scale``),
  gradients w.r.t. the discriminator's input features;
- gradient-norm balancing: each generator term is divided by ``||grad_theta L_i||`` (detached),
  then multiplied by its config weight. The returned total keeps the value ``sum_i w_i L_i`` (for
  readable logs) while its gradient is the balanced ``sum_i w_i grad L_i / ||grad L_i||``.
All losses are computed in float32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def content_loss(f_fake: torch.Tensor, f_ref: torch.Tensor) -> torch.Tensor:
    """``2 * MSE_sum / (numel / B)`` between feature maps ``(B, C, h, w)`` (ref: compute_content_loss)."""
    d = f_fake.float() - f_ref.float()
    return 2.0 * (d * d).sum() / (d.numel() / d.shape[0])


def tv_loss(x: torch.Tensor) -> torch.Tensor:
    """Total variation of ``(B, C, H, W)``: ``2 * (tv_x / N_x + tv_y / N_y) / B``, ``tv = sum(diff^2) / 2``."""
    x = x.float()
    b, c, h, w = x.shape
    tv_y = ((x[:, :, 1:, :] - x[:, :, :-1, :]) ** 2).sum() / 2
    tv_x = ((x[:, :, :, 1:] - x[:, :, :, :-1]) ** 2).sum() / 2
    return 2.0 * (tv_x / (c * h * (w - 1)) + tv_y / (c * (h - 1) * w)) / b


def relativistic_g_loss(d_fake: torch.Tensor, d_real: torch.Tensor) -> torch.Tensor:
    """Generator side of the relativistic pairing GAN: ``mean softplus(D(real) - D(fake))``."""
    return F.softplus(d_real.float() - d_fake.float()).mean()


def relativistic_d_loss(d_fake: torch.Tensor, d_real: torch.Tensor) -> torch.Tensor:
    """Discriminator side: ``mean softplus(D(fake) - D(real))``."""
    return F.softplus(d_fake.float() - d_real.float()).mean()


def zero_centred_penalty(d_out: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """``E_batch ||grad_inputs D||^2`` (R1 on real inputs, R2 on fake ones), differentiable."""
    (g,) = torch.autograd.grad(d_out.float().sum(), inputs, create_graph=True)
    return g.float().pow(2).reshape(g.shape[0], -1).sum(dim=1).mean()


def discriminator_loss(disc: nn.Module, real: torch.Tensor, fake: torch.Tensor, r1_gamma: float,
                       r2_gamma: float, r_scale: float = 100.0) -> dict[str, torch.Tensor]:
    """Relativistic D loss + gamma / 2 * r_scale * (R1 + R2) on detached inputs (ref: compute_discriminator_loss).

    Returns ``{"adv", "r1", "r2", "total"}`` (``r1`` / ``r2`` unscaled batch means of ``||grad||^2``).
    """
    real = real.detach().float().requires_grad_(True)
    fake = fake.detach().float().requires_grad_(True)
    dr, df = disc(real), disc(fake)
    adv = relativistic_d_loss(df, dr)
    r1 = zero_centred_penalty(dr, real) if r1_gamma > 0 else dr.new_zeros(())
    r2 = zero_centred_penalty(df, fake) if r2_gamma > 0 else df.new_zeros(())
    total = adv + 0.5 * r1_gamma * r_scale * r1 + 0.5 * r2_gamma * r_scale * r2
    return {"adv": adv, "r1": r1, "r2": r2, "total": total}


def grad_norm(loss: torch.Tensor, params: list[nn.Parameter]) -> torch.Tensor:
    """``||grad_params loss||_2`` (detached), keeping the graph for the real backward pass."""
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    sq = [g.float().pow(2).sum() for g in grads if g is not None]
    if not sq:
        return loss.new_ones(()).float()
    return torch.stack(sq).sum().sqrt().detach()


def balance(terms: dict[str, torch.Tensor], weights: dict[str, float], params: list[nn.Parameter],
            mode: str = "grad_norm", eps: float = 1e-8,
            norms_in: dict[str, torch.Tensor] | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``sum_i w_i * L_i / ||grad_theta L_i||`` (paper) or ``sum_i w_i * L_i`` (``mode="none"``).

    ``norms_in``: gradient norms computed at an earlier step (``loss.balance_every > 1``).
    Returns the total and the per-term gradient norms.
    """
    total = torch.zeros((), device=next(iter(terms.values())).device)
    norms: dict[str, torch.Tensor] = {}
    for k, v in terms.items():
        w = weights.get(k, 1.0)
        if w == 0:
            continue
        if mode == "grad_norm":
            n = norms_in[k] if norms_in is not None and k in norms_in else grad_norm(v, params)
            norms[k] = n
            v = v.float()
            # value = w * L (readable logs); gradient = w * grad L / ||grad L|| (the paper's balancing)
            total = total + w * (v.detach() + (v - v.detach()) / (n + eps))
        elif mode == "none":
            total = total + w * v.float()
        else:
            raise ValueError(f"unknown loss.balance '{mode}' (grad_norm | none)")
    return total, norms
