"""Random rigid transforms of point clouds (paper Sec. 3.2: rotation, translation, scaling, flip).

A view is ``p' = s * R(theta) * F(p) + t`` with ``F`` the y-flip (``y -> -y``) applied with
probability ``flip_p``, ``R`` a rotation about z, ``s`` an isotropic scale and ``t`` a translation
in the ground plane. All batched on the device: ``params`` holds ``(B,)`` tensors.
"""

from __future__ import annotations

import torch
from torch import Tensor


def sample_transforms(B: int, rotation_range: tuple[float, float], translation_max: float,
                      scale_range: tuple[float, float], flip_p: float, device: torch.device | str) -> dict[str, Tensor]:
    """``{"theta", "scale", "flip", "tx", "ty"}``, each ``(B,)``; translation norm uniform in [0, max]."""
    u = torch.rand(B, 6, device=device)
    theta = rotation_range[0] + (rotation_range[1] - rotation_range[0]) * u[:, 0]
    scale = scale_range[0] + (scale_range[1] - scale_range[0]) * u[:, 1]
    flip = (u[:, 2] < flip_p).float()
    r = translation_max * u[:, 3]
    phi = 2 * torch.pi * u[:, 4]
    return {"theta": theta, "scale": scale, "flip": flip, "tx": r * torch.cos(phi), "ty": r * torch.sin(phi)}


def rotation_only(theta: Tensor) -> dict[str, Tensor]:
    """Transform parameters of a pure rotation by ``theta (B,)`` about the origin."""
    z = torch.zeros_like(theta)
    return {"theta": theta, "scale": torch.ones_like(theta), "flip": z, "tx": z, "ty": z}


def apply_xy(xy: Tensor, p: dict[str, Tensor]) -> Tensor:
    """Transform ``(B, N, 2)`` ground-plane coordinates."""
    x = xy[..., 0]
    y = xy[..., 1] * (1 - 2 * p["flip"][:, None])
    c, s = torch.cos(p["theta"])[:, None], torch.sin(p["theta"])[:, None]
    sc = p["scale"][:, None]
    return torch.stack([sc * (c * x - s * y) + p["tx"][:, None], sc * (s * x + c * y) + p["ty"][:, None]], -1)


def apply_points(points: Tensor, p: dict[str, Tensor]) -> Tensor:
    """``(B, N, 4)`` points (x, y, z, intensity) -> transformed (z scaled too, intensity kept)."""
    xy = apply_xy(points[..., :2], p)
    z = points[..., 2:3] * p["scale"][:, None, None]
    return torch.cat([xy, z, points[..., 3:]], -1)


def apply_boxes(boxes: Tensor, p: dict[str, Tensor]) -> Tensor:
    """``(B, K, 7)`` boxes (x, y, z, l, w, h, yaw) -> transformed; the yaw flips and rotates."""
    xy = apply_xy(boxes[..., :2], p)
    sc = p["scale"][:, None, None]
    yaw = boxes[..., 6] * (1 - 2 * p["flip"][:, None]) + p["theta"][:, None]
    yaw = torch.atan2(torch.sin(yaw), torch.cos(yaw))
    return torch.cat([xy, boxes[..., 2:3] * sc, boxes[..., 3:6] * sc, yaw[..., None]], -1)
