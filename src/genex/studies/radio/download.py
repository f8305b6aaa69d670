"""Download of the RadioMapSeer dataset (``genex download``); the shared machinery is
:mod:`genex.pipeline.real` (see its docstring for the config keys)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from genex.pipeline.download import Limits
from genex.pipeline.real import file_entries, extract_root, install


def download_radiomapseer(out_dir: Path, params: dict) -> None:
    """RadioMapSeer zip -> ``out_dir/png/...``, ``out_dir/gain/...`` (+ antenna, polygon, csv)."""
    entries = file_entries(params, "radiomapseer")
    if len(entries) != 1:
        raise ValueError(f"datasets.radiomapseer.files needs exactly one archive, found {len(entries)}")
    entry = entries[0]

    def build(staging: Path, archives: dict[str, Path]) -> dict:
        root = extract_root(archives[entry["name"]], staging / ".x",
                             lambda p: (p / "png").is_dir() and (p / "gain").is_dir(), "png/ and gain/",
                             Limits.of(params))
        for child in sorted(root.iterdir()):
            os.replace(child, staging / child.name)
        shutil.rmtree(staging / ".x", ignore_errors=True)
        return {"png_files": sum(1 for _ in (staging / "png").rglob("*.png")),
                "gain_files": sum(1 for _ in (staging / "gain").rglob("*.png")),
                "gain_simulations": sorted(p.name for p in (staging / "gain").iterdir() if p.is_dir())}

    install("radiomapseer", Path(out_dir), params, [entry], build)
