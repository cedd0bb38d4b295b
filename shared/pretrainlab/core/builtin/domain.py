"""The command line of the built-in SimCLR recipe: ``pretrainlab simclr <verb>``.

Every verb is a standard one derived from ``api.SPEC`` (data, pretrain, finetune, eval, reproduce,
report, demo, bench). A domain with verbs of its own passes them to ``SPEC.cli([...])``.
"""

from __future__ import annotations

from typing import Any

from pretrainlab.core.builtin.api import SPEC


def get_domain() -> Any:
    return SPEC.cli()
