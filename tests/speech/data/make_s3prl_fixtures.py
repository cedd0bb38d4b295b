"""Regenerate the s3prl parity fixtures in this folder with s3prl's OWN code (not part of the test run).

Usage (s3prl is not a dependency of pretrainlab; its source is only needed to make these files)::

    git clone https://github.com/s3prl/s3prl /tmp/s3prl      # fixtures made at s3prl 0.4.18 (ec8064b5)
    S3PRL_SRC=/tmp/s3prl python tests/speech/data/make_s3prl_fixtures.py

What it writes (s3prl is Apache-2.0; the files below hold no s3prl code, only numbers s3prl computed):

- ``speech.wav``: 1.71 s of eSpeak NG speech, 16 kHz 16-bit PCM (made by ``pretrainlab.speech.espeak``).
- ``states-500.ckpt``: a small TERA in s3prl's released checkpoint layout, built with s3prl's
  ``TransformerModel`` / ``TransformerSpecPredictionHead`` (64 hidden, 2 layers, 4 heads, FFN 128,
  ``sequence_length`` 100 so that the 172-frame utterance is chunked) with random weights (std 0.1, so a
  wrong mapping shows), saved as ``pretrain/runner.py`` saves: ``Optimizer`` (s3prl's own
  ``AdamW_with_schedule`` state, which pickles an ``optimizers.WarmupLinearSchedule``), ``Step``,
  ``Args`` (``argparse.Namespace``), ``Config`` (runner config), ``SpecHead``, ``Transformer``,
  ``Upstream_Config`` (``logMelBase-T-F-M.yaml`` with the small model).
- ``expected_logmel.npy`` ``(T, 80)``: s3prl's ``OnlinePreprocessor`` features of ``speech.wav`` after
  ``_normalize_wav_decibel`` (what the upstream feeds the model).
- ``expected_fbank.npy`` ``(T', 240)``: s3prl's kaldi extracter (``fbankBase-T-F.yaml`` audio block).
- ``expected_hidden.npy`` ``(K, T, 64)``: ``UpstreamExpert(states-500.ckpt).eval()([wav])["hidden_states"]``.
- ``expected_reconstruction.npy`` ``(T, 80)``: ``PretrainedTransformerWithHead`` output (SpecHead).
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import yaml

HERE = Path(__file__).parent
SRC = Path(os.environ.get("S3PRL_SRC", ""))


def main() -> None:
    if not (SRC / "s3prl" / "upstream" / "mockingjay" / "model.py").exists():
        sys.exit("set S3PRL_SRC to an s3prl checkout")
    sys.path[:0] = [str(SRC), str(SRC / "s3prl")]  # 'optimizers' importable top-level, as run_pretrain.py has it
    import optimizers  # s3prl/optimizers.py, imported the way s3prl's pretrain runner imports it
    from s3prl.upstream.baseline.extracter import get_extracter
    from s3prl.upstream.baseline.preprocessor import get_preprocessor
    from s3prl.upstream.mockingjay.builder import PretrainedTransformerWithHead
    from s3prl.upstream.mockingjay.expert import UpstreamExpert
    from s3prl.upstream.mockingjay.model import (
        TransformerConfig,
        TransformerModel,
        TransformerSpecPredictionHead,
    )

    # ---- the audio
    wav_path = HERE / "speech.wav"
    if not wav_path.exists():
        from pretrainlab.speech.audio import resample, save_audio
        from pretrainlab.speech.espeak import synthesize

        utt = synthesize("the river is yellow in the morning", "en-us+m3", rate=150, pitch=40, pitch_range=50)
        wave = resample(utt.wave, utt.sample_rate, 16000)[: int(2.31 * 16000)]
        save_audio(wav_path, wave / max(1e-3, np.abs(wave).max()) * 0.8, 16000)
    wav, sr = sf.read(str(wav_path), dtype="float32")
    assert sr == 16000
    wav_t = torch.from_numpy(wav)

    # ---- the upstream config: logMelBase-T-F-M.yaml with a small model
    tfm = yaml.safe_load((SRC / "s3prl/pretrain/tera/exp_model_config/logMelBase-T-F-M.yaml").read_text())
    tfm["transformer"].update(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128)
    tfm["task"].update(sequence_length=100, position_encoding_size=64)
    runner = yaml.safe_load((SRC / "s3prl/pretrain/tera/config_runner.yaml").read_text())

    torch.manual_seed(0)
    mcfg = TransformerConfig(tfm["transformer"])
    model = TransformerModel(mcfg, 80)
    head = TransformerSpecPredictionHead(mcfg, 80)
    with torch.no_grad():
        for name, p in list(model.named_parameters()) + list(head.named_parameters()):
            if "LayerNorm.weight" in name:
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            else:
                p.copy_(0.1 * torch.randn_like(p))
    params = [model, head]
    opt = optimizers.get_optimizer(params, 1000, copy.deepcopy(runner["optimizer"]))
    states = {
        "Optimizer": opt.state_dict(),
        "Step": 500,
        "Args": argparse.Namespace(config="pretrain/tera/config_runner.yaml", upstream="tera",
                                   upstream_config="pretrain/tera/exp_model_config/logMelBase-T-F-M.yaml",
                                   expdir="result/pretrain/tera_tiny", seed=1337, multi_gpu=False, init_ckpt=None),
        "Config": runner,
        "SpecHead": head.state_dict(),
        "Transformer": model.state_dict(),
        "Upstream_Config": tfm,
    }
    ckpt = HERE / "states-500.ckpt"
    torch.save(states, ckpt)
    sched = type(opt.state_dict()["param_groups"][0]["schedule"])
    print("schedule class pickled as", f"{sched.__module__}.{sched.__qualname__}")

    # ---- s3prl's features
    pre, _, _ = get_preprocessor(copy.deepcopy(tfm["audio"]), process_input_only=True)
    level = tfm["audio"]["target_level"]
    normed = wav_t * (10 ** (level / 20)) / (wav_t.pow(2).mean().pow(0.5) + 1e-10)
    logmel = pre(normed[None, None], wavs_len=[len(normed)])[0][0]
    np.save(HERE / "expected_logmel.npy", logmel.numpy().astype(np.float32))
    fb_cfg = yaml.safe_load((SRC / "s3prl/pretrain/tera/exp_model_config/fbankBase-T-F.yaml").read_text())["audio"]
    extracter, _, _ = get_extracter(fb_cfg)
    np.save(HERE / "expected_fbank.npy", extracter(wav_t).detach().numpy().astype(np.float32))

    # ---- s3prl's upstream forward (eval mode) and the reconstruction head
    expert = UpstreamExpert(str(ckpt)).eval()
    with torch.no_grad():
        out = expert([wav_t])
    hidden = torch.stack(out["hidden_states"])[:, 0]  # (K, T, H)
    assert torch.equal(hidden[-1], out["last_hidden_state"][0])
    np.save(HERE / "expected_hidden.npy", hidden.numpy().astype(np.float32))
    opts = {"load_pretrain": "True", "no_grad": "True", "dropout": "default", "spec_aug": "False",
            "spec_aug_prev": "True", "output_hidden_states": "False", "permute_input": "False", "select_layer": -1,
            "ckpt_file": str(ckpt)}
    with_head = PretrainedTransformerWithHead(opts, inp_dim=-1).eval()
    with torch.no_grad():
        recon = with_head([wav_t])[0]
    np.save(HERE / "expected_reconstruction.npy", recon.numpy().astype(np.float32))
    print(f"wrote fixtures: hidden {tuple(hidden.shape)}, logmel {tuple(logmel.shape)}, recon {tuple(recon.shape)}")


if __name__ == "__main__":
    main()
