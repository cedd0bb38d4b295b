"""Tests of pretrainlab.core.evaluate against hand-computed cases and sklearn."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score, roc_curve

from pretrainlab.core import evaluate as E


def test_linear_probe_separable_and_top5() -> None:
    rng = np.random.default_rng(0)
    centers = rng.normal(0, 5, (8, 6))
    y = np.repeat(np.arange(8), 30)
    x = centers[y] + rng.normal(0, 0.5, (240, 6))
    out = E.linear_probe(torch.as_tensor(x[::2]), y[::2], x[1::2], torch.as_tensor(y[1::2]), return_probs=True)
    assert out["accuracy"] == 1.0 and out["top5"] == 1.0
    assert out["probs"].shape == (120, 8) and np.allclose(out["probs"].sum(1), 1)
    two = E.linear_probe(x[:60:2], y[:60:2], x[1:60:2], y[1:60:2])
    assert set(two) == {"accuracy"}


def test_knn_predict_hand_case() -> None:
    train = torch.tensor([[1.0, 0], [0.9, 0.1], [0, 1], [-1, 0]])
    labels = torch.tensor([0, 0, 1, 2])
    q = torch.tensor([[1.0, 0.05], [0.1, 1.0]])
    preds, scores = E.knn_predict(train, labels, q, k=2, temperature=0.5)
    assert preds.tolist() == [0, 1] and scores.shape == (2, 3)
    # hand: query 0 neighbours are rows 0 and 1, weights exp(cos / T)
    qn = q[0] / q[0].norm()
    w = [torch.exp((qn @ (train[i] / train[i].norm())) / 0.5) for i in (0, 1)]
    assert torch.allclose(scores[0], torch.stack([w[0] + w[1], torch.tensor(0.0), torch.tensor(0.0)]), atol=1e-5)
    # query 1: neighbours rows 2 (label 1) and 1 (label 0)
    assert scores[1, 2] == 0 and scores[1, 1] > scores[1, 0] > 0
    # k larger than the bank, n_classes, numpy input
    p2, s2 = E.knn_predict(train.numpy(), labels.numpy(), q.numpy(), k=50, n_classes=5)
    assert s2.shape == (2, 5) and p2.tolist() == [0, 1]
    assert E.knn_accuracy(train, labels, q, np.array([0, 0]), k=2) == 0.5


def test_retrieval_recall() -> None:
    g = torch.eye(4)
    q = torch.tensor([[1.0, 0.5, 0, 0], [1.0, 0.9, 0.8, 0], [0, 0, 0, 1.0]])
    # rankings: q0 -> 0,1,..; q1 -> 0,1,2,3; q2 -> 3,...
    r = E.retrieval_recall(q, g, torch.tensor([1, 2, 3]), ks=(1, 2, 3))
    assert r == pytest.approx({"R@1": 1 / 3, "R@2": 2 / 3, "R@3": 1.0})
    r2 = E.retrieval_recall(q.numpy(), g.numpy(), [[1, 0], [3], [3]], ks=(1, 3))
    assert r2 == pytest.approx({"R@1": 2 / 3, "R@3": 2 / 3})
    r3 = E.retrieval_recall(q, g, [1, 2, 3], ks=(1,))
    assert r3["R@1"] == pytest.approx(1 / 3)


def test_zero_shot_and_topk() -> None:
    img = torch.tensor([[2.0, 0], [0, 3.0], [1, 1]])
    cls = torch.tensor([[1.0, 0], [0, 1.0]])
    lg = E.zero_shot_logits(img, cls)
    assert torch.allclose(lg, torch.tensor([[1.0, 0], [0, 1.0], [0.7071, 0.7071]]), atol=1e-4)
    logits = np.array([[0.1, 0.5, 0.4], [0.9, 0.05, 0.05], [0.2, 0.3, 0.5], [0.3, 0.35, 0.4]])
    y = np.array([2, 0, 0, 1])
    acc = E.topk_accuracy(logits, y, ks=(1, 2, 5))
    assert acc == pytest.approx({"top1": 0.25, "top2": 0.75, "top5": 1.0})
    assert E.accuracy(y, logits) == 0.25
    assert E.accuracy(torch.tensor([1, 2, 3]), np.array([1, 2, 0])) == pytest.approx(2 / 3)


def test_roc_auc_vs_sklearn() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 50)
    s = y + rng.normal(0, 1, 50)
    assert E.roc_auc(y, s) == pytest.approx(roc_auc_score(y, s))
    assert E.roc_auc(torch.as_tensor(y), np.stack([-s, s], 1)) == pytest.approx(roc_auc_score(y, s))
    assert E.roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)  # hand: 3 of 4 pairs ordered
    y3 = rng.integers(0, 4, 80)
    logits = rng.normal(0, 1, (80, 4)) + np.eye(4)[y3]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    ref = roc_auc_score(y3, probs, multi_class="ovr")
    assert E.roc_auc(y3, probs) == pytest.approx(ref)
    assert E.roc_auc(y3, probs, multi_class="ovo") == pytest.approx(roc_auc_score(y3, probs, multi_class="ovo"))


def test_tar_at_far_hand_and_sklearn() -> None:
    # 4 genuine, 10 impostor pairs
    gen = np.array([0.9, 0.8, 0.6, 0.3])
    imp = np.array([0.7, 0.5, 0.4, 0.35, 0.2, 0.1, 0.05, 0.0, -0.1, -0.2])
    s = np.concatenate([gen, imp])
    same = np.array([True] * 4 + [False] * 10)
    out = E.tar_at_far(s, same, fars=(0.1, 0.2, 0.05, 0.0))
    # FAR 0.1: threshold between 0.7 and 0.5 accepts 1 impostor -> genuine above 0.5: 0.9, 0.8, 0.6 -> 0.75
    assert out["TAR@FAR=1e-01"] == pytest.approx(0.75)
    assert out["TAR@FAR=2e-01"] == pytest.approx(0.75)
    assert out["TAR@FAR=0e+00"] == pytest.approx(0.5)  # above every impostor: 0.9 and 0.8
    assert out["TAR@FAR=5e-02"] == pytest.approx(0.5)  # on the horizontal step from (0, 0.5) to (0.1, 0.5)
    # ties between a genuine and an impostor score give a diagonal ROC segment
    tied = E.tar_at_far([0.9, 0.5, 0.5, 0.1], [True, True, False, False], fars=(0.25,))
    assert tied["TAR@FAR=0.25"] == pytest.approx(0.75)  # halfway along (0, 0.5) -> (0.5, 1)
    rng = np.random.default_rng(0)
    same = rng.random(2000) < 0.3
    s = same * 1.5 + rng.normal(0, 1, 2000)  # continuous scores: a staircase ROC
    fpr, tpr, _ = roc_curve(same, s, drop_intermediate=False)
    fars = (1e-3, 1e-2, 0.0123, 0.1)
    out = E.tar_at_far(torch.as_tensor(s), torch.as_tensor(same), fars=fars)
    for far in fars:
        assert out[E.far_key(far)] == pytest.approx(tpr[fpr <= far].max(), abs=1e-9)
    with pytest.raises(ValueError):
        E.tar_at_far(s[:5], np.ones(5, bool))


def test_verification_accuracy() -> None:
    # perfectly separable at any fold: accuracy 1
    s = np.array([0.9, 0.1] * 10)
    same = np.array([True, False] * 10)
    assert E.verification_accuracy(s, same, folds=10) == 1.0
    # hand case, 2 folds: fold A = first 4, fold B = last 4
    s = np.array([0.9, 0.2, 0.6, 0.4, 0.7, 0.5, 0.3, 0.1])
    same = np.array([True, False, True, False, True, True, False, False])
    # train on B -> best threshold 0.5 (all correct); on A: 0.9,0.6 >= 0.5 same; 0.2,0.4 diff -> 1.0
    # train on A -> best threshold 0.6 (first maximum); on B: 0.7 same (ok), 0.5 diff (wrong), others ok -> 0.75
    assert E.verification_accuracy(s, same, folds=2) == pytest.approx((1.0 + 0.75) / 2)
    assert E.best_threshold(np.array([0.1, 0.2]), np.array([False, False])) == float("inf")


def test_verification_accuracy_brute_force() -> None:
    rng = np.random.default_rng(1)
    same = rng.random(200) < 0.5
    s = same + rng.normal(0, 0.8, 200)
    from sklearn.model_selection import KFold

    accs = []
    for tr, te in KFold(10).split(s):
        best_t, best = None, -1.0
        for t in np.concatenate([np.unique(s[tr]), [np.inf]]):
            a = ((s[tr] >= t) == same[tr]).mean()
            if a > best:
                best, best_t = a, t
        accs.append(((s[te] >= best_t) == same[te]).mean())
    assert E.verification_accuracy(s, same) == pytest.approx(np.mean(accs))
