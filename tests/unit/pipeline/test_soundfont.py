"""The FluidSynth renderer: soundfonts found, notes audible, renders reproducible."""

from __future__ import annotations

import numpy as np
import pytest

from genex.pipeline.soundfont import (
    ControlEvent,
    NoteEvent,
    SoundfontNotFound,
    SoundfontSynth,
    find_soundfont,
)


@pytest.fixture(scope="module")
def synth():
    with SoundfontSynth(16000, ["FluidR3_GM", "TimGM6mb"]) as s:
        yield s


def test_all_three_debian_soundfonts_are_found():
    for name in ("FluidR3_GM", "TimGM6mb", "MuseScore_General"):
        assert find_soundfont(name).is_file()


def test_missing_soundfont_names_the_package(monkeypatch, tmp_path):
    import genex.pipeline.soundfont as sf

    monkeypatch.setattr(sf, "_DEFAULT_DIRS", (str(tmp_path),))
    with pytest.raises(SoundfontNotFound, match="timgm6mb-soundfont"):
        find_soundfont("TimGM6mb")


def test_note_is_audible_while_held_and_silent_at_the_end(synth):
    audio = synth.render_note("FluidR3_GM", 0, 60, 100, hold=1.0, duration=2.0)
    assert audio.shape == (32000,) and audio.dtype == np.float32
    held = float(np.sqrt(np.mean(audio[1600:8000] ** 2)))
    tail = float(np.sqrt(np.mean(audio[-1600:] ** 2)))
    assert held > 1e-3
    assert tail < held / 100


def test_same_call_sequence_renders_identically():
    def sequence():
        with SoundfontSynth(16000, ["FluidR3_GM"]) as s:
            return [s.render_note("FluidR3_GM", p, 48 + p, 80, 0.5, 1.0) for p in (0, 24, 40)]
    for a, b in zip(sequence(), sequence()):
        assert np.array_equal(a, b)


def test_sustain_pedal_extends_a_released_note(synth):
    note = [NoteEvent(0.0, 0.2, 60, 100)]
    dry = synth.render_performance([("FluidR3_GM", 0, note, [])], duration=1.5)
    pedal = [ControlEvent(0.0, 64, 127), ControlEvent(1.4, 64, 0)]
    wet = synth.render_performance([("FluidR3_GM", 0, note, pedal)], duration=1.5)
    window = slice(int(0.8 * 16000), int(1.2 * 16000))
    assert np.abs(wet[window]).mean() > 5 * np.abs(dry[window]).mean()


def test_unknown_soundfont_and_program_errors(synth):
    with pytest.raises(KeyError, match="MuseScore_General"):
        synth.render_note("MuseScore_General", 0, 60, 100, 0.1, 0.2)


def test_render_does_not_depend_on_the_length_of_the_previous_one():
    notes = [NoteEvent(0.05, 0.3, 64, 90), NoteEvent(0.31, 0.6, 67, 90)]
    with SoundfontSynth(44100, ["FluidR3_GM"]) as s:
        s.render_note("FluidR3_GM", 0, 60, 80, 0.1, 0.2)
        a = s.render_performance([("FluidR3_GM", 0, notes, [])], duration=0.8)
        s.render_note("FluidR3_GM", 0, 60, 80, 0.1, 0.2001)  # leaves the block part-used
        b = s.render_performance([("FluidR3_GM", 0, notes, [])], duration=0.8)
    assert np.allclose(a, b, atol=1e-2)
