"""s3prl interop: features, hidden states and reconstructions equal to what s3prl's own code computed
(fixtures in data/, made by data/make_s3prl_fixtures.py with s3prl 0.4.18), legacy layouts, the
pickle trap, unsupported configurations, export -> import round trips."""

from __future__ import annotations

import argparse
import io
import os
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from pretrainlab.core.checkpoint import CheckpointError
from pretrainlab.speech.config import FeatureConfig
from pretrainlab.speech.features import extract
from pretrainlab.speech.s3prl_format import feature_config, read_s3prl, s3prl_states
from pretrainlab.speech.upstream import hidden_states_of, load_upstream

DATA = Path(__file__).parent / "data"
CKPT = DATA / "states-500.ckpt"


@pytest.fixture(scope="module")
def wave() -> np.ndarray:
    w, sr = sf.read(str(DATA / "speech.wav"), dtype="float32")
    assert sr == 16000
    return w


def _safe_states() -> dict:
    """The fixture's dict, read without running pickled code; 'Optimizer' (whose schedule is an inert
    stand-in that cannot be pickled again) dropped, so tests can edit and re-save it."""
    from pretrainlab.speech.s3prl_format import read_states

    st = read_states(CKPT)
    assert type(st["Optimizer"]["param_groups"][0]["schedule"]).__name__ == "WarmupLinearSchedule"
    st.pop("Optimizer")
    return st


def test_logmel_features_equal_s3prl(wave: np.ndarray) -> None:
    """-25 dB, centred STFT (T = N // 160 + 1), HTK mel, log(x + 1e-10), CMVN with the unbiased std."""
    ours = extract(wave, FeatureConfig()).numpy()
    ref = np.load(DATA / "expected_logmel.npy")
    assert ours.shape == ref.shape == (len(wave) // 160 + 1, 80)
    assert np.abs(ours - ref).max() < 1e-4


def test_fbank_features_equal_s3prl(wave: np.ndarray) -> None:
    """s3prl's kaldi extracter (fbankBase-T-F.yaml): fbank 80 + 2 delta orders + CMVN, no dB scaling."""
    block = {"kaldi": {"feat_type": "fbank", "fbank": {"num_mel_bins": 80, "frame_length": 25.0, "frame_shift": 10.0,
                                                       "use_log_fbank": True}},
             "delta": {"order": 2, "win_length": 5}, "cmvn": {"use_cmvn": True}}
    fc = feature_config(block, Path("x.ckpt"))
    ours = extract(wave, fc).numpy()
    ref = np.load(DATA / "expected_fbank.npy")
    assert ours.shape == ref.shape == (1 + (len(wave) - 400) // 160, 240)
    assert np.abs(ours - ref).max() < 1e-4


def test_s3prl_checkpoint_hidden_states_and_head_equal_s3prl(wave: np.ndarray) -> None:
    up = load_upstream(CKPT)
    assert up.imported and up.cfg.model.max_frames == 100 and up.cfg.model.dropout == 0.3
    hs = hidden_states_of(up.task, wave).numpy()
    ref = np.load(DATA / "expected_hidden.npy")
    assert hs.shape == ref.shape == (3, 172, 64)  # 172 frames > sequence_length 100: two chunks of 86
    assert np.abs(hs - ref).max() < 1e-3
    feat = extract(wave, up.cfg.features)[None]
    with torch.no_grad():
        recon = up.task.head(up.task.encoder(feat)["last_hidden_state"])[0].numpy()
    assert np.abs(recon - np.load(DATA / "expected_reconstruction.npy")).max() < 1e-3


def test_chunking_matters(wave: np.ndarray) -> None:
    """The same model without chunking gives other states: the fixture does test the chunking."""
    up = load_upstream(CKPT)
    up.task.encoder.cfg.max_frames = 400
    up.task.encoder.register_buffer("positions", torch.cat([up.task.encoder.positions] * 4), persistent=False)
    hs = hidden_states_of(up.task, wave).numpy()
    assert np.abs(hs - np.load(DATA / "expected_hidden.npy")).max() > 1e-2


def _save(states: dict, path: Path) -> Path:
    torch.save(states, path)
    return path


def test_legacy_layout_config_key_and_gamma_beta(tmp_path: Path, wave: np.ndarray) -> None:
    """Legacy files: the upstream config under 'Config' (runner config under 'Runner'), LayerNorm 'gamma' /
    'beta', the scheduler pickled as optimizers.WarmupLinearSchedule."""
    st = _safe_states()
    legacy = {"Transformer": {k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
                              for k, v in st["Transformer"].items()},
              "SpecHead": st["SpecHead"], "Config": st["Upstream_Config"], "Runner": st["Config"],
              "Step": 500, "Args": argparse.Namespace(seed=1)}
    assert any("gamma" in k for k in legacy["Transformer"])
    mod = types.ModuleType("optimizers")

    class WarmupLinearSchedule:
        def __init__(self) -> None:
            self.warmup, self.t_total = 0.07, 1000.0

    WarmupLinearSchedule.__module__ = "optimizers"
    WarmupLinearSchedule.__qualname__ = "WarmupLinearSchedule"
    mod.WarmupLinearSchedule = WarmupLinearSchedule  # type: ignore[attr-defined]
    sys.modules["optimizers"] = mod
    try:
        legacy["Optimizer"] = {"param_groups": [{"schedule": WarmupLinearSchedule(), "lr": 2e-4}], "state": {}}
        path = _save(legacy, tmp_path / "legacy.ckpt")
    finally:
        del sys.modules["optimizers"]
    hs = hidden_states_of(load_upstream(path).task, wave).numpy()
    assert np.abs(hs - np.load(DATA / "expected_hidden.npy")).max() < 1e-3


class _Trap:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ['SPEECH_TRAP_MARKER']}",))


def test_pickle_trap_is_refused_and_runs_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "pwned"
    monkeypatch.setenv("SPEECH_TRAP_MARKER", str(marker))
    st = _safe_states()
    st["Args"] = _Trap()
    path = _save(st, tmp_path / "trap.ckpt")
    with pytest.raises(CheckpointError, match=r"trap.ckpt: refused.*posix.system|trap.ckpt: refused.*os.system"):
        load_upstream(path)
    assert not marker.exists()


def test_other_classes_are_refused(tmp_path: Path) -> None:
    st = _safe_states()
    st["Extra"] = io.BytesIO(b"x")
    with pytest.raises(CheckpointError, match="extra.ckpt: refused.*_io.BytesIO"):
        load_upstream(_save(st, tmp_path / "extra.ckpt"))


@pytest.mark.parametrize(("edit", "match"), [
    (lambda s: s["Upstream_Config"]["transformer"].update(pre_layer_norm=True), "pre_layer_norm is true"),
    (lambda s: s["Upstream_Config"]["transformer"].update(share_layer=True), "share_layer is true"),
    (lambda s: s["Upstream_Config"].pop("audio"), "no 'audio' block"),
    (lambda s: s["Upstream_Config"]["audio"]["input"].update(feat_type="mfcc"), "feat_type 'mfcc' is not supported"),
    (lambda s: s["Upstream_Config"]["transformer"].update(num_attention_heads=5), "not a multiple of heads"),
    (lambda s: s["Upstream_Config"]["transformer"].update(hidden_size="big"), "hidden_size = 'big' is not an integer"),
    (lambda s: s["Upstream_Config"]["transformer"].update(num_hidden_layers=1), "has no place for"),
    (lambda s: s["Transformer"].pop("encoder.layer.0.attention.self.key.weight"), "key.weight is missing"),
    (lambda s: s.pop("Transformer"), "not an s3prl TERA / Mockingjay checkpoint"),
    (lambda s: s["Upstream_Config"].pop("transformer"), "holds a 'transformer' block"),
])
def test_unusable_checkpoints_are_refused_cleanly(tmp_path: Path, edit, match: str) -> None:
    st = _safe_states()
    edit(st)
    with pytest.raises(CheckpointError, match=match):
        load_upstream(_save(st, tmp_path / "bad.ckpt"))


def test_kaldi_mfcc_config_refused(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="kaldi.feat_type 'mfcc' is not supported"):
        feature_config({"kaldi": {"feat_type": "mfcc"}, "cmvn": {"use_cmvn": True}}, tmp_path / "a.ckpt")


def test_export_then_import_round_trip(smoke_run: Path, tmp_path: Path, wave: np.ndarray) -> None:
    from pretrainlab.speech import api

    out = api.export(smoke_run, tmp_path / "states-3.ckpt")
    mine = api.load_upstream(smoke_run)
    back = api.load_upstream(out)
    assert back.imported and back.step == 3
    assert back.cfg.model == mine.cfg.model and back.cfg.features == mine.cfg.features
    assert (back.cfg.alteration.time, back.cfg.alteration.frequency, back.cfg.alteration.magnitude) == (True,) * 3
    a, b = hidden_states_of(mine.task, wave), hidden_states_of(back.task, wave)
    assert torch.allclose(a, b, atol=1e-6)
    for k, v in mine.task.state_dict().items():
        assert torch.equal(v, back.task.state_dict()[k]), k
    st = read_s3prl(out)
    assert set(s3prl_states(mine.task, mine.cfg, 3)) == {"Step", "Args", "Config", "SpecHead", "Transformer",
                                                         "Upstream_Config"}
    assert st.step == 3


@pytest.mark.skipif(not os.environ.get("S3PRL_SRC"), reason="needs an s3prl checkout in $S3PRL_SRC")
def test_export_loads_in_real_s3prl(smoke_run: Path, tmp_path: Path, wave: np.ndarray) -> None:
    """With s3prl's source at hand: s3prl's own UpstreamExpert reads the export and gives our states."""
    from pretrainlab.speech import api

    src = os.environ["S3PRL_SRC"]
    sys.path[:0] = [src, os.path.join(src, "s3prl")]
    UpstreamExpert = pytest.importorskip("s3prl.upstream.mockingjay.expert").UpstreamExpert  # a source checkout

    out = api.export(smoke_run, tmp_path / "states-3.ckpt")
    expert = UpstreamExpert(str(out)).eval()
    with torch.no_grad():
        ref = torch.stack(expert([torch.from_numpy(wave)])["hidden_states"])[:, 0]
    assert torch.allclose(hidden_states_of(api.load_upstream(smoke_run).task, wave), ref, atol=1e-4)


def test_fbank_model_trains_and_round_trips(smoke_data: Path, tmp_path: Path, wave: np.ndarray) -> None:
    """The kaldi (fbank + deltas) input: pre-training crops features of the whole utterance; the s3prl
    export writes a 'kaldi' audio block that reads back to the same features."""
    from pretrainlab.speech import api

    cfg = api.load("tera", "smoke", ["features.kind=fbank", "features.deltas=2", "train.max_steps=1",
                                     "train.progress=false"])
    task, res = api.pretrain(cfg, smoke_data, tmp_path / "run")
    assert task.encoder.input_dim == 240 and np.isfinite(res.history[-1]["loss"])
    out = api.export(tmp_path / "run", tmp_path / "fbank.ckpt")
    st = read_s3prl(out)
    assert "kaldi" in s3prl_states(task, cfg, 1)["Upstream_Config"]["audio"]
    assert st.config.features == cfg.features
    back = api.load_upstream(out)
    assert torch.allclose(hidden_states_of(back.task, wave), hidden_states_of(task.cpu().eval(), wave), atol=1e-6)
