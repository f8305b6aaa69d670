"""The four studies, each a module of pipeline steps behind `genex <study> <step>`.

A study module reads a dataset through ``genex.data``, builds features, trains models with
``genex.train``, explains them with ``genex.explain`` and writes ``metrics.json`` and a
report section (see ``genex.report.html``). Its ``register(subparsers)`` adds the CLI.
"""

import argparse


def step_arguments(p: argparse.ArgumentParser, *, params: bool = True, seed: bool = True,
                   torch: bool = False, out: bool = True) -> None:
    """The arguments study steps share, with one help text each: ``--params`` (the step's
    config subsection), ``--seed``, ``--threads``/``--device`` for torch steps, ``--out``."""
    if params:
        p.add_argument("--params", required=True,
                       help="the step's config subsection as JSON, or @file.json")
    if seed:
        p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    if torch:
        p.add_argument("--threads", type=int, default=None,
                       help="CPU threads for torch (Snakemake passes the rule's threads)")
        p.add_argument("--device", default="auto", help="auto | cpu | cuda[:n] (default: auto)")
    if out:
        p.add_argument("--out", required=True, help="output (written atomically)")


def torch_step(args: argparse.Namespace):
    """The first call of every torch step: seed everything (torch included, deterministic
    algorithms), use the CPU threads the rule was given, and return the device to run on."""
    import torch  # noqa: F401 - imported first so that seed_everything seeds it too

    from genex.train.checkpoint import resolve_device, set_threads
    from genex.utils import seed_everything

    set_threads(getattr(args, "threads", None))
    seed_everything(args.seed)
    return resolve_device(getattr(args, "device", None) or "cpu")
