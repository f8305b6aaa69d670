"""Download of the MAESTRO dataset (``genex download``); the shared machinery is
:mod:`genex.pipeline.real` (see its docstring for the config keys)."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from genex.pipeline.download import Limits
from genex.pipeline.real import file_entries, extract_root, install


MAESTRO_ARCHIVE = re.compile(r"^(maestro-v[\d.]+?)(-midi)?\.zip$")


def download_maestro(out_dir: Path, params: dict) -> None:
    """MAESTRO v3 zip (``variant`` midi or full) -> ``out_dir/maestro-v3.0.0/`` (csv, json, files)."""
    variant = params.get("variant", "midi")
    entries = [e for e in file_entries(params, "maestro")
               if (m := MAESTRO_ARCHIVE.match(e["name"])) and bool(m.group(2)) == (variant == "midi")]
    if len(entries) != 1:
        raise ValueError(f"datasets.maestro.files needs exactly one archive for variant "
                         f"{variant!r} (maestro-vX-midi.zip or maestro-vX.zip), found {len(entries)}")
    entry = entries[0]
    version = MAESTRO_ARCHIVE.match(entry["name"]).group(1)

    def build(staging: Path, archives: dict[str, Path]) -> dict:
        root = extract_root(archives[entry["name"]], staging / ".x",
                             lambda p: (p / f"{version}.csv").is_file(), f"{version}.csv",
                             Limits.of(params))
        os.replace(root, staging / version)
        shutil.rmtree(staging / ".x", ignore_errors=True)
        dest = staging / version
        return {"variant": variant, "version": version,
                "midi_files": sum(1 for _ in dest.rglob("*.mid*")),
                "wav_files": sum(1 for _ in dest.rglob("*.wav"))}

    install("maestro", Path(out_dir), params, [entry], build)
