"""Reader for NSynth's extracted layout, shared by the real NSynth and the embedded nsynth-sf.

Both look like this (the real archives ``nsynth-{split}.jsonwav.tar.gz`` extract to it)::

    <root>/nsynth-train/examples.json      {note_str: {note, pitch, velocity, ...}, ...}
    <root>/nsynth-train/audio/<note_str>.wav   16 kHz mono 16-bit, 4 s
    <root>/nsynth-valid/...
    <root>/nsynth-test/...
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from genex.utils.io import read_json

# NSynth's instrument families and sources, in NSynth's index order.
FAMILIES: tuple[str, ...] = ("bass", "brass", "flute", "guitar", "keyboard", "mallet", "organ",
                             "reed", "string", "synth_lead", "vocal")
SOURCES: tuple[str, ...] = ("acoustic", "electronic", "synthetic")
SPLITS: tuple[str, ...] = ("train", "valid", "test")

# The columns of read_nsynth's DataFrame, in order.
COLUMNS: tuple[str, ...] = ("split", "note_str", "audio_path", "instrument_str",
                            "instrument_family", "instrument_family_str", "instrument_source",
                            "instrument_source_str", "pitch", "velocity", "sample_rate")
_INT_FIELDS = ("instrument_family", "instrument_source", "pitch", "velocity", "sample_rate")
_STR_FIELDS = ("instrument_str", "instrument_family_str", "instrument_source_str")


def split_dir(root: Path, split: str) -> Path:
    """The folder of one split, e.g. ``root/nsynth-train``."""
    return Path(root) / f"nsynth-{split}"


def _rows_of_split(root: Path, split: str) -> list[dict]:
    """One row per note of ``examples.json``; ValueError naming the file if malformed."""
    folder = split_dir(root, split)
    path = folder / "examples.json"
    examples = read_json(path)  # ValueError naming the file on invalid JSON
    if not isinstance(examples, dict):
        raise ValueError(f"{path}: expected a JSON object keyed by note_str, "
                         f"got {type(examples).__name__}")
    audio = (folder / "audio").resolve()
    rows = []
    for key, entry in examples.items():
        if not isinstance(entry, dict):
            raise ValueError(f"{path}: entry {key!r} is {type(entry).__name__}, not an object")
        missing = [f for f in (*_INT_FIELDS, *_STR_FIELDS) if f not in entry]
        if missing:
            raise ValueError(f"{path}: entry {key!r} lacks the field(s) {', '.join(missing)}")
        note_str = entry.get("note_str", key)
        row = {"split": split, "note_str": str(note_str),
               "audio_path": str(audio / f"{note_str}.wav")}
        for field in _INT_FIELDS:
            value = entry[field]
            # bool is an int subclass in Python but never a valid value here
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or int(value) != value:
                raise ValueError(f"{path}: entry {key!r} field {field!r} is {value!r}, "
                                 f"not an integer")
            row[field] = int(value)
        for field in _STR_FIELDS:
            if not isinstance(entry[field], str):
                raise ValueError(f"{path}: entry {key!r} field {field!r} is "
                                 f"{entry[field]!r}, not a string")
            row[field] = entry[field]
        rows.append(row)
    return rows


def read_nsynth(root: str | Path, splits: Sequence[str] = SPLITS) -> pd.DataFrame:
    """Index of the notes of NSynth or nsynth-sf under ``root``, one row per note.

    Columns: see :data:`COLUMNS` (``audio_path`` is absolute). Splits whose folder has no
    ``examples.json`` are skipped; if none of ``splits`` is there a FileNotFoundError names
    ``root``. A malformed ``examples.json`` raises ValueError naming that file.
    Rows are ordered by split (as given) and then by note_str.
    """
    root = Path(root)
    unknown = [s for s in splits if s not in SPLITS]
    if unknown:
        raise ValueError(f"unknown NSynth split(s) {unknown}; known: {list(SPLITS)}")
    present = [s for s in splits if (split_dir(root, s) / "examples.json").is_file()]
    if not present:
        raise FileNotFoundError(
            f"{root}: no NSynth split found (looked for "
            f"{', '.join(f'nsynth-{s}/examples.json' for s in splits)})")
    rows = []
    for split in present:
        rows.extend(sorted(_rows_of_split(root, split), key=lambda r: r["note_str"]))
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    return frame.astype({f: "int64" for f in _INT_FIELDS})


def load_note(path: str | Path) -> tuple[np.ndarray, int]:
    """A note's audio as mono float32 in [-1, 1] and its sample rate."""
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        audio, sample_rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as err:
        raise ValueError(f"{path}: not a readable audio file ({err})") from None
    return audio.mean(axis=1), int(sample_rate)
