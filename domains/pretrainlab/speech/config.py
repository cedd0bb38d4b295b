"""Configuration of the speech domain: every TERA default is a named field citing its source.

Sources: Liu, Li, Lee, "TERA: Self-Supervised Learning of Transformer Encoder Representation for
Speech", IEEE/ACM TASLP 29, 2021 (cited "TERA Sec. X", arXiv 2007.06028) and its reference
implementation s3prl (cited by file: ``pretrain/tera/exp_model_config/logMelBase-T-F-M.yaml`` and
its siblings for the model / task / audio blocks, ``pretrain/tera/config_runner.yaml`` for the
optimiser, ``pretrain/mockingjay/task.py`` for the alterations, ``upstream/baseline/preprocessor.py``
for the features, ``downstream/*`` for the probes).

Numeric fields are validated by the core (``CHECKS``: ``ConfigError`` naming the key before any run
folder is written); constraints across fields live in each class's ``check()``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from pretrainlab.core.config import ConfigError, TrainConfig

FEATURE_KINDS = ("mel", "linear", "fbank")  # s3prl input.feat_type mel / linear; fbank = the kaldi extracter
PROBE_TASKS = ("phone_linear", "phone_1hidden", "phone_concat", "speaker_frame", "speaker", "keyword")


@dataclasses.dataclass
class FeatureConfig:
    """Acoustic features, as s3prl's ``audio`` block (``upstream/baseline/preprocessor.py``;
    ``extracter.py`` for ``fbank``)."""

    kind: str = "mel"  # logMelBase: input.feat_type mel (fbankBase: the kaldi fbank extracter)
    log: bool = True  # logMelBase: input.log True -> log(x + eps)
    deltas: int = 0  # logMelBase: input.delta 0 (fbankBase: delta.order 2 -> 240 dims)
    delta_win: int = 5  # fbankBase: delta.win_length 5 (= torchaudio compute_deltas default, used by preprocessor.py)
    cmvn: bool = True  # logMelBase: input.cmvn True (per-utterance mean / unbiased std)
    sample_rate: int = 16000  # LibriSpeech rate; other rates are resampled on reading
    win_ms: float = 25.0  # logMelBase: audio.win_ms 25
    hop_ms: float = 10.0  # logMelBase: audio.hop_ms 10 (downsample rate 160 samples)
    n_freq: int = 201  # logMelBase: audio.n_freq 201 -> n_fft = (n_freq - 1) * 2 = 400
    n_mels: int = 80  # logMelBase: audio.n_mels 80 (TERA Sec. IV-A: 80-dim log Mel)
    target_db: float = -25.0  # logMelBase: audio.target_level -25 (mel / linear; the kaldi path has no scaling)
    eps: float = 1e-10  # preprocessor.py OnlinePreprocessor eps: log floor and CMVN std epsilon
    # the reconstruction target (s3prl audio.target); "" = the input features themselves (TERA)
    target_kind: str = ""  # Mockingjay (s3prl mockingjay_logMelLinearLarge): target.feat_type linear
    target_log: bool = True
    target_deltas: int = 0
    target_cmvn: bool = True

    CHECKS: ClassVar[dict[str, Any]] = {
        "kind": FEATURE_KINDS, "deltas": ">=0 <=4", "delta_win": ">=3", "sample_rate": ">=1000 <=384000",
        "win_ms": ">0 <=1000", "hop_ms": ">0 <=1000", "n_freq": ">=2 <=8193", "n_mels": ">=1 <=1024",
        "target_db": ">=-100 <=0", "eps": ">0 <1", "target_kind": ("",) + FEATURE_KINDS[:2], "target_deltas": ">=0 <=4",
    }

    def check(self) -> None:
        if self.hop_ms > self.win_ms:
            raise ConfigError(f"hop_ms: {self.hop_ms:g} is longer than win_ms {self.win_ms:g}")
        if self.delta_win % 2 == 0:
            raise ConfigError(f"delta_win: {self.delta_win} must be odd (a centred window)")
        if self.kind != "fbank" and self.win > self.n_fft:
            raise ConfigError(f"win_ms: a {self.win}-sample window does not fit n_fft = (n_freq - 1) * 2 = {self.n_fft}")
        if self.target_kind and self.kind == "fbank":
            raise ConfigError("target_kind: a separate target needs kind mel or linear (s3prl's kaldi extracter "
                              "has no target channel)")

    @property
    def hop(self) -> int:
        return round(self.sample_rate * self.hop_ms / 1000)

    @property
    def win(self) -> int:
        return round(self.sample_rate * self.win_ms / 1000)

    @property
    def n_fft(self) -> int:
        return (self.n_freq - 1) * 2

    def _bins(self, kind: str) -> int:
        return self.n_freq if kind == "linear" else self.n_mels

    @property
    def dim(self) -> int:
        """Input feature dimension: bins x (1 + deltas)."""
        return self._bins(self.kind) * (1 + self.deltas)

    @property
    def target_dim(self) -> int:
        """Dimension of the reconstruction target (= ``dim`` when the input is the target)."""
        if not self.target_kind:
            return self.dim
        return self._bins(self.target_kind) * (1 + self.target_deltas)


@dataclasses.dataclass
class AlterationConfig:
    """The three alterations (TERA Sec. III-A..C; s3prl ``pretrain/mockingjay/task.py``,
    ``generate_masked_acoustic_model_data``). With time and frequency both off (the ``M`` row) s3prl
    takes the loss on every frame (``mask_label`` all ones)."""

    time: bool = True  # logMelBase-T-F-M: task.mask_proportion 0.15 > 0
    time_proportion: float = 0.15  # task.mask_proportion 0.15
    time_consecutive: int = 7  # task.mask_consecutive_min = max = 7
    time_zero_prob: float = 0.8  # task.py: dice < 0.8 -> frames set to zero
    time_replace_prob: float = 0.1  # task.py: 0.8 <= dice < 0.9 -> replaced by other random frames (else kept)
    frequency: bool = True  # task.mask_frequency 0.2 > 0
    frequency_max_proportion: float = 0.2  # task.mask_frequency 0.2: band width U{0..int(0.2 D)}
    magnitude: bool = True  # task.noise_proportion 0.15 > 0
    magnitude_prob: float = 0.15  # task.noise_proportion 0.15 (one dice per batch)
    magnitude_std: float = 0.2  # task.py: Normal(0, 0.2)

    CHECKS: ClassVar[dict[str, Any]] = {
        "time_proportion": ">0 <=1", "time_consecutive": ">=1", "time_zero_prob": ">=0 <=1",
        "time_replace_prob": ">=0 <=1", "frequency_max_proportion": ">0 <=1", "magnitude_prob": ">=0 <=1",
        "magnitude_std": ">=0",
    }

    def check(self) -> None:
        if self.time_zero_prob + self.time_replace_prob > 1:
            raise ConfigError(f"time_zero_prob + time_replace_prob: {self.time_zero_prob:g} + "
                              f"{self.time_replace_prob:g} > 1")


@dataclasses.dataclass
class ModelConfig:
    """TERA network (TERA Sec. III-D; s3prl ``upstream/mockingjay/model.py`` ``TransformerModel``):
    BERT-style post-LN encoder. Values: ``logMelBase-T-F-M.yaml`` ``transformer`` / ``task`` blocks."""

    hidden: int = 768  # transformer.hidden_size 768
    layers: int = 3  # transformer.num_hidden_layers 3 (Large: 12)
    heads: int = 12  # transformer.num_attention_heads 12
    ffn: int = 3072  # transformer.intermediate_size 3072
    dropout: float = 0.3  # transformer.hidden_dropout_prob 0.3 (the released *_drop1 models use 0.1)
    attention_dropout: float = 0.3  # transformer.attention_probs_dropout_prob 0.3
    activation: str = "gelu"  # transformer.hidden_act gelu (erf form, model.py gelu())
    max_frames: int = 1500  # task.sequence_length 1500: longer inputs are cut into equal chunks (builder.py)
    init_range: float = 0.02  # transformer.initializer_range 0.02
    layer_norm_eps: float = 1e-12  # transformer.layer_norm_eps 1e-12

    CHECKS: ClassVar[dict[str, Any]] = {
        "hidden": ">=1", "layers": ">=1", "heads": ">=1", "ffn": ">=1", "dropout": ">=0 <1",
        "attention_dropout": ">=0 <1", "activation": ("gelu", "relu", "swish"), "max_frames": ">=1 <=24000",
        "init_range": ">0", "layer_norm_eps": ">0 <1",
    }

    def check(self) -> None:
        if self.hidden % self.heads:
            raise ConfigError(f"heads: hidden {self.hidden} is not a multiple of heads {self.heads}")


@dataclasses.dataclass
class ProbeConfig:
    """Frozen-upstream downstream runner (s3prl ``downstream/`` recipes; SUPERB protocol)."""

    tasks: list[str] = dataclasses.field(default_factory=lambda: ["phone_linear", "phone_1hidden", "phone_concat",
                                                                  "speaker_frame", "speaker", "keyword"])
    subset: str = "train-clean-100"  # phone_linear/dataset.py: CPC alignments of train-clean-100
    lr: float = 2e-4  # phone_linear / speaker_linear_*: AdamW lr 2e-4 (speech_commands: Adam 1e-4)
    keyword_lr: float = 1e-4  # speech_commands/config.yaml: Adam lr 1e-4
    weight_decay: float = 0.0
    batch_size: int = 32  # phone_linear / speech_commands: train_batch_size 32 utterances
    max_steps: int = 500_000  # phone_linear/config.yaml: runner.total_steps 500000 (speech_commands 200000)
    eval_every: int = 10_000  # phone_linear: runner.eval_step 10000 (speech_commands 5000)
    clip_grad: float = 1.0  # phone_linear / speech_commands: runner.gradient_clipping 1
    dev_fraction: float = 0.1  # phone_linear/dataset.py: the last 10 % of train_split after the shuffle
    dev_seed: int = 1337  # phone_linear/dataset.py: train_dev_seed 1337 (random.seed + random.shuffle)
    hidden: int = 768  # phone_1hidden/config.yaml: modelrc.hidden_size 768
    concat_frames: int = 9  # phone_linear_concat/config.yaml: modelrc.concat_n_frames 9
    projector_dim: int = 256  # speech_commands/config.yaml: modelrc.projector_dim 256
    weighted_sum: bool = True  # s3prl Featurizer: softmax-weighted sum of hidden_states (False: last layer)
    max_utterances: int = 0  # phone / speaker probes: keep this many utterances, evenly spaced (0 = all)
    cache_gb: float = 2.0  # hidden states are cached in RAM when they fit (else the upstream runs every step)
    keyword_silence_clips: int = 10  # 1 s _silence_ crops drawn per _background_noise_ file (train and dev)
    num_workers: int = 0  # DataLoader workers decoding audio for the probes (s3prl datarc.num_workers 8)

    CHECKS: ClassVar[dict[str, Any]] = {
        "tasks": lambda v: None if v in PROBE_TASKS else f"allowed: {', '.join(PROBE_TASKS)}", "lr": ">0", "keyword_lr": ">0", "weight_decay": ">=0", "batch_size": ">=1",
        "max_steps": ">=1", "eval_every": ">=1", "clip_grad": ">=0", "dev_fraction": ">0 <1", "hidden": ">=1",
        "concat_frames": ">=3", "projector_dim": ">=1", "max_utterances": ">=0", "cache_gb": ">=0",
        "keyword_silence_clips": ">=1", "num_workers": ">=0",
    }

    def check(self) -> None:
        if not self.tasks:
            raise ConfigError("tasks: empty; allowed: " + ", ".join(PROBE_TASKS))
        if self.concat_frames % 2 == 0:
            raise ConfigError(f"concat_frames: {self.concat_frames} must be odd (phone_linear_concat model.py)")


@dataclasses.dataclass
class DataConfig:
    """The pre-training data (s3prl ``config_runner.yaml`` ``datarc``; ``bucket_dataset.py``)."""

    profile: str = "tiny"  # synthetic set used when no --data is given
    subsets: list[str] = dataclasses.field(default_factory=lambda: [
        "train-clean-100", "train-clean-360", "train-other-500"])  # datarc.sets (LibriSpeech 960 h)
    min_frames: int = 200  # datarc.max_timestep -200: utterances of <= 200 frames (2 s) are dropped
    crop_frames: int = 0  # task.sequence_length: random crop of this many frames (0 = model.max_frames)

    CHECKS: ClassVar[dict[str, Any]] = {"profile": ("smoke", "tiny", "full"), "min_frames": ">=0",
                                        "crop_frames": ">=0"}

    def check(self) -> None:
        if not self.subsets:
            raise ConfigError("subsets: empty; name at least one LibriSpeech subset (e.g. train-clean-100)")


@dataclasses.dataclass
class TeraConfig:
    """One TERA pre-training recipe (one row of the paper's table)."""

    description: str = ""
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    features: FeatureConfig = dataclasses.field(default_factory=FeatureConfig)
    alteration: AlterationConfig = dataclasses.field(default_factory=AlterationConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    probe: ProbeConfig = dataclasses.field(default_factory=ProbeConfig)
    # config_runner.yaml: AdamW_with_schedule lr 2e-4, batch 8 x gradient_accumulate_steps 4, clipping 5,
    # weight decay 0.01 except biases / LayerNorm (optimizers.py get_grouped_parameters)
    train: TrainConfig = dataclasses.field(default_factory=lambda: TrainConfig(
        optimizer="adamw", lr=2e-4, schedule="linear", batch_size=8, grad_accum=4, clip_grad=5.0,
        weight_decay=0.01, max_steps=1_000_000))  # config_runner.yaml: total_steps 1000000
    warmup_proportion: float = 0.07  # config_runner.yaml: optimizer.warmup_proportion 0.07 (then linear decay)

    CHECKS: ClassVar[dict[str, Any]] = {"warmup_proportion": ">=0 <1"}

    def check(self) -> None:
        if self.data.crop_frames > self.model.max_frames:
            raise ConfigError(f"data.crop_frames: {self.data.crop_frames} exceeds model.max_frames "
                              f"{self.model.max_frames}")
        fc, al = self.features, self.alteration
        if fc.target_kind and al.frequency and fc.target_dim != fc.dim:
            raise ConfigError("alteration.frequency: frequency alteration needs the target to have the input's "
                              f"{fc.dim} dims (target {fc.target_dim}); s3prl marks the input's band in the target")

    @property
    def crop(self) -> int:
        """Frames per pre-training crop (``data.crop_frames``, else ``model.max_frames``)."""
        return self.data.crop_frames or self.model.max_frames
