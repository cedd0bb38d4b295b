"""The command line of pretrainlab.isp: ``pretrainlab isp <verb>`` (the CLI only; nothing imports it).

Standard verbs from ``api.SPEC``; replaced: ``data`` (``--photos``); the standard ``demo`` takes
``--weights`` / ``--arch`` (``demo_args`` / ``demo_kwargs``); the domain's own verb: ``render``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pretrainlab.core.domain import Verb, add_data_args, run_generate
from pretrainlab.isp.api import SPEC

ARCHS = ("efficientisp", "robustisp", "rmfanet_tiny")


def _data_args(p: argparse.ArgumentParser) -> None:
    add_data_args(p, SPEC.data_help)
    p.add_argument("--photos", type=Path, default=None, help="extra folder of JPEG / PNG photographs to unprocess")


def _data(a: argparse.Namespace) -> int:
    from pretrainlab.core.domain import resolve

    return run_generate(resolve(SPEC.generator), a, extra_photos=a.photos)


def _weights_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", type=Path, default=None,
                   help="the reference's released generator weights (.pth), e.g. Efficient_ISP_unpaired_step_27220.pth")
    p.add_argument("--arch", default=None, choices=ARCHS,
                   help="the generator the --weights hold (checked against the file; read from it when omitted)")


def _render_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ckpt", type=Path, default=None, help="a trained run / checkpoint folder")
    _weights_args(p)
    p.add_argument("--conventional", action="store_true", help="render with the conventional ISP instead")
    p.add_argument("--input", type=Path, required=True, help="RAW file (.png mosaic, .npy, .dng, ...) or a folder")
    p.add_argument("--out", type=Path, required=True, help="output folder (<stem>.png per RAW)")
    p.add_argument("--norm", default=None, help="RAW normalisation (default: the checkpoint's, the reference's for "
                                                "--weights, camera RAWs their own levels)")
    p.add_argument("--pattern", default="auto", help="Bayer pattern of PNG / NPY mosaics (default: RGGB)")


def _render(a: argparse.Namespace) -> int:
    from pretrainlab.isp.api import render

    render(a.input, a.out, a.ckpt, a.weights, a.arch, a.conventional, a.norm, a.pattern)
    return 0


def _demo_kwargs(a: argparse.Namespace) -> dict[str, Any]:
    """The demo's --weights / --arch (the standard demo verb adds the options and checks --ckpt / --port)."""
    from pretrainlab.core.config import ConfigError
    from pretrainlab.core.data import DataError

    if a.weights is not None and not a.weights.exists():
        raise DataError(a.weights, "--weights: no such checkpoint, run folder or weights file")
    if a.ckpt is not None and a.weights is not None:
        raise ConfigError("--ckpt and --weights: give one of them")
    if a.arch is not None and a.weights is None:
        raise ConfigError("--arch: only used with --weights")
    return {"weights": a.weights, "arch": a.arch}


def get_domain() -> Any:
    return SPEC.cli([
        Verb("data", f"write {SPEC.data_help}", _data_args, _data, "pretrainlab isp data --out data/isp --profile tiny"),
        Verb("render", "RAW -> PNG with a trained run, the paper's released weights or the conventional ISP",
             _render_args, _render,
             "pretrainlab isp render --weights Efficient_ISP_unpaired_step_27220.pth --arch efficientisp "
             "--input raw.png --out renders/"),
    ], demo_args=_weights_args, demo_kwargs=_demo_kwargs)
