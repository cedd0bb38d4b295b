"""How tests/isp/data/coffee_rggb.png was made (run once; the file is committed).

scikit-image's ``coffee`` photograph (CC0, Rachel Michetti), resized to 192x128, unprocessed as in
Brooks et al. 2019 by ``pretrainlab.isp.synthetic.unprocess`` (fixed seed), exposed 6x, then re-levelled to
Fujifilm UltraISP's per-site black levels (the reference's ``[62, 60, 58, 61]`` for the packed
channels B, G(0,1), R, G(1,0)) with white 1023: a single-channel 16-bit RGGB PNG of 10-bit counts,
the input of the reference's ``pretrained/run_inference.py``.

    .venv/bin/python tests/isp/data/make_reference_raw.py
"""

from pathlib import Path

import numpy as np
from PIL import Image


def main() -> None:
    import skimage.data

    from pretrainlab.isp.synthetic import BLACK, WHITE, camera_rgb2cam, unprocess

    photo = Image.fromarray(skimage.data.coffee()).resize((192, 128), Image.BICUBIC)
    rgb = np.asarray(photo, dtype=np.float32) / 255.0
    rng = np.random.default_rng(2025)
    counts, _ = unprocess(rgb, camera_rgb2cam(np.random.default_rng(1234)), rng)
    # back to [0, 1] signal, exposed 6x brighter: the released Fujifilm models expect UltraISP's exposure
    # (at the unprocessed exposure they render nearly black)
    x = np.clip(6.0 * (counts.astype(np.float64) - BLACK) / (WHITE - BLACK), 0.0, 1.0)
    black = np.zeros_like(x)
    black[0::2, 0::2], black[0::2, 1::2], black[1::2, 0::2], black[1::2, 1::2] = 58, 60, 61, 62
    out = np.clip(np.round(black + x * (1023 - black)), 0, 1023).astype(np.uint16)
    Image.fromarray(out).save(Path(__file__).parent / "coffee_rggb.png")


if __name__ == "__main__":
    main()
