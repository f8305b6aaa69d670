"""Piano transcription datasets: one reader for piano-sf, MAPS and MAESTRO v3, and MIDI helpers.

:func:`read_piano` returns one row per recording with the columns of :data:`COLUMNS`:

``recording``
    unique id (piano-sf: ``<instrument>/MUS/<piece>``, ``<instrument>/ISOL/M021`` or, for
    its RAND / UCHO chord sets, ``<instrument>/RAND/RAND-<instrument>``;
    MAPS: the file stem; MAESTRO: ``midi_filename`` without its extension)
``kind``
    ``'piece'`` (polyphonic music) or ``'isolated'`` (one note)
``piece``
    piece name (the same across instruments); for isolated notes ``M021``.. (piano-sf)
    or the MAPS tag such as ``ISOL_NO_F_S0_M21``; piano-sf's chord sets are pieces named
    ``RAND-<instrument>`` / ``UCHO-<instrument>`` (see :func:`is_chord_set`)
``instrument``
    piano-sf: ``<soundfont>-p<program>``; MAPS: e.g. ``AkPnBcht``; MAESTRO: ``maestro``
``split``
    ``'train'`` | ``'test'`` (MAESTRO also ``'validation'``)
``audio_path``, ``midi_path``
    absolute paths as str (MAESTRO's midi-only archive has no audio: the path is where it
    would be, and ``sample_rate`` is -1)
``pitch``
    MIDI pitch of an isolated note, -1 for pieces
``sample_rate``, ``duration``
    of the audio in Hz and seconds

Layouts are detected from what is in the folder, in this order: piano-sf (``index.csv``
written by :mod:`genex.studies.piano.render`), MAESTRO (``maestro-v3.0.0.csv``, at the root or one
level down), MAPS (``**/MUS/MAPS_MUS-*.wav``, at any depth, as its zips unpack in nested
folders).

MAPS split (Kelz & Widmer 2019, after Sigtia et al.): test = every recording of the two
Disklavier instruments ENSTDkCl and ENSTDkAm; train = the seven synthesised instruments,
minus their pieces that the Disklavier sets also contain. Isolated notes follow their
instrument's split. MAPS's own RAND and UCHO chord sets are not read: the paper trains on
the 139 pieces alone (piano-sf renders twins of them because its corpus pieces leave the
keyboard's extremes silent).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

COLUMNS = ["recording", "kind", "piece", "instrument", "split", "audio_path", "midi_path",
           "pitch", "sample_rate", "duration"]
MIN_PITCH, MAX_PITCH = 21, 108  # the 88 keys A0..C8
SUSTAIN_CC = 64
MAPS_TEST_INSTRUMENTS = ("ENSTDkCl", "ENSTDkAm")
MAESTRO_CSV = "maestro-v3.0.0.csv"
PIANO_SF_INDEX = "index.csv"
# The sample rates of each layout's recordings (MAESTRO v3 mixes two; piano-sf's is in its
# index) and whether its audio is mono: a stereo piano-sf file comes from somewhere else.
LAYOUT_RATES = {"maps": (44100,), "maestro": (44100, 48000)}
LAYOUT_NAMES = {"piano-sf": "piano-sf", "maps": "MAPS", "maestro": "MAESTRO v3"}
MONO_LAYOUTS = ("piano-sf",)
# piano-sf's twins of MAPS's RAND (random chords over the whole keyboard) and UCHO (usual
# chords) sets: polyphonic recordings (kind 'piece') named '<SET>-<instrument>', which
# Table 1 leaves out (the paper scores music) and the per-register scores include.
CHORD_SETS = ("RAND", "UCHO")
# Registers of the keyboard for per-register scores (MIDI pitches, both ends included):
# bass A0..B2, middle C3..B4 (the two octaves around middle C), treble C5..C8.
REGISTERS = {"bass": (21, 47), "middle": (48, 71), "treble": (72, 108)}


def is_chord_set(piece: str) -> bool:
    """Whether a piece name is one of piano-sf's RAND / UCHO chord sets."""
    return str(piece).split("-", 1)[0] in CHORD_SETS

# pretty_midi writes at 120 bpm; 960 ticks per beat = 1920 ticks per second. Times on this
# grid survive a write/read round trip exactly, so the renderer quantises to it.
MIDI_RESOLUTION = 960
MIDI_TICKS_PER_SECOND = 2 * MIDI_RESOLUTION


# ----------------------------------------------------------------------------- MIDI helpers

def quantize_time(t):
    """Round seconds (scalar or array) onto the MIDI tick grid of :func:`write_midi`."""
    return np.round(np.asarray(t, dtype=np.float64) * MIDI_TICKS_PER_SECOND) / MIDI_TICKS_PER_SECOND


def write_midi(path: str | Path, notes: pd.DataFrame, pedal: pd.DataFrame, program: int = 0,
               name: str = "piano") -> None:
    """Write notes (start, end, pitch, velocity) and CC64 events (time, value) as one track.

    Times should lie on :func:`quantize_time`'s grid so that reading the file back gives
    exactly the same numbers.
    """
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(resolution=MIDI_RESOLUTION, initial_tempo=120.0)
    inst = pretty_midi.Instrument(program=int(program), is_drum=False, name=name)
    for n in notes.itertuples(index=False):
        inst.notes.append(pretty_midi.Note(velocity=int(n.velocity), pitch=int(n.pitch),
                                           start=float(n.start), end=float(n.end)))
    for c in pedal.itertuples(index=False):
        inst.control_changes.append(pretty_midi.ControlChange(number=SUSTAIN_CC, value=int(c.value),
                                                              time=float(c.time)))
    pm.instruments.append(inst)
    pm.write(str(path))


def read_midi_notes(path: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Notes as played and sustain-pedal events of a MIDI file.

    Returns ``(notes, pedal)``: ``notes`` has columns start, end (seconds), pitch, velocity,
    sorted by start then pitch, from every non-drum track; ``pedal`` has columns time,
    value of every CC64 event, sorted by time. Offsets are key releases: apply
    :func:`apply_sustain` for the sounding durations.
    """
    import pretty_midi

    path = Path(path)
    try:
        pm = pretty_midi.PrettyMIDI(str(path))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: MIDI file not found") from None
    except Exception as err:  # noqa: BLE001 - mido/pretty_midi raise many kinds
        raise ValueError(f"{path}: not a readable MIDI file ({err})") from None
    rows, cc = [], []
    for inst in pm.instruments:
        if inst.is_drum:
            continue
        rows += [(n.start, n.end, n.pitch, n.velocity) for n in inst.notes]
        cc += [(c.time, c.value) for c in inst.control_changes if c.number == SUSTAIN_CC]
    notes = pd.DataFrame(rows, columns=["start", "end", "pitch", "velocity"])
    notes = notes.astype({"start": float, "end": float, "pitch": int, "velocity": int})
    notes = notes.sort_values(["start", "pitch"], kind="stable").reset_index(drop=True)
    pedal = pd.DataFrame(cc, columns=["time", "value"]).astype({"time": float, "value": int})
    pedal = pedal.sort_values("time", kind="stable").reset_index(drop=True)
    return notes, pedal


def pedal_intervals(pedal: pd.DataFrame, threshold: int = 64) -> list[tuple[float, float]]:
    """Intervals [down, up) where the sustain pedal is engaged (value > threshold).

    A pedal still down at the last event is closed at +inf.
    """
    intervals, down = [], None
    for t, v in zip(pedal["time"], pedal["value"]):
        if v > threshold and down is None:
            down = float(t)
        elif v <= threshold and down is not None:
            intervals.append((down, float(t)))
            down = None
    if down is not None:
        intervals.append((down, float("inf")))
    return intervals


def apply_sustain(notes: pd.DataFrame, pedal: pd.DataFrame, threshold: int = 64) -> pd.DataFrame:
    """Sounding notes: offsets extended to the pedal release while CC64 > threshold.

    A note released while the pedal is down sounds until the pedal comes up, but never past
    the next onset of the same pitch (the key is struck again), as in MAPS's and the
    paper's label convention.
    """
    out = notes.copy()
    ends = out["end"].to_numpy(dtype=float).copy()
    for down, up in pedal_intervals(pedal, threshold):
        held = (ends >= down) & (ends < up)
        ends[held] = up
    out["end"] = ends
    # cut at the next onset of the same pitch
    out = out.sort_values(["pitch", "start"], kind="stable")
    nxt = out.groupby("pitch")["start"].shift(-1)
    cut = nxt.notna() & (out["end"] > nxt)
    out.loc[cut, "end"] = nxt[cut]
    finite = np.isfinite(out["end"]) | out["end"].isna()
    if not finite.all():  # a pedal never released: keep the key-release time
        out.loc[~finite, "end"] = notes.loc[out.index[~finite], "end"]
    return out.sort_values(["start", "pitch"], kind="stable").reset_index(drop=True)


# ----------------------------------------------------------------------------- readers

def read_piano(root: str | Path) -> pd.DataFrame:
    """One row per recording of a piano-sf, MAPS or MAESTRO v3 folder (layout auto-detected).

    See the module docstring for the columns and the split rules.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: piano dataset folder not found")
    layout = detect_layout(root)
    frame = {"piano-sf": _read_piano_sf, "maestro": _read_maestro, "maps": _read_maps}[layout](root)
    frame = frame[COLUMNS].astype({"pitch": int, "sample_rate": int, "duration": float})
    if frame["recording"].duplicated().any():
        dup = frame.loc[frame["recording"].duplicated(), "recording"].iloc[0]
        raise ValueError(f"{root}: recording id {dup!r} occurs twice")
    return frame.sort_values(["split", "kind", "instrument", "recording"],
                             kind="stable").reset_index(drop=True)


def audio_checks(layout: str, sample_rate: int) -> dict:
    """:func:`genex.pipeline.audio.read_audio`'s checks for a recording of ``layout``
    (``sample_rate``: the rate :func:`read_piano` gives it)."""
    rates = (int(sample_rate),) if layout == "piano-sf" else LAYOUT_RATES[layout]
    where = f"piano-sf ({PIANO_SF_INDEX})" if layout == "piano-sf" else LAYOUT_NAMES[layout]
    return {"rates": rates, "mono_dataset": layout in MONO_LAYOUTS, "dataset": where}


def detect_layout(root: Path) -> str:
    """'piano-sf', 'maestro' or 'maps', from what the folder holds."""
    if (root / PIANO_SF_INDEX).is_file():
        return "piano-sf"
    if _find_maestro_csv(root) is not None:
        return "maestro"
    if next(root.rglob("MAPS_MUS-*.wav"), None) is not None:
        return "maps"
    raise FileNotFoundError(
        f"{root}: not a piano dataset: found neither {PIANO_SF_INDEX} (piano-sf), "
        f"{MAESTRO_CSV} (MAESTRO v3) nor */MUS/MAPS_MUS-*.wav (MAPS)")


def _read_piano_sf(root: Path) -> pd.DataFrame:
    index = root / PIANO_SF_INDEX
    frame = pd.read_csv(index, keep_default_na=False)
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{index}: missing columns {missing}")
    for col in ("audio_path", "midi_path"):
        frame[col] = [str((root / p).resolve()) for p in frame[col]]
    return frame


def _find_maestro_csv(root: Path) -> Path | None:
    for candidate in (root / MAESTRO_CSV, *sorted(root.glob(f"*/{MAESTRO_CSV}"))):
        if candidate.is_file():
            return candidate
    return None


def _audio_info(path: Path) -> tuple[int, float]:
    """(sample rate, duration) from the header only, or (-1, nan) if there is no file."""
    import soundfile as sf

    if not path.is_file():
        return -1, float("nan")
    try:
        info = sf.info(str(path))
    except Exception as err:  # noqa: BLE001 - libsndfile errors are RuntimeError subclasses
        raise ValueError(f"{path}: not a readable audio file ({err})") from None
    return int(info.samplerate), float(info.frames) / info.samplerate


def _read_maestro(root: Path) -> pd.DataFrame:
    csv = _find_maestro_csv(root)
    base = csv.parent
    meta = pd.read_csv(csv)
    needed = ["split", "midi_filename", "audio_filename", "canonical_title", "duration"]
    missing = [c for c in needed if c not in meta.columns]
    if missing:
        raise ValueError(f"{csv}: missing columns {missing}")
    rows = []
    for r in meta.itertuples(index=False):
        audio = (base / r.audio_filename).resolve()
        sample_rate, _ = _audio_info(audio)
        rows.append({
            "recording": str(Path(r.midi_filename).with_suffix("")),
            "kind": "piece", "piece": r.canonical_title, "instrument": "maestro",
            "split": r.split, "audio_path": str(audio),
            "midi_path": str((base / r.midi_filename).resolve()),
            "pitch": -1, "sample_rate": sample_rate, "duration": float(r.duration),
        })
    return pd.DataFrame(rows, columns=COLUMNS)


_MAPS_MUS = re.compile(r"^MAPS_MUS-(?P<piece>.+)_(?P<instrument>[^_]+)$")
_MAPS_ISOL = re.compile(r"^MAPS_(?P<tag>ISOL_.*_M(?P<pitch>\d+))_(?P<instrument>[^_]+)$")


def _read_maps(root: Path) -> pd.DataFrame:
    rows = []
    for wav in sorted(root.rglob("MAPS_*.wav")):
        mus, isol = _MAPS_MUS.match(wav.stem), _MAPS_ISOL.match(wav.stem)
        if mus:
            kind, piece, instrument, pitch = "piece", mus["piece"], mus["instrument"], -1
        elif isol and wav.parent.name == "NO":  # ISOL/NO: normal notes (not repeated, trills...)
            kind, piece, instrument = "isolated", isol["tag"], isol["instrument"]
            pitch = int(isol["pitch"])
        else:
            continue
        midi = wav.with_suffix(".mid")
        if not midi.is_file():
            raise FileNotFoundError(f"{wav}: no matching MIDI file {midi.name}")
        sample_rate, duration = _audio_info(wav)
        rows.append({"recording": wav.stem, "kind": kind, "piece": piece,
                     "instrument": instrument, "audio_path": str(wav.resolve()),
                     "midi_path": str(midi.resolve()), "pitch": pitch,
                     "sample_rate": sample_rate, "duration": duration})
    frame = pd.DataFrame(rows, columns=[c for c in COLUMNS if c != "split"])
    is_test = frame["instrument"].isin(MAPS_TEST_INSTRUMENTS)
    test_pieces = set(frame.loc[is_test & (frame["kind"] == "piece"), "piece"])
    frame["split"] = np.where(is_test, "test", "train")
    # MAPS protocol: synthesised renditions of pieces the Disklavier also plays are dropped
    overlap = ~is_test & (frame["kind"] == "piece") & frame["piece"].isin(test_pieces)
    return frame.loc[~overlap].reset_index(drop=True)
