"""3D detector for fine-tuning: the pillar BEV backbone + a CenterPoint-style head (Yin et al. 2021).

The paper fine-tunes OpenPCDet's SECOND and Voxel R-CNN; this package uses one single-stage BEV
detector (deviation, for a CPU-sized reproduction): class heat-maps (Car, Pedestrian, Cyclist;
Gaussian targets with CenterNet's radius rule, focal loss) and box regression at object centres
(cell offset x, y, z, log l, log w, log h, sin yaw, cos yaw; L1), decoded by 3x3 peak picking and
rotated-box NMS (``rotated_iou.rotated_nms``).

Batch: ``{"points": (B,N,4), "mask": (B,N), "boxes": (B,K,7), "labels": (B,K)}`` (label -1 = padding).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pretrainlab.core.train import Task
from pretrainlab.lidar.config import DetectConfig
from pretrainlab.lidar.formats import Object3D
from pretrainlab.lidar.pillar_backbone import PillarBEVBackbone
from pretrainlab.lidar.rigid_transforms import apply_boxes, apply_points, sample_transforms
from pretrainlab.lidar.rotated_iou import rotated_nms

REG_DIM = 8  # dx, dy, z, log l, log w, log h, sin, cos


def gaussian_radius(h: Tensor, w: Tensor, min_overlap: float) -> Tensor:
    """CenterNet / CenterPoint ``gaussian_radius`` (three quadratic cases), vectorised: ``(...)`` -> ``(...)``."""
    b1, c1 = h + w, w * h * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + torch.sqrt((b1 ** 2 - 4 * c1).clamp_min(0))) / 2
    b2, c2 = 2 * (h + w), (1 - min_overlap) * w * h
    r2 = (b2 + torch.sqrt((b2 ** 2 - 16 * c2).clamp_min(0))) / 2
    a3, b3, c3 = 4 * min_overlap, -2 * min_overlap * (h + w), (min_overlap - 1) * w * h
    r3 = (b3 + torch.sqrt((b3 ** 2 - 4 * a3 * c3).clamp_min(0))) / 2
    return torch.minimum(torch.minimum(r1, r2), r3)


def focal_loss(pred_logits: Tensor, target: Tensor, alpha: float = 2.0, beta: float = 4.0) -> Tensor:
    """CenterNet penalty-reduced focal loss over heat-maps ``(B, C, H, W)``; normalised by positives."""
    p = torch.sigmoid(pred_logits.float()).clamp(1e-4, 1 - 1e-4)
    pos = target.eq(1).float()
    neg = 1 - pos
    pos_loss = torch.log(p) * (1 - p) ** alpha * pos
    neg_loss = torch.log(1 - p) * p ** alpha * (1 - target) ** beta * neg
    n = pos.sum().clamp_min(1.0)
    return -(pos_loss.sum() + neg_loss.sum()) / n


class DetectorTask(Task):
    """Backbone + CenterPoint head; ``forward`` returns the training losses, ``predict`` the boxes."""

    def __init__(self, cfg: DetectConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = PillarBEVBackbone(cfg.backbone)
        C, hc, nc = self.backbone.out_channels, cfg.head.head_channels, len(cfg.head.classes)
        self.shared = nn.Sequential(nn.Conv2d(C, hc, 3, 1, 1, bias=False), nn.BatchNorm2d(hc), nn.ReLU(inplace=True))
        self.hm = nn.Sequential(nn.Conv2d(hc, hc, 3, 1, 1), nn.ReLU(inplace=True), nn.Conv2d(hc, nc, 1))
        self.reg = nn.Sequential(nn.Conv2d(hc, hc, 3, 1, 1), nn.ReLU(inplace=True), nn.Conv2d(hc, REG_DIM, 1))
        nn.init.constant_(self.hm[-1].bias, -2.19)  # CenterPoint prior: sigmoid = 0.1

    def heads(self, points: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """``(B,N,4), (B,N)`` -> heat-map logits ``(B, n_cls, H, W)``, regression ``(B, 8, H, W)``."""
        x = self.shared(self.backbone(points, mask, self.cfg.data.detect_range))
        return self.hm(x), self.reg(x)

    def targets(self, boxes: Tensor, labels: Tensor, H: int, W: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Heat-map ``(B,C,H,W)``, centre indices ``(B,K)``, regression targets ``(B,K,8)``, valid ``(B,K)``."""
        r = self.cfg.data.detect_range
        v = self.cfg.backbone.voxel_size
        nc = len(self.cfg.head.classes)
        fx = (boxes[..., 0] - r[0]) / v
        fy = (boxes[..., 1] - r[1]) / v
        ix, iy = fx.floor().long(), fy.floor().long()
        valid = (labels >= 0) & (ix >= 0) & (ix < W) & (iy >= 0) & (iy < H)
        radius = gaussian_radius(boxes[..., 3] / v, boxes[..., 4] / v, self.cfg.head.min_overlap)
        radius = radius.floor().clamp_min(self.cfg.head.min_radius)
        sigma = (2 * radius + 1) / 6
        # the Gaussians of the valid boxes only (most of the K slots are padding), each max-merged into
        # its (scan, class) map: the same values as the dense (B, K, C, H, W) product and its amax over K
        B = boxes.shape[0]
        b, k = valid.nonzero(as_tuple=True)
        xs = torch.arange(W, device=boxes.device, dtype=boxes.dtype)
        ys = torch.arange(H, device=boxes.device, dtype=boxes.dtype)
        dx2 = (xs[None, None, :] - ix[b, k, None, None].to(boxes.dtype)) ** 2
        dy2 = (ys[None, :, None] - iy[b, k, None, None].to(boxes.dtype)) ** 2
        g = torch.exp(-(dx2 + dy2) / (2 * sigma[b, k, None, None] ** 2))  # (n_valid, H, W)
        dst = (b * nc + labels[b, k])[:, None].expand(-1, H * W)
        heat = boxes.new_zeros(B * nc, H * W).scatter_reduce_(0, dst, g.flatten(1), "amax").view(B, nc, H, W)
        idx = (iy.clamp(0, H - 1) * W + ix.clamp(0, W - 1))
        reg = torch.stack([fx - ix, fy - iy, boxes[..., 2], boxes[..., 3].clamp_min(1e-3).log(),
                           boxes[..., 4].clamp_min(1e-3).log(), boxes[..., 5].clamp_min(1e-3).log(),
                           torch.sin(boxes[..., 6]), torch.cos(boxes[..., 6])], -1)
        return heat, idx, reg, valid

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        pts, mask, boxes, labels = batch["points"], batch["mask"], batch["boxes"], batch["labels"]
        a = self.cfg.augment
        if self.training and (a.flip_p > 0 or a.rotation > 0):
            t = sample_transforms(pts.shape[0], (-a.rotation, a.rotation), 0.0, a.scale_range, a.flip_p, pts.device)
            pts, boxes = apply_points(pts, t), apply_boxes(boxes, t)
        hm, reg = self.heads(pts, mask)
        _B, _, H, W = hm.shape
        heat, idx, reg_t, valid = self.targets(boxes.float(), labels, H, W)
        l_hm = focal_loss(hm, heat)
        pred = torch.gather(reg.float().flatten(2), 2, idx[:, None, :].expand(-1, REG_DIM, -1)).transpose(1, 2)
        vm = valid[..., None].float()
        l_reg = (F.l1_loss(pred, reg_t, reduction="none") * vm).sum() / (vm.sum() * REG_DIM).clamp_min(1.0)
        h = self.cfg.head
        return {"loss": h.hm_weight * l_hm + h.reg_weight * l_reg, "hm": l_hm, "reg": l_reg}

    @torch.no_grad()
    def decode(self, hm: Tensor, reg: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Top-K peaks -> boxes ``(B, K, 7)``, scores ``(B, K)``, classes ``(B, K)`` (before NMS)."""
        r = self.cfg.data.detect_range
        v = self.cfg.backbone.voxel_size
        _B, C, H, W = hm.shape
        p = torch.sigmoid(hm.float())
        peak = (F.max_pool2d(p, 3, 1, 1) == p).float() * p
        k = min(self.cfg.head.top_k, C * H * W)
        scores, flat = peak.flatten(1).topk(k)
        cls = flat // (H * W)
        cell = flat % (H * W)
        iy, ix = cell // W, cell % W
        rg = torch.gather(reg.float().flatten(2), 2, cell[:, None, :].expand(-1, REG_DIM, -1)).transpose(1, 2)
        x = (ix.float() + rg[..., 0]) * v + r[0]
        y = (iy.float() + rg[..., 1]) * v + r[1]
        dims = rg[..., 3:6].clamp(-5, 5).exp()
        yaw = torch.atan2(rg[..., 6], rg[..., 7])
        boxes = torch.cat([x[..., None], y[..., None], rg[..., 2:3], dims, yaw[..., None]], -1)
        return boxes, scores, cls

    @torch.no_grad()
    def predict(self, points: Tensor, mask: Tensor) -> list[list[Object3D]]:
        """Detections per scan after score threshold and per-class rotated NMS."""
        was = self.training
        self.eval()
        hm, reg = self.heads(points, mask)
        boxes, scores, cls = (t.cpu().numpy() for t in self.decode(hm, reg))
        self.train(was)
        h = self.cfg.head
        out: list[list[Object3D]] = []
        for b in range(len(boxes)):
            dets: list[Object3D] = []
            for c, name in enumerate(h.classes):
                sel = (cls[b] == c) & (scores[b] >= h.score_threshold)
                if not sel.any():
                    continue
                bb, ss = boxes[b][sel], scores[b][sel]
                for i in rotated_nms(bb, ss, h.nms_iou, h.max_per_scan):
                    dets.append(Object3D(name, bb[i].astype(np.float32), score=float(ss[i])))
            dets.sort(key=lambda o: -(o.score or 0.0))
            out.append(dets[: h.max_per_scan])
        return out
