"""vocal-sf: the embedded twin of the Jamendo singing-voice corpus.

Each song is composed here (seeded): a key, mode, tempo and two chord progressions;
bass, chords, an optional second accompaniment part and optional percussion, varied
per song in programs and soundfonts; and a song form (intro, verses and choruses
with a voice-like lead, instrumental breaks, outro). Breaks and intros often carry an
*instrumental* melody (flute, sax, violin, synth lead...) so a detector has to learn
the timbre of the voice, not "a melody is playing". Labels come from the voice's own
note events, so they are exact up to the patch's release (``release_seconds``).

:func:`compose_song` builds a :class:`Song` (tracks of note events + sections),
:func:`render_song` renders it (optionally with some roles muted) and :func:`render`
writes the corpus in the Jamendo layout (see :mod:`genex.studies.vocal.data`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Collection, Sequence

import numpy as np

from genex.pipeline.soundfont import ControlEvent, NoteEvent, SoundfontSynth
from genex.studies.vocal.data import (
    segments_from_intervals,
    split_songs,
    write_filelists,
    write_lab,
)
from genex.pipeline import progress, write_json, write_wav

DEFAULTS: dict = {
    "sample_rate": 22050,
    "songs": 48,
    "song_seconds": 40.0,
    "valid_songs": 6,
    "test_songs": 8,
    "vocal_programs": [52, 53, 54, 85],
    "soundfonts": ["FluidR3_GM", "TimGM6mb", "MuseScore_General"],
    "tempo_range": [80.0, 140.0],
    "section_bars": 4,
    "sing_fraction": [0.4, 0.6],
    "instrument_programs": [73, 65, 66, 40, 71, 68, 56, 80, 81],
    "instrument_lead_probability": 0.6,
    "percussion_probability": 0.7,
    "release_seconds": 0.25,
    "merge_gap": 0.2,
    "peak": 0.9,
}

# GM programs of the accompaniment (0-based).
BASS_PROGRAMS = (32, 33, 34, 35, 36, 38, 39)
CHORD_PROGRAMS = (0, 1, 2, 4, 5, 16, 17, 19, 24, 25, 26, 27, 48, 49)
EXTRA_PROGRAMS = {"pad": (48, 49, 50, 88, 89, 90, 91, 95), "arp": (6, 11, 12, 13, 24, 25, 46)}
# Melodic percussion stands in for drums: render_performance never uses channel 9.
PERCUSSION = {"kick": (116, 41), "snare": (118, 60), "hat": (115, 84)}

SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
# Chord progressions as 0-based scale degrees, one chord per bar.
PROGRESSIONS = {
    "major": ((0, 4, 5, 3), (5, 3, 0, 4), (0, 3, 4, 3), (1, 4, 0, 0), (0, 5, 3, 4),
              (3, 0, 4, 5), (0, 2, 3, 4)),
    "minor": ((0, 5, 2, 6), (0, 3, 4, 0), (0, 6, 5, 6), (5, 6, 0, 0), (0, 3, 6, 2),
              (3, 5, 0, 4)),
}
HIGH_LEADS = (40, 68, 72, 73, 74)  # violin, oboe, piccolo, flute, recorder
MELODY_RANGE = (55, 79)  # MIDI pitches of the (vocal or instrumental) lead
RING_OUT = 1.0  # seconds left after the last bar so the final notes can decay
VOCAL, LEAD = "vocal", "lead"


@dataclass(frozen=True)
class Track:
    """One instrument part: plays on its own MIDI channel."""

    role: str
    soundfont: str
    program: int
    notes: tuple[NoteEvent, ...]
    volume: int = 100  # MIDI CC7, the track's level in the mix


@dataclass(frozen=True)
class Section:
    kind: str   # intro | verse | chorus | break | outro
    start: float
    end: float
    lead: str   # vocal | lead (instrumental melody) | none


@dataclass(frozen=True)
class Song:
    name: str
    duration: float
    tempo: float
    key: int
    mode: str
    sections: tuple[Section, ...]
    tracks: tuple[Track, ...] = field(default=())

    def notes_of(self, role: str) -> list[NoteEvent]:
        return [n for t in self.tracks if t.role == role for n in t.notes]


@dataclass(frozen=True)
class _Grid:
    """Bar/beat -> seconds for a song in 4/4."""

    start: float
    beat: float

    def time(self, bar: float, beat: float = 0.0) -> float:
        return self.start + (4 * bar + beat) * self.beat


# --- composition -------------------------------------------------------------------------

def _chord_degrees(root_degree: int) -> tuple[int, int, int]:
    return root_degree, root_degree + 2, root_degree + 4


def _degree_pitch(degree: int, tonic: int, scale: Sequence[int]) -> int:
    return tonic + 12 * (degree // 7) + scale[degree % 7]


def _pitch_in(pc: int, low: int) -> int:
    """The pitch of pitch class ``pc`` in the octave ``[low, low + 12)``."""
    return low + (pc - low) % 12


def plan_sections(rng: np.random.Generator, n_bars: int, section_bars: int,
                  target_vocal_share: float) -> list[tuple[str, int, int, bool]]:
    """Song form as ``(kind, first_bar, n_bars, with_voice)``.

    Intro and outro never have the voice; the middle is cut into sections of
    ``section_bars`` and a random subset of them gets the voice: on average
    ``target_vocal_share`` of all bars, and always at least one section.
    """
    if n_bars < 2:
        raise ValueError(f"a song needs at least 2 bars, got {n_bars}: make song_seconds "
                         f"longer or tempo_range faster")
    edge = max(1, section_bars // 2)
    intro = edge if n_bars - edge >= 1 else 0
    outro = edge if n_bars - intro - edge >= section_bars else 0
    middle = n_bars - intro - outro
    lengths = [section_bars] * (middle // section_bars)
    if middle % section_bars:
        lengths.append(middle % section_bars)
    starts = np.cumsum([intro] + lengths[:-1]).tolist()
    target = target_vocal_share * n_bars
    vocal = np.zeros(len(lengths), dtype=bool)
    total = 0
    for i in rng.permutation(len(lengths)):
        # Randomised rounding: the section that would overshoot the target is taken
        # with the probability that keeps the expected voiced share on target.
        room = target - total
        if total == 0 or room >= lengths[i] or rng.random() < max(room, 0) / lengths[i]:
            vocal[i] = True
            total += lengths[i]
    if vocal.all() and intro == 0 and outro == 0 and len(lengths) > 1:
        vocal[rng.integers(len(lengths))] = False  # keep some time without the voice
    plan = [("intro", 0, intro, False)] if intro else []
    verse = True
    for start, length, sing in zip(starts, lengths, vocal):
        kind = ("verse" if verse else "chorus") if sing else "break"
        verse = not verse if sing else verse
        plan.append((kind, int(start), int(length), bool(sing)))
    if outro:
        plan.append(("outro", n_bars - outro, outro, False))
    return plan


def _melody(rng: np.random.Generator, grid: _Grid, first_bar: int, n_bars: int,
            chords: Sequence[int], tonic: int, scale: Sequence[int], shift: int,
            velocity: int) -> list[NoteEvent]:
    """A lead melody in phrases of up to 2 bars, each ending in a rest (a breath)."""
    low, high = MELODY_RANGE
    degree = int(rng.integers(0, 5))
    notes: list[NoteEvent] = []
    for phrase_bar in range(first_bar, first_bar + n_bars, 2):
        bars = min(2, first_bar + n_bars - phrase_bar)
        beat = float(rng.choice([0.0, 0.0, 0.5, 1.0]))  # pickup offset
        end_beat = 4 * bars - float(rng.choice([0.5, 1.0, 1.5, 2.0]))
        while beat < end_beat - 0.25:
            length = float(rng.choice([0.5, 0.5, 1.0, 1.0, 1.5, 2.0]))
            length = min(length, end_beat - beat)
            bar_index = phrase_bar + int(beat // 4)
            chord = _chord_degrees(chords[bar_index % len(chords)])
            degree += int(rng.choice([-2, -1, -1, 0, 1, 1, 2, 3, -3]))
            if beat % 2 == 0:  # strong beats land on a chord tone
                degree = min((d + 7 * k for d in chord for k in range(-2, 3)),
                             key=lambda d: abs(d - degree))
            pitch = _degree_pitch(degree, tonic, scale)
            while pitch < low:
                degree += 7
                pitch = _degree_pitch(degree, tonic, scale)
            while pitch > high:
                degree -= 7
                pitch = _degree_pitch(degree, tonic, scale)
            start = grid.time(phrase_bar, beat)
            end = grid.time(phrase_bar, beat + length) - 0.03  # legato, re-articulated
            vel = int(np.clip(velocity + rng.integers(-10, 11), 40, 127))
            notes.append(NoteEvent(round(start, 4), round(end, 4), pitch + shift, vel))
            beat += length
    return notes


def _bass(rng: np.random.Generator, grid: _Grid, n_bars: int, chords: Sequence[int],
          tonic: int, scale: Sequence[int]) -> list[NoteEvent]:
    pattern = rng.choice(["whole", "half", "quarter", "eighth"])
    steps = {"whole": [(0, 4, 0)], "half": [(0, 2, 0), (2, 2, 4)],
             "quarter": [(0, 1, 0), (1, 1, 0), (2, 1, 4), (3, 1, 7)],
             "eighth": [(b / 2, 0.5, 0) for b in range(8)]}[str(pattern)]
    notes = []
    for bar in range(n_bars):
        root = _pitch_in(_degree_pitch(chords[bar % len(chords)], tonic, scale) % 12, 31)
        for beat, length, interval in steps:
            start, end = grid.time(bar, beat), grid.time(bar, beat + length) - 0.05
            notes.append(NoteEvent(round(start, 4), round(end, 4), root + interval,
                                   int(rng.integers(80, 110))))
    return notes


def _chords(rng: np.random.Generator, grid: _Grid, n_bars: int, chords: Sequence[int],
            tonic: int, scale: Sequence[int], pattern: str) -> list[NoteEvent]:
    hits = {"sustain": [(0, 4)], "half": [(0, 2), (2, 2)], "stabs": [(1, 0.4), (3, 0.4)],
            "offbeat": [(b + 0.5, 0.4) for b in range(4)]}
    notes = []
    for bar in range(n_bars):
        degrees = _chord_degrees(chords[bar % len(chords)])
        pitches = sorted(_pitch_in(_degree_pitch(d, tonic, scale) % 12, 52) for d in degrees)
        if pattern == "arp":
            cycle = pitches + [pitches[0] + 12]
            events = [(b / 2, 0.5, [cycle[(b % 4)]]) for b in range(8)]
        else:
            events = [(beat, length, pitches) for beat, length in hits[pattern]]
        for beat, length, chord in events:
            start, end = grid.time(bar, beat), grid.time(bar, beat + length) - 0.03
            vel = int(rng.integers(60, 95))
            notes.extend(NoteEvent(round(start, 4), round(end, 4), p, vel) for p in chord)
    return notes


def _percussion(rng: np.random.Generator, grid: _Grid, n_bars: int, first_bar: int,
                part: str) -> list[NoteEvent]:
    beats = {"kick": [0.0, 2.0] + ([2.5] if rng.random() < 0.5 else []),
             "snare": [1.0, 3.0], "hat": [b / 2 for b in range(8)]}[part]
    pitch = PERCUSSION[part][1]
    notes = []
    for bar in range(first_bar, n_bars):
        for beat in beats:
            start = grid.time(bar, beat)
            vel = int(rng.integers(70, 100) if part != "hat" else rng.integers(40, 70))
            notes.append(NoteEvent(round(start, 4), round(start + 0.1, 4), pitch, vel))
    return notes


def compose_song(name: str, params: dict, rng: np.random.Generator) -> Song:
    """Compose one song: form, harmony, accompaniment, voice and instrumental leads."""
    p = {**DEFAULTS, **params}
    duration = float(p["song_seconds"])
    soundfonts = list(p["soundfonts"])

    def sf() -> str:
        return str(rng.choice(soundfonts))

    tempo = float(rng.uniform(*p["tempo_range"]))
    mode = str(rng.choice(list(SCALES)))
    key = int(rng.integers(12))
    scale = SCALES[mode]
    tonic = _pitch_in(key, 57)  # melody tonic in A3..G#4
    prog_a, prog_b = (PROGRESSIONS[mode][i] for i in
                      rng.choice(len(PROGRESSIONS[mode]), size=2, replace=False))
    grid = _Grid(start=float(rng.uniform(0.0, 0.5)), beat=60.0 / tempo)
    n_bars = int((duration - grid.start - RING_OUT) // (4 * grid.beat))
    # Breaths between phrases take ~16 % of a vocal section: aim the voiced bars higher.
    target = float(rng.uniform(*p["sing_fraction"])) / 0.84
    plan = plan_sections(rng, n_bars, int(p["section_bars"]), min(target, 1.0))

    # Harmony per bar: progression A in intro/verse/outro, B in chorus/break.
    harmony = [0] * n_bars
    for kind, first, length, _ in plan:
        prog = prog_b if kind in ("chorus", "break") else prog_a
        for b in range(first, first + length):
            harmony[b] = prog[(b - first) % len(prog)]

    vocal_notes: list[NoteEvent] = []
    lead_notes: list[NoteEvent] = []
    sections = []
    lead_program = int(rng.choice(p["instrument_programs"]))
    # Flutes, violins and oboes often play an octave above the voice's range.
    lead_shift = 12 if lead_program in HIGH_LEADS and rng.random() < 0.5 else 0
    for kind, first, length, sing in plan:
        lead = VOCAL if sing else (LEAD if rng.random() < p["instrument_lead_probability"]
                                   else "none")
        if lead == VOCAL:
            vocal_notes += _melody(rng, grid, first, length, harmony, tonic, scale, 0,
                                   int(rng.integers(90, 115)))
        elif lead == LEAD:
            lead_notes += _melody(rng, grid, first, length, harmony, tonic, scale,
                                  lead_shift, int(rng.integers(85, 110)))
        sections.append(Section(kind, round(grid.time(first), 4),
                                 round(grid.time(first + length), 4), lead))

    tracks = [
        Track("bass", sf(), int(rng.choice(BASS_PROGRAMS)),
              tuple(_bass(rng, grid, n_bars, harmony, tonic, scale)), int(rng.integers(85, 110))),
        Track("chords", sf(), int(rng.choice(CHORD_PROGRAMS)),
              tuple(_chords(rng, grid, n_bars, harmony, tonic, scale,
                            str(rng.choice(["sustain", "half", "stabs", "offbeat", "arp"])))),
              int(rng.integers(70, 100))),
    ]
    if rng.random() < 0.5:
        extra = str(rng.choice(list(EXTRA_PROGRAMS)))
        pattern = "sustain" if extra == "pad" else "arp"
        tracks.append(Track(extra, sf(), int(rng.choice(EXTRA_PROGRAMS[extra])),
                            tuple(_chords(rng, grid, n_bars, harmony, tonic, scale, pattern)),
                            int(rng.integers(55, 85))))
    if rng.random() < p["percussion_probability"]:
        first = plan[0][2] if plan[0][0] == "intro" and rng.random() < 0.5 else 0
        for part, (program, _) in PERCUSSION.items():
            tracks.append(Track(part, sf(), program,
                                tuple(_percussion(rng, grid, n_bars, first, part)),
                                int(rng.integers(65, 95))))
    tracks.append(Track(LEAD, sf(), lead_program, tuple(lead_notes), int(rng.integers(90, 115))))
    tracks.append(Track(VOCAL, sf(), int(rng.choice(p["vocal_programs"])),
                        tuple(vocal_notes), int(rng.integers(95, 120))))
    return Song(name, duration, round(tempo, 3), key, mode, tuple(sections), tuple(tracks))


# --- rendering and labels ----------------------------------------------------------------

def render_song(synth: SoundfontSynth, song: Song, muted: Collection[str] = ()) -> np.ndarray:
    """Render a song's mix, unnormalised; tracks whose role is in ``muted`` stay silent.

    Muted tracks keep their channel (with no notes), so the other tracks render exactly
    as in the full mix and ``full - muted`` is the muted parts' own signal.
    """
    parts = []
    for t in song.tracks:
        notes = () if t.role in muted else t.notes
        parts.append((t.soundfont, t.program, list(notes), [ControlEvent(0.0, 7, t.volume)]))
    # SoundfontSynth realigns to FluidSynth's blocks itself, whatever was rendered before
    return synth.render_performance(parts, song.duration)


def song_segments(song: Song, release_seconds: float = 0.25,
                  merge_gap: float = 0.2) -> list[tuple[float, float, str]]:
    """Exact ``sing``/``nosing`` segments from the voice's note events.

    A note counts as sung from its onset to ``release_seconds`` after its note-off
    (voice patches ring on while they release); gaps under ``merge_gap`` are merged.
    """
    intervals = [(n.start, n.end + release_seconds) for n in song.notes_of(VOCAL)]
    return segments_from_intervals(intervals, song.duration, merge_gap)


def _song_record(song: Song, split: str, segments, synth: SoundfontSynth) -> dict:
    sung = sum(e - s for s, e, label in segments if label == "sing")
    return {
        "song": song.name, "split": split, "tempo": song.tempo, "key": song.key,
        "mode": song.mode, "sing_fraction": round(sung / song.duration, 4),
        "sections": [asdict(s) for s in song.sections],
        "tracks": [{"role": t.role, "soundfont": t.soundfont, "program": t.program,
                    "preset": synth.preset_name(t.soundfont, t.program),
                    "notes": len(t.notes)} for t in song.tracks],
    }


def render(out_dir: Path, params: dict, seed: int) -> dict:
    """Render vocal-sf into ``out_dir`` in the Jamendo layout; return summary stats.

    Writes ``audio/<song>.wav``, ``labels/<song>.lab``, ``filelists/{train,valid,test}``
    and ``songs.json`` (per-song key, tempo, form, programs and sing share).
    """
    p = {**DEFAULTS, **params}
    out_dir = Path(out_dir)
    n_songs, sr = int(p["songs"]), int(p["sample_rate"])
    splits = split_songs(n_songs, int(p["valid_songs"]), int(p["test_songs"]),
                         np.random.default_rng([seed, 0]))
    names = [f"song_{i:03d}" for i in range(n_songs)]
    for sub in ("audio", "labels"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
    records = []
    with SoundfontSynth(sr, p["soundfonts"]) as synth:
        for i in progress(range(n_songs), desc="vocal-sf songs", unit="song"):
            # One generator per song: a song does not change when the song count does.
            song = compose_song(names[i], p, np.random.default_rng([seed, 1, i]))
            audio = render_song(synth, song)
            peak = float(np.max(np.abs(audio))) or 1.0
            write_wav(out_dir / "audio" / f"{song.name}.wav", audio * (p["peak"] / peak), sr)
            segments = song_segments(song, p["release_seconds"], p["merge_gap"])
            write_lab(out_dir / "labels" / f"{song.name}.lab", segments)
            records.append(_song_record(song, splits[i], segments, synth))
    write_filelists(out_dir, [f"{n}.wav" for n in names], splits)
    write_json(out_dir / "songs.json", records)
    return {
        "songs": n_songs,
        "splits": {s: splits.count(s) for s in ("train", "valid", "test")},
        "seconds": round(n_songs * float(p["song_seconds"]), 2),
        "sing_fraction": round(float(np.mean([r["sing_fraction"] for r in records])), 4),
        "bytes": sum(f.stat().st_size for f in out_dir.rglob("*") if f.is_file()),
    }
