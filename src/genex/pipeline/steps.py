"""What every study's CLI steps share: their common arguments and the start of a torch step.

Each study's ``steps.py`` adds its subcommands (``genex <study> <step>``) with
``register(subparsers)`` and builds them with :func:`step_arguments`.
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

    from genex.pipeline.checkpoint import resolve_device, set_threads
    from genex.pipeline import seed_everything

    set_threads(getattr(args, "threads", None))
    seed_everything(args.seed)
    return resolve_device(getattr(args, "device", None) or "cpu")
