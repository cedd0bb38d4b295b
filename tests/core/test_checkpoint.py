"""Checkpoints: safetensors only (no pickle), atomic writes, clear errors, resolution rules."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from pretrainlab.core.checkpoint import (
    CheckpointError,
    find_checkpoint,
    load_state,
    load_tensors,
    load_weights,
    rng_state,
    save_checkpoint,
    save_state,
    set_rng_state,
)


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 3))
    return m


def test_round_trip_with_optimizer_and_rng(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    m = _model()
    opt = torch.optim.AdamW(m.parameters(), lr=0.1)
    m(torch.randn(5, 3)).sum().backward()
    opt.step()
    state = {"step": 7, "epoch": 1, "optimizers": [opt.state_dict()], "rng": [rng_state()]}
    ckpt = save_checkpoint(tmp_path / "checkpoints", 7, m.state_dict(), state, {"config": {"a": 1}})
    expected = torch.rand(3)

    # loading never unpickles
    def no_pickle(*a, **k):  # type: ignore[no-untyped-def]
        raise AssertionError("pickle used")
    monkeypatch.setattr(pickle, "loads", no_pickle)
    monkeypatch.setattr(pickle, "load", no_pickle)
    monkeypatch.setattr(torch, "load", no_pickle)

    m2 = _model()
    for p in m2.parameters():
        torch.nn.init.zeros_(p)
    load_weights(m2, find_checkpoint(tmp_path) / "model.safetensors")
    for k, v in m.state_dict().items():
        torch.testing.assert_close(m2.state_dict()[k], v)
    st = load_state(ckpt / "state.safetensors")
    assert st["step"] == 7 and st["epoch"] == 1
    opt2 = torch.optim.AdamW(m2.parameters(), lr=0.1)
    opt2.load_state_dict(st["optimizers"][0])
    torch.testing.assert_close(opt2.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    set_rng_state(st["rng"][0])
    torch.testing.assert_close(torch.rand(3), expected)


def test_latest_points_to_newest_and_old_pruned(tmp_path: Path) -> None:
    m = _model()
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, step, m.state_dict(), {"step": step}, {}, keep=2)
    assert sorted(p.name for p in tmp_path.glob("step_*")) == ["step_000002", "step_000003"]
    assert find_checkpoint(tmp_path).name == "step_000003"
    assert find_checkpoint(tmp_path / "step_000002").name == "step_000002"
    assert find_checkpoint(tmp_path / "step_000002" / "model.safetensors").name == "step_000002"


def test_interrupted_write_leaves_previous_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    m = _model()
    save_checkpoint(tmp_path, 1, m.state_dict(), {"step": 1}, {})
    import pretrainlab.core.checkpoint as C

    def boom(path: Path, state: dict) -> None:  # type: ignore[type-arg]
        raise OSError("disk full")
    monkeypatch.setattr(C, "save_state", boom)
    with pytest.raises(OSError):
        save_checkpoint(tmp_path, 2, m.state_dict(), {"step": 2}, {})
    assert find_checkpoint(tmp_path).name == "step_000001"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest", "step_000001"]


@pytest.mark.parametrize("content", [b"", b"not a safetensors file at all", pickle.dumps({"a": 1})])
def test_corrupt_files_raise_checkpoint_error_naming_file(tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "model.safetensors"
    bad.write_bytes(content)
    with pytest.raises(CheckpointError, match=str(bad)):
        load_tensors(bad)
    with pytest.raises(CheckpointError, match=str(bad)):
        load_state(bad)


def test_missing_and_empty_folders(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no such"):
        find_checkpoint(tmp_path / "nope")
    with pytest.raises(CheckpointError, match="holds no checkpoint"):
        find_checkpoint(tmp_path)


def test_strict_load_reports_mismatch(tmp_path: Path) -> None:
    m = _model()
    save_state  # noqa: B018 - imported API
    path = tmp_path / "w.safetensors"
    from pretrainlab.core.checkpoint import save_weights

    save_weights(m, path)
    other = torch.nn.Linear(3, 3)
    with pytest.raises(CheckpointError, match=str(path)):
        load_weights(other, path, strict=True)
