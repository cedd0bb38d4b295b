"""The paper's lightweight RAW-to-RGB generators (Sec. 3.1), layer for layer as the reference code.

Module names are the reference's (ref: pretrained/model.py), so its released ``.pth`` state dicts
load with ``strict=True``:

- EfficientISP (3,060 params; ``conv1..3``): conv 4->12, 12->12, 12->12 (3x3) with tanh / ReLU /
  ReLU, pixel_shuffle x2: ``(B, 4, h, w)`` packed RAW -> ``(B, 3, 2h, 2w)``. (ref: ``EfficientISP``,
  also ``models.BaselineModel`` of the training code.)
- RobustISP (1,616 params; ``conv1..3``): conv 4->16, 16->4, 4->12 (3x3) with tanh / ReLU / ReLU,
  pixel_shuffle x2. (ref: ``RobustISP``)
- RMFA-Net tiny (29,223 params; ``input_module``, ``rmfa_blocks.{0,1}``, ``output_module``): 2 RMFA
  blocks of width 16 on the full-resolution R / G / B planes of the mosaic (ones where a colour
  has no sample, :func:`~pretrainlab.isp.bayer.rgb_planes`), sigmoid output. Each block: a texture
  module (1x1 and 3x3 convs, concatenated), a tone-mapping module (two average-pooled levels, a
  bilinear x2 / x2 path, reflectance = x - illumination), a 3x3 fusion conv, CBAM channel attention
  (avg + max pooled over the WHOLE frame, reduction 16) and spatial attention (7x7), residual.
  (ref: ``RMFANet(num_blocks=2, width=16)`` = ``create_tiny_rmfa_net``.)

Every generator's ``forward`` takes the normalised packed RAW ``(B, 4, h, w)``; RMFA-Net tiny turns it
into its planes first (``forward_planes`` is the reference forward on ``(B, 3, H, W)``). Its channel
attention pools over the whole input, so it must be run on whole frames, never on tiles.
Deviation: the reference RMFA-Net fails on planes whose sides are not multiples of 4 (the
tone-mapping levels cannot be added); ours reflect-pads such planes by 2 pixels (keeping the Bayer
phase) and crops the output.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from pretrainlab.isp.bayer import rgb_planes


class EfficientISP(nn.Module):
    """``(B, 4, h, w)`` -> ``(B, 3, 2h, 2w)``; 3,060 parameters (ref: pretrained/model.py EfficientISP)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(4, 12, 3, padding=1)
        self.conv2 = nn.Conv2d(12, 12, 3, padding=1)
        self.conv3 = nn.Conv2d(12, 12, 3, padding=1)

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        x = torch.tanh(self.conv1(raw))
        x = F.relu(self.conv2(x))
        x = F.relu(self.conv3(x))
        return F.pixel_shuffle(x, 2)


class RobustISP(nn.Module):
    """``(B, 4, h, w)`` -> ``(B, 3, 2h, 2w)``; 1,616 parameters (ref: pretrained/model.py RobustISP)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(4, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 4, 3, padding=1)
        self.conv3 = nn.Conv2d(4, 12, 3, padding=1)

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        x = torch.tanh(self.conv1(raw))
        x = F.relu(self.conv2(x))
        x = F.relu(self.conv3(x))
        return F.pixel_shuffle(x, 2)


class ChannelAttention(nn.Module):
    """CBAM channel attention: ``sigmoid(fc(avgpool x) + fc(maxpool x)) * x`` over the whole frame."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.fc = nn.Sequential(nn.Conv2d(channels, channels // reduction, 1, bias=False), nn.ReLU(),
                                nn.Conv2d(channels // reduction, channels, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.fc(x.mean(dim=(2, 3), keepdim=True)) + self.fc(x.amax(dim=(2, 3), keepdim=True))
        return torch.sigmoid(a) * x


class SpatialAttention(nn.Module):
    """CBAM spatial attention: ``sigmoid(conv7x7([mean_c x, max_c x])) * x``."""

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.conv(torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1))
        return torch.sigmoid(a) * x


class TextureModule(nn.Module):
    """``[relu(conv1x1 x), relu(conv3x3 x)]`` with ``out // 2`` channels each."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.high_freq = nn.Sequential(nn.Conv2d(cin, cout // 2, 1), nn.ReLU())
        self.low_freq = nn.Sequential(nn.Conv2d(cin, cout // 2, 3, padding=1), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.high_freq(x), self.low_freq(x)], dim=1)


class ToneMappingModule(nn.Module):
    """Reflectance ``x - illumination``; illumination from two 2x average-pooled levels, upsampled back."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.level1 = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(cin, cin, 3, padding=1), nn.ReLU())
        self.level2 = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(cin, cin, 3, padding=1), nn.ReLU())
        self.level3 = nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU())

    @staticmethod
    def _up(x: torch.Tensor) -> torch.Tensor:  # ref: nn.Upsample(scale_factor=2, bilinear, align_corners=False)
        return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.level1(x)
        x3 = self.level3(self.level2(x1))
        illumination = self._up(x1 + self._up(x3))
        if illumination.shape != x.shape:
            illumination = F.interpolate(illumination, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return x - illumination


class RMFABlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.texture_module = TextureModule(channels, channels)
        self.tone_mapping = ToneMappingModule(channels, channels)
        self.fusion = nn.Sequential(nn.Conv2d(2 * channels, channels, 3, padding=1), nn.ReLU())
        self.channel_attention = ChannelAttention(channels)
        self.spatial_attention = SpatialAttention()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.fusion(torch.cat([self.texture_module(x), self.tone_mapping(x)], dim=1))
        return self.spatial_attention(self.channel_attention(y)) + x


class RMFANet(nn.Module):
    """RMFA-Net; tiny = 2 blocks of width 16 (ref: ``create_tiny_rmfa_net``).

    ``forward``: normalised packed ``(B, 4, h, w)`` -> planes -> ``(B, 3, 2h, 2w)`` in (0, 1).
    """

    def __init__(self, num_blocks: int = 2, width: int = 16, pattern: str = "RGGB") -> None:
        super().__init__()
        self.pattern = pattern
        self.input_module = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.Conv2d(width, width, 3, padding=1),
                                          nn.Tanh())
        self.rmfa_blocks = nn.ModuleList([RMFABlock(width) for _ in range(num_blocks)])
        self.output_module = nn.Sequential(nn.Conv2d(width, 3, 3, padding=1), nn.Sigmoid())

    def forward_planes(self, x: torch.Tensor) -> torch.Tensor:
        """The reference forward: R / G / B planes ``(B, 3, H, W)`` -> ``(B, 3, H, W)``."""
        h, w = x.shape[-2:]
        ph, pw = (-h) % 4, (-w) % 4
        if ph or pw:  # deviation (see the module docstring): the reference fails here
            x = F.pad(x, (0, pw, 0, ph), mode="reflect")
        out = self.input_module(x)
        for block in self.rmfa_blocks:
            out = block(out)
        return self.output_module(out)[..., :h, :w]

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        return self.forward_planes(rgb_planes(raw, self.pattern))


GENERATORS = {"efficientisp": EfficientISP, "robustisp": RobustISP, "rmfanet_tiny": RMFANet}
DISPLAY = {"efficientisp": "EfficientISP", "robustisp": "RobustISP", "rmfanet_tiny": "RMFA-Net tiny"}


def build_generator(name: str, pattern: str = "RGGB") -> nn.Module:
    if name not in GENERATORS:
        raise ValueError(f"unknown generator '{name}'; use one of {', '.join(GENERATORS)}")
    return RMFANet(2, 16, pattern=pattern) if name == "rmfanet_tiny" else GENERATORS[name]()


def arch_of_state_dict(sd: dict[str, torch.Tensor]) -> str | None:
    """Which generator a state dict belongs to (by its keys and the first conv's shape), or None."""
    for name in GENERATORS:
        own = build_generator(name).state_dict()
        if set(own) == set(sd) and all(tuple(own[k].shape) == tuple(sd[k].shape) for k in own):
            return name
    return None


def count_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def count_macs(model: nn.Module, raw_hw: tuple[int, int], probe_div: int = 10) -> int:
    """Multiply-accumulates of conv / linear layers for one ``(1, 4, *raw_hw)`` input (forward hooks).

    Counted on a ``probe_div`` times smaller input and scaled by the area ratio (all layers are
    convolutions; RMFA-Net's attention MLP on pooled vectors is counted at probe scale, negligible).
    """
    ph, pw = max(8, raw_hw[0] // probe_div // 2 * 2), max(8, raw_hw[1] // probe_div // 2 * 2)
    scale = raw_hw[0] * raw_hw[1] / (ph * pw)
    macs = [0]

    def hook(mod: nn.Module, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        if isinstance(mod, nn.Conv2d):
            k = mod.kernel_size[0] * mod.kernel_size[1] * (mod.in_channels // mod.groups)
            macs[0] += int(out.numel() * k)
        elif isinstance(mod, nn.Linear):
            macs[0] += int(out.numel() * mod.in_features)

    hs = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            p = next(model.parameters())
            model(torch.zeros(1, 4, ph, pw, device=p.device, dtype=p.dtype))
    finally:
        for h in hs:
            h.remove()
    return round(macs[0] * scale)


def load_reference_weights(path: Path, arch: str | None = None, gen: nn.Module | None = None) -> nn.Module:
    """A released reference ``.pth`` (a plain ``state_dict`` saved from CUDA) -> our generator, ``strict=True``.

    Read with ``torch.load(map_location="cpu", weights_only=True)`` (core ``load_torch_file``: no
    pickled code runs). ``arch`` None: read from the file; a file of another architecture than
    ``arch`` is refused, naming the one it holds.
    """
    from pretrainlab.core.checkpoint import CheckpointError, load_torch_file

    if arch is not None and arch not in GENERATORS:
        raise CheckpointError(f"{path}: unknown --arch '{arch}'; use one of {', '.join(GENERATORS)}")
    sd = load_torch_file(path, what="generator weights file")
    if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise CheckpointError(f"{path}: expected a generator state dict (name -> tensor), found {type(sd).__name__}")
    held = arch_of_state_dict(sd)
    if held is None:
        raise CheckpointError(f"{path}: holds no known generator ({', '.join(GENERATORS)})")
    if arch is not None and held != arch:
        raise CheckpointError(f"{path}: holds {DISPLAY[held]} (--arch {held}) weights, not --arch {arch}")
    gen = gen if gen is not None else build_generator(held)
    gen.load_state_dict({k: v.float() for k, v in sd.items()}, strict=True)
    gen.arch = held  # type: ignore[assignment]
    return gen
