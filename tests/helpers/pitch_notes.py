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
