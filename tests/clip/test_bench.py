"""The peer benchmark's rate estimate: log windows of both trainers, median window after the first third."""

from __future__ import annotations

import math

from pretrainlab.clip.bench import PEER_WINDOW, _log_every, _steady_rate


def test_rate_is_the_median_window_after_the_first_third() -> None:
    # 12 windows of 5 steps at 0.1 s/step; one kept window hit by a 10x burst, the first ones slow (start-up)
    windows = [(a, a + 4, 0.5) for a in range(1, 60, 5)]
    windows[0] = (1, 5, 5.0)
    windows[6] = (31, 35, 5.0)
    assert math.isclose(_steady_rate(windows, 20), 10.0)  # the burst does not move the median
    assert math.isclose(_steady_rate([(21, 25, 0.5), (26, 30, 1.0), (31, 33, 0.3)], 20), 10.0)
    assert math.isnan(_steady_rate(windows[:4], 20))  # nothing after the skipped third
    assert _log_every(60) == 5 and _log_every(3) == 1


def test_peer_log_line_parses_as_open_clip_train_prints_it() -> None:
    # open_clip_train.train.train_one_epoch's log line (open_clip 3.x)
    line = ("2026-12-03,10:13:31 | INFO | Train Epoch: 0 [ 144/2880 (5%)] Data (t): 0.002 Batch (t): 0.045, "
            "1134.75/s, 1134.75/s/gpu LR: 0.000997 Logit Scale: 14.259 Contrastive_loss: 3.9790 (4.2199)")
    m = PEER_WINDOW.search(line)
    assert m is not None and (int(m.group(1)), float(m.group(2))) == (144, 0.045)
