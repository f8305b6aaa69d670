"""Download of the NSynth dataset (``genex download``); the shared machinery is
:mod:`genex.pipeline.real` (see its docstring for the config keys)."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from pathlib import Path

from genex.pipeline.download import Limits
from genex.pipeline.real import file_entries, extract_root, install, select

log = logging.getLogger(__name__)


NSYNTH_ARCHIVE = re.compile(r"^nsynth-(train|valid|test)\.jsonwav\.tar\.gz$")


def download_nsynth(out_dir: Path, params: dict) -> None:
    """NSynth json/wav archives -> ``out_dir/nsynth-{split}/examples.json`` + ``audio/*.wav``."""
    splits = list(params.get("splits") or ["train", "valid", "test"])
    by_split = select(file_entries(params, "nsynth"), NSYNTH_ARCHIVE)
    missing = [s for s in splits if s not in by_split]
    if missing:
        raise ValueError(f"datasets.nsynth.files has no nsynth-<split>.jsonwav.tar.gz for {missing}")
    wanted = [by_split[s] for s in splits]

    def build(staging: Path, archives: dict[str, Path]) -> dict:
        counts = {}
        for split in splits:
            name = by_split[split]["name"]
            root = extract_root(archives[name], staging / f".x-{split}",
                                 lambda p: (p / "examples.json").is_file(), "examples.json",
                                 Limits.of(params))
            dest = staging / f"nsynth-{split}"
            os.replace(root, dest)
            shutil.rmtree(staging / f".x-{split}", ignore_errors=True)
            examples = json.loads((dest / "examples.json").read_text())
            wavs = sum(1 for _ in (dest / "audio").glob("*.wav")) if (dest / "audio").is_dir() else 0
            if wavs != len(examples):
                log.warning("%s: %d examples but %d wav files", dest, len(examples), wavs)
            counts[split] = {"examples": len(examples), "wav_files": wavs}
        return {"splits": counts}

    install("nsynth", Path(out_dir), params, wanted, build)
