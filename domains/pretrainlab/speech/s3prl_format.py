"""s3prl TERA / Mockingjay checkpoints, both ways (s3prl ``upstream/mockingjay/builder.py``,
``pretrain/runner.py``, ``pretrain/mockingjay/pretrain_expert.py``).

The released layout (``states-*.ckpt``, one ``torch.save`` dict): ``Transformer`` (the
``TransformerModel`` state dict), ``SpecHead`` (the reconstruction head), ``Upstream_Config``
(``transformer`` / ``task`` / ``audio`` blocks; legacy files keep it under ``Config``, with the
runner config under ``Runner``), ``Config`` (runner config), ``Step``, ``Args`` (an
``argparse.Namespace``), ``Optimizer`` (its state pickles an ``optimizers.WarmupLinearSchedule``) and
sometimes ``Scheduler``. Old files name LayerNorm parameters ``gamma`` / ``beta``.

Reading never runs pickled code: :func:`pretrainlab.core.checkpoint.load_torch_file` with an
allow-list of exactly ``argparse.Namespace`` and inert stand-ins for s3prl's schedule classes; any
other global is refused with a ``CheckpointError`` naming the file. The model is rebuilt from
``Upstream_Config["transformer"]``, the features from ``Upstream_Config["audio"]`` and the chunk length
from ``task.sequence_length``; s3prl's separate ``query`` / ``key`` / ``value`` projections become
the rows of ``in_proj`` of :class:`torch.nn.MultiheadAttention`. Configurations this port cannot
represent (``pre_layer_norm``, ``share_layer``, pre-extracted input features, Kaldi ``mfcc`` /
``spectrogram``) are refused with the reason. :func:`write_s3prl` writes a pretrainlab TERA in the same
layout (without ``Optimizer``, which s3prl's upstream loader does not read).
"""

from __future__ import annotations

import argparse
import dataclasses
import io
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from pretrainlab.core.checkpoint import CheckpointError, load_torch_file
from pretrainlab.core.config import ConfigError, validate
from pretrainlab.speech.config import AlterationConfig, DataConfig, FeatureConfig, ModelConfig, TeraConfig

SCHEDULES = ("WarmupLinearSchedule", "WarmupCosineSchedule", "WarmupConstantSchedule",
             "WarmupCosineWithHardRestartsSchedule", "WarmupCosineWithWarmupRestartsSchedule", "ConstantLR")
# old checkpoints pickle 'optimizers.X' (run_pretrain.py ran from s3prl/), newer ones 's3prl.optimizers.X'
STAND_INS = tuple(f"{mod}.{cls}" for mod in ("optimizers", "s3prl.optimizers") for cls in SCHEDULES)
MAX_SEQLEN = 24000  # builder.py: positional table size, the limit when task.sequence_length is 0
TORCH_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
KALDI_FBANK_KEYS = {"num_mel_bins", "frame_length", "frame_shift", "use_log_fbank"}


def is_s3prl_file(path: Path) -> bool:
    """A file that is not one of pretrainlab's own (safetensors / run folders): read it as s3prl."""
    p = Path(path)
    return p.is_file() and p.suffix.lower() in TORCH_SUFFIXES


def read_states(path: Path) -> dict[str, Any]:
    """The checkpoint's top-level dict, unpickled safely; ``CheckpointError`` when it is not an s3prl upstream."""
    states = load_torch_file(path, allow=[argparse.Namespace], stand_ins=STAND_INS, what="s3prl checkpoint")
    if not isinstance(states, dict) or not isinstance(states.get("Transformer"), dict):
        keys = ", ".join(map(str, list(states)[:8])) if isinstance(states, dict) else type(states).__name__
        raise CheckpointError(f"{path}: not an s3prl TERA / Mockingjay checkpoint (no 'Transformer' state dict; "
                              f"found {keys})")
    return states


def upstream_config(states: dict[str, Any], path: Path) -> dict[str, Any]:
    """``Config`` (legacy) or ``Upstream_Config`` holding the ``transformer`` block (builder.py)."""
    for key in ("Config", "Upstream_Config"):
        cfg = states.get(key)
        if isinstance(cfg, dict) and isinstance(cfg.get("transformer"), dict):
            return cfg
    raise CheckpointError(f"{path}: neither 'Config' nor 'Upstream_Config' holds a 'transformer' block")


def _get(block: dict[str, Any], key: str, where: str, path: Path, default: Any = ...) -> Any:
    if key in block:
        return block[key]
    if default is ...:
        raise CheckpointError(f"{path}: {where}.{key} is missing")
    return default


def _num(value: Any, where: str, path: Path, kind: type = float) -> Any:
    """``value`` as ``kind`` (int / float); CheckpointError naming ``where`` otherwise (bools refused)."""
    ok = not isinstance(value, bool)
    try:
        out = kind(value)
        ok = ok and (kind is not int or out == float(value))
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise CheckpointError(f"{path}: {where} = {str(value)[:40]!r} is not {'an integer' if kind is int else 'a number'}")
    return out


def _bool(value: Any) -> bool:
    return value if isinstance(value, bool) else str(value).strip().lower() in ("true", "1", "yes")


def model_config(tf: dict[str, Any], task: dict[str, Any], path: Path) -> ModelConfig:
    """``Upstream_Config["transformer"]`` + ``task.sequence_length`` -> :class:`ModelConfig`."""
    if _bool(tf.get("pre_layer_norm", False)):
        raise CheckpointError(f"{path}: transformer.pre_layer_norm is true; only the post-LN TERA / Mockingjay "
                              "encoder is supported")
    if _bool(tf.get("share_layer", False)):
        raise CheckpointError(f"{path}: transformer.share_layer is true (ALBERT-style shared layers); not supported")
    g = lambda k: _get(tf, k, "transformer", path)
    act = str(g("hidden_act"))
    if act not in ("gelu", "relu", "swish"):
        raise CheckpointError(f"{path}: transformer.hidden_act '{act}' is not one of gelu, relu, swish")
    seq = _num(_get(task, "sequence_length", "task", path, 0), "task.sequence_length", path, int)
    return ModelConfig(hidden=_num(g("hidden_size"), "transformer.hidden_size", path, int),
                       layers=_num(g("num_hidden_layers"), "transformer.num_hidden_layers", path, int),
                       heads=_num(g("num_attention_heads"), "transformer.num_attention_heads", path, int),
                       ffn=_num(g("intermediate_size"), "transformer.intermediate_size", path, int),
                       dropout=_num(g("hidden_dropout_prob"), "transformer.hidden_dropout_prob", path),
                       attention_dropout=_num(g("attention_probs_dropout_prob"),
                                              "transformer.attention_probs_dropout_prob", path),
                       activation=act,
                       max_frames=seq if seq > 0 else MAX_SEQLEN,
                       init_range=_num(tf.get("initializer_range", 0.02), "transformer.initializer_range", path),
                       layer_norm_eps=_num(tf.get("layer_norm_eps", 1e-12), "transformer.layer_norm_eps", path))


def alteration_config(task: dict[str, Any], path: Path) -> tuple[AlterationConfig, list[str]]:
    """``Upstream_Config["task"]`` -> :class:`AlterationConfig` (used only if the model is trained further)."""
    notes = []
    base = AlterationConfig()
    prop = _num(task.get("mask_proportion", 0.0), "task.mask_proportion", path)
    lo = _num(task.get("mask_consecutive_min", 7), "task.mask_consecutive_min", path, int)
    hi = _num(task.get("mask_consecutive_max", lo), "task.mask_consecutive_max", path, int)
    if lo != hi:
        notes.append(f"task.mask_consecutive_min/max {lo}/{hi}: this port alters blocks of a fixed length ({lo})")
    if prop > 0 and not _bool(task.get("mask_allow_overlap", True)):
        notes.append("task.mask_allow_overlap false: this port draws overlapping blocks")
    freq = _num(task.get("mask_frequency", 0.0), "task.mask_frequency", path)
    noise = _num(task.get("noise_proportion", 0.0), "task.noise_proportion", path)
    return AlterationConfig(time=prop > 0, time_proportion=prop if prop > 0 else base.time_proportion,
                            time_consecutive=lo, frequency=freq > 0,
                            frequency_max_proportion=freq if freq > 0 else base.frequency_max_proportion,
                            magnitude=noise > 0, magnitude_prob=noise if noise > 0 else base.magnitude_prob), notes


def _channel(spec: Any, where: str, path: Path) -> tuple[str, bool, int, bool]:
    """An s3prl ``input`` / ``target`` feature spec -> (kind, log, delta, cmvn); get_feat_config's defaults."""
    if not isinstance(spec, dict):
        raise CheckpointError(f"{path}: audio.{where} is not a mapping")
    kind = str(spec.get("feat_type", ""))
    if kind not in ("mel", "linear"):
        raise CheckpointError(f"{path}: audio.{where}.feat_type '{kind}' is not supported (mel or linear)")
    return (kind, _bool(spec.get("log", False)), _num(spec.get("delta", 0), f"audio.{where}.delta", path, int),
            _bool(spec.get("cmvn", False)))


def feature_config(audio: Any, path: Path) -> FeatureConfig:
    """``Upstream_Config["audio"]`` -> :class:`FeatureConfig` (s3prl preprocessor.py / extracter.py)."""
    if not isinstance(audio, dict):
        raise CheckpointError(f"{path}: no 'audio' block: the model was trained on pre-extracted features; "
                              "pretrainlab needs s3prl's on-the-fly feature config to embed audio")
    if "kaldi" in audio:
        kaldi = audio["kaldi"] if isinstance(audio["kaldi"], dict) else {}
        feat = str(kaldi.get("feat_type", "fbank"))
        if feat != "fbank":
            raise CheckpointError(f"{path}: audio.kaldi.feat_type '{feat}' is not supported (fbank only)")
        fb = kaldi.get(feat, {}) or {}
        extra = sorted(set(fb) - KALDI_FBANK_KEYS)
        if extra:
            raise CheckpointError(f"{path}: audio.kaldi.fbank.{extra[0]} is not supported "
                                  f"(supported: {', '.join(sorted(KALDI_FBANK_KEYS))})")
        delta = audio.get("delta", {}) or {}
        cm = audio.get("cmvn")
        if not isinstance(cm, dict) or "use_cmvn" not in cm:
            raise CheckpointError(f"{path}: audio.cmvn.use_cmvn is missing (s3prl's extracter requires it)")
        return FeatureConfig(kind="fbank", n_mels=_num(fb.get("num_mel_bins", 23), "num_mel_bins", path, int),
                             win_ms=_num(fb.get("frame_length", 25.0), "frame_length", path),
                             hop_ms=_num(fb.get("frame_shift", 10.0), "frame_shift", path),
                             log=_bool(fb.get("use_log_fbank", True)),
                             deltas=_num(delta.get("order", 2), "audio.delta.order", path, int),
                             delta_win=_num(delta.get("win_length", 5), "audio.delta.win_length", path, int),
                             cmvn=_bool(cm["use_cmvn"]))
    kind, log, deltas, cm = _channel(audio.get("input"), "input", path)
    target = audio.get("target")
    t_kind, t_log, t_deltas, t_cm = _channel(target, "target", path) if target is not None else (kind, log, deltas, cm)
    same = (t_kind, t_log, t_deltas, t_cm) == (kind, log, deltas, cm)
    level = audio.get("target_level", -25)
    return FeatureConfig(kind=kind, log=log, deltas=deltas, cmvn=cm,
                         sample_rate=_num(audio.get("sample_rate", 16000), "audio.sample_rate", path, int),
                         win_ms=_num(audio.get("win_ms", 25), "audio.win_ms", path),
                         hop_ms=_num(audio.get("hop_ms", 10), "audio.hop_ms", path),
                         n_freq=_num(audio.get("n_freq", 201), "audio.n_freq", path, int),
                         n_mels=_num(audio.get("n_mels", 40), "audio.n_mels", path, int),
                         target_db=_num(level, "audio.target_level", path),
                         eps=_num(audio.get("eps", 1e-10), "audio.eps", path),
                         target_kind="" if same else t_kind, target_log=t_log, target_deltas=t_deltas,
                         target_cmvn=t_cm)


def config_from_states(states: dict[str, Any], path: Path) -> tuple[TeraConfig, list[str]]:
    """The :class:`TeraConfig` an s3prl checkpoint describes, validated, and notes on what was approximated."""
    up = upstream_config(states, path)
    task = up.get("task") if isinstance(up.get("task"), dict) else {}
    alteration, notes = alteration_config(task, path)
    cfg = TeraConfig(description=f"imported s3prl checkpoint {Path(path).name}",
                     features=feature_config(up.get("audio"), path), alteration=alteration,
                     model=model_config(up["transformer"], task, path), data=DataConfig(profile="full"))
    if cfg.features.target_kind and cfg.alteration.frequency and cfg.features.target_dim != cfg.features.dim:
        cfg = dataclasses.replace(cfg, alteration=dataclasses.replace(cfg.alteration, frequency=False))
        notes.append("frequency alteration with a target of another size is not reproduced")
    try:
        validate(cfg)
    except ConfigError as e:
        raise CheckpointError(f"{path}: its configuration is not usable: {e}") from None
    return cfg, notes


# ------------------------------------------------------------------------------------------------ weights
def _rename_legacy(sd: dict[str, Tensor]) -> dict[str, Tensor]:
    """builder.py ``load_model``: 'gamma' -> 'weight', 'beta' -> 'bias' in every key."""
    return {k.replace("gamma", "weight").replace("beta", "bias"): v for k, v in sd.items()}


def _pairs(layers: int) -> list[tuple[str, str]]:
    """(pretrainlab key, s3prl key) of everything except the fused q / k / v projections."""
    out = [("encoder.spec_transform", "input_representations.spec_transform"),
           ("encoder.input_norm", "input_representations.LayerNorm")]
    for i in range(layers):
        ours, theirs = f"encoder.layers.{i}", f"encoder.layer.{i}"
        out += [(f"{ours}.self_attn.out_proj", f"{theirs}.attention.output.dense"),
                (f"{ours}.norm1", f"{theirs}.attention.output.LayerNorm"),
                (f"{ours}.linear1", f"{theirs}.intermediate.dense"),
                (f"{ours}.linear2", f"{theirs}.output.dense"),
                (f"{ours}.norm2", f"{theirs}.output.LayerNorm")]
    return out


HEAD_PAIRS = [("head.dense", "dense"), ("head.norm", "LayerNorm"), ("head.output", "output")]


def from_s3prl(transformer: dict[str, Tensor], head: dict[str, Tensor] | None, layers: int, path: Path
               ) -> dict[str, Tensor]:
    """s3prl ``Transformer`` (+ ``SpecHead``) state dicts -> :class:`TeraTask` state dict."""
    src = _rename_legacy(dict(transformer))
    out: dict[str, Tensor] = {}
    used: set[str] = set()

    def take(key: str) -> Tensor:
        if key not in src:
            raise CheckpointError(f"{path}: Transformer.{key} is missing (is this a TERA / Mockingjay upstream?)")
        used.add(key)
        v = src[key]
        if not isinstance(v, Tensor):
            raise CheckpointError(f"{path}: Transformer.{key} is not a tensor")
        return v.float()

    for ours, theirs in _pairs(layers):
        for p in ("weight", "bias"):
            out[f"{ours}.{p}"] = take(f"{theirs}.{p}")
    for i in range(layers):
        s = f"encoder.layer.{i}.attention.self"
        for p in ("weight", "bias"):
            out[f"encoder.layers.{i}.self_attn.in_proj_{p}"] = torch.cat(
                [take(f"{s}.{n}.{p}") for n in ("query", "key", "value")], dim=0)
    extra = sorted(set(src) - used)
    if extra:
        raise CheckpointError(f"{path}: Transformer holds {len(extra)} weights this encoder has no place for "
                              f"(e.g. {extra[0]}); the config says {layers} layers")
    if head is not None:
        h = _rename_legacy(dict(head))
        for ours, theirs in HEAD_PAIRS:
            for p in ("weight", "bias"):
                if f"{theirs}.{p}" not in h:
                    raise CheckpointError(f"{path}: SpecHead.{theirs}.{p} is missing")
                out[f"{ours}.{p}"] = h[f"{theirs}.{p}"].float()
    return out


def to_s3prl(state: dict[str, Tensor], layers: int) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """:class:`TeraTask` state dict -> s3prl (``Transformer``, ``SpecHead``) state dicts."""
    tf: dict[str, Tensor] = {}
    for ours, theirs in _pairs(layers):
        for p in ("weight", "bias"):
            tf[f"{theirs}.{p}"] = state[f"{ours}.{p}"].detach().cpu().clone()
    for i in range(layers):
        s = f"encoder.layer.{i}.attention.self"
        for p in ("weight", "bias"):
            q, k, v = state[f"encoder.layers.{i}.self_attn.in_proj_{p}"].detach().cpu().chunk(3, dim=0)
            tf[f"{s}.query.{p}"], tf[f"{s}.key.{p}"], tf[f"{s}.value.{p}"] = q.clone(), k.clone(), v.clone()
    head = {f"{theirs}.{p}": state[f"{ours}.{p}"].detach().cpu().clone()
            for ours, theirs in HEAD_PAIRS for p in ("weight", "bias")}
    return tf, head


@dataclasses.dataclass
class S3prlCheckpoint:
    """What :func:`read_s3prl` found: the config, the task's weights, the step and notes."""

    config: TeraConfig
    state: dict[str, Tensor]
    step: int | None
    has_head: bool
    notes: list[str]


def read_s3prl(path: str | Path) -> S3prlCheckpoint:
    """Read an s3prl TERA / Mockingjay ``states-*.ckpt`` into pretrainlab terms (no code from it runs)."""
    path = Path(path)
    states = read_states(path)
    cfg, notes = config_from_states(states, path)
    head = states.get("SpecHead") if isinstance(states.get("SpecHead"), dict) else None
    if head is None:
        notes.append("no SpecHead in the checkpoint: the reconstruction head is untrained")
    state = from_s3prl(states["Transformer"], head, cfg.model.layers, path)
    step = states.get("Step")
    return S3prlCheckpoint(cfg, state, int(step) if isinstance(step, int) else None, head is not None, notes)


def load_task(path: str | Path) -> tuple[Any, S3prlCheckpoint]:
    """A :class:`TeraTask` (eval mode) with the weights of an s3prl checkpoint; shapes are checked."""
    from pretrainlab.speech.tera import TeraTask

    ck = read_s3prl(path)
    task = TeraTask(ck.config)
    own = task.state_dict()
    for k, v in ck.state.items():
        if k not in own or own[k].shape != v.shape:
            want = tuple(own[k].shape) if k in own else "nothing"
            raise CheckpointError(f"{path}: {k} has shape {tuple(v.shape)}, the config gives {want}")
    task.load_state_dict(ck.state, strict=ck.has_head)
    return task.eval(), ck


# ------------------------------------------------------------------------------------------------ writing
def audio_block(fc: FeatureConfig) -> dict[str, Any]:
    """:class:`FeatureConfig` -> s3prl's ``audio`` block (the inverse of :func:`feature_config`)."""
    if fc.kind == "fbank":
        if fc.sample_rate != 16000:
            raise ConfigError(f"features.sample_rate: s3prl's kaldi extracter runs at 16000 Hz, not {fc.sample_rate}")
        return {"kaldi": {"feat_type": "fbank", "fbank": {"num_mel_bins": fc.n_mels, "frame_length": fc.win_ms,
                                                          "frame_shift": fc.hop_ms, "use_log_fbank": fc.log}},
                "delta": {"order": fc.deltas, "win_length": fc.delta_win}, "cmvn": {"use_cmvn": fc.cmvn}}
    if fc.delta_win != 5:
        raise ConfigError(f"features.delta_win: s3prl's preprocessor uses a delta window of 5, not {fc.delta_win}")
    target = {"feat_type": fc.target_kind or fc.kind, "channel": 1,
              "log": fc.target_log if fc.target_kind else fc.log,
              "delta": fc.target_deltas if fc.target_kind else fc.deltas,
              "cmvn": fc.target_cmvn if fc.target_kind else fc.cmvn}
    return {"target_level": fc.target_db, "sample_rate": fc.sample_rate, "win_ms": fc.win_ms, "hop_ms": fc.hop_ms,
            "n_freq": fc.n_freq, "n_mels": fc.n_mels, "n_mfcc": 13, "eps": fc.eps,
            "input": {"feat_type": fc.kind, "channel": 0, "log": fc.log, "delta": fc.deltas, "cmvn": fc.cmvn},
            "target": target}


def upstream_block(cfg: TeraConfig) -> dict[str, Any]:
    """:class:`TeraConfig` -> s3prl ``Upstream_Config`` (``transformer``, ``task``, ``audio``)."""
    m, a = cfg.model, cfg.alteration
    return {
        "transformer": {"input_dim": -1, "hidden_size": m.hidden, "num_hidden_layers": m.layers,
                        "num_attention_heads": m.heads, "intermediate_size": m.ffn, "hidden_act": m.activation,
                        "hidden_dropout_prob": m.dropout, "attention_probs_dropout_prob": m.attention_dropout,
                        "initializer_range": m.init_range, "layer_norm_eps": m.layer_norm_eps,
                        "share_layer": False, "pre_layer_norm": False},
        "task": {"loss": "L1", "sequence_length": m.max_frames, "position_encoding_size": m.hidden,
                 "mask_proportion": a.time_proportion if a.time else 0.0,
                 "mask_consecutive_min": a.time_consecutive, "mask_consecutive_max": a.time_consecutive,
                 "mask_allow_overlap": True, "mask_bucket_ratio": 1.5,
                 "mask_frequency": a.frequency_max_proportion if a.frequency else 0.0,
                 "noise_proportion": a.magnitude_prob if a.magnitude else 0.0},
        "audio": audio_block(cfg.features),
    }


def s3prl_states(task: Any, cfg: TeraConfig, step: int) -> dict[str, Any]:
    """The ``torch.save`` dict of s3prl's pretrain runner for a pretrainlab :class:`TeraTask`."""
    tf, head = to_s3prl(task.state_dict(), cfg.model.layers)
    t = cfg.train
    runner = {"runner": {"n_epochs": -1, "total_steps": t.max_steps, "gradient_clipping": t.clip_grad,
                         "gradient_accumulate_steps": t.grad_accum, "fp16": False},
              "optimizer": {"name": "AdamW_with_schedule", "lr": t.lr, "warmup_proportion": cfg.warmup_proportion},
              "pretrain_expert": {"datarc": {"train_batch_size": t.batch_size, "max_timestep": -cfg.data.min_frames,
                                             "sets": list(cfg.data.subsets)}}}
    return {"Step": int(step), "Args": argparse.Namespace(upstream="tera", exported_by="pretrainlab", seed=t.seed),
            "Config": runner, "SpecHead": head, "Transformer": tf, "Upstream_Config": upstream_block(cfg)}


def write_s3prl(task: Any, cfg: TeraConfig, step: int, out: Path) -> Path:
    """Write ``out`` (``states-<step>.ckpt`` layout) atomically; returns it."""
    from pretrainlab.core.io import atomic_write_bytes

    buf = io.BytesIO()
    torch.save(s3prl_states(task, cfg, step), buf)
    atomic_write_bytes(Path(out), buf.getvalue())
    return Path(out)
