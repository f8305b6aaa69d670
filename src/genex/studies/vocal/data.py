"""Singing-voice corpora in the Jamendo layout: reader and label helpers.

The layout (Ramona et al.'s Jamendo corpus, and the embedded ``vocal-sf`` twin)::

    root/audio/<song>.<ext>        ogg / mp3 in Jamendo, wav in vocal-sf
    root/labels/<song>.lab         lines ``start end sing|nosing`` (seconds)
    root/filelists/{train,valid,test}   one audio file name per line

:func:`read_vocal` lists the songs, :func:`read_lab` parses and validates one label
file and :func:`frame_labels` turns it into a boolean per analysis frame.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

SPLITS = ("train", "valid", "test")
LABELS = ("sing", "nosing")
AUDIO_EXTENSIONS = (".wav", ".ogg", ".mp3", ".flac")
# Tolerance for boundaries written with 3 decimals (1 ms would be a real overlap).
_EPS = 1e-6

Segment = tuple[float, float, str]


# --- label files -------------------------------------------------------------------------

def read_lab(path: str | os.PathLike) -> pd.DataFrame:
    """Read a ``.lab`` file into a DataFrame with columns start, end, label.

    Raises ``ValueError`` naming the file and line when a line does not have three
    fields, a time is not a number, a segment is empty or reversed, segments are not in
    ascending order or overlap, or a label is not ``sing``/``nosing``.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: label file not found") from None
    rows: list[Segment] = []
    prev_end = 0.0
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}, line {number}"
        fields = line.split()
        if len(fields) != 3:
            raise ValueError(f"{where}: expected 'start end sing|nosing', got {line.strip()!r}")
        try:
            start, end = float(fields[0]), float(fields[1])
        except ValueError:
            raise ValueError(f"{where}: start and end must be numbers, "
                             f"got {line.strip()!r}") from None
        label = fields[2]
        if label not in LABELS:
            raise ValueError(f"{where}: label must be one of {LABELS}, got {label!r}")
        if not (np.isfinite(start) and np.isfinite(end)) or start < 0 or end <= start:
            raise ValueError(f"{where}: need 0 <= start < end, got {start} {end}")
        if start < prev_end - _EPS:
            raise ValueError(f"{where}: segment starts at {start} s, before the previous one "
                             f"ends ({prev_end} s); segments must be ascending and not overlap")
        rows.append((start, end, label))
        prev_end = end
    if not rows:
        raise ValueError(f"{path}: no segments")
    return pd.DataFrame(rows, columns=["start", "end", "label"])


def write_lab(path: str | os.PathLike, segments: Iterable[Segment]) -> None:
    """Write segments as ``start end label`` lines with millisecond precision."""
    lines = [f"{start:.3f} {end:.3f} {label}\n" for start, end, label in segments]
    Path(path).write_text("".join(lines))


def merge_intervals(intervals: Iterable[tuple[float, float]],
                    merge_gap: float) -> list[tuple[float, float]]:
    """Sort and merge intervals that overlap or are separated by less than ``merge_gap``."""
    merged: list[list[float]] = []
    for start, end in sorted(intervals):
        if merged and start - merged[-1][1] < merge_gap:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(a, b) for a, b in merged]


def segments_from_intervals(intervals: Iterable[tuple[float, float]], duration: float,
                            merge_gap: float = 0.2, decimals: int = 3) -> list[Segment]:
    """Contiguous ``sing``/``nosing`` segments covering ``[0, duration]``.

    ``intervals`` are the times where the voice sounds; they are clipped to the song,
    merged across gaps shorter than ``merge_gap``, and rounded once to ``decimals`` so
    that each segment ends exactly where the next begins in the written file.
    """
    def rnd(t: float) -> float:
        return round(float(t), decimals)

    clipped = [(max(0.0, a), min(duration, b)) for a, b in intervals]
    clipped = [(a, b) for a, b in clipped if b > a]
    end_of_song = rnd(duration)
    segments: list[Segment] = []
    cursor = 0.0
    for start, end in merge_intervals(clipped, merge_gap):
        start, end = rnd(start), rnd(end)
        if start > cursor:
            segments.append((cursor, start, "nosing"))
        if end > start:
            segments.append((max(cursor, start), end, "sing"))
            cursor = end
    if end_of_song > cursor:
        segments.append((cursor, end_of_song, "nosing"))
    return segments


def frame_labels(lab: pd.DataFrame, frame_times: np.ndarray) -> np.ndarray:
    """True for each frame time that falls inside a ``sing`` segment ``[start, end)``."""
    sing = lab[lab["label"] == "sing"]
    starts = sing["start"].to_numpy(dtype=float)
    ends = sing["end"].to_numpy(dtype=float)
    order = np.argsort(starts, kind="stable")
    starts, ends = starts[order], ends[order]
    times = np.asarray(frame_times, dtype=float)
    idx = np.searchsorted(starts, times, side="right") - 1
    inside = idx >= 0
    inside[inside] = times[inside] < ends[idx[inside]]
    return inside


def sing_fraction(lab: pd.DataFrame) -> float:
    """Share of the labelled time that is ``sing``."""
    lengths = lab["end"] - lab["start"]
    total = float(lengths.sum())
    return float(lengths[lab["label"] == "sing"].sum()) / total if total > 0 else 0.0


# --- corpus ------------------------------------------------------------------------------

def read_filelist(path: Path) -> list[str]:
    """Audio file names listed one per line (blank lines and ``#`` comments skipped)."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{path}: filelist missing; a Jamendo-style corpus needs filelists/train, "
            f"filelists/valid and filelists/test, each listing audio file names one per line"
        ) from None
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def song_name(entry: str) -> str:
    """A filelist entry without folder and audio extension (song names may contain dots)."""
    name = Path(entry).name
    suffix = Path(name).suffix
    return name[: -len(suffix)] if suffix.lower() in AUDIO_EXTENSIONS else name


def _find_audio(root: Path, entry: str, filelist: Path) -> Path:
    audio_dir = root / "audio"
    candidate = audio_dir / Path(entry).name
    if candidate.is_file():
        return candidate
    # An entry without (or with another) extension: accept any known audio extension.
    for ext in AUDIO_EXTENSIONS:
        other = audio_dir / (song_name(entry) + ext)
        if other.is_file():
            return other
    raise FileNotFoundError(f"{filelist}: lists {entry!r} but {candidate} does not exist "
                            f"(also tried extensions {', '.join(AUDIO_EXTENSIONS)})")


def audio_duration(path: Path) -> float:
    """Duration in seconds from the file header (soundfile, else librosa/audioread)."""
    import soundfile as sf

    try:
        return float(sf.info(str(path)).duration)
    except Exception:  # noqa: BLE001 - libsndfile without mp3 support: try librosa below
        pass
    try:
        import librosa

        return float(librosa.get_duration(path=str(path)))
    except Exception as err:  # noqa: BLE001
        raise ValueError(f"{path}: cannot read the audio duration ({err})") from None


def audio_checks(root: str | os.PathLike, corpus: pd.DataFrame) -> dict:
    """:func:`genex.pipeline.audio.read_audio`'s checks for the songs of ``corpus``.

    vocal-sf (``songs.json`` at the root) is mono at one sample rate, that of most of its
    songs; Jamendo's songs are taken at any rate and channel count (the features resample
    and downmix them).
    """
    from genex.pipeline.audio import header, most_common

    if not (Path(root) / "songs.json").is_file():
        return {"rates": None, "mono_dataset": False, "dataset": "Jamendo"}
    rate = most_common(header(p)[1] for p in corpus["audio_path"])
    return {"rates": (rate,), "mono_dataset": True, "dataset": "this vocal-sf corpus"}


def read_vocal(root: str | os.PathLike, check_labels: bool = True) -> pd.DataFrame:
    """One row per song of a Jamendo-layout corpus (the real Jamendo or vocal-sf).

    Columns: song, split, audio_path, lab_path (absolute paths as str), duration
    (seconds). Rows follow the filelists: train, valid, test, each in file order.
    With ``check_labels`` every ``.lab`` file is parsed too, so a malformed one fails
    here, naming the file and line, rather than in the middle of feature extraction.
    """
    root = Path(root).resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: corpus folder not found")
    rows = []
    seen: dict[str, str] = {}
    for split in SPLITS:
        filelist = root / "filelists" / split
        for entry in read_filelist(filelist):
            song = song_name(entry)
            if song in seen:
                raise ValueError(f"{filelist}: song {song!r} is already listed in "
                                 f"filelists/{seen[song]}; splits must not share songs")
            seen[song] = split
            audio = _find_audio(root, entry, filelist)
            lab = root / "labels" / f"{song}.lab"
            if not lab.is_file():
                raise FileNotFoundError(f"{lab}: label file missing for {audio.name} "
                                        f"(listed in {filelist})")
            if check_labels:
                read_lab(lab)
            rows.append({"song": song, "split": split, "audio_path": str(audio),
                         "lab_path": str(lab), "duration": audio_duration(audio)})
    if not rows:
        raise ValueError(f"{root}: the filelists list no songs")
    return pd.DataFrame(rows, columns=["song", "split", "audio_path", "lab_path", "duration"])


def split_songs(n_songs: int, valid_songs: int, test_songs: int,
                rng: np.random.Generator) -> list[str]:
    """A split name per song index: ``test_songs`` test, ``valid_songs`` valid, rest train."""
    if valid_songs < 0 or test_songs < 0 or valid_songs + test_songs >= n_songs:
        raise ValueError(f"need valid_songs + test_songs < songs, got {valid_songs} + "
                         f"{test_songs} with {n_songs} songs (train would be empty)")
    splits = np.array(["train"] * n_songs, dtype=object)
    order = rng.permutation(n_songs)
    splits[order[:test_songs]] = "test"
    splits[order[test_songs:test_songs + valid_songs]] = "valid"
    return [str(s) for s in splits]


def write_filelists(root: Path, names: Sequence[str], splits: Sequence[str]) -> None:
    """``root/filelists/{train,valid,test}``: the audio file names of each split."""
    folder = root / "filelists"
    folder.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        chosen = [n for n, s in zip(names, splits) if s == split]
        (folder / split).write_text("".join(f"{n}\n" for n in chosen))
