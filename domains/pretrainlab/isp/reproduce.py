"""``pretrainlab isp reproduce``: the paper's comparison (Tables 1-2: paired / paired without adversarial
losses / unpaired training of the lightweight generators) at the chosen scale, with paired verdicts.

Headline (the paper's central claim): a generator trained on UNPAIRED data comes close to the same
generator trained on paired data: an equivalence claim on PSNR (|unpaired - paired| within 1 dB),
paired over >= 5 seeds.

Every learned row starts from the same warm start, as the reference's runs all start from
``checkpoint/pretrained_20000.pth`` (an EfficientISP that renders like the conventional ISP): here
that generator is fitted once (MSE to the conventional render, no targets; ``efficientisp_warmstart``).
A control row repeats unpaired training with RANDOM (not pre-trained) feature networks, to show
what the pre-trained networks of the losses contribute. Rows are scored on the held-out paired test
split only (never used for training or selection); the final checkpoint is scored.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from pretrainlab.core.results import Claim, Context, Row, Table
from pretrainlab.isp import api

PAPER = api.SPEC.paper
CLOSE_DB = 1.0  # "comes close": |PSNR(unpaired) - PSNR(paired)| <= 1 dB


def _base(ctx: Context, recipe: str, seed: int, extra: list[str] | None = None) -> Any:
    return api.load(recipe, ctx.profile, [f"train.seed={seed}", "train.progress=false", *(extra or [])])


def setup(ctx: Context) -> None:
    """Once: data, feature networks (pre-trained and random), datasets, the warm start, the conventional row."""
    import torch

    sh = ctx.shared
    cfg = _base(ctx, "efficientisp_unpaired", 0)
    data = Path(ctx.data) if ctx.data else api.synthetic_data(cfg.data.profile)
    sh["data"] = data
    sh["datasets"] = {m: api.datasets(_base(ctx, f"efficientisp_{m}", 0), data) for m in ("unpaired", "paired", "warmstart")}
    sh["nets"] = {True: api.feature_nets(cfg, data),
                  False: api.feature_nets(_base(ctx, "efficientisp_unpaired", 0, ["features.pretrain=false"]), data)}
    test = sh["datasets"]["paired"][1]
    if test is None:
        raise ValueError(f"{data}: no paired test split to score on (test/ with same-stem RAW / RGB files)")
    sh["test"] = test
    sh["conventional"] = api.score(api.conventional_render(test, cfg), test, cfg)
    wcfg = _base(ctx, "efficientisp_warmstart", 0)
    shutil.rmtree(ctx.out / "runs" / "warmstart", ignore_errors=True)
    task, _ = api.pretrain(wcfg, data, ctx.out / "runs" / "warmstart", datasets=sh["datasets"]["warmstart"])
    sh["warmstart"] = ctx.out / "runs" / "warmstart"
    sh["warmstart_gen"] = task.generator.cpu().eval()
    sh["device"] = str(next(task.generator.parameters()).device) if torch.cuda.is_available() else "cpu"
    sh["renders"] = {}


def run_cell(row: Row, seed: int, ctx: Context) -> dict[str, float]:
    sh = ctx.shared
    test = sh["test"]
    kind = row.params["kind"]
    if kind == "conventional":
        return {k: v for k, v in sh["conventional"].items() if k != "MS-SSIM_scales"} | {"params": 0.0}
    if kind == "warmstart":
        gen = sh["warmstart_gen"]
    else:
        mode = row.params["mode"]
        pretrained = row.params.get("pretrained_features", True)
        cfg = _base(ctx, f"efficientisp_{mode}", seed, [f"model.init={sh['warmstart']}",
                                                        f"features.pretrain={str(pretrained).lower()}"])
        run = ctx.cell_dir(row, seed)
        shutil.rmtree(run, ignore_errors=True)  # a cell is re-run from scratch (finished cells are cached)
        task, _ = api.pretrain(cfg, sh["data"], run, nets=sh["nets"][pretrained],
                               datasets=sh["datasets"]["unpaired" if mode == "unpaired" else "paired"])
        gen = task.generator.cpu().eval()
    cfg = _base(ctx, "efficientisp_unpaired", seed)
    metrics = {k: v for k, v in api.score(gen, test, cfg).items() if k != "MS-SSIM_scales"}
    if seed == ctx.seeds[0]:
        sh["renders"][row.name] = gen
    return metrics | {"params": float(api.count_params(gen))}


def finish(ctx: Context, results: dict[str, Any]) -> None:
    """``renders.png``: the most textured of the first 16 test patches, by each row (first seed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    test, gens = ctx.shared.get("test"), ctx.shared.get("renders", {})
    if "nets" in ctx.shared:
        results["feature_networks"] = {"pre-trained": dict(ctx.shared["nets"][True].source),
                                       "control": dict(ctx.shared["nets"][False].source)}
    if test is None or not gens:
        return
    pick = max(range(min(16, len(test))), key=lambda i: float(test[i]["target"].std()))
    raw = test[pick]["raw"][None]
    cfg = _base(ctx, "efficientisp_unpaired", 0)
    images = [("target (DSLR style)", test[pick]["target"]),
              ("conventional ISP", api.conventional_render(test, cfg)(raw)[0])]
    with torch.no_grad():
        images += [(name.replace(" / ", "\n"), g(raw)[0].clamp(0, 1)) for name, g in gens.items()]
    fig, axes = plt.subplots(1, len(images), figsize=(2.0 * len(images), 2.4))
    for ax, (title, im) in zip(axes, images):
        ax.imshow(im.permute(1, 2, 0).numpy())
        ax.set_title(title, fontsize=6)
        ax.axis("off")
    fig.tight_layout()
    out = Path(ctx.out) / "renders.png"
    tmp = out.with_name(".renders.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(out)
    results["plots"] = sorted(set(results.get("plots", [])) | {"renders.png"})


def deviations(profile: str) -> list[str]:
    out = [
        ("Data: scikit-image photographs unprocessed into 10-bit RGGB mosaics (Brooks et al. 2019) in the Zurich "
        "layout instead of Fujifilm UltraISP / Zurich; targets are the same scenes in a made-up 'DSLR style'; the "
        "unpaired rows read a DISJOINT target folder (canon_unpaired/, other image regions), never a RAW's own "
        "target."),
        ("Feature networks: the paper's ImageNet VGG-19 / LPIPS AlexNet / ViT-B/16 cannot be downloaded here; the "
        "project's narrower VGG-19 / AlexNet (channels / features.width_div) and a small ViT are pre-trained with "
        "SimCLR on the unlabelled RGB targets, each fed the reference's input scaling (pass local weights to use the "
        "paper's)."),
        ("Warm start: every learned row starts from one EfficientISP fitted (MSE) to the conventional render, as the "
        "reference starts from pretrained_20000.pth, whose recipe is not published."),
        ("Selection: the final checkpoint is scored (the reference picks the best step by PSNR on a paired "
        "validation set, which unpaired training does not have)."),
        "LPIPS is not reported (no local LPIPS weights); MS-SSIM uses 4 of its 5 scales on 128x128 patches.",
        ("RobustISP and RMFA-Net tiny are not trained here: their rows did not fit the CPU budget next to a "
        "decisive 5-seed headline (RMFA-Net tiny costs 3-4x EfficientISP per step at 128 px); their released "
        "weights are checked against the reference instead (tests/isp/test_reference.py)."),
    ]
    if profile != "full":
        out.append(f"{profile} profile: batch 4 (paper 32), 120 generator steps after a 2000-step warm start, D Adam lr 1e-4 "
                   "stepped every 2 G steps (paper 1e-5 every 10), gradient norms reused for 5 steps, narrow "
                   "discriminators (16-32-48-48-32, FC 256; colour MLP 128), project ViT on 32x32 blurred renders, "
                   "128x128 patches: CPU minutes instead of GPU days.")
    return out


def notes(profile: str) -> str:
    return ("Columns: PSNR / SSIM / MS-SSIM (higher is better) and CIEDE2000 (lower is better) on the held-out paired "
            "test split (64 patches of 128x128 at tiny), scored as the reference does (8-bit truncated renders); "
            "`params`: generator parameters. The conventional ISP is the reference's content-target pipeline "
            "(counts / 65535, Menon 2007 with refining, fixed WB, min-max stretch, gamma 2.2: no black level). "
            "What tiny traded: the budget goes to the headline pair (EfficientISP paired vs unpaired, 5 seeds, 128-px "
            "patches so that AlexNet relu4 (7x7) and VGG relu5_4 (8x8) see structure) after one converged warm start; "
            "the paired-without-adversarial and random-feature rows run 3 seeds; RobustISP / RMFA-Net tiny are not "
            "trained. Design pilots (same data, before this run): with a 300-step warm start the headline was "
            "inconclusive (95% interval [-4.3, -0.15] dB, seed spread from an under-trained, blurry start), so the warm "
            "start is now fitted to convergence as the reference's pretrained_20000.pth is; the paper's discriminator "
            "schedule (lr 1e-5 every 10 G steps, norms every step) wrecked the renders within 120 steps (seed 0: "
            "13.7 dB paired, 4.7 dB unpaired), so tiny keeps D lr 1e-4 every 2 steps. `renders.png` shows one test "
            "patch per row (first seed).")


TABLE = Table(
    domain="isp", paper=PAPER,
    rows=[
        Row("Conventional ISP", {"kind": "conventional"}),
        Row("EfficientISP / warm start", {"kind": "warmstart"}),
        Row("EfficientISP / paired w/o adv.", {"kind": "train", "mode": "paired_noadv"}, seeds=3),
        Row("EfficientISP / paired", {"kind": "train", "mode": "paired"}),
        Row("EfficientISP / unpaired", {"kind": "train", "mode": "unpaired"}),
        Row("EfficientISP / unpaired, random feature nets",
            {"kind": "train", "mode": "unpaired", "pretrained_features": False}, seeds=3),
    ],
    run=run_cell,
    claims=[
        Claim(f"EfficientISP trained on unpaired data comes close to paired training (PSNR within {CLOSE_DB:g} dB)",
              a="EfficientISP / unpaired", b="EfficientISP / paired", metric="PSNR", kind="equivalence",
              delta=CLOSE_DB, headline=True, unit="dB"),
        Claim("EfficientISP trained on unpaired data beats the conventional ISP (PSNR)",
              a="EfficientISP / unpaired", b="Conventional ISP", metric="PSNR", unit="dB"),
        Claim("Unpaired training improves on its warm start (PSNR)",
              a="EfficientISP / unpaired", b="EfficientISP / warm start", metric="PSNR", unit="dB"),
        Claim("Pre-trained feature networks beat random ones in unpaired training (PSNR)",
              a="EfficientISP / unpaired", b="EfficientISP / unpaired, random feature nets", metric="PSNR", unit="dB"),
    ],
    setup=setup, finish=finish, deviations=deviations, notes=notes,
    paper_numbers={
        "note": "The paper's Tables 1-2 (Fujifilm UltraISP, Zurich RAW-to-RGB) were not retrieved offline; anchors: "
                "PyNET on Zurich 21.17 dB PSNR / MS-SSIM 0.8623, PUNET on MAI 2021 23.03 dB. The released "
                "checkpoints render our RAW exactly as the reference's script (tests/isp/test_reference.py).",
        "parameters": {"EfficientISP": 3060, "RobustISP": 1616, "RMFA-Net tiny": 29223},
    },
    plot_metrics=["PSNR", "DeltaE2000"],
    metrics=["PSNR", "SSIM", "MS-SSIM", "DeltaE2000", "params"],
)
