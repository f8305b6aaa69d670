"""Matplotlib for the report: a headless backend and byte-stable PNGs."""

from __future__ import annotations

from pathlib import Path


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (rules run without a display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path, dpi: int = 100) -> None:
    """Save and close a figure. No Software metadata: the PNG stays byte-identical across
    matplotlib patch releases."""
    fig.tight_layout()
    fig.savefig(path, dpi=dpi, metadata={"Software": None})
    pyplot().close(fig)
