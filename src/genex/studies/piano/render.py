"""piano-sf: the embedded twin of MAPS, rendered with FluidSynth from real piano samples.

Pieces come from music21's corpus (piano and chamber works, played as piano reductions of
every part, plus Bach's four-part chorales). Each piece becomes a *performance*, seeded per
piece: a random transposition (folded into the 88 keys), a tempo around the score's mark
with a per-bar drift, phrase dynamics with accents and a louder top voice, legato/detached
articulation, small timing jitter, and syncopated sustain pedalling (CC64) of random bars,
so that the pedal changes how long notes sound. Performances are clipped to
``max_piece_seconds`` (the pedal is lifted there) and followed by a one-second tail.

As in MAPS, "instruments" are piano sample sets (here GM program x soundfont): the
``test_instruments`` last instruments play only the held-out test pieces (MAPS's Disklavier
ENSTDkCl/ENSTDkAm), the others play only the training pieces, and no test piece is ever
rendered in train. Every instrument also plays the 88 keys alone (MAPS's ISOL/NO), or every
``isolated_key_step``-th key from middle C (a smaller dataset for quick profiles).

The corpus pieces leave the keyboard's extremes silent (about 28 of the 88 keys never sound
in the training pieces), so, as MAPS does with its RAND and UCHO sets, every instrument also
plays two *chord sets* of its own (seeded per instrument, so the test instruments' chords are
not the training ones): ``RAND``, random chords over the whole keyboard (every key in every
round of a shuffled deck, so each RAND set sounds all 88 keys), and ``UCHO``, usual chords
(triads, sevenths, octaves, in inversions) on roots all over the keyboard. They are
recordings of kind ``'piece'`` named ``RAND-<instrument>`` / ``UCHO-<instrument>``
(:func:`genex.studies.piano.data.is_chord_set`): they train the models and, in test, give
the per-register scores keys to measure; Table 1 scores the music pieces alone. The render
fails if a key never sounds in the training split.

Layout written into ``out_dir``::

    index.csv                          one row per recording, the columns of
                                       genex.studies.piano.data.COLUMNS (paths relative)
    meta.json                          instruments in order (one-hot index), pieces per split,
                                       the corpus source of every piece
    <instrument>/MUS/<piece>.wav|.mid  e.g. FluidR3_GM-p000/MUS/bach-bwv267.wav
    <instrument>/ISOL/M<pitch>.wav|.mid  e.g. FluidR3_GM-p000/ISOL/M021.wav (21..108)
    <instrument>/<SET>/<SET>-<instrument>.wav|.mid  SET = RAND | UCHO, e.g.
                                       FluidR3_GM-p000/RAND/RAND-FluidR3_GM-p000.wav

WAVs are mono 16-bit PCM at ``sample_rate``. Each MIDI holds the notes as played (key
releases, not sounding ends) and the CC64 events the synthesiser received, on the same
1/1920 s grid, so :func:`genex.studies.piano.data.apply_sustain` gives the sounding notes.
Read it back with :func:`genex.studies.piano.data.read_piano`.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from genex.studies.piano.data import (
    CHORD_SETS,
    COLUMNS,
    MAX_PITCH,
    MIN_PITCH,
    PIANO_SF_INDEX,
    SUSTAIN_CC,
    quantize_time,
    write_midi,
)
from genex.pipeline import progress, write_json, write_wav

# music21 corpus works written for or well playable on a piano (piano scores, songs with
# piano, string quartets played as piano reductions). Missing ones are skipped, so a
# music21 release that renames a file changes the pool, never breaks the render.
FEATURED_WORKS = (
    "bach/bwv846.mxl",
    "mozart/k545/movement1_exposition.mxl",
    "joplin/maple_leaf_rag.mxl",
    "chopin/mazurka06-2.krn",
    "cpebach/h186.mxl",
    "schumann_clara/polonaise_op1n1.mxl",
    "schumann_clara/polonaise_op1n2.mxl",
    "schumann_clara/polonaise_op1n3.mxl",
    "schumann_clara/polonaise_op1n4.mxl",
    "schumann_clara/opus17/movement3.xml",
    "schumann_robert/dichterliebe_no2.xml",
    "schoenberg/opus19/movement2.mxl",
    "schoenberg/opus19/movement6.mxl",
    "beach/prayer_of_a_tired_child.musicxml",
    "corelli/opus3no1/1grave.xml",
    "mozart/k80/movement1.mxl",
    "mozart/k155/movement1.mxl",
    "mozart/k156/movement1.mxl",
    "haydn/opus1no1/movement1.mxl",
    "haydn/opus74no1/movement1.mxl",
)
_CHORALE = re.compile(r"^bach/bwv\d+(\.\d+)?\.mxl$")
LEAD_IN = (0.2, 0.5)   # seconds of silence before the first note
TAIL = 1.0             # seconds after the last sound ends (release decay)
ISOL_RELEASE = 0.5     # seconds after an isolated note's key release
CHORD_TAIL = 2.0       # after a chord set: it may end on extreme keys (the top ones have no dampers), which ring longest
# UCHO's usual chords: semitones above the root (each also played in its inversions)
USUAL_CHORDS = {
    "major": (0, 4, 7), "minor": (0, 3, 7), "diminished": (0, 3, 6), "augmented": (0, 4, 8),
    "sus4": (0, 5, 7), "dominant7": (0, 4, 7, 10), "major7": (0, 4, 7, 11),
    "minor7": (0, 3, 7, 10), "octave": (0, 12), "fifth_octave": (0, 7, 12),
}


@dataclass(frozen=True)
class Instrument:
    """A piano 'instrument': a GM program of a soundfont."""

    soundfont: str
    program: int

    @property
    def name(self) -> str:
        return f"{self.soundfont}-p{self.program:03d}"


@dataclass
class Performance:
    """A piece as played: notes (start, end, pitch, velocity), CC64 events, length."""

    piece: str
    source: str
    notes: pd.DataFrame
    pedal: pd.DataFrame
    duration: float


# ----------------------------------------------------------------------------- pieces

def corpus_pool() -> tuple[list[str], list[str]]:
    """(featured works, chorales) available in the installed music21 corpus, sorted."""
    from music21 import corpus

    paths = {str(p).replace("\\", "/").split("/corpus/")[-1] for p in corpus.getPaths()}
    featured = [p for p in FEATURED_WORKS if p in paths]
    chorales = sorted(p for p in paths if _CHORALE.match(p))
    return featured, chorales


def piece_name(source: str) -> str:
    """A file-name-safe piece id from a corpus path: 'bach/bwv1.6.mxl' -> 'bach-bwv1.6'."""
    stem = re.sub(r"\.(mxl|xml|musicxml|krn|abc)$", "", source)
    return re.sub(r"[^A-Za-z0-9._-]+", "-", stem.replace("/", "-"))


def select_pieces(n_pieces: int, n_test: int, seed: int) -> tuple[list[str], list[str]]:
    """Corpus paths of the (train, test) pieces, disjoint and deterministic for a seed.

    Up to half the pieces are featured works, the rest chorales; both kinds are split
    between train and test in proportion.
    """
    if not 0 < n_test < n_pieces:
        raise ValueError(f"piano_sf: need 0 < test_pieces < pieces, got {n_test} and {n_pieces}")
    featured, chorales = corpus_pool()
    rng = np.random.default_rng([seed, 1])
    n_feat = min(len(featured), n_pieces // 2)
    if n_pieces - n_feat > len(chorales):
        raise ValueError(f"piano_sf: {n_pieces} pieces asked, the music21 corpus has "
                         f"{len(featured) + len(chorales)}")
    feat = [featured[i] for i in rng.permutation(len(featured))[:n_feat]]
    chor = [chorales[i] for i in rng.permutation(len(chorales))[:n_pieces - n_feat]]
    n_test_feat = int(round(n_test * n_feat / n_pieces))
    n_test_chor = n_test - n_test_feat
    test = feat[:n_test_feat] + chor[:n_test_chor]
    train = feat[n_test_feat:] + chor[n_test_chor:]
    return sorted(train), sorted(test)


def notated_notes(source: str) -> tuple[pd.DataFrame, np.ndarray, float | None]:
    """Notes of every part of a corpus work in quarter lengths, bar starts, and tempo mark.

    Returns ``(notes[onset, dur, pitch], bar_offsets, quarter_bpm or None)``; ties are
    merged, grace notes dropped, and a pitch doubled by two parts kept once.
    """
    from music21 import corpus, tempo

    try:
        score = corpus.parse(source)
    except Exception as err:  # noqa: BLE001 - music21 parsers raise many kinds
        raise ValueError(f"music21 corpus {source}: cannot parse ({err})") from None
    score.stripTies(inPlace=True)  # a copy would cost seconds per work
    rows = []
    for part in score.parts:
        for n in part.flatten().notes:
            dur = float(n.quarterLength)
            if dur <= 0 or n.duration.isGrace:
                continue
            rows += [(float(n.offset), dur, int(p.midi)) for p in n.pitches]
    if not rows:
        raise ValueError(f"music21 corpus {source}: no pitched notes")
    notes = pd.DataFrame(rows, columns=["onset", "dur", "pitch"])
    notes = (notes.sort_values(["onset", "pitch", "dur"])
             .drop_duplicates(["onset", "pitch"], keep="last").reset_index(drop=True))
    first = score.parts[0]
    bars = np.array(sorted({float(m.offset) for m in first.getElementsByClass("Measure")}))
    end = float(notes.eval("onset + dur").max())
    if len(bars) < 2:  # no measures (some kern files): assume 4/4
        bars = np.arange(0.0, end + 4.0, 4.0)
    marks = [m for m in score.flatten().getElementsByClass(tempo.MetronomeMark)]
    bpm = None
    for m in marks:
        try:
            bpm = float(m.getQuarterBPM())
            break
        except Exception:  # noqa: BLE001 - marks without a number
            continue
    return notes, bars, bpm


def _fold_into_keyboard(pitch: np.ndarray, shift: int) -> np.ndarray:
    """Transpose by ``shift`` semitones, then by octaves until every note is on the 88 keys."""
    pitch = pitch + shift
    lo, hi = pitch.min(), pitch.max()
    if hi - lo <= MAX_PITCH - MIN_PITCH:  # whole piece fits: move it as one
        while pitch.min() < MIN_PITCH:
            pitch = pitch + 12
        while pitch.max() > MAX_PITCH:
            pitch = pitch - 12
    while (pitch < MIN_PITCH).any():
        pitch = np.where(pitch < MIN_PITCH, pitch + 12, pitch)
    while (pitch > MAX_PITCH).any():
        pitch = np.where(pitch > MAX_PITCH, pitch - 12, pitch)
    return pitch


def _tempo_map(bars: np.ndarray, end_ql: float, bpm: float, rng: np.random.Generator):
    """Function quarter-lengths -> seconds, with the tempo drifting a little bar by bar."""
    edges = np.unique(np.concatenate([[0.0], bars[bars > 0], [max(end_ql, bars.max()) + 4.0]]))
    drift = np.exp(np.clip(np.cumsum(rng.normal(0.0, 0.02, len(edges) - 1)), -0.12, 0.12))
    seconds = np.concatenate([[0.0], np.cumsum(np.diff(edges) * 60.0 / (bpm * drift))])
    return lambda q: np.interp(q, edges, seconds)


def _velocities(onset: np.ndarray, pitch: np.ndarray, bars: np.ndarray,
                rng: np.random.Generator) -> np.ndarray:
    """Phrase dynamics (4-bar levels, interpolated), downbeat accents, a louder top voice."""
    phrase_starts = bars[::4] if len(bars) else np.array([0.0])
    levels = rng.uniform(40.0, 95.0, len(phrase_starts))
    vel = np.interp(onset, phrase_starts, levels)
    on_bar = np.isin(np.round(onset, 6), np.round(bars, 6))
    vel += np.where(on_bar, 8.0, 0.0)
    top = pd.Series(pitch).groupby(np.round(onset, 6)).transform("max").to_numpy() == pitch
    vel += np.where(top, 6.0, -2.0)
    vel += rng.normal(0.0, 5.0, len(onset))
    return np.clip(np.round(vel), 15, 127).astype(int)


def _pedal(bar_times: np.ndarray, t_stop: float, share: float,
           rng: np.random.Generator) -> pd.DataFrame:
    """Syncopated pedalling: pressed just after a bar starts, lifted just before the next."""
    events = []
    for t0, t1 in zip(bar_times[:-1], bar_times[1:]):
        if t0 >= t_stop or rng.random() >= share:
            continue
        down = t0 + rng.uniform(0.03, 0.12)
        up = min(t1 - rng.uniform(0.02, 0.08), t_stop)
        if up - down > 0.15:
            events += [(down, int(rng.integers(100, 128))), (up, 0)]
    frame = pd.DataFrame(events, columns=["time", "value"])
    frame["time"] = quantize_time(frame["time"].to_numpy())
    return frame.astype({"time": float, "value": int})


def perform(source: str, params: dict, seed: int) -> Performance:
    """A seeded performance of a corpus work, clipped to ``max_piece_seconds``.

    The random stream depends on the seed and the piece only, so one piece plays the same
    for every instrument and whatever the other pieces are.
    """
    rng = np.random.default_rng([seed, zlib.crc32(source.encode())])
    notes, bars, mark = notated_notes(source)
    t_max = float(params["max_piece_seconds"])
    lo, hi = params.get("tempo_scale", [0.85, 1.15])
    bpm = float(np.clip(mark if mark else rng.uniform(60.0, 100.0), 40.0, 200.0)) * rng.uniform(lo, hi)
    seconds = _tempo_map(bars, float(notes.eval("onset + dur").max()), bpm, rng)
    lead = rng.uniform(*LEAD_IN)

    shift = int(rng.integers(-params.get("transpose", 3), params.get("transpose", 3) + 1))
    pitch = _fold_into_keyboard(notes["pitch"].to_numpy(), shift)
    onset_q, dur_q = notes["onset"].to_numpy(), notes["dur"].to_numpy()
    start = lead + seconds(onset_q) + rng.normal(0.0, 0.008, len(notes))
    legato = rng.uniform(0.75, 0.98)  # per piece: detached .. legato
    length = (seconds(onset_q + dur_q) - seconds(onset_q)) * legato * rng.uniform(0.95, 1.05, len(notes))
    start = np.maximum(start, 0.05)
    played = _playable(pd.DataFrame({"start": start, "end": start + np.maximum(length, 0.06),
                                     "pitch": pitch,
                                     "velocity": _velocities(onset_q, pitch, bars, rng)}), t_max)

    share = float(np.clip(params.get("pedal_share", 0.6) + rng.uniform(-0.25, 0.25), 0.0, 1.0))
    bar_edges = np.append(bars, max(bars.max(), float(notes.eval("onset + dur").max())))
    pedal = _pedal(lead + seconds(bar_edges), t_max, share, rng)
    sounding = max(played["end"].max(), pedal["time"].max() if len(pedal) else 0.0)
    return Performance(piece=piece_name(source), source=source, notes=played, pedal=pedal,
                       duration=float(quantize_time(sounding + TAIL)))


def _playable(notes: pd.DataFrame, t_max: float) -> pd.DataFrame:
    """Clip to ``t_max``, release a key before it is struck again, snap to the MIDI grid."""
    notes = notes[notes["start"] < t_max - 0.1].copy()
    notes["end"] = np.minimum(notes["end"], t_max)
    notes["start"] = quantize_time(notes["start"].to_numpy())
    notes["end"] = quantize_time(notes["end"].to_numpy())
    notes = notes.sort_values(["pitch", "start"], kind="stable")
    nxt = notes.groupby("pitch")["start"].shift(-1).to_numpy()
    gap = 0.02
    clash = ~np.isnan(nxt) & (notes["end"].to_numpy() > nxt - gap)
    ends = notes["end"].to_numpy().copy()
    ends[clash] = quantize_time(nxt[clash] - gap)
    notes["end"] = ends
    notes = notes[notes["end"] - notes["start"] >= 0.02]  # re-struck within 40 ms: one note
    notes = notes.astype({"start": float, "end": float, "pitch": int, "velocity": int})
    return notes.sort_values(["start", "pitch"], kind="stable").reset_index(drop=True)


# ----------------------------------------------------------------------------- chord sets

def _rand_chords(rng: np.random.Generator, seconds_per_chord: float, seconds: float,
                 polyphony: tuple[int, int]) -> list[list[int]]:
    """RAND: random chords dealt from a shuffled deck of the 88 keys, round after round.

    Dealing stops only between rounds, once ``seconds`` are filled: every key sounds at
    least once whatever the length (a round's last chord may be smaller).
    """
    keys = np.arange(MIN_PITCH, MAX_PITCH + 1)
    deck: list[int] = []
    chords: list[list[int]] = []
    while True:
        if not deck:
            if chords and len(chords) * seconds_per_chord >= seconds:
                return chords
            deck = [int(k) for k in rng.permutation(keys)]
        size = int(rng.integers(polyphony[0], polyphony[1] + 1))
        chords.append(sorted(deck[-size:]))
        del deck[-size:]


def _usual_chords(rng: np.random.Generator, n_chords: int) -> list[list[int]]:
    """UCHO: usual chords (random type and inversion) on roots dealt from a shuffled deck."""
    keys = np.arange(MIN_PITCH, MAX_PITCH + 1)
    names = sorted(USUAL_CHORDS)
    deck: list[int] = []
    chords = []
    for _ in range(n_chords):
        if not deck:
            deck = [int(k) for k in rng.permutation(keys)]
        root = deck.pop()
        intervals = np.array(USUAL_CHORDS[names[int(rng.integers(len(names)))]])
        inversion = int(rng.integers(len(intervals)))
        notes = root + np.concatenate([intervals[inversion:], intervals[:inversion] + 12])
        while notes.max() > MAX_PITCH:  # near the top: the same chord an octave lower
            notes = notes - 12
        # (the set merges an inverted octave's doubled top note: a single note or a fifth)
        chords.append(sorted({int(n) for n in notes}))
    return chords


def chord_set(kind: str, instrument: str, params: dict, seed: int) -> Performance:
    """An instrument's RAND or UCHO set: chords one after another, no pedal.

    Each chord is struck together (a few ms of spread), held ``chords.chord_seconds`` and
    followed by a short gap; velocities are drawn per note from ``chords.velocity``.
    """
    if kind not in CHORD_SETS:
        raise ValueError(f"piano_sf: unknown chord set {kind!r} (expected one of {CHORD_SETS})")
    cfg = params["chords"]
    rng = np.random.default_rng([seed, zlib.crc32(f"{kind}/{instrument}".encode())])
    hold_lo, hold_hi = (float(v) for v in cfg["chord_seconds"])
    gap_lo, gap_hi = (float(v) for v in cfg["gap_seconds"])
    per_chord = (hold_lo + hold_hi + gap_lo + gap_hi) / 2.0
    seconds = float(cfg["rand_seconds" if kind == "RAND" else "ucho_seconds"])
    if kind == "RAND":
        lo, hi = (int(v) for v in cfg["polyphony"])
        chords = _rand_chords(rng, per_chord, seconds, (lo, hi))
    else:
        chords = _usual_chords(rng, max(1, int(round(seconds / per_chord))))
    vel_lo, vel_hi = (int(v) for v in cfg["velocity"])
    rows, t = [], rng.uniform(*LEAD_IN)
    for chord in chords:
        hold = rng.uniform(hold_lo, hold_hi)
        for key in chord:
            start = t + rng.uniform(0.0, 0.01)
            rows.append((start, t + hold, key, int(rng.integers(vel_lo, vel_hi + 1))))
        t += hold + rng.uniform(gap_lo, gap_hi)
    notes = pd.DataFrame(rows, columns=["start", "end", "pitch", "velocity"])
    notes["start"] = quantize_time(notes["start"].to_numpy())
    notes["end"] = quantize_time(notes["end"].to_numpy())
    notes = notes.astype({"start": float, "end": float, "pitch": int, "velocity": int})
    notes = notes.sort_values(["start", "pitch"], kind="stable").reset_index(drop=True)
    pedal = pd.DataFrame({"time": pd.Series(dtype=float), "value": pd.Series(dtype=int)})
    return Performance(piece=f"{kind}-{instrument}", source=kind, notes=notes, pedal=pedal,
                       duration=float(quantize_time(notes["end"].max() + CHORD_TAIL)))


def isolated_keys(step: int = 1) -> list[int]:
    """The keys played alone: every ``step``-th key counted from middle C (MIDI 60, always
    one of them), over the 88 keys; ``step`` 1 is all of them, as MAPS's ISOL set."""
    return [p for p in range(MIN_PITCH, MAX_PITCH + 1) if (p - 60) % step == 0]


def silent_keys(performances) -> list[int]:
    """Keys of the 88 that no note of ``performances`` plays."""
    played = set()
    for perf in performances:
        played.update(int(p) for p in perf.notes["pitch"])
    return [k for k in range(MIN_PITCH, MAX_PITCH + 1) if k not in played]


# ----------------------------------------------------------------------------- rendering

def parse_instruments(params: dict) -> tuple[list[Instrument], list[Instrument]]:
    """(train instruments, test instruments) from the config: the last N are test."""
    insts = [Instrument(str(i["soundfont"]), int(i["program"])) for i in params["instruments"]]
    n_test = int(params["test_instruments"])
    if len({i.name for i in insts}) != len(insts):
        raise ValueError("piano_sf.instruments: an instrument is listed twice")
    if not 0 < n_test < len(insts):
        raise ValueError(f"piano_sf: need 0 < test_instruments < {len(insts)} instruments, "
                         f"got {n_test}")
    return insts[:-n_test], insts[-n_test:]


def _as_events(perf: Performance):
    from genex.pipeline.soundfont import ControlEvent, NoteEvent

    notes = [NoteEvent(float(n.start), float(n.end), int(n.pitch), int(n.velocity))
             for n in perf.notes.itertuples(index=False)]
    controls = [ControlEvent(float(c.time), SUSTAIN_CC, int(c.value))
                for c in perf.pedal.itertuples(index=False)]
    return notes, controls


def _with(rel: Path, suffix: str) -> Path:
    """``rel`` plus a suffix; piece names may contain dots (bwv121.6), so no with_suffix."""
    return rel.parent / f"{rel.name}{suffix}"


def _row(rel: Path, kind: str, piece: str, inst: Instrument, split: str,
         pitch: int, sample_rate: int, duration: float) -> dict:
    return {"recording": str(rel), "kind": kind, "piece": piece, "instrument": inst.name,
            "split": split, "audio_path": str(_with(rel, ".wav")),
            "midi_path": str(_with(rel, ".mid")), "pitch": pitch,
            "sample_rate": sample_rate, "duration": duration}


def render(out_dir: Path, params: dict, seed: int) -> dict:
    """Render piano-sf into ``out_dir`` (see the module docstring); return summary stats."""
    from genex.pipeline.soundfont import SoundfontSynth

    out_dir = Path(out_dir)
    sr = int(params["sample_rate"])
    train_insts, test_insts = parse_instruments(params)
    train_src, test_src = select_pieces(int(params["pieces"]), int(params["test_pieces"]), seed)
    perfs = {src: perform(src, params, seed)
             for src in progress(train_src + test_src, desc="piano-sf: performing", unit="piece")}

    jobs = [(inst, perfs[s], "train") for inst in train_insts for s in train_src]
    jobs += [(inst, perfs[s], "test") for inst in test_insts for s in test_src]
    chord_sets = {(inst.name, kind): chord_set(kind, inst.name, params, seed)
                  for inst in train_insts + test_insts for kind in CHORD_SETS}
    jobs += [(inst, chord_sets[inst.name, kind], split)
             for insts, split in ((train_insts, "train"), (test_insts, "test"))
             for inst in insts for kind in CHORD_SETS]
    silent = silent_keys(perf for _, perf, split in jobs if split == "train")
    if silent:  # cannot happen with a RAND set per instrument; guards later edits
        raise ValueError(f"piano_sf: keys {silent} never sound in the training split")
    hold = float(params["isolated_duration"])
    velocity = int(params["isolated_velocity"])
    keys = isolated_keys(int(params["isolated_key_step"]))
    rows = []
    soundfonts = sorted({i.soundfont for i in train_insts + test_insts})
    with SoundfontSynth(sr, soundfonts) as synth:
        for inst, perf, split in progress(jobs, desc="piano-sf: pieces", unit="rec"):
            folder = perf.source if perf.source in CHORD_SETS else "MUS"
            rel = Path(inst.name) / folder / perf.piece
            (out_dir / rel.parent).mkdir(parents=True, exist_ok=True)
            notes, controls = _as_events(perf)
            audio = synth.render_performance([(inst.soundfont, inst.program, notes, controls)],
                                             perf.duration)
            write_wav(out_dir / _with(rel, ".wav"), audio, sr)
            write_midi(out_dir / _with(rel, ".mid"), perf.notes, perf.pedal, inst.program, inst.name)
            rows.append(_row(rel, "piece", perf.piece, inst, split, -1, sr, len(audio) / sr))
        isol = [(inst, split, p) for insts, split in ((train_insts, "train"), (test_insts, "test"))
                for inst in insts for p in keys]
        for inst, split, pitch in progress(isol, desc="piano-sf: isolated notes", unit="note"):
            rel = Path(inst.name) / "ISOL" / f"M{pitch:03d}"
            (out_dir / rel.parent).mkdir(parents=True, exist_ok=True)
            audio = synth.render_note(inst.soundfont, inst.program, pitch, velocity, hold,
                                      hold + ISOL_RELEASE)
            write_wav(out_dir / _with(rel, ".wav"), audio, sr)
            note = pd.DataFrame([(0.0, hold, pitch, velocity)],
                                columns=["start", "end", "pitch", "velocity"])
            write_midi(out_dir / _with(rel, ".mid"), note, pd.DataFrame(columns=["time", "value"]),
                       inst.program, inst.name)
            rows.append(_row(rel, "isolated", f"M{pitch:03d}", inst, split, pitch, sr,
                             len(audio) / sr))

    index = pd.DataFrame(rows, columns=COLUMNS)
    index.to_csv(out_dir / PIANO_SF_INDEX, index=False, float_format="%.6f")
    write_json(out_dir / "meta.json", {
        "instruments": [i.name for i in train_insts + test_insts],
        "test_instruments": [i.name for i in test_insts],
        "pieces": {"train": [piece_name(s) for s in train_src],
                   "test": [piece_name(s) for s in test_src]},
        "sources": {piece_name(s): s for s in train_src + test_src},
        "sample_rate": sr,
    })
    return _summary(out_dir, index, perfs, jobs)


def _summary(out_dir: Path, index: pd.DataFrame, perfs: dict[str, Performance], jobs) -> dict:
    counts = index.groupby(["split", "kind"]).size()
    sounding = {split: 88 - len(silent_keys(p for _, p, s in jobs if s == split))
                for split in ("train", "test")}
    music = {split: 88 - len(silent_keys(p for _, p, s in jobs if s == split
                                          and p.source not in CHORD_SETS))
             for split in ("train", "test")}
    return {
        "recordings": {f"{s}/{k}": int(n) for (s, k), n in counts.items()},
        "pieces": {s: int(index[(index["split"] == s) & (index["kind"] == "piece")]["piece"].nunique())
                   for s in ("train", "test")},
        "instruments": int(index["instrument"].nunique()),
        "notes_per_piece_mean": float(np.mean([len(p.notes) for p in perfs.values()])),
        "pedalled_pieces": int(sum(len(p.pedal) > 0 for p in perfs.values())),
        "keys_sounding": sounding,                # of 88, pieces and chord sets
        "keys_sounding_in_pieces": music,         # of 88, the corpus pieces alone
        "audio_hours": round(float(index["duration"].sum()) / 3600.0, 4),
        "bytes": int(sum(f.stat().st_size for f in out_dir.rglob("*") if f.is_file())),
    }
