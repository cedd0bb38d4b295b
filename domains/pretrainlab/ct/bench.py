"""``pretrainlab ct bench``: (1) ``ct reduce`` end to end on a DICOM archive against the reference
pipeline, (2) the hash step alone, (3) SwAV training steps.

1. End to end, in the same run, on one LIDC-IDRI-style tree written here (``volumes`` patients,
   one CT series of ``slices`` DICOM slices of ``size`` x ``size`` each, plus the annotation .xml):
   * ours: ``reduce_to_folder`` with ``preprocess.reference_png`` (pydicom -> int16 HU -> 8-bit ->
     batched dHash -> greedy -> kept PNGs written), streaming one patient at a time;
   * the reference pipeline: ``LIDC_3DDICOM_to_2Dpng.py`` (every slice to a PNG; Pillow writes the
     PNG instead of ``cv2.imwrite``, the same pixels) then ``Hash_LIDC_Volume.py`` (``imagehash.dhash
     (Image.open(png))`` per slice, the numpy greedy, ``shutil.copy2`` of the kept files).
   Both keep exactly the same files (checked: ``identical_selection``).
2. The hash step alone: the batched dHash + greedy against the per-slice imagehash loop on the same
   uint8 volumes (CPU; and CUDA when available).
3. SwAV: ``core.bench.bench_task`` over the trainer's own ``train_step`` (the full profile, ResNet-50
   with 2 x 224 + 6 x 96 crops, on CUDA; the tiny profile on a CPU).
"""

from __future__ import annotations

from typing import Any

from pretrainlab.ct import api


def bench(device: str = "auto", steps: int = 20, warmup: int = 3, batch_size: int | None = None,
          precision: str = "auto", compile: bool = False, volumes: int = 4, slices: int = 60,
          size: int = 512) -> list[dict[str, Any]]:
    import torch

    from pretrainlab.core.bench import bench_task
    from pretrainlab.core.train import select_device

    dev = select_device(device)
    res = [api.bench_reduce(volumes, slices, size, 6, "cpu")]
    u8 = api.uint8_phantoms(volumes, slices, size)
    res.append(api.bench_hash(u8, 6, "cpu"))
    if dev.type == "cuda":
        res.append(api.bench_reduce(volumes, slices, size, 6, str(dev)))
        res.append(api.bench_hash(u8, 6, str(dev)))
    profile = "full" if dev.type == "cuda" else "tiny"
    cfg = api.load("hash6", profile, [])
    bs = batch_size or cfg.train.batch_size
    s = cfg.model.image_size
    task = api.pretrain_task(cfg)
    res.append(bench_task(task, lambda: {"image": torch.randint(0, 256, (bs, 1, s, s), dtype=torch.uint8)},
                          steps=steps, warmup=warmup, device=str(dev), precision=precision, compile=compile,
                          name=f"swav-{cfg.model.arch}-{profile}", train=cfg.train,
                          extra={"crops": f"{cfg.ssl.nmb_crops[0]}x{cfg.ssl.size_crops[0]} + "
                                          f"{cfg.ssl.nmb_crops[1]}x{cfg.ssl.size_crops[1]}",
                                 "prototypes": cfg.ssl.nmb_prototypes}))
    return res
