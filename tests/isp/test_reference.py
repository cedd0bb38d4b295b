"""The reference's released generators through ``render --weights``: parity with the reference forward.

1. Always: state dicts in the reference's format (random weights, saved with ``torch.save`` like the
   release) render ``coffee_rggb.png`` through the CLI exactly as a compact, independent port of the
   reference's ``pretrained/model.py`` + ``run_inference.py`` written here with ``F.conv2d``.
2. With ``$PRETRAINLAB_ISP_REFERENCE`` (a checkout of the reference repository): the three released
   Fujifilm unpaired models render ``coffee_rggb.png`` as the reference's own script did
   (``data/reference_renders``; at most 1 level off, at most 0.1 % of values different).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from pretrainlab.core.cli import main

DATA = Path(__file__).parent / "data"
RAW = DATA / "coffee_rggb.png"
RELEASED = {  # file -> (arch, sha256)
    "Efficient_ISP_unpaired_step_27220": ("efficientisp", "69bf8ed24aa6eb961e745232959ed71b32803761ee2c15d5ffcf76a57f1d6980"),
    "Robust_unpaired_step_66090": ("robustisp", "9199ca7f0b26fe4de23c4fb85ea2dc07e20e72ea2aa0d50fbcc21261d3ab8c3c"),
    "RMFA_TINY_unpaired_step_48270": ("rmfanet_tiny", "7ca427c8a53dbcfcfcb297baff31f4da80da70fcd99f69054f562fd10e8a8553"),
}


# --------------------------------------------------------------- independent port of the reference forward


def _conv(x: torch.Tensor, sd: dict[str, torch.Tensor], name: str, pad: int) -> torch.Tensor:
    return F.conv2d(x, sd[f"{name}.weight"], sd.get(f"{name}.bias"), padding=pad)


def ref_packed_input(raw: np.ndarray) -> torch.Tensor:
    """run_inference.RawImageDataset.preprocess_raw_image."""
    comb = np.dstack((raw[1::2, 1::2], raw[0::2, 1::2], raw[0::2, 0::2], raw[1::2, 0::2]))
    mins = np.array([62, 60, 58, 61], dtype=np.float32)
    return torch.tensor((comb - mins) / (1023 - mins), dtype=torch.float32).permute(2, 0, 1)[None]


def ref_planes_input(raw: np.ndarray) -> torch.Tensor:
    """model.preprocess_raw_with_three_channel_split (black 63, / 1023, ones elsewhere)."""
    x = torch.clamp(torch.tensor(raw, dtype=torch.float32) - 63, min=0) / 1023
    r, g, b = torch.ones_like(x), torch.ones_like(x), torch.ones_like(x)
    r[0::2, 0::2] = x[0::2, 0::2]
    g[0::2, 1::2], g[1::2, 0::2] = x[0::2, 1::2], x[1::2, 0::2]
    b[1::2, 1::2] = x[1::2, 1::2]
    return torch.stack([r, g, b])[None]


def ref_small_isp(x: torch.Tensor, sd: dict[str, torch.Tensor]) -> torch.Tensor:
    """EfficientISP and RobustISP: tanh / relu / relu convs, pixel_shuffle 2."""
    x = torch.tanh(_conv(x, sd, "conv1", 1))
    x = torch.relu(_conv(x, sd, "conv2", 1))
    return F.pixel_shuffle(torch.relu(_conv(x, sd, "conv3", 1)), 2)


def ref_rmfa(x: torch.Tensor, sd: dict[str, torch.Tensor]) -> torch.Tensor:
    x = torch.tanh(_conv(_conv(x, sd, "input_module.0", 1), sd, "input_module.1", 1))
    for i in range(2):
        p = f"rmfa_blocks.{i}."
        tex = torch.cat([torch.relu(_conv(x, sd, p + "texture_module.high_freq.0", 0)),
                         torch.relu(_conv(x, sd, p + "texture_module.low_freq.0", 1))], 1)
        x1 = torch.relu(_conv(F.avg_pool2d(x, 2), sd, p + "tone_mapping.level1.1", 1))
        x2 = torch.relu(_conv(F.avg_pool2d(x1, 2), sd, p + "tone_mapping.level2.1", 1))
        x3 = torch.relu(_conv(x2, sd, p + "tone_mapping.level3.0", 1))
        up = torch.nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        tone = x - up(x1 + up(x3))
        y = torch.relu(_conv(torch.cat([tex, tone], 1), sd, p + "fusion.0", 1))

        def fc(v: torch.Tensor, p: str = p) -> torch.Tensor:
            return _conv(torch.relu(_conv(v, sd, p + "channel_attention.fc.0", 0)), sd, p + "channel_attention.fc.2", 0)

        y = torch.sigmoid(fc(F.adaptive_avg_pool2d(y, 1)) + fc(F.adaptive_max_pool2d(y, 1))) * y
        s = torch.cat([y.mean(1, keepdim=True), y.max(1, keepdim=True)[0]], 1)
        y = torch.sigmoid(_conv(s, sd, p + "spatial_attention.conv", 3)) * y
        x = y + x
    return torch.sigmoid(_conv(x, sd, "output_module.0", 1))


def ref_render(raw: np.ndarray, sd: dict[str, torch.Tensor], arch: str) -> np.ndarray:
    with torch.no_grad():
        out = ref_rmfa(ref_planes_input(raw), sd) if arch == "rmfanet_tiny" else ref_small_isp(ref_packed_input(raw), sd)
    return (torch.clamp(out[0].permute(1, 2, 0), 0, 1).numpy() * 255).astype(np.uint8)  # save_generated_image


def _ours(tmp_path: Path, weights: Path, arch: str) -> np.ndarray:
    out = tmp_path / f"out-{arch}"
    assert main(["isp", "render", "--weights", str(weights), "--arch", arch, "--input", str(RAW), "--out", str(out)]) == 0
    return np.asarray(Image.open(out / "coffee_rggb.png").convert("RGB"))


def _agree(a: np.ndarray, b: np.ndarray) -> None:
    d = np.abs(a.astype(int) - b.astype(int))
    assert a.shape == b.shape and d.max() <= 1 and (d > 0).mean() <= 0.001, (d.max(), (d > 0).mean())


@pytest.mark.parametrize("arch", ["efficientisp", "robustisp", "rmfanet_tiny"])
def test_reference_format_weights_render_as_the_reference_forward(arch: str, tmp_path: Path) -> None:
    from pretrainlab.isp.generators import build_generator

    torch.manual_seed(0)
    sd = {k: v.normal_(0, 0.4) if v.ndim > 1 else v.uniform_(-0.2, 0.2) for k, v in build_generator(arch).state_dict().items()}
    if arch != "rmfanet_tiny":  # keep the output in range so that truncation is exercised
        sd["conv3.bias"] += 0.3
    weights = tmp_path / f"{arch}.pth"
    torch.save(sd, weights)  # as the reference saved its release: a plain state dict
    raw = np.asarray(Image.open(RAW))
    expected = ref_render(raw, sd, arch)
    assert expected.std() > 5  # a real picture, not a constant
    _agree(_ours(tmp_path, weights, arch), expected)


def test_weights_of_another_arch_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pretrainlab.isp.generators import build_generator

    w = tmp_path / "robust.pth"
    torch.save(build_generator("robustisp").state_dict(), w)
    rc = main(["isp", "render", "--weights", str(w), "--arch", "efficientisp", "--input", str(RAW), "--out",
               str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "robust.pth: holds RobustISP (--arch robustisp) weights, not --arch efficientisp" in err
    assert "Traceback" not in err and not (tmp_path / "o").exists()


REF_DIR = os.environ.get("PRETRAINLAB_ISP_REFERENCE", "")


@pytest.mark.skipif(not REF_DIR, reason="set $PRETRAINLAB_ISP_REFERENCE to a checkout of "
                                        "AndreiiArhire/Learned-Lightweight-Smartphone-ISP-with-Unpaired-Data")
@pytest.mark.parametrize("name", sorted(RELEASED))
def test_released_weights_render_as_the_reference_script(name: str, tmp_path: Path) -> None:
    arch, sha = RELEASED[name]
    weights = Path(REF_DIR) / "pretrained" / "models" / "Fujifilm" / f"{name}.pth"
    assert hashlib.sha256(weights.read_bytes()).hexdigest() == sha, f"{weights}: not the released file"
    expected = np.asarray(Image.open(DATA / "reference_renders" / f"{name}.png").convert("RGB"))
    _agree(_ours(tmp_path, weights, arch), expected)
    sd = torch.load(weights, map_location="cpu", weights_only=True)
    _agree(ref_render(np.asarray(Image.open(RAW)), sd, arch), expected)  # the compact port, too
