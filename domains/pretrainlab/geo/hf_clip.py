"""Convert a Hugging Face ``CLIPModel`` folder (``config.json`` + ``model.safetensors``; StreetCLIP's
and OpenAI's layout on the Hub) into an open_clip CLIP: an open_clip config (JSON) and its
``state_dict`` as ``.safetensors``. No ``transformers`` import: the config JSON and the tensor
names suffice.

Mapping (HF -> open_clip), per tower (``vision_model`` -> ``visual``, ``text_model`` -> the
top-level text modules):

- embeddings: ``patch_embedding`` -> ``conv1``, ``class_embedding``, ``position_embedding.weight``
  -> ``positional_embedding``; ``token_embedding`` -> ``token_embedding``;
- ``pre_layrnorm`` -> ``ln_pre``; ``post_layernorm`` -> ``ln_post``; ``final_layer_norm`` -> ``ln_final``;
- per layer: ``self_attn.{q,k,v}_proj`` concatenated -> ``attn.in_proj_{weight,bias}``,
  ``self_attn.out_proj`` -> ``attn.out_proj``, ``layer_norm1/2`` -> ``ln_1/2``, ``mlp.fc1/fc2`` ->
  ``mlp.c_fc/c_proj``;
- ``visual_projection.weight`` / ``text_projection.weight`` (out x in) -> ``visual.proj`` /
  ``text_projection`` (in x out, transposed); ``logit_scale`` as is.

The config: ``embed_dim`` = ``projection_dim``; vision ``image_size``, ``patch_size``, ``width``
(``hidden_size``), ``layers``, ``head_width`` = width / heads, ``mlp_ratio`` =
``intermediate_size / hidden_size``; text ``context_length`` (``max_position_embeddings``),
``vocab_size``, ``width``, ``heads``, ``layers``; ``quick_gelu`` when ``hidden_act`` is
``quick_gelu`` (OpenAI / StreetCLIP). A model loaded from the result computes the same image and
text features as the Hugging Face model (``tests/geo/test_geo_hf_clip.py``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from pretrainlab.core.checkpoint import CheckpointError
from pretrainlab.core.data import DataError

MAX_CONFIG_BYTES = 1 << 20


def _read_config(folder: Path) -> dict[str, Any]:
    p = folder / "config.json"
    if not folder.is_dir():
        raise DataError(folder, "not a folder (expected a Hugging Face CLIPModel folder: config.json + model.safetensors)")
    if not p.is_file():
        raise DataError(folder, "no config.json (expected a Hugging Face CLIPModel folder)")
    if p.stat().st_size > MAX_CONFIG_BYTES:
        raise DataError(p, f"{p.stat().st_size} bytes: too large for a model config")
    try:
        cfg = json.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(p, f"not valid JSON ({type(e).__name__}: {e})") from None
    if not isinstance(cfg, dict) or "vision_config" not in cfg or "text_config" not in cfg:
        raise DataError(p, "not a CLIPModel config (needs vision_config and text_config)")
    return cfg


def open_clip_config(hf: dict[str, Any], path: Path | str = "config.json") -> dict[str, Any]:
    """An open_clip model config from a Hugging Face ``CLIPConfig`` dict."""
    try:
        v, t = hf["vision_config"], hf["text_config"]
        vw, tw = int(v["hidden_size"]), int(t["hidden_size"])
        conf = {
            "embed_dim": int(hf.get("projection_dim", 512)),
            "vision_cfg": {"image_size": int(v.get("image_size", 224)), "patch_size": int(v.get("patch_size", 32)),
                           "width": vw, "layers": int(v["num_hidden_layers"]),
                           "head_width": vw // int(v["num_attention_heads"]),
                           "mlp_ratio": float(v.get("intermediate_size", 4 * vw)) / vw},
            "text_cfg": {"context_length": int(t.get("max_position_embeddings", 77)),
                         "vocab_size": int(t.get("vocab_size", 49408)), "width": tw,
                         "heads": int(t["num_attention_heads"]), "layers": int(t["num_hidden_layers"]),
                         "mlp_ratio": float(t.get("intermediate_size", 4 * tw)) / tw},
        }
    except (KeyError, TypeError, ValueError, ZeroDivisionError) as e:
        raise DataError(path, f"incomplete CLIP config ({type(e).__name__}: {e})") from None
    acts = {v.get("hidden_act", "quick_gelu"), t.get("hidden_act", "quick_gelu")}
    if len(acts) != 1 or acts.pop() not in ("quick_gelu", "gelu"):
        raise DataError(path, f"unsupported activations {v.get('hidden_act')!r} / {t.get('hidden_act')!r} "
                              f"(open_clip has quick_gelu or gelu)")
    if v.get("hidden_act", "quick_gelu") == "quick_gelu":
        conf["quick_gelu"] = True
    for side in (v, t):
        eps = float(side.get("layer_norm_eps", 1e-5))
        if abs(eps - 1e-5) > 1e-12:
            raise DataError(path, f"layer_norm_eps {eps} (open_clip's LayerNorm uses 1e-5)")
    return conf


def _tower(sd: dict[str, torch.Tensor], hf: str, oc: str, layers: int, out: dict[str, torch.Tensor]) -> None:
    for i in range(layers):
        a, b = f"{hf}.encoder.layers.{i}", f"{oc}.resblocks.{i}"
        out[f"{b}.attn.in_proj_weight"] = torch.cat([sd.pop(f"{a}.self_attn.{x}_proj.weight") for x in "qkv"])
        out[f"{b}.attn.in_proj_bias"] = torch.cat([sd.pop(f"{a}.self_attn.{x}_proj.bias") for x in "qkv"])
        for src, dst in (("self_attn.out_proj", "attn.out_proj"), ("layer_norm1", "ln_1"), ("layer_norm2", "ln_2"),
                         ("mlp.fc1", "mlp.c_fc"), ("mlp.fc2", "mlp.c_proj")):
            for w in ("weight", "bias"):
                out[f"{b}.{dst}.{w}"] = sd.pop(f"{a}.{src}.{w}")


def convert_state_dict(sd: dict[str, torch.Tensor], conf: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Hugging Face ``CLIPModel`` tensors -> open_clip ``CLIP`` state dict (see the module docstring)."""
    sd = {k: v for k, v in sd.items() if not k.endswith("position_ids")}
    out: dict[str, torch.Tensor] = {}
    try:
        v = "vision_model"
        out["visual.class_embedding"] = sd.pop(f"{v}.embeddings.class_embedding")
        out["visual.conv1.weight"] = sd.pop(f"{v}.embeddings.patch_embedding.weight")
        out["visual.positional_embedding"] = sd.pop(f"{v}.embeddings.position_embedding.weight")
        for src, dst in (("pre_layrnorm", "ln_pre"), ("post_layernorm", "ln_post")):
            for w in ("weight", "bias"):
                out[f"visual.{dst}.{w}"] = sd.pop(f"{v}.{src}.{w}")
        _tower(sd, v, "visual.transformer", conf["vision_cfg"]["layers"], out)
        out["visual.proj"] = sd.pop("visual_projection.weight").t().contiguous()
        t = "text_model"
        out["token_embedding.weight"] = sd.pop(f"{t}.embeddings.token_embedding.weight")
        out["positional_embedding"] = sd.pop(f"{t}.embeddings.position_embedding.weight")
        for w in ("weight", "bias"):
            out[f"ln_final.{w}"] = sd.pop(f"{t}.final_layer_norm.{w}")
        _tower(sd, t, "transformer", conf["text_cfg"]["layers"], out)
        out["text_projection"] = sd.pop("text_projection.weight").t().contiguous()
        out["logit_scale"] = sd.pop("logit_scale").reshape(())
    except KeyError as e:
        raise CheckpointError(f"not a Hugging Face CLIPModel state dict: tensor {e} missing") from None
    if sd:
        raise CheckpointError(f"not a plain CLIPModel: {len(sd)} unexpected tensors, e.g. {sorted(sd)[:3]}")
    return out


def convert_hf_clip(folder: str | Path, out: str | Path) -> tuple[Path, Path]:
    """``folder`` (config.json + model.safetensors) -> ``out`` (.safetensors) + ``out`` with ``.json``
    (the open_clip config). Checks that the converted tensors load into that open_clip model."""
    from pretrainlab.core.checkpoint import load_tensors, save_tensors
    from pretrainlab.core.io import atomic_write_text

    folder, out = Path(folder), Path(out)
    if out.suffix != ".safetensors":
        raise DataError(out, "output must end in .safetensors")
    hf = _read_config(folder)
    conf = open_clip_config(hf, folder / "config.json")
    wfile = folder / "model.safetensors"
    if not wfile.is_file():
        bins = sorted(folder.glob("*.bin")) + sorted(folder.glob("model-*.safetensors"))
        hint = " (sharded or .bin weights: re-save with save_pretrained(safe_serialization=True, max_shard_size='100GB'))" \
            if bins else ""
        raise DataError(folder, f"no model.safetensors{hint}")
    sd, _ = load_tensors(wfile)
    state = convert_state_dict(dict(sd), conf)
    from pretrainlab.core.openclip import create_clip, register_configs

    name = f"file-{out.stem}"
    register_configs({name: conf})
    model, _ = create_clip(name)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{wfile}: converted weights do not fit the open_clip model: {str(e)[:300]}") from None
    tmp = out.with_name(f".{out.name}.tmp")
    save_tensors(tmp, {k: v.contiguous() for k, v in state.items()})
    tmp.replace(out)
    cfg_path = out.with_suffix(".json")
    atomic_write_text(cfg_path, json.dumps(conf, indent=2))
    return out, cfg_path
