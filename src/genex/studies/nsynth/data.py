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

from genex.pipeline.io import read_json

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
# Valid ranges (inclusive): a label outside them would silently train on a wrong class.
_RANGES = {"instrument_family": (0, len(FAMILIES) - 1), "instrument_source": (0, len(SOURCES) - 1),
           "pitch": (0, 127), "velocity": (0, 127), "sample_rate": (1, 10 ** 6)}


def split_dir(root: Path, split: str) -> Path:
    """The folder of one split, e.g. ``root/nsynth-train``."""
    return Path(root) / f"nsynth-{split}"


def _note_path(audio: Path, note_str, path: Path, key: str) -> Path:
    """``audio/<note_str>.wav``; a note_str that is not a plain file name is refused."""
    # examples.json comes with downloaded data: it must not point the reader anywhere else
    if not isinstance(note_str, str) or not note_str or note_str in (".", "..") \
            or "/" in note_str or "\\" in note_str or "\0" in note_str:
        raise ValueError(f"{path}: entry {key!r} has note_str {note_str!r}, not a plain file "
                         f"name inside {audio}")
    return audio / f"{note_str}.wav"


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
        row = {"split": split, "note_str": note_str,
               "audio_path": str(_note_path(audio, note_str, path, key))}
        for field in _INT_FIELDS:
            value = entry[field]
            # bool is an int subclass in Python but never a valid value here
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or int(value) != value:
                raise ValueError(f"{path}: entry {key!r} field {field!r} is {value!r}, "
                                 f"not an integer")
            low, high = _RANGES[field]
            if not low <= value <= high:
                raise ValueError(f"{path}: entry {key!r} field {field!r} is {int(value)}, "
                                 f"outside {low}..{high}")
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


def load_note(path: str | Path, sample_rate: int | None = None,
              min_seconds: float = 0.0) -> tuple[np.ndarray, int]:
    """A note's audio as mono float32 in [-1, 1] and its sample rate.

    Errors name the file: missing, unreadable, empty, NaN/inf samples, a rate other than
    ``sample_rate`` (the dataset's), shorter than ``min_seconds``. A stereo file is
    averaged to mono with a warning (NSynth is mono).
    """
    from genex.pipeline.audio import read_audio

    return read_audio(path, rates=None if sample_rate is None else [sample_rate],
                      min_seconds=min_seconds, mono_dataset=True,
                      dataset="the dataset (examples.json)")


def check_notes(frame: pd.DataFrame, root: str | Path) -> tuple[int, int]:
    """The dataset's one sample rate and note length in samples, from examples.json and the
    WAV headers; an entry at another declared rate is refused, naming it.

    The length is the most common one (NSynth: 64000, 4 s at 16 kHz); :func:`load_note`
    refuses shorter notes with it.
    """
    from genex.pipeline.audio import header, most_common

    if frame.empty:
        raise ValueError(f"{root}: the dataset has no notes")
    rate = most_common(frame["sample_rate"])
    odd = frame[frame["sample_rate"] != rate]
    if len(odd):
        first = odd.iloc[0]
        raise ValueError(f"{split_dir(root, first['split']) / 'examples.json'}: entry "
                         f"{first['note_str']!r} has sample_rate {first['sample_rate']}, but the "
                         f"dataset's notes are at {rate} Hz")
    return rate, most_common(header(p)[0] for p in frame["audio_path"])
