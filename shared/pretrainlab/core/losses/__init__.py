"""Field-independent self-supervised losses (one file per family, named after the paper's term).

All losses compute in float32 (inputs are cast with ``.float()`` and autocast is disabled inside
them, see ``_precision.float32_loss``), so they are safe under bf16 autocast; none calls
``.item()``.
"""

from pretrainlab.core.losses.barlow_twins import barlow_twins_loss
from pretrainlab.core.losses.byol import byol_loss
from pretrainlab.core.losses.clip import clip_loss
from pretrainlab.core.losses.equivariance import equivariance_classification_loss, rotation_bins
from pretrainlab.core.losses.infonce import info_nce, nt_xent
from pretrainlab.core.losses.masked_reconstruction import masked_l1
from pretrainlab.core.losses.point_infonce import point_info_nce
from pretrainlab.core.losses.swav import sinkhorn_knopp, swav_loss

__all__ = [
    "barlow_twins_loss",
    "byol_loss",
    "clip_loss",
    "equivariance_classification_loss",
    "info_nce",
    "masked_l1",
    "nt_xent",
    "point_info_nce",
    "rotation_bins",
    "sinkhorn_knopp",
    "swav_loss",
]
