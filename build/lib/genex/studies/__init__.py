"""The four studies, each a module of pipeline steps behind `genex <study> <step>`.

A study module reads a dataset through ``genex.data``, builds features, trains models with
``genex.train``, explains them with ``genex.explain`` and writes ``metrics.json`` and a
report section (see ``genex.report.html``). Its ``register(subparsers)`` adds the CLI.
"""

import argparse


def torch_step(args: argparse.Namespace):
    """The first call of every torch step: seed everything (torch included, deterministic
    algorithms), use the CPU threads the rule was given, and return the device to run on."""
    import torch  # noqa: F401 - imported first so that seed_everything seeds it too

    from genex.train.checkpoint import resolve_device, set_threads
    from genex.utils import seed_everything

    set_threads(getattr(args, "threads", None))
    seed_everything(args.seed)
    return resolve_device(getattr(args, "device", None) or "cpu")
