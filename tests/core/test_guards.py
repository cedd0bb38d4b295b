"""Memory-bomb guards (core.guards) and the no-code unpickler for foreign checkpoints (core.checkpoint)."""

from __future__ import annotations

import argparse
import os
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from pretrainlab.core import guards
from pretrainlab.core.checkpoint import CheckpointError, load_torch_file
from pretrainlab.core.data import DataError


def _npy_with_header(path: Path, shape: tuple[int, ...], payload: bytes = b"\0" * 64) -> Path:
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": shape})
        f.write(payload)
    return path


def test_npy_bomb_is_refused_before_allocation(tmp_path: Path) -> None:
    p = _npy_with_header(tmp_path / "bomb.npy", (100000, 100000, 4))
    with pytest.raises(DataError, match=r"bomb\.npy: header declares float32 array .* over the .* limit"):
        guards.load_npy(p)


def test_npy_truncated_payload_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRETRAINLAB_MAX_DECODE_BYTES", str(10**12))
    p = _npy_with_header(tmp_path / "short.npy", (1000, 1000))
    with pytest.raises(DataError, match=r"short\.npy: .* holds only 64 bytes"):
        guards.load_npy(p)


def test_npy_object_array_and_round_trip(tmp_path: Path) -> None:
    np.save(tmp_path / "ok.npy", np.arange(12, dtype=np.float32).reshape(3, 4))
    assert guards.load_npy(tmp_path / "ok.npy").sum() == 66
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="Python objects"):
        guards.load_npy(tmp_path / "obj.npy")
    with pytest.raises(DataError, match="is a folder"):
        guards.load_npy(tmp_path)


def test_limit_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRETRAINLAB_MAX_DECODE_BYTES", "1000")
    guards.check_decode_size("x.bin", (250,), 4)
    with pytest.raises(DataError, match="x.bin: .* over the 1000 B limit"):
        guards.check_decode_size("x.bin", (251,), 4)
    monkeypatch.setenv("PRETRAINLAB_MAX_DECODE_BYTES", "lots")
    with pytest.raises(DataError, match="PRETRAINLAB_MAX_DECODE_BYTES"):
        guards.decode_limit()


def test_payload_exact(tmp_path: Path) -> None:
    p = tmp_path / "scan.bin"
    p.write_bytes(b"\0" * (4 * 4 * 10 + 3))
    with pytest.raises(DataError, match="3 bytes follow"):
        guards.check_payload(p, (10, 4), 4, exact=True)
    assert guards.check_payload(p, (10, 4), 4) == 160


def test_image_header_bomb_and_truncation(tmp_path: Path) -> None:
    from PIL import Image

    Image.new("RGB", (64, 48), (10, 20, 30)).save(tmp_path / "ok.png")
    assert guards.open_image(tmp_path / "ok.png", "RGB").size == (64, 48)
    with pytest.raises(DataError, match=r"over the limit of 1000 pixels"):
        guards.open_image(tmp_path / "ok.png", max_pixels=1000)
    raw = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match=r"cut\.png"):
        guards.open_image(tmp_path / "cut.png")
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(DataError, match=r"text\.png: not a readable image"):
        guards.open_image(tmp_path / "text.png")
    with pytest.raises(DataError, match="is a folder"):
        guards.open_image(tmp_path)


class _Evil:
    def __reduce__(self):  # type: ignore[no-untyped-def]  # the classic pickle trap
        return (os.system, ("echo pwned > /dev/null",))


def test_foreign_checkpoint_allow_list_and_stand_ins(tmp_path: Path) -> None:
    mod = types.ModuleType("optimizers")  # s3prl's module name; a stand-in replaces it when loading
    WarmupLinearSchedule = type("WarmupLinearSchedule", (), {"__module__": "optimizers", "__qualname__": "WarmupLinearSchedule",
                                                            "__init__": lambda self, warmup: setattr(self, "warmup", warmup)})
    mod.WarmupLinearSchedule = WarmupLinearSchedule  # type: ignore[attr-defined]
    sys.modules["optimizers"] = mod
    try:
        torch.save({"Transformer": {"w": torch.ones(3)}, "Args": argparse.Namespace(lr=2e-4),
                    "Optimizer": {"schedule": WarmupLinearSchedule(7)}}, tmp_path / "states.ckpt")
    finally:
        del sys.modules["optimizers"]
    out = load_torch_file(tmp_path / "states.ckpt", allow=[argparse.Namespace],
                          stand_ins=["optimizers.WarmupLinearSchedule"])
    assert torch.equal(out["Transformer"]["w"], torch.ones(3)) and out["Args"].lr == 2e-4
    assert out["Optimizer"]["schedule"].state == {"warmup": 7}
    with pytest.raises(CheckpointError, match=r"states\.ckpt: refused: .*optimizers\.WarmupLinearSchedule"):
        load_torch_file(tmp_path / "states.ckpt", allow=[argparse.Namespace])


def test_pickle_trap_is_refused_without_running(tmp_path: Path) -> None:
    torch.save({"x": _Evil()}, tmp_path / "trap.pt")
    with pytest.raises(CheckpointError, match=r"trap\.pt: refused: .*system"):
        load_torch_file(tmp_path / "trap.pt")
    (tmp_path / "junk.pt").write_bytes(b"hello")
    with pytest.raises(CheckpointError, match=r"junk\.pt: not a readable torch checkpoint"):
        load_torch_file(tmp_path / "junk.pt")
    with pytest.raises(CheckpointError, match="file not found"):
        load_torch_file(tmp_path / "missing.pt")


def test_npz_members_checked_before_decompression(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import io
    import zipfile

    np.savez_compressed(tmp_path / "ok.npz", train_images=np.zeros((4, 28, 28), np.uint8), train_labels=np.arange(4))
    out = guards.load_npz(tmp_path / "ok.npz", ["train_labels"])
    assert list(out) == ["train_labels"] and out["train_labels"].tolist() == [0, 1, 2, 3]
    with pytest.raises(DataError, match=r"ok\.npz: has no array\(s\) \['val_images'\]"):
        guards.load_npz(tmp_path / "ok.npz", ["val_images"])
    # a member whose header declares 150 GiB in a few bytes
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": (100000, 100000, 4)})
    with zipfile.ZipFile(tmp_path / "bomb.npz", "w") as zf:
        zf.writestr("x.npy", buf.getvalue() + b"\0" * 16)
    with pytest.raises(DataError, match=r"bomb\.npz: header declares array 'x' .* over the"):
        guards.load_npz(tmp_path / "bomb.npz")
    monkeypatch.setenv("PRETRAINLAB_MAX_DECODE_BYTES", str(10**12))
    with pytest.raises(DataError, match=r"member 'x' declares shape .* holds only 16 bytes"):
        guards.load_npz(tmp_path / "bomb.npz")
    raw = (tmp_path / "ok.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match=r"cut\.npz"):
        guards.load_npz(tmp_path / "cut.npz")


def test_data_error_survives_a_dataloader_worker(tmp_path: Path) -> None:
    """A corrupt file found while decoding lazily in a worker is still one clear DataError line."""

    class Lazy(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 4

        def __getitem__(self, i: int) -> torch.Tensor:
            if i == 2:
                raise DataError(tmp_path / "broken: file.png", "not a readable image (truncated)")
            return torch.zeros(1)

    loader = torch.utils.data.DataLoader(Lazy(), batch_size=1, num_workers=1)
    with pytest.raises(DataError) as e:
        list(loader)
    assert e.value.path == str(tmp_path / "broken: file.png") or e.value.path.endswith("broken")
    assert str(e.value).endswith("not a readable image (truncated)") and "Traceback" not in str(e.value)
    assert DataError("x.png: bad").path == "x.png" and DataError("plain").problem == "plain"
