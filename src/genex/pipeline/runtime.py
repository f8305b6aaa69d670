"""Seeding and provenance records (the progress bar is :mod:`genex.progress`)."""

from __future__ import annotations

import os
import platform
import random
import subprocess
import sys
from datetime import datetime, timezone

import numpy as np


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python, NumPy and (if imported) torch; return a fresh NumPy generator."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    if "torch" in sys.modules:
        import torch

        torch.manual_seed(seed)
        _deterministic_kernels(torch)
    return np.random.default_rng(seed)


def _deterministic_kernels(torch) -> None:
    """``torch.use_deterministic_algorithms(True, warn_only=True)`` without its import of
    TorchInductor (1.3 s of a torch step's start in torch 2.13, only to set Inductor's own flag;
    nothing here compiles)."""
    set_flag = getattr(torch._C, "_set_deterministic_algorithms", None)
    if set_flag is None or "torch._inductor.config" in sys.modules:
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        set_flag(True, warn_only=True)


def _git_version() -> str:
    try:
        here = os.path.dirname(os.path.abspath(__file__))
        out = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=here,
                             capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or "unknown"
    except Exception:  # noqa: BLE001 - provenance must never fail a run
        return "unknown"


def provenance(params: dict | None = None, seed: int | None = None) -> dict:
    """What produced an artefact: code version, seed, params, platform.

    The timestamp is kept out on purpose so reruns give byte-identical records.
    """
    from genex import __version__

    return {
        "genex_version": __version__,
        "code_version": _git_version(),
        "seed": seed,
        "params": params,
        "python": platform.python_version(),
    }


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
