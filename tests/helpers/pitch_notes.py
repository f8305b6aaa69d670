"""Notes with a known pitch for the pitch-model tests and benchmarks/pitch_placement.py."""

from __future__ import annotations

import numpy as np

SR = 16000
# (GM program, MIDI pitch): acoustic grand piano and flute, A3 and E4
NOTES = [(0, 57), (73, 64)]


def midi_hz(midi: float) -> float:
    return 440.0 * 2.0 ** ((midi - 69.0) / 12.0)


def render_notes(duration: float = 0.3) -> dict[tuple[int, int], np.ndarray]:
    """Notes at 16 kHz peaking at 0.5; FluidSynth with FluidR3_GM, else harmonic tones."""
    notes = {}
    try:
        from genex.pipeline.soundfont import SoundfontSynth

        with SoundfontSynth(SR, ["FluidR3_GM"]) as synth:
            for program, midi in NOTES:
                notes[program, midi] = synth.render_note("FluidR3_GM", program, midi, 100,
                                                         duration, duration)
    except (ImportError, OSError, FileNotFoundError):
        t = np.arange(int(duration * SR)) / SR
        for program, midi in NOTES:
            notes[program, midi] = sum(0.6 ** k * np.sin(2 * np.pi * midi_hz(midi) * (k + 1) * t)
                                       for k in range(6))
    return {k: (0.5 * w / np.abs(w).max()).astype(np.float32) for k, w in notes.items()}


# The infiller's training notes: eight GM programs (piano, electric piano, nylon guitar, violin,
# trumpet, alto sax, clarinet, flute) at nine pitches, C3 to C5 in minor thirds, without the two
# explained notes themselves (the infiller learns the instruments, not the test clips).
TRAINING_PROGRAMS = (0, 4, 24, 40, 56, 65, 71, 73)
TRAINING_PITCHES = tuple(range(48, 73, 3))


def render_training_notes(folder, duration: float = 0.5) -> list:
    """Write the infiller's training notes as 16 kHz WAVs into ``folder``; return the paths.

    Needs FluidSynth and FluidR3_GM (no stand-in: an infiller fitted on sine tones would say
    nothing about notes). Each note is held for the whole clip, as :func:`render_notes` renders.
    """
    from pathlib import Path

    from genex.pipeline.io import write_wav
    from genex.pipeline.soundfont import SoundfontSynth

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    with SoundfontSynth(SR, ["FluidR3_GM"]) as synth:
        for program in TRAINING_PROGRAMS:
            for midi in TRAINING_PITCHES:
                if (program, midi) in NOTES:
                    continue
                wave = synth.render_note("FluidR3_GM", program, midi, 100, duration, duration)
                path = folder / f"program{program:03d}_midi{midi}.wav"
                write_wav(path, 0.5 * wave / max(float(np.abs(wave).max()), 1e-9), SR)
                paths.append(path)
    return paths
