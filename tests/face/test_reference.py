"""Parity with the PETALface reference (Kartik-3004/PETALface ``backbones/swin_models_iqa.py``,
``backbones/lora_layers.py``, ``validation_lq/validate_tinyface_iqa.py``).

``ref_state_dict`` builds a checkpoint in the RELEASED layout (``torch.save(backbone.state_dict())`` of
``get_model("swin_256new_iqa", r=8, scale=1, use_lora=True)``: reference key names, ``relative_position_index``
and ``attn_mask`` buffers, BatchNorm statistics, non-zero LoRA up-matrices) from a fixed seed, and
``ref_forward`` is a compact, independent port of the reference forward written from the reference
source (functional, on the state dict; it shares no code with ``pretrainlab.face``). The real
low-resolution faces are scikit-image's ``lfw_subset`` (25 x 25 LFW crops, shipped with scikit-image).

``data/ref_lfw_embeddings.npy`` was produced by the REFERENCE code itself (see data/README.md).
"""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pretrainlab.core.cli import main

DATA = Path(__file__).parent / "data"
SMALL = {"patch": 6, "image": 120, "embed": 16, "depths": [2, 2, 2], "heads": [2, 2, 4], "window": 5, "rank": 8}
FULL = {"patch": 6, "image": 120, "embed": 384, "depths": [2, 18, 2], "heads": [8, 16, 16], "window": 5, "rank": 8}


# ------------------------------------------------------------------ independent port of the reference
def _rel_index(ws: int) -> torch.Tensor:
    ch, cw = torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij")
    c = torch.stack([ch.flatten(), cw.flatten()])
    d = (c[:, :, None] - c[:, None, :]).permute(1, 2, 0)
    return (d[..., 0] + ws - 1) * (2 * ws - 1) + (d[..., 1] + ws - 1)


def _mask(res: int, ws: int, s: int) -> torch.Tensor:
    lab = torch.zeros(res, res)
    bounds = [(0, res - ws), (res - ws, res - s), (res - s, res)]
    n = 0
    for h0, h1 in bounds:
        for w0, w1 in bounds:
            lab[h0:h1, w0:w1] = n
            n += 1
    win = lab.view(res // ws, ws, res // ws, ws).permute(0, 2, 1, 3).reshape(-1, ws * ws)
    m = win[:, None, :] - win[:, :, None]
    return torch.where(m != 0, torch.tensor(-100.0), torch.tensor(0.0))


def _stages(a: dict) -> list[tuple[int, int, int, int]]:
    """(stage, resolution, channels, heads) of the reference layout."""
    res, dim, out = a["image"] // a["patch"], a["embed"], []
    for i, h in enumerate(a["heads"]):
        out.append((i, res, dim, h))
        res, dim = res // 2, dim * 2
    return out


def ref_state_dict(a: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    """Released-layout state dict (reference key order), every value from ``seed``."""
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape: int, std: float = 0.02, mean: float = 0.0) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * std + mean

    r, sd = a["rank"], {}
    c0 = a["embed"]
    sd["absolute_pos_embed"] = rnd(1, (a["image"] // a["patch"]) ** 2, c0)
    sd["patch_embed.proj.weight"] = rnd(c0, 3, a["patch"], a["patch"], std=0.1)
    sd["patch_embed.proj.bias"] = rnd(c0)
    sd["patch_embed.norm.weight"], sd["patch_embed.norm.bias"] = rnd(c0, mean=1.0, std=0.1), rnd(c0)
    for i, res, c, h in _stages(a):
        ws = min(res, a["window"])
        for j in range(a["depths"][i]):
            p = f"layers.{i}.blocks.{j}."
            sd[p + "norm1.weight"], sd[p + "norm1.bias"] = rnd(c, mean=1.0, std=0.1), rnd(c)
            sd[p + "attn.relative_position_bias_table"] = rnd((2 * ws - 1) ** 2, h, std=0.5)
            sd[p + "attn.relative_position_index"] = _rel_index(ws)
            sd[p + "attn.qkv.weight"], sd[p + "attn.qkv.bias"] = rnd(3 * c, c, std=c ** -0.5), rnd(3 * c)
            for s in ("", "2"):
                sd[p + f"attn.qkv.trainable_lora_down{s}.weight"] = rnd(r, c, std=0.3)
                sd[p + f"attn.qkv.trainable_lora_up{s}.weight"] = rnd(3 * c, r, std=0.05)  # non-zero up
            sd[p + "attn.proj.weight"], sd[p + "attn.proj.bias"] = rnd(c, c, std=c ** -0.5), rnd(c)
            sd[p + "norm2.weight"], sd[p + "norm2.bias"] = rnd(c, mean=1.0, std=0.1), rnd(c)
            sd[p + "mlp.fc1.weight"], sd[p + "mlp.fc1.bias"] = rnd(4 * c, c, std=c ** -0.5), rnd(4 * c)
            sd[p + "mlp.fc2.weight"], sd[p + "mlp.fc2.bias"] = rnd(c, 4 * c, std=(4 * c) ** -0.5), rnd(c)
            if j % 2 == 1 and res > a["window"]:
                sd[p + "attn_mask"] = _mask(res, ws, a["window"] // 2)
        if i < len(a["depths"]) - 1:
            p = f"layers.{i}.downsample."
            sd[p + "reduction.weight"] = rnd(2 * c, 4 * c, std=(4 * c) ** -0.5)
            sd[p + "norm.weight"], sd[p + "norm.bias"] = rnd(4 * c, mean=1.0, std=0.1), rnd(4 * c)
    i, res, c, h = _stages(a)[-1]
    flat = res * res * c
    sd["norm.weight"], sd["norm.bias"] = rnd(c, mean=1.0, std=0.1), rnd(c)
    for k, n in (("feature_layer.0", flat), ("feature_layer.3", 512)):
        sd[k + ".weight"], sd[k + ".bias"] = rnd(n, mean=1.0, std=0.1), rnd(n, std=0.1)
        sd[k + ".running_mean"], sd[k + ".running_var"] = rnd(n, std=0.1), rnd(n, std=0.2).abs() + 0.5
        sd[k + ".num_batches_tracked"] = torch.tensor(1000)
        if k == "feature_layer.0":
            sd["feature_layer.2.weight"], sd["feature_layer.2.bias"] = rnd(512, flat, std=flat ** -0.5), rnd(512)
            sd["feature_layer.2.trainable_lora_down.weight"] = rnd(r, flat, std=0.05)
            sd["feature_layer.2.trainable_lora_up.weight"] = rnd(512, r, std=0.05)
    return sd


def ref_forward(sd: dict[str, torch.Tensor], x: torch.Tensor, alpha: torch.Tensor, a: dict) -> torch.Tensor:
    """The reference ``SwinTransformer.forward(x, alpha)`` in eval mode (no dropout / drop path)."""
    ln = F.layer_norm
    W = sd
    x = F.conv2d(x, W["patch_embed.proj.weight"], W["patch_embed.proj.bias"], stride=a["patch"])
    B = x.shape[0]
    x = x.flatten(2).transpose(1, 2)
    x = ln(x, (x.shape[-1],), W["patch_embed.norm.weight"], W["patch_embed.norm.bias"]) + W["absolute_pos_embed"]
    for i, res, c, h in _stages(a):
        ws = min(res, a["window"])
        for j in range(a["depths"][i]):
            p = f"layers.{i}.blocks.{j}."
            shift = a["window"] // 2 if (j % 2 == 1 and res > a["window"]) else 0
            y = ln(x, (c,), W[p + "norm1.weight"], W[p + "norm1.bias"]).view(B, res, res, c)
            y = torch.roll(y, (-shift, -shift), (1, 2))
            y = y.view(B, res // ws, ws, res // ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, ws * ws, c)
            al = alpha.repeat_interleave(y.shape[0] // B).view(-1, 1, 1)
            q = F.linear(y, W[p + "attn.qkv.weight"], W[p + "attn.qkv.bias"])
            q = q + ((1 - al) * y) @ W[p + "attn.qkv.trainable_lora_down.weight"].T @ W[p + "attn.qkv.trainable_lora_up.weight"].T
            q = q + (al * y) @ W[p + "attn.qkv.trainable_lora_down2.weight"].T @ W[p + "attn.qkv.trainable_lora_up2.weight"].T
            n = ws * ws
            q = q.reshape(-1, n, 3, h, c // h).permute(2, 0, 3, 1, 4)
            att = (q[0] * (c // h) ** -0.5) @ q[1].transpose(-2, -1)
            bias = W[p + "attn.relative_position_bias_table"][W[p + "attn.relative_position_index"].reshape(-1)]
            att = torch.softmax(att + bias.view(n, n, -1).permute(2, 0, 1)[None], -1)  # the mask is NOT applied
            y = F.linear((att @ q[2]).transpose(1, 2).reshape(-1, n, c), W[p + "attn.proj.weight"], W[p + "attn.proj.bias"])
            y = y.view(B, res // ws, res // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(B, res, res, c)
            x = x + torch.roll(y, (shift, shift), (1, 2)).reshape(B, res * res, c)
            m = ln(x, (c,), W[p + "norm2.weight"], W[p + "norm2.bias"])
            x = x + F.linear(F.gelu(F.linear(m, W[p + "mlp.fc1.weight"], W[p + "mlp.fc1.bias"])),
                             W[p + "mlp.fc2.weight"], W[p + "mlp.fc2.bias"])
        if i < len(a["depths"]) - 1:
            g = x.view(B, res, res, c)
            g = torch.cat([g[:, 0::2, 0::2], g[:, 1::2, 0::2], g[:, 0::2, 1::2], g[:, 1::2, 1::2]], -1).view(B, -1, 4 * c)
            p = f"layers.{i}.downsample."
            x = F.linear(ln(g, (4 * c,), W[p + "norm.weight"], W[p + "norm.bias"]), W[p + "reduction.weight"])
    c = x.shape[-1]
    f = ln(x, (c,), W["norm.weight"], W["norm.bias"]).reshape(B, -1)  # token-major flatten

    def bn(v: torch.Tensor, k: str) -> torch.Tensor:
        return (v - W[k + ".running_mean"]) / torch.sqrt(W[k + ".running_var"] + 1e-5) * W[k + ".weight"] + W[k + ".bias"]

    f = bn(f, "feature_layer.0")
    f = F.linear(f, W["feature_layer.2.weight"], W["feature_layer.2.bias"]) + \
        f @ W["feature_layer.2.trainable_lora_down.weight"].T @ W["feature_layer.2.trainable_lora_up.weight"].T
    return bn(f, "feature_layer.3")


def ref_preprocess(gray25: np.ndarray, size: int = 120) -> torch.Tensor:
    """validate_tinyface_iqa.py: RGB -> ToTensor -> Resize(bicubic) on the tensor (torchvision 0.15: antialias
    None = False for tensors, clamp only for uint8) -> Normalize(0.5, 0.5)."""
    x = torch.from_numpy(np.repeat(gray25[..., None], 3, 2)).permute(2, 0, 1).float() / 255
    x = F.interpolate(x[None], size=(size, size), mode="bicubic", align_corners=False)[0]
    return (x - 0.5) / 0.5


def lfw_faces(n: int) -> np.ndarray:
    """The first ``n`` real 25 x 25 LFW faces of scikit-image's lfw_subset, uint8."""
    from skimage import data

    return np.clip(np.rint(data.lfw_subset()[:n] * 255), 0, 255).astype(np.uint8)


# ------------------------------------------------------------------ tests
def test_released_layout_has_433_tensors_and_loads_strictly() -> None:
    from pretrainlab.face.config import SwinConfig
    from pretrainlab.face.swin_face import SwinFace

    with torch.device("meta"):
        net = SwinFace(SwinConfig(), "twin", r=8)
    own = net.state_dict()
    assert len(own) == 433  # the released model.pt: 433 tensors
    assert own["feature_layer.0.weight"].shape == (25 * 1536,) and own["feature_layer.2.weight"].shape == (512, 38400)
    assert own["absolute_pos_embed"].shape == (1, 400, 384)
    assert sum(k.endswith("attn_mask") for k in own) == 10  # shifted blocks of stages 1-2 (stage 3: 5 <= window)
    # the key set and shapes of the independent builder's layout
    ref = {k: tuple(v.shape) for k, v in ref_state_dict(SMALL).items()}
    with torch.device("meta"):
        small = SwinFace(SwinConfig(embed_dim=16, depths=[2, 2, 2], num_heads=[2, 2, 4]), "twin", r=8)
    assert ref == {k: tuple(v.shape) for k, v in small.state_dict().items()}


def test_port_matches_the_reference_forward_on_random_inputs() -> None:
    from pretrainlab.face.config import FaceConfig, SwinConfig
    from pretrainlab.face.petalface import build_backbone

    sd = ref_state_dict(SMALL, seed=1)
    cfg = FaceConfig(model=SwinConfig(embed_dim=16, depths=[2, 2, 2], num_heads=[2, 2, 4]))
    net = build_backbone(cfg).eval()
    net.load_state_dict(sd, strict=True)
    x = torch.randn(3, 3, 120, 120)
    alpha = torch.tensor([-0.7, 0.4, 1.9])  # unclamped, as the reference
    with torch.no_grad():
        got, want = net(x, alpha), ref_forward(sd, x, alpha, SMALL)
    assert F.cosine_similarity(got, want).min() > 0.99999
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-4)


def test_resize_is_torchvision_015_tensor_bicubic() -> None:
    """torchvision 0.15.2 ``_functional_tensor.resize``: ``antialias=None -> False``, interpolate(bicubic,
    align_corners=False), clamp only when the input is uint8; ``functional.resize`` returns the input
    unchanged when it already has the size."""
    from torchvision.transforms.functional import InterpolationMode, resize

    from pretrainlab.face.formats import eval_tensor

    arr = lfw_faces(2)[1]
    rgb = np.repeat(arr[..., None], 3, 2)
    got = eval_tensor(rgb, 120)
    x = torch.from_numpy(rgb).permute(2, 0, 1).float() / 255
    want = (resize(x, [120, 120], InterpolationMode.BICUBIC, antialias=False) - 0.5) / 0.5
    assert torch.equal(got, want)
    assert got.min() < -1.0 or got.max() > 1.0  # bicubic overshoot is kept: no clamp
    assert torch.equal(eval_tensor(np.zeros((120, 120, 3), np.uint8), 120), torch.full((3, 120, 120), -1.0))


def _write_faces(folder: Path, faces: np.ndarray) -> list[str]:
    from PIL import Image

    folder.mkdir(parents=True)
    names = [f"face_{i:02d}.png" for i in range(len(faces))]
    for n, f in zip(reversed(names), reversed(list(faces))):  # written out of order: rows must come sorted
        Image.fromarray(f).save(folder / n)
    return names


@pytest.mark.parametrize("flip", [True, False])
def test_embed_released_checkpoint_on_real_lr_faces(tmp_path: Path, flip: bool) -> None:
    """Done criterion of #21: a released-layout checkpoint embeds real LR faces with cosine >= 0.9999 against
    the independent port, through ``pretrainlab face embed`` with a quality-score CSV."""
    from pretrainlab.core.checkpoint import load_tensors

    sd = ref_state_dict(SMALL, seed=0)
    torch.save(sd, tmp_path / "model.pt")
    faces = lfw_faces(12)
    names = _write_faces(tmp_path / "faces", faces)
    scores = np.linspace(-0.4, 1.3, len(faces))
    (tmp_path / "s.csv").write_text("file,score\n" + "".join(f"{n},{s}\n" for n, s in zip(names, scores)))
    out = tmp_path / "emb.safetensors"
    rc = main(["face", "embed", "--ckpt", str(tmp_path / "model.pt"), "--input", str(tmp_path / "faces"),
               "--quality-scores", str(tmp_path / "s.csv"), "--out", str(out), "quality.threshold=0.3",
               f"eval.flip_tta={str(flip).lower()}"])
    assert rc in (0, None)
    t, _ = load_tensors(out)
    alpha = torch.tensor(0.5 + scores - 0.3, dtype=torch.float32)  # a = 0.5 + score - T, unclamped
    assert torch.allclose(t["quality_a"], alpha)
    x = torch.stack([ref_preprocess(f) for f in faces])
    with torch.no_grad():
        e = ref_forward(sd, x, alpha, SMALL)
        if flip:  # pre_norm_vector_add: raw embeddings of image and mirror summed, then L2
            e = e + ref_forward(sd, x.flip(-1), alpha, SMALL)
    want = F.normalize(e, dim=1)
    cos = F.cosine_similarity(t["embeddings"], want)
    assert t["embeddings"].shape == (12, 512) and cos.min() >= 0.9999, cos
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["files"] == names and "imported reference weights" in side["trained"]


def test_embeddings_match_the_reference_code_fixture(tmp_path: Path) -> None:
    """``data/ref_lfw_embeddings.npy``: the reference's own SwinTransformer (swin_models_iqa.py, eval mode) on
    ``ref_state_dict(SMALL, 0)`` and the first 6 lfw_subset faces preprocessed as validate_tinyface_iqa.py
    (raw embeddings, alpha = 0.5 + linspace(-0.4, 1.3, 6) - 0.3, no flip)."""
    from pretrainlab.face.petalface import import_reference

    want = torch.from_numpy(np.load(DATA / "ref_lfw_embeddings.npy"))
    torch.save(ref_state_dict(SMALL, seed=0), tmp_path / "model.pt")
    task, _ = import_reference(tmp_path / "model.pt", ["quality.scorer=sharpness"])
    x = torch.stack([ref_preprocess(f) for f in lfw_faces(6)])
    alpha = torch.tensor(0.5 + np.linspace(-0.4, 1.3, 6) - 0.3, dtype=torch.float32)
    with torch.no_grad():
        got = task.backbone(x, alpha)
    assert F.cosine_similarity(got, want).min() >= 0.9999
    assert torch.allclose(got, want, rtol=1e-3, atol=1e-3)


class _Boom:
    def __reduce__(self) -> tuple:
        import os

        return (os.system, ("echo pwned",))


def test_a_model_pt_that_would_run_code_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "model.pt"
    sd = ref_state_dict(SMALL, seed=0)
    sd["evil"] = _Boom()  # type: ignore[assignment]
    torch.save(sd, bad)
    (tmp_path / "faces").mkdir()
    from PIL import Image

    Image.fromarray(lfw_faces(1)[0]).save(tmp_path / "faces" / "a.png")
    out = tmp_path / "e.safetensors"
    rc = main(["face", "embed", "--ckpt", str(bad), "--input", str(tmp_path / "faces"), "--out", str(out),
               "quality.scorer=sharpness"])
    err = capsys.readouterr().err
    assert rc == 2 and "model.pt: refused" in err and ("posix.system" in err or "os.system" in err), err
    assert "Traceback" not in err and not out.exists() and not list(tmp_path.glob(".e.*"))


def test_reference_quirks_init_dropout_and_trainable_set() -> None:
    """_init_weights leaves adapters at trunc_normal(0.02) (ups non-zero); dropout acts on each adapter's
    output; only 'trainable_lora' weights train; the head BatchNorms keep frozen affine parameters but update
    running statistics in train mode (backbone.train())."""
    from pretrainlab.face.config import FaceConfig, QualityConfig, SwinConfig
    from pretrainlab.face.lora_layers import LoRALinearTwo
    from pretrainlab.face.petalface import FaceTask

    torch.manual_seed(0)
    cfg = FaceConfig(model=SwinConfig(image_size=24, patch_size=4, embed_dim=16, depths=[1, 1], num_heads=[1, 2],
                                      window_size=3, embedding_dim=32), quality=QualityConfig(scorer="sharpness"))
    task = FaceTask(cfg, 5)
    up = torch.cat([p.detach().flatten() for n, p in task.backbone.named_parameters() if "trainable_lora_up" in n])
    assert up.abs().min() > 0 and abs(float(up.std()) - 0.02) < 0.003  # not zero: trunc_normal(0.02)
    trainable = [n for n, p in task.backbone.named_parameters() if p.requires_grad]
    assert trainable and all("trainable_lora" in n for n in trainable)
    assert not task.backbone.feature_layer[0].weight.requires_grad
    # dropout on the output: with p -> 1 - eps the adapters' OUTPUT is zeroed or scaled, the input untouched
    layer = next(m for m in task.backbone.modules() if isinstance(m, LoRALinearTwo))
    layer.train()
    layer.dropout.p = layer.dropout2.p = 0.5
    x = torch.randn(4, 9, layer.in_features)
    al = torch.full((4, 1, 1), 0.3)
    torch.manual_seed(1)
    y = layer(x, al)
    base = F.linear(x, layer.weight, layer.bias)
    low = layer.trainable_lora_up(layer.trainable_lora_down(0.7 * x))
    high = layer.trainable_lora_up2(layer.trainable_lora_down2(0.3 * x))
    torch.manual_seed(1)
    m1 = torch.nn.functional.dropout(torch.ones_like(low), 0.5, True)
    m2 = torch.nn.functional.dropout(torch.ones_like(high), 0.5, True)
    assert torch.allclose(y, base + low * m1 + high * m2, atol=1e-5)
    # BN running statistics move in train mode, affine stays
    bn = task.backbone.feature_layer[0]
    before, w = bn.running_mean.clone(), bn.weight.clone()
    task.train()
    out = task({"image": torch.randn(8, 3, 24, 24), "label": torch.arange(8) % 5})
    out["loss"].backward()
    assert not torch.equal(before, bn.running_mean) and bn.weight.grad is None and torch.equal(w, bn.weight)
    groups = task.optim_groups()
    assert [g.name for g in groups] == ["backbone", "head"] and groups[1].clip_grad == 0.0  # clip: backbone only


def test_schedule_is_insightface_poly_power_one_in_epochs() -> None:
    from pretrainlab.face.api import load
    from pretrainlab.face.pipeline import schedule_from_epochs

    cfg = load("petalface", "full", ["quality.scorer=sharpness"])
    assert (cfg.train.schedule, cfg.train.poly_power, cfg.epochs, cfg.warmup_epochs) == ("poly", 1.0, 40, 2)
    assert (cfg.train.lr, cfg.train.weight_decay, cfg.train.clip_grad, cfg.model.drop_path) == (5e-4, 0.1, 5.0, 0.05)
    s = schedule_from_epochs(cfg, 7804)  # TinyFace training set, batch 64: 121 steps per epoch
    assert (s.train.max_steps, s.train.warmup_steps) == (121 * 40, 121 * 2)
    from pretrainlab.core.schedules import lr_factor

    t = s.train
    mid = t.warmup_steps + (t.max_steps - t.warmup_steps) // 2
    assert math.isclose(lr_factor(mid, t.max_steps, t.warmup_steps, t.schedule, 0.0, t.poly_power), 0.5, abs_tol=1e-3)


def test_pickle_module_is_only_used_by_the_restricted_readers() -> None:
    src = (Path(__file__).parents[2] / "domains/pretrainlab/face").rglob("*.py")
    users = sorted(p.name for p in src if "pickle.load" in p.read_text() or "torch.load(" in p.read_text())
    assert users == [], users  # .bin: _BinUnpickler; .pt: core.checkpoint.load_torch_file
    assert pickle.HIGHEST_PROTOCOL >= 4
