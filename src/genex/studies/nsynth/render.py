"""nsynth-sf: NSynth-like single notes rendered from the General MIDI soundfonts.

Every NSynth instrument family is played by a few GM programs; one *instrument* is a
(program, soundfont) pair, as one NSynth instrument is one sampled or synthesised
instrument. Notes are 4 s at 16 kHz with the key held 3 s, written in NSynth's own layout
(``nsynth-{split}/examples.json`` + ``audio/<note_str>.wav``) so that
:func:`genex.studies.nsynth.data.read_nsynth` reads this set and the real NSynth alike. Splits are
by instrument and stratified by family, so valid and test instruments are unseen in train.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genex.studies.nsynth.data import FAMILIES, SOURCES, SPLITS, split_dir
from genex.pipeline.io import write_json, write_wav
from genex.progress import progress

log = logging.getLogger(__name__)

A, E, S = "acoustic", "electronic", "synthetic"

# family -> {GM program (0-based): instrument source}. The GM groups of the brief, with the
# tuned percussion that is a mallet, the folk reeds and the fiddle added, timpani (47) left
# out (not a string instrument) and the voice lead (85) moved from synth_lead to vocal.
FAMILY_PROGRAMS: dict[str, dict[int, str]] = {
    "bass": {32: A, 33: E, 34: E, 35: E, 36: E, 37: E, 38: S, 39: S},
    "brass": {56: A, 57: A, 58: A, 59: A, 60: A, 61: A, 62: S, 63: S},
    "flute": {p: A for p in range(72, 80)},
    "guitar": {24: A, 25: A, 26: E, 27: E, 28: E, 29: E, 30: E, 31: E},
    "keyboard": {0: A, 1: A, 2: E, 3: A, 4: E, 5: E, 6: A, 7: E},
    "mallet": {**{p: A for p in range(8, 16)}, 108: A, 112: A, 114: A},
    "organ": {16: E, 17: E, 18: E, 19: A, 20: A, 21: A, 23: A},
    "reed": {**{p: A for p in range(64, 72)}, 22: A, 109: A, 111: A},
    "string": {40: A, 41: A, 42: A, 43: A, 44: A, 45: A, 46: A, 48: A, 49: A, 50: S, 51: S,
               110: A},
    "synth_lead": {80: S, 81: S, 82: S, 83: S, 84: S, 86: S, 87: S},
    "vocal": {52: A, 53: A, 54: S, 85: S},
}

# Playable MIDI pitch range per family (inclusive), inside NSynth's 21-108 ...
FAMILY_RANGE: dict[str, tuple[int, int]] = {
    "bass": (28, 67), "brass": (40, 84), "flute": (60, 96), "guitar": (40, 88),
    "keyboard": (21, 108), "mallet": (48, 96), "organ": (36, 96), "reed": (40, 84),
    "string": (36, 96), "synth_lead": (36, 96), "vocal": (45, 81),
}
# ... and for programs whose real instrument is far from its family's range.
PROGRAM_RANGE: dict[int, tuple[int, int]] = {
    8: (60, 108), 9: (72, 108), 13: (65, 100),          # celesta, glockenspiel, xylophone
    40: (55, 100), 41: (48, 88), 42: (36, 76), 43: (28, 60),  # violin, viola, cello, c.bass
    56: (52, 84), 59: (52, 84), 57: (40, 72), 58: (28, 60),   # trumpets, trombone, tuba
    60: (36, 77),                                             # French horn
    64: (56, 88), 67: (36, 69), 70: (34, 72),                 # soprano/baritone sax, bassoon
    72: (74, 105),                                            # piccolo
}
NSYNTH_PITCHES = (21, 108)

# Short, file-name friendly soundfont names for instrument_str.
SOUNDFONT_SHORT = {"FluidR3_GM": "fluidr3", "TimGM6mb": "timgm6mb",
                   "MuseScore_General": "musescore"}


@dataclass(frozen=True)
class Instrument:
    """One nsynth-sf instrument: a GM program played from one soundfont."""

    index: int
    family: str
    program: int
    soundfont: str

    @property
    def source(self) -> str:
        return FAMILY_PROGRAMS[self.family][self.program]

    @property
    def name(self) -> str:
        """NSynth-style instrument_str, e.g. ``guitar_electronic_fluidr3_027``."""
        short = SOUNDFONT_SHORT.get(self.soundfont, self.soundfont.lower())
        return f"{self.family}_{self.source}_{short}_{self.program:03d}"

    @property
    def pitch_range(self) -> tuple[int, int]:
        lo, hi = PROGRAM_RANGE.get(self.program, FAMILY_RANGE[self.family])
        return max(lo, NSYNTH_PITCHES[0]), min(hi, NSYNTH_PITCHES[1])


def choose_programs(rng: np.random.Generator, per_family: int) -> dict[str, list[int]]:
    """``per_family`` programs of every family, spread over its GM programs.

    The family's programs are cut into ``per_family`` contiguous groups and one is drawn
    from each, so a family is not played by three neighbours (three saxophones).
    """
    if per_family < 1:
        raise ValueError(f"programs_per_family must be >= 1, got {per_family}")
    chosen = {}
    for family in FAMILIES:
        programs = sorted(FAMILY_PROGRAMS[family])
        groups = np.array_split(np.array(programs), min(per_family, len(programs)))
        chosen[family] = sorted(int(rng.choice(g)) for g in groups)
    return chosen


def _quota(counts: dict[str, int], fraction: float, rng: np.random.Generator) -> dict[str, int]:
    """Instruments per family for a split of ``fraction``: at least one per family when the
    fraction is positive, the total as close to ``fraction`` of all as possible (largest
    remainders, ties broken at random)."""
    if fraction <= 0:
        return {f: 0 for f in counts}
    exact = {f: fraction * n for f, n in counts.items()}
    quota = {f: max(1, int(np.floor(x))) for f, x in exact.items()}
    extra = int(round(fraction * sum(counts.values()))) - sum(quota.values())
    order = sorted(counts, key=lambda f: (-(exact[f] - np.floor(exact[f])), rng.random()))
    for family in order[:max(extra, 0)]:
        quota[family] += 1
    return quota


def split_instruments(instruments: list[Instrument], valid_fraction: float,
                      test_fraction: float, rng: np.random.Generator) -> dict[int, str]:
    """Instrument index -> split, stratified by family so that every family is in every split
    with a positive fraction (a family needs at least three instruments for that)."""
    if not (0 <= valid_fraction < 1 and 0 <= test_fraction < 1
            and valid_fraction + test_fraction < 1):
        raise ValueError(f"valid_fraction={valid_fraction} and test_fraction={test_fraction} "
                         f"must be in [0, 1) and sum to less than 1")
    by_family: dict[str, list[Instrument]] = {}
    for inst in instruments:
        by_family.setdefault(inst.family, []).append(inst)
    counts = {f: len(v) for f, v in by_family.items()}
    n_test = _quota(counts, test_fraction, rng)
    n_valid = _quota(counts, valid_fraction, rng)
    assignment = {}
    for family, members in by_family.items():
        if n_test[family] + n_valid[family] >= len(members):
            raise ValueError(
                f"family {family} has {len(members)} instrument(s), too few for a train, "
                f"valid and test split; raise programs_per_family or use more soundfonts")
        order = rng.permutation(len(members))
        for rank, i in enumerate(order):
            split = ("test" if rank < n_test[family] else
                     "valid" if rank < n_test[family] + n_valid[family] else "train")
            assignment[members[i].index] = split
    return assignment


def note_pairs(inst: Instrument, velocities: list[int],
               rng: np.random.Generator) -> list[tuple[int, int]]:
    """Every (pitch, velocity) of the instrument, in a random order (drawn without repetition)."""
    lo, hi = inst.pitch_range
    grid = [(p, v) for p in range(lo, hi + 1) for v in velocities]
    return [grid[i] for i in rng.permutation(len(grid))]


def note_record(inst: Instrument, note_id: int, pitch: int, velocity: int,
                sample_rate: int) -> dict:
    """An examples.json entry with NSynth's fields (qualities left empty) plus the GM origin."""
    note_str = f"{inst.name}-{pitch:03d}-{velocity:03d}"
    return {
        "note": note_id, "note_str": note_str,
        "instrument": inst.index, "instrument_str": inst.name,
        "instrument_family": FAMILIES.index(inst.family), "instrument_family_str": inst.family,
        "instrument_source": SOURCES.index(inst.source), "instrument_source_str": inst.source,
        "pitch": pitch, "velocity": velocity, "sample_rate": sample_rate,
        "qualities": [0] * 10, "qualities_str": [],
        "soundfont": inst.soundfont, "program": inst.program,
    }


def _check_params(params: dict) -> None:
    required = ("sample_rate", "duration", "hold", "soundfonts", "programs_per_family",
                "notes_per_instrument", "velocities", "valid_fraction", "test_fraction")
    missing = [k for k in required if k not in params]
    if missing:
        raise ValueError(f"nsynth-sf params lack {', '.join(missing)}")
    if not 0 < params["hold"] <= params["duration"]:
        raise ValueError(f"nsynth-sf: hold={params['hold']} must be in (0, duration="
                         f"{params['duration']}]")
    if not params["soundfonts"] or not params["velocities"]:
        raise ValueError("nsynth-sf: soundfonts and velocities must not be empty")
    if params["notes_per_instrument"] < 1:
        raise ValueError("nsynth-sf: notes_per_instrument must be >= 1")


def render(out_dir: Path, params: dict, seed: int) -> dict:
    """Render nsynth-sf into ``out_dir`` (``nsynth-{train,valid,test}/``) and return counts.

    ``params`` is the ``datasets.nsynth_sf`` config section. Draws happen in a fixed order
    (programs, splits, notes per instrument) from one generator, and notes are rendered in
    instrument order, so a seed gives byte-identical files. A note whose render is silent
    (peak below ``min_peak``: the soundfont lacks that key) is skipped and the next
    (pitch, velocity) of the instrument is drawn instead.
    """
    from genex.pipeline.soundfont import SoundfontSynth

    _check_params(params)
    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    sample_rate = int(params["sample_rate"])
    gain = float(params.get("gain", 0.7))
    min_peak = float(params.get("min_peak", 1e-3))
    per_instrument = int(params["notes_per_instrument"])
    velocities = [int(v) for v in params["velocities"]]

    programs = choose_programs(rng, int(params["programs_per_family"]))
    instruments = [Instrument(i, family, program, soundfont) for i, (family, program, soundfont)
                   in enumerate((f, p, s) for f in FAMILIES for p in programs[f]
                                for s in params["soundfonts"])]
    splits = split_instruments(instruments, float(params["valid_fraction"]),
                               float(params["test_fraction"]), rng)
    pairs = {inst.index: note_pairs(inst, velocities, rng) for inst in instruments}

    examples: dict[str, dict] = {s: {} for s in SPLITS}
    for split in SPLITS:
        (split_dir(out_dir, split) / "audio").mkdir(parents=True, exist_ok=True)
    stats = {"silent_skipped": 0, "clipped": 0, "short_instruments": []}
    note_id = 0
    synth = SoundfontSynth(sample_rate, params["soundfonts"], gain=gain)
    try:
        bar = progress(instruments, desc="nsynth-sf instruments", unit="instrument")
        for inst in bar:
            kept = 0
            for pitch, velocity in pairs[inst.index]:
                if kept == per_instrument:
                    break
                audio = synth.render_note(inst.soundfont, inst.program, pitch, velocity,
                                          float(params["hold"]), float(params["duration"]))
                peak = float(np.max(np.abs(audio)))
                if peak < min_peak:
                    stats["silent_skipped"] += 1
                    continue
                if peak > 1.0:  # clip rather than let write_wav peak-normalise this one note
                    stats["clipped"] += 1
                    audio = np.clip(audio, -1.0, 1.0)
                record = note_record(inst, note_id, pitch, velocity, sample_rate)
                folder = split_dir(out_dir, splits[inst.index])
                write_wav(folder / "audio" / f"{record['note_str']}.wav", audio, sample_rate)
                examples[splits[inst.index]][record["note_str"]] = record
                note_id += 1
                kept += 1
            if kept < per_instrument:
                log.warning("nsynth-sf: %s (%s program %d) gave only %d audible notes of %d",
                            inst.name, inst.soundfont, inst.program, kept, per_instrument)
                stats["short_instruments"].append(inst.name)
    finally:
        synth.close()

    for split in SPLITS:
        write_json(split_dir(out_dir, split) / "examples.json", examples[split])
    return _summary(out_dir, examples, stats)


def _summary(out_dir: Path, examples: dict[str, dict], stats: dict) -> dict:
    """Counts per split and family, skipped notes and the size on disk."""
    summary: dict = {"notes": {}, "instruments": {}, "families": {}}
    for split, entries in examples.items():
        summary["notes"][split] = len(entries)
        summary["instruments"][split] = len({e["instrument_str"] for e in entries.values()})
        summary["families"][split] = sorted({e["instrument_family_str"]
                                             for e in entries.values()})
    summary["notes_total"] = sum(summary["notes"].values())
    summary["bytes"] = sum(p.stat().st_size for p in Path(out_dir).rglob("*") if p.is_file())
    summary.update(stats)
    return summary
