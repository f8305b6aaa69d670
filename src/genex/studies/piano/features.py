"""Feature sets of the piano study: (x, y) frame pairs of every recording, split and stored.

One call of :func:`build_feature_set` reads a piano dataset through
:func:`genex.studies.piano.data.read_piano` (piano-sf, MAPS or MAESTRO alike), computes the
144-bin filterbank spectrogram x and the 185-d labels y of every polyphonic piece and of
the isolated notes of ``concept_split``, and writes::

    pieces.npz     x [N, 144], y [N, 185] of all pieces concatenated, with per-recording
                   offsets, names, piece names, splits ('train' | 'valid' | 'test') and
                   instrument numbers
    isolated.npz   the same for the isolated notes (plus their MIDI pitch)
    meta.json      instruments in one-hot order, validation pieces, frame counts

'valid' pieces are training pieces held out (every instrument's rendition of them) for
choosing the best epoch; the test split is the dataset's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from genex.studies.piano.data import is_chord_set
from genex.studies.piano.filterbank import N_BINS, audio_file_features
from genex.studies.piano.labels import N_INSTRUMENTS, Y_DIM, labels_from_midi
from genex.pipeline import load_arrays, progress, write_json


@dataclass
class FrameSet:
    """Frames of several recordings, concatenated: recording ``i`` is ``x[offsets[i]:offsets[i+1]]``."""

    x: np.ndarray
    y: np.ndarray
    offsets: np.ndarray
    names: np.ndarray
    pieces: np.ndarray
    splits: np.ndarray
    instruments: np.ndarray
    pitches: np.ndarray

    def __len__(self) -> int:
        return len(self.names)

    def frames(self, i: int) -> slice:
        """The frame range of recording ``i``."""
        return slice(int(self.offsets[i]), int(self.offsets[i + 1]))

    def select(self, split: str) -> np.ndarray:
        """Indices of the recordings of one split."""
        return np.flatnonzero(self.splits == split)

    def frame_mask(self, split: str) -> np.ndarray:
        """Boolean mask over all frames of the recordings of one split."""
        mask = np.zeros(len(self.x), dtype=bool)
        for i in self.select(split):
            mask[self.frames(i)] = True
        return mask

    def frame_rows(self, split: str) -> np.ndarray:
        """Frame indices (int64, ascending) of the recordings of one split: gather a batch
        with ``x[rows[idx]]`` instead of copying the split (``x[frame_mask(split)]``)."""
        return np.flatnonzero(self.frame_mask(split))

    def save(self, path: Path) -> None:
        # uncompressed (np.savez), so that load(mmap=True) can map x and y in place
        np.savez(path, **{k: getattr(self, k) for k in self.__dataclass_fields__})

    @classmethod
    def load(cls, path: str | Path, mmap: bool = False) -> "FrameSet":
        """The frame set of ``path``; with ``mmap`` its arrays are memory-mapped read-only,
        so training reads the frames a batch needs (MAESTRO's x and y: ~30 GB)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: feature file not found")
        return cls(**load_arrays(path, list(cls.__dataclass_fields__), mmap=mmap))


def instrument_numbers(frame: pd.DataFrame) -> dict[str, int]:
    """One-hot index of every instrument: sorted names (MAPS's nine in SPECS order)."""
    names = sorted(frame["instrument"].unique())
    if len(names) > N_INSTRUMENTS:
        raise ValueError(f"{len(names)} instruments, but labels have room for {N_INSTRUMENTS}: "
                         f"{names}")
    return {name: i for i, name in enumerate(names)}


def validation_pieces(frame: pd.DataFrame, count: int, seed: int) -> list[str]:
    """``count`` training pieces held out for validation (all their renditions); never a chord
    set, whose keys must all sound in training."""
    train = sorted(p for p in frame.loc[(frame["split"] == "train") & (frame["kind"] == "piece"), "piece"].unique()
                   if not is_chord_set(p))
    if count >= len(train):
        raise ValueError(f"valid_pieces={count} leaves no training piece ({len(train)} in train)")
    rng = np.random.default_rng(seed)
    return sorted(rng.choice(train, size=count, replace=False).tolist()) if count else []


def recording_features(audio_path: str, midi_path: str, instrument: int,
                       **checks) -> tuple[np.ndarray, np.ndarray]:
    """x [T, 144] and y [T, 185] of one recording, on the same frames (``checks``: the
    dataset's audio format, see :func:`genex.studies.piano.data.audio_checks`)."""
    x = audio_file_features(audio_path, **checks)
    y = labels_from_midi(midi_path, n_frames=len(x), instrument=instrument)
    return x, y


def frame_set(rows: pd.DataFrame, numbers: dict[str, int], desc: str,
              layout: str | None = None) -> FrameSet:
    """Features of the recordings in ``rows`` (with a 'use' column for the split); with
    ``layout`` the audio is checked against that layout's format."""
    from genex.studies.piano.data import audio_checks

    xs, ys, lengths = [], [], []
    for row in progress(list(rows.itertuples(index=False)), desc=desc, unit="rec"):
        checks = audio_checks(layout, row.sample_rate) if layout else {}
        x, y = recording_features(row.audio_path, row.midi_path, numbers[row.instrument], **checks)
        xs.append(x)
        ys.append(y)
        lengths.append(len(x))
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    empty_x, empty_y = np.zeros((0, N_BINS), np.float32), np.zeros((0, Y_DIM), np.float32)
    return FrameSet(
        x=np.concatenate(xs) if xs else empty_x, y=np.concatenate(ys) if ys else empty_y,
        offsets=offsets, names=rows["recording"].to_numpy(str), pieces=rows["piece"].to_numpy(str),
        splits=rows["use"].to_numpy(str),
        instruments=np.array([numbers[i] for i in rows["instrument"]], dtype=np.int64),
        pitches=rows["pitch"].to_numpy(np.int64))


def build_feature_set(root: str | Path, out_dir: Path, params: dict, seed: int) -> dict:
    """Write pieces.npz, isolated.npz and meta.json for a dataset folder; returns the summary."""
    from genex.studies.piano.data import detect_layout, read_piano

    frame = read_piano(root)
    layout = detect_layout(Path(root))
    frame = frame[frame["split"].isin(["train", "test"])]  # MAESTRO's validation split unused
    numbers = instrument_numbers(frame)
    held_out = validation_pieces(frame, int(params.get("valid_pieces", 1)), seed)
    frame = frame.assign(use=np.where(frame["piece"].isin(held_out) & (frame["split"] == "train"),
                                      "valid", frame["split"]))
    limit = params.get("max_recordings_per_split")
    pieces = frame[frame["kind"] == "piece"]
    if limit:
        pieces = pieces.groupby("use", group_keys=False).head(int(limit))
    isolated = frame[(frame["kind"] == "isolated") & (frame["split"] == params.get("concept_split", "test"))]
    piece_set = frame_set(pieces, numbers, "piano features: pieces", layout)
    piece_set.save(out_dir / "pieces.npz")
    iso_set = frame_set(isolated, numbers, "piano features: isolated notes", layout)
    iso_set.save(out_dir / "isolated.npz")
    summary = {
        "instruments": list(numbers),
        "valid_pieces": held_out,
        "recordings": {s: int((piece_set.splits == s).sum()) for s in ("train", "valid", "test")},
        "frames": {s: int(piece_set.frame_mask(s).sum()) for s in ("train", "valid", "test")},
        "isolated_notes": len(iso_set),
    }
    write_json(out_dir / "meta.json", summary)
    return summary
