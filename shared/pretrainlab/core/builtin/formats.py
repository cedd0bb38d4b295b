"""Readers of the template domain's format: the torchvision ImageFolder layout ``root/<class>/*.png``.

Images are decoded lazily, one per ``__getitem__`` (in DataLoader workers when ``train.num_workers``
> 0), so a split of millions of files costs only its file list in memory (about 200 bytes per
file). A declared image size over the limit, a truncated or unreadable file is a ``DataError``
naming the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from pretrainlab.core.data import DataError
from pretrainlab.core.guards import open_image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


def load_image(path: Path, size: int = 32) -> torch.Tensor:
    """One image file as ``(3, size, size)`` float in [0, 1] (bilinear resize); DataError when unreadable."""
    from PIL import Image

    im = open_image(path, "RGB")
    if im.size != (size, size):
        im = im.resize((size, size), Image.BILINEAR)
    arr = np.asarray(im, dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()


class ImageFolder(Dataset):
    """``root/<class>/*.{png,jpg}`` -> ``{"image": (3, S, S), "label": int}``, decoded lazily.

    ``classes``: the class names in label order (default: the sorted sub-folder names, as torchvision).
    """

    def __init__(self, root: Path, classes: tuple[str, ...] | None = None, size: int = 32) -> None:
        root = Path(root)
        if not root.is_dir():
            raise DataError(root, "image folder not found (expected root/<class>/*.png)")
        found = sorted(p.name for p in root.iterdir() if p.is_dir())
        self.classes = tuple(classes or found)
        if not self.classes:
            raise DataError(root, "no class sub-folders (expected root/<class>/*.png)")
        missing = [c for c in self.classes if not (root / c).is_dir()]
        if missing:
            raise DataError(root, f"class folder(s) {missing} not found; found {found}")
        files = [(p, i) for i, c in enumerate(self.classes) for p in sorted((root / c).iterdir())
                 if p.suffix.lower() in IMAGE_SUFFIXES]
        if not files:
            raise DataError(root, f"no {'/'.join(IMAGE_SUFFIXES)} images in the class folders")
        self.files = [p for p, _ in files]
        self.labels = torch.tensor([i for _, i in files])
        self.size = size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"image": load_image(self.files[i], self.size), "label": self.labels[i]}
