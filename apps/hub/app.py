"""The pretrainlab hub: one tab per installed domain demo (``apps/<d>/app.py``).

A domain whose app cannot be imported (its extra is not installed) gets a tab saying why, so the
hub always starts. ``make demo`` / ``pretrainlab demo`` launches it on 127.0.0.1.
"""

from __future__ import annotations

import traceback
from pathlib import Path

import gradio as gr

from pretrainlab.core.cli import domains
from pretrainlab.core.demo import apps_dir, load_app_module


def available_apps() -> list[str]:
    """Domains (paper domains first, the built-in last) that have an ``apps/<d>/app.py``."""
    names = [n for n, d in domains().items() if not d.builtin] + [n for n, d in domains().items() if d.builtin]
    return [n for n in names if (apps_dir() / n / "app.py").exists()]


def build_demo(ckpt: str | Path | None = None, only: list[str] | None = None) -> gr.Blocks:
    doms = domains()
    names = [n for n in available_apps() if only is None or n in only]
    with gr.Blocks(title="pretrainlab") as demo:
        gr.Markdown("## pretrainlab\nSelf-supervised and transfer pre-training across research fields: "
                    "one tab per domain. Each demo uses the newest checkpoint in `runs/` "
                    "(from `make run`), or trains a smoke model on first use.")
        for name in names:
            dom = doms[name]
            with gr.Tab(name, id=f"tab-{name}"):
                gr.Markdown(f"**{dom.title}** — {dom.paper}")
                try:
                    mod = load_app_module(name)
                    mod.build_demo(ckpt=None)  # a Blocks built inside a Blocks renders into it
                except Exception as e:  # noqa: BLE001 - a missing extra must not take the hub down
                    gr.Markdown(f"This demo is unavailable here: `{type(e).__name__}: {e}`")
                    traceback.print_exc()
    return demo


if __name__ == "__main__":
    import argparse

    from pretrainlab.core.demo import launch

    ap = argparse.ArgumentParser(description="every domain's demo in one app, one tab each")
    ap.add_argument("--port", type=int, default=7860)
    ap.add_argument("--only", nargs="+", default=None, help="only these domains' tabs")
    args = ap.parse_args()
    launch(build_demo(only=args.only), port=args.port)
