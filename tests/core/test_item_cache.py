"""core.data.ItemCache: decoded items kept up to a byte budget, least recently used out first."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pretrainlab.core.data import ItemCache, nbytes


def test_items_are_made_once_while_they_fit() -> None:
    made: list[int] = []

    def make(i: int) -> np.ndarray:
        made.append(i)
        return np.full(250, i, np.float32)  # 1000 bytes

    c = ItemCache(10_000)
    for _ in range(3):
        for i in range(5):
            assert (c.get(i, lambda i=i: make(i)) == i).all()
    assert made == [0, 1, 2, 3, 4] and c.hits == 10 and c.misses == 5 and c.bytes == 5000


def test_budget_drops_the_least_recently_used() -> None:
    c = ItemCache(3000)
    for i in range(3):
        c.get(i, lambda i=i: np.zeros(250, np.float32) + i)
    c.get(0, lambda: pytest.fail("0 is cached"))  # 0 becomes the most recent
    c.get(3, lambda: np.zeros(250, np.float32))  # over budget: 1 (least recent) goes
    assert set(c._items) == {0, 2, 3} and c.bytes == 3000
    big = c.get(9, lambda: np.zeros(10_000, np.uint8))  # larger than the budget: returned, not kept
    assert big.shape == (10_000,) and 9 not in c._items and c.bytes == 3000


def test_zero_budget_keeps_nothing_and_sizes_walk_containers() -> None:
    c = ItemCache(0)
    calls = []
    for _ in range(2):
        c.get("a", lambda: calls.append(1) or np.zeros(1))
    assert len(calls) == 2 and len(c) == 0
    assert nbytes((np.zeros(10, np.float64), {"t": torch.zeros(4, dtype=torch.int64)})) == 64 + 80 + 64 + 32
    with pytest.raises(ValueError, match="max_bytes"):
        ItemCache(-1)


class _Cached(torch.utils.data.Dataset):
    def __init__(self) -> None:
        self.cache = ItemCache(1 << 20)

    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int) -> torch.Tensor:
        self.cache.get(i, lambda: np.zeros(10))
        return torch.tensor(len(self.cache))


def test_nothing_is_kept_inside_a_dataloader_worker() -> None:
    """The trainer's workers are re-made every epoch: a cache there would only hold memory."""
    ds = _Cached()
    in_worker = [int(x) for x in torch.utils.data.DataLoader(ds, batch_size=None, num_workers=1)]
    assert in_worker == [0, 0, 0, 0]
    assert [int(x) for x in torch.utils.data.DataLoader(ds, batch_size=None, num_workers=0)] == [1, 2, 3, 4]
