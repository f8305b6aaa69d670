"""Frame labels y of the piano study (Kelz & Widmer 2019): note phase, velocity, instrument.

At 25 fps (0.04 s frames) a note sounding from ``on`` to ``off`` (offsets extended by the
sustain pedal, CC64 > 64, and cut at the next onset of the same key) covers the frames
``round(on / 0.04) ... round(off / 0.04)`` (both included). Over them its key gets

* phase ``5 * 0.99**k``, k = frames since the onset (a decaying "where in the note" clock),
* velocity ``velocity / 127``.

A later note of the same key overwrites the frame it shares with the previous one. With the
one-hot instrument code this gives ``y = [phase 88 | velocity 88 | instrument 9]`` (185).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from genex.studies.piano.data import MAX_PITCH, MIN_PITCH, apply_sustain, read_midi_notes

FRAME_SECONDS = 0.04  # 25 fps, = HOP_SIZE / SAMPLE_RATE of the filterbank features
N_KEYS = MAX_PITCH - MIN_PITCH + 1  # 88
N_INSTRUMENTS = 9
Y_DIM = 2 * N_KEYS + N_INSTRUMENTS  # 185
PHASE_START, PHASE_DECAY = 5.0, 0.99
PEDAL_THRESHOLD = 64  # CC64 values above this mean "pedal down"

PHASE = slice(0, N_KEYS)
VELOCITY = slice(N_KEYS, 2 * N_KEYS)
INSTRUMENT = slice(2 * N_KEYS, Y_DIM)


def phase_curve(length: int) -> np.ndarray:
    """The note-phase clock ``5 * 0.99**k`` for k = 0 .. length-1."""
    return (PHASE_START * PHASE_DECAY ** np.arange(length)).astype(np.float32)


def note_frames(notes: pd.DataFrame, n_frames: int, frame_seconds: float = FRAME_SECONDS
                ) -> pd.DataFrame:
    """First and last frame (inclusive) of each note, clipped to ``n_frames``.

    Adds columns ``first``, ``last`` and ``key`` (0..87) to a copy of ``notes``; notes
    outside the 88 keys or starting after the last frame are dropped.
    """
    out = notes.copy()
    out["first"] = np.round(out["start"].to_numpy(float) / frame_seconds).astype(np.int64)
    out["last"] = np.minimum(np.round(out["end"].to_numpy(float) / frame_seconds).astype(np.int64),
                             n_frames - 1)
    out["key"] = out["pitch"].astype(np.int64) - MIN_PITCH
    keep = (out["key"] >= 0) & (out["key"] < N_KEYS) & (out["first"] < n_frames)
    return out[keep]


def phase_velocity_rolls(notes: pd.DataFrame, pedal: pd.DataFrame, n_frames: int,
                         frame_seconds: float = FRAME_SECONDS,
                         pedal_threshold: int = PEDAL_THRESHOLD) -> tuple[np.ndarray, np.ndarray]:
    """Note-phase and velocity rolls ``[n_frames, 88]`` (float32) from played notes and CC64.

    ``notes`` are key presses (start, end, pitch, velocity) and ``pedal`` CC64 events
    (time, value), as :func:`genex.studies.piano.data.read_midi_notes` returns them. Sustain and
    the same-key cut are applied here. Notes are written in onset order, so a re-struck
    key's new note owns the frame where the old one ends.
    """
    sounding = apply_sustain(notes, pedal, threshold=pedal_threshold)
    frames = note_frames(sounding, n_frames, frame_seconds)
    frames = frames.sort_values(["first", "key"], kind="stable")
    phase = np.zeros((n_frames, N_KEYS), dtype=np.float32)
    velocity = np.zeros((n_frames, N_KEYS), dtype=np.float32)
    for first, last, key, vel in zip(frames["first"], frames["last"], frames["key"],
                                     frames["velocity"]):
        if last < first:  # shorter than half a frame and rounded away: still one frame
            last = first
        phase[first:last + 1, key] = phase_curve(last + 1 - first)
        velocity[first:last + 1, key] = vel / 127.0
    return phase, velocity


def instrument_onehot(instrument: int, n_frames: int, n_instruments: int = N_INSTRUMENTS) -> np.ndarray:
    """``[n_frames, n_instruments]`` one-hot rows of instrument number ``instrument``."""
    if not 0 <= instrument < n_instruments:
        raise ValueError(f"instrument number {instrument} outside 0..{n_instruments - 1}")
    out = np.zeros((n_frames, n_instruments), dtype=np.float32)
    out[:, instrument] = 1.0
    return out


def build_labels(notes: pd.DataFrame, pedal: pd.DataFrame, n_frames: int, instrument: int,
                 n_instruments: int = N_INSTRUMENTS,
                 frame_seconds: float = FRAME_SECONDS) -> np.ndarray:
    """``y = [phase 88 | velocity 88 | instrument one-hot]``, shape ``[n_frames, 185]``."""
    phase, velocity = phase_velocity_rolls(notes, pedal, n_frames, frame_seconds)
    return np.concatenate([phase, velocity, instrument_onehot(instrument, n_frames, n_instruments)],
                          axis=1)


def labels_from_midi(path: str | Path, n_frames: int, instrument: int,
                     n_instruments: int = N_INSTRUMENTS) -> np.ndarray:
    """:func:`build_labels` of a MIDI file (errors name the file)."""
    notes, pedal = read_midi_notes(path)
    try:
        return build_labels(notes, pedal, n_frames, instrument, n_instruments)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None


def active_keys(y: np.ndarray) -> np.ndarray:
    """Boolean roll ``[frames, 88]`` of sounding keys (phase > 0) of labels ``y``."""
    return np.asarray(y)[..., PHASE] > 0
