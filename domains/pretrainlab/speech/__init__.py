"""pretrainlab.speech: TERA (Liu, Li, Lee 2021) self-supervised speech pre-training.

Time / frequency / magnitude alteration of log-mel frames, a post-LN Transformer encoder that
reconstructs the clean frames (L1 on the altered positions), an s3prl-style upstream interface
(``last_hidden_state``, ``hidden_states``, a learnable weighted sum over layers) and frozen-feature
probes for phones, keywords and speakers. Data: LibriSpeech / Speech Commands layouts, CPC and HTS
alignments; a synthetic generator with real eSpeak NG speech writes those same formats.
"""

__all__: list[str] = []
