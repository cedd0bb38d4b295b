"""Configuration of the speech domain: every TERA default is a named field citing its source.

Sources: Liu, Li, Lee, "TERA: Self-Supervised Learning of Transformer Encoder Representation for
Speech", IEEE/ACM TASLP 29, 2021 (cited "TERA Sec. X") and its reference implementation s3prl
(``pretrain/mockingjay/task.py`` alteration, ``upstream/mockingjay/model.py`` network, the released
``config_model.yaml`` files; cited "s3prl"). Values the research notes mark "to confirm" are
flagged as such in the comment. Section numbers follow the arXiv version (2007.06028) from
memory and are to be confirmed against the published paper.
"""

from __future__ import annotations

import dataclasses

from pretrainlab.core.config import TrainConfig


@dataclasses.dataclass
class FeatureConfig:
    """Acoustic features (TERA Sec. IV-A; s3prl ``upstream/mockingjay`` / ``audio.py``)."""

    kind: str = "logmel"  # logmel (TERA's main input) | fbank (kaldi fbank + deltas, the alternative)
    sample_rate: int = 16000  # LibriSpeech rate; other rates are resampled
    n_mels: int = 80  # TERA Sec. IV-A: 80-dim log Mel
    win_ms: float = 25.0  # TERA Sec. IV-A: 25 ms window
    hop_ms: float = 10.0  # TERA Sec. IV-A: 10 ms hop (downsample rate 160 samples)
    n_fft: int = 400  # = window length at 16 kHz
    target_db: float = -25.0  # s3prl: waveform normalised to -25 dB before features
    cmvn: bool = True  # s3prl: per-utterance mean / variance normalisation
    deltas: int = 2  # fbank only: delta orders appended (80 x 3 = 240 dims)
    log_eps: float = 1e-6  # floor inside the log

    @property
    def hop(self) -> int:
        return round(self.sample_rate * self.hop_ms / 1000)

    @property
    def win(self) -> int:
        return round(self.sample_rate * self.win_ms / 1000)

    @property
    def dim(self) -> int:
        return self.n_mels * (1 + self.deltas) if self.kind == "fbank" else self.n_mels


@dataclasses.dataclass
class AlterationConfig:
    """The three alterations (TERA Sec. III-A..C, s3prl ``process_train_MAM_data``)."""

    time: bool = True  # time alteration (TERA Sec. III-A)
    time_proportion: float = 0.15  # TERA Sec. III-A: 15 % of the frames are altered
    time_consecutive: int = 7  # TERA Sec. III-A: blocks of C_num = 7 consecutive frames
    time_zero_prob: float = 0.8  # BERT-style dice: 80 % set to zero
    time_replace_prob: float = 0.1  # 10 % replaced by other random blocks of the same utterance
    # (the remaining 10 % are kept unchanged, but still count in the loss)
    frequency: bool = True  # frequency alteration (TERA Sec. III-B)
    frequency_max_proportion: float = 0.2  # TERA Sec. III-B: band width uniform in [0, int(0.2 * D)]
    magnitude: bool = True  # magnitude alteration (TERA Sec. III-C)
    magnitude_prob: float = 0.15  # s3prl T-F-M config: noise_proportion 0.15 (per batch)
    magnitude_std: float = 0.2  # TERA Sec. III-C: Gaussian noise N(0, 0.2) (s3prl samples std 0.2)


@dataclasses.dataclass
class ModelConfig:
    """TERA network (TERA Sec. III-D, s3prl ``TransformerModel``): BERT-style post-LN encoder."""

    hidden: int = 768  # TERA base: 768 hidden
    layers: int = 3  # TERA base: 3 layers (large: 12)
    heads: int = 12  # TERA base: 12 heads
    ffn: int = 3072  # TERA base: intermediate size 3072
    dropout: float = 0.1  # s3prl released configs: hidden_dropout 0.1 (the paper also tried 0.3)
    attention_dropout: float = 0.1  # s3prl: attention_probs_dropout_prob 0.1
    activation: str = "gelu"  # s3prl: hidden_act gelu
    max_frames: int = 1500  # s3prl: max_input_length / positional table size
    init_range: float = 0.02  # BERT initializer_range (s3prl)
    layer_norm_eps: float = 1e-12  # BERT / s3prl LayerNorm eps


@dataclasses.dataclass
class ProbeConfig:
    """Frozen-feature downstream runner (s3prl downstream recipes, SUPERB protocol)."""

    lr: float = 2e-4  # s3prl phone_linear / phone_1hidden: AdamW lr 2e-4
    weight_decay: float = 0.0
    epochs: int = 30  # passes over the cached features
    batch_frames: int = 2048  # frames per probe batch (frame-level tasks)
    batch_utts: int = 64  # utterances per probe batch (utterance-level tasks)
    hidden: int = 256  # phone_1hidden hidden layer / utterance-level projector width (s3prl projector_dim 256)
    max_utterance_frames: int = 400  # utterance-level probes crop each utterance to this many frames
    max_utterances: int = 0  # phone / speaker probes: keep this many utterances (0 = all); features are cached
    weighted_sum: bool = True  # learnable softmax-weighted sum over hidden_states (s3prl Featurizer)


@dataclasses.dataclass
class TeraConfig:
    """One TERA pre-training recipe (one row of the paper's table)."""

    description: str = ""
    features: FeatureConfig = dataclasses.field(default_factory=FeatureConfig)
    alteration: AlterationConfig = dataclasses.field(default_factory=AlterationConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    probe: ProbeConfig = dataclasses.field(default_factory=ProbeConfig)
    # TERA Sec. IV-B: Lamb(adam=True) = AdamW with warm-up; lr 2e-4, batch 8 x accumulation 4, clip 5
    train: TrainConfig = dataclasses.field(default_factory=lambda: TrainConfig(
        optimizer="adamw", lr=2e-4, schedule="linear", batch_size=8, grad_accum=4, clip_grad=5.0,
        weight_decay=0.01,  # BERT-style decay on weights (s3prl optimizer; to confirm)
        max_steps=1_000_000))  # TERA: 1M steps on LibriSpeech 960 h (200k on 100 h)
    warmup_proportion: float = 0.07  # TERA / s3prl: 7 % linear warm-up, then linear decay
    crop_frames: int = 0  # random crop of each utterance to this many frames (0 = whole, up to max_frames)
    data_profile: str = "tiny"  # synthetic set used when no --data is given
    subset: str = "train-clean-100"  # LibriSpeech subset used for pre-training / probes
