"""``pretrainlab clip reproduce``: the paper's comparison at the chosen scale.

Rows (one recipe each, >= 3 seeds): CLIP, SLIP, BarLIP, BYOLIP, SwALIP, CLIP-rocket; the
CLIP-rocket models are scored with the linear head, the MLP head and their mixture
(``eval.mix_weight``). Columns: zero-shot top-1 / top-5 (49 "colour shape" classes, prompt
ensemble), top-1 on the held-out (never captioned) compositions, retrieval R@1 (mean of
image->text and text->image), linear probe on frozen features.

Claims tested as measured (Fini et al. 2023, abstract / Sec. 5):
1. the SSL-augmented baselines beat basic CLIP;
2. the improved recipe alone (CLIP-rocket, no SSL term) matches or beats them;
3. mixing the linear and MLP projectors is at least as good as either head alone.
"""

from __future__ import annotations

import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from pretrainlab.clip.pipeline import ROWS, evaluate, load, pretrain, synthetic_data

PROFILE_SEEDS = {"smoke": [0, 1, 2], "tiny": [0, 1, 2], "full": [0, 1, 2]}
ROW_NAMES = {"clip": "CLIP", "slip": "SLIP", "barlip": "BarLIP", "byolip": "BYOLIP", "swalip": "SwALIP",
             "rocket": "CLIP-rocket"}
PAPER_NUMBERS = {
    "source": "Fini et al. 2023 (TMLR), abstract. The per-dataset tables of the paper could not be read offline "
              "while this table was written, so no table numbers are quoted (the SLIP README's numbers are not "
              "CLIP-rocket's and are not used).",
    "CLIP-rocket claims": "the SSL-augmented baselines beat a basic CLIP; with the improved recipe their advantage "
                          "disappears; the improved CLIP gains up to 25% relative on downstream zero-shot tasks and "
                          "up to +4 points over prior work on the largest dataset",
    "reference runs (repro_exps.txt)": "ResNet-50 (CL2L_R50) on CC3M (6 text layers, wd 0.5, text dropout 0.2), "
                                       "CC12M and YFCC15M; 32 epochs at batch 4096",
}
DEVIATIONS = [
    ("Synthetic scenes of coloured shapes (49 'colour shape' zero-shot classes, 7 never captioned) instead of "
     "CC3M / CC12M / YFCC15M and ImageNet; the tiny profile trains the 'clip-nano' open_clip config "
     "(2+2 layers, width 32, 32 px, 16-token context) for 240 steps at batch 48 instead of the reference's "
     "ResNet-50 (RN50-rocket-t6) for 32 epochs at batch 4096."),
    ("MLP projector hidden width 256 (paper 4096), BarLIP projector 256 -> 256 (reference 3000 -> 8192), BYOLIP "
     "256 -> 64 (reference 2048 -> 128) at tiny scale; AdamW lr 2e-3 with 20 warm-up steps and cosine to 0 "
     "instead of 3e-3, one warm-up epoch from 1e-6 and cosine to 1e-5."),
    ("The photometric part of the augmented views runs batched on the device (fixed jitter order, YIQ hue "
     "rotation, separable Gaussian kernel); crops are the reference's bicubic RandomResizedCrop of the "
     "full-resolution image. EDA synonym replacement uses a shipped synonym table instead of WordNet."),
    ("SwALIP uses the other modality's batch as prototypes (as the reference code), not 3000 learned prototypes."),
    ("The zero-shot mixture weight is fixed (eval.mix_weight = 0.5) rather than picked on the test set; "
     "the full sweep 0.1..0.9 is in each run's metrics."),
]


def _mean(xs: list[float]) -> float:
    return statistics.fmean(xs) if xs else float("nan")


def _std(xs: list[float]) -> float:
    return statistics.stdev(xs) if len(xs) > 1 else 0.0


def reproduce(profile: str, out: Path, seeds: list[int] | None = None, data: Path | None = None,
              rows: tuple[str, ...] = ROWS, keep_all_checkpoints: bool = False) -> Path:
    """Train every row for every seed, evaluate, and write results.json / results.md / plots."""
    from tqdm import tqdm

    from pretrainlab.core import results as R

    t0 = time.time()
    out = Path(out)
    seeds = list(seeds or PROFILE_SEEDS[profile])
    data = Path(data) if data is not None else synthetic_data(profile)
    metrics: dict[str, dict[str, list[float]]] = {}
    sweep: dict[str, list[float]] = {}
    device = "cpu"
    bar = tqdm(total=len(seeds) * len(rows), desc=f"clip reproduce ({profile})", unit="run")
    for s in seeds:
        for row in rows:
            cfg = load(row, profile, [f"train.seed={s}", "train.progress=false"])
            run = out / row / f"seed{s}"
            if run.exists():
                shutil.rmtree(run)
            task, _ = pretrain(cfg, data, run)
            device = str(next(task.parameters()).device)
            m = evaluate(task, data, cfg, probe=True, seed=s)
            heads = {"linear": ROW_NAMES[row]}
            if row == "rocket":
                heads = {"linear": "CLIP-rocket (linear head)", "mlp": "CLIP-rocket (MLP head)",
                         f"mix{cfg.eval.mix_weight:g}": f"CLIP-rocket (mix w={cfg.eval.mix_weight:g})"}
                for w in cfg.eval.mix_sweep:
                    sweep.setdefault(f"{w:g}", []).append(m[f"zs_top1_mix{w:g}"])
            for head, name in heads.items():
                d = metrics.setdefault(name, {})
                d.setdefault("zs_top1", []).append(m[f"zs_top1_{head}"])
                d.setdefault("zs_top5", []).append(m[f"zs_top5_{head}"])
                if f"zs_top1_unseen_{head}" in m:
                    d.setdefault("zs_top1_unseen", []).append(m[f"zs_top1_unseen_{head}"])
                d.setdefault("R@1", []).append(m["R@1"])
                if "linear_probe" in m:
                    d.setdefault("linear_probe", []).append(m["linear_probe"])
            if s != seeds[0] and not keep_all_checkpoints:  # keep one model per row (demo / eval); save disk
                shutil.rmtree(run / "checkpoints", ignore_errors=True)
                (run / "open_clip_model.safetensors").unlink(missing_ok=True)
            bar.update()
            bar.set_postfix_str(f"{row} seed {s}: zs {m['zs_top1_linear']:.3f} R@1 {m['R@1']:.3f}")
    bar.close()
    table = [R.row(name, vals) for name, vals in metrics.items()]
    zs = {name: vals["zs_top1"] for name, vals in metrics.items()}
    base = _mean(zs["CLIP"]) if "CLIP" in zs else float("nan")
    ssl = [ROW_NAMES[r] for r in ("slip", "barlip", "byolip", "swalip") if ROW_NAMES[r] in zs]
    claims = []
    if ssl and "CLIP" in zs:
        better = {n: _mean(zs[n]) > base for n in ssl}
        claims.append(R.claim(
            "The SSL-augmented baselines (SLIP, BarLIP, BYOLIP, SwALIP) beat basic CLIP in zero-shot top-1",
            all(better.values()),
            f"CLIP {base:.3f}; " + ", ".join(f"{n} {_mean(zs[n]):.3f} ({'>' if better[n] else '<='} CLIP)" for n in ssl)))
    rk = "CLIP-rocket (linear head)"
    if ssl and rk in zs:
        best = max(ssl, key=lambda n: _mean(zs[n]))
        tol = _std(zs[best])
        claims.append(R.claim(
            "The improved recipe alone (CLIP-rocket, no SSL loss) matches or beats the SSL baselines "
            "(zero-shot top-1 mean >= best SSL mean - its seed std)",
            _mean(zs[rk]) >= _mean(zs[best]) - tol,
            f"CLIP-rocket {_mean(zs[rk]):.3f} ± {_std(zs[rk]):.3f} vs best SSL {best} {_mean(zs[best]):.3f} ± {tol:.3f}"))
        mix = [n for n in zs if n.startswith("CLIP-rocket (mix")]
        if mix:
            mx, lin, mlp = _mean(zs[mix[0]]), _mean(zs[rk]), _mean(zs["CLIP-rocket (MLP head)"])
            claims.append(R.claim(
                "Mixing the linear and MLP projectors' zero-shot scores is at least as good as either head alone",
                mx >= max(lin, mlp), f"mix {mx:.3f}, linear {lin:.3f}, MLP {mlp:.3f}"))
    if "CLIP" in zs and rk in zs:
        r_c, r_r = _mean(metrics["CLIP"]["R@1"]), _mean(metrics[rk]["R@1"])
        claims.append(R.claim("CLIP-rocket beats CLIP in image-text retrieval R@1", r_r > r_c,
                              f"CLIP {r_c:.3f}, CLIP-rocket {r_r:.3f}"))
    results: dict[str, Any] = {
        "domain": "clip", "paper": "Fini et al. 2023, Improved baselines for vision-language pre-training (CLIP-rocket)",
        "profile": profile, "device": device, "seeds": seeds, "wall_time_s": time.time() - t0, "rows": table,
        "claims": claims, "deviations": DEVIATIONS, "paper_numbers": PAPER_NUMBERS,
    }
    extra = ""
    if sweep:
        extra = "## CLIP-rocket zero-shot top-1 vs mixture weight w (w * linear + (1 - w) * MLP)\n\n| w | top-1 |\n|---|---|\n"
        extra += "\n".join(f"| {w} | {_mean(v):.3f} ± {_std(v):.3f} |" for w, v in sweep.items())
    path = R.write_results(out, results, plot_metrics=["zs_top1", "R@1"], extra_md=extra)
    held = sum(c["holds"] for c in claims)
    print(f"reproduced clip ({profile}): {len(table)} rows x {len(seeds)} seeds in {time.time() - t0:.0f} s; "
          f"{held}/{len(claims)} claims hold; {path}", file=sys.stderr)
    return path
