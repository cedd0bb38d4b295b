"""BYOL regression loss.

Grill et al. 2020, "Bootstrap Your Own Latent", Sec. 3.1, Eq. 2:
``L = || q_bar - z'_bar ||^2 = 2 - 2 <q, z'> / (||q|| ||z'||)`` between the online prediction and
the (stop-gradient) target projection. The symmetrised loss of Eq. 3 is the caller's sum of the
two view orders.

Deviations: none; the mean is over the batch, computed in float32.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from pretrainlab.core.losses._precision import float32_loss


@float32_loss
def byol_loss(online_pred: Tensor, target: Tensor) -> Tensor:
    """Normalised MSE ``mean_b(2 - 2 cos(p_b, z_b))`` with ``target`` detached.

    Args:
        online_pred: ``(B, D)`` online network predictions ``q_theta(z_theta)``.
        target: ``(B, D)`` target network projections ``z'_xi`` (detached here).

    Returns:
        Scalar loss in ``[0, 4]``.
    """
    p = F.normalize(online_pred.float(), dim=-1)
    z = F.normalize(target.detach().float(), dim=-1)
    return (2 - 2 * (p * z).sum(dim=-1)).mean()
