"""Reliability of the dataset readers: bad input files get one error naming the file.

Each case crafts a tiny dataset in tmp_path with one bad file (NaN/inf samples, no samples,
too short, a foreign sample rate, stereo; an escaping note_str; a label out of range; a PNG
of the wrong size or mode) and runs the study's features step through ``genex.cli.main``:
the step must return 1 with an error naming the file and the problem, and leave no output
folder. Stereo is the exception: it is averaged to mono with a warning naming the file.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from PIL import Image

from genex.cli import main


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("GENEX_NO_PROGRESS", "1")


def tone(seconds: float, sr: int, freq: float = 440.0, channels: int = 1) -> np.ndarray:
    t = np.arange(int(round(seconds * sr))) / sr
    x = (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.stack([x, 0.5 * x], axis=1) if channels == 2 else x


def write(path, audio, sr: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.asarray(audio, dtype=np.float32), sr, subtype="FLOAT")


def bad_audio(problem: str, seconds: float, sr: int, short: float) -> tuple[np.ndarray, int]:
    """The bad file of each problem: (samples, rate)."""
    good = tone(seconds, sr)
    if problem == "nan":
        good[len(good) // 3] = np.nan
        return good, sr
    if problem == "inf":
        good[len(good) // 2] = np.inf
        return good, sr
    if problem == "empty":
        return np.zeros(0, np.float32), sr
    if problem == "short":
        return tone(short, sr), sr
    if problem == "rate":
        return tone(seconds, 22050 if sr != 22050 else 44100), 22050 if sr != 22050 else 44100
    if problem == "stereo":
        return tone(seconds, sr, channels=2), sr
    raise AssertionError(problem)


# what the error must say, per problem
PROBLEM_TEXT = {"nan": "non-finite samples", "inf": "non-finite samples", "empty": "no samples",
                "short": "shorter than", "rate": "sample rate"}


def run_step(*argv: str) -> int:
    return main([str(a) for a in argv])


@pytest.fixture(autouse=True)
def _stderr(capsys):
    """The CLI reports a refusal as one ``genex <command>: …`` line on stderr."""
    global STDERR
    STDERR = capsys
    yield


def assert_refused(rc: int, caplog, path, problem_text: str, out) -> str:
    errors = [ln for ln in STDERR.readouterr().err.splitlines() if ln.startswith("genex ")]
    errors += [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert rc == 1, f"the step did not fail (rc {rc}); errors: {errors}"
    assert len(errors) == 1 and str(path) in errors[0] and problem_text in errors[0], errors
    assert "\n" not in errors[0]
    assert not out.exists() and not list(out.parent.glob(f".{out.name}.*"))  # no partial folder
    return errors[0]


def assert_downmix_warned(rc: int, caplog, path, out) -> None:
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert rc == 0
    assert any(str(path) in w and "averaged to mono" in w for w in warnings), warnings
    assert out.is_dir()


# ---- nsynth ------------------------------------------------------------------------------------

NSYNTH_PARAMS = json.dumps({"n_bins": 64, "fmin": 20.0, "fmax": 8000.0, "n_fft": 16384,
                            "max_notes_per_split": 0})
NOTE_SECONDS = 1.0


def nsynth_entry(note_str: str, family: int = 0, sr: int = 16000) -> dict:
    return {"note_str": note_str, "instrument_str": "bass_acoustic_000", "instrument_family": family,
            "instrument_family_str": "bass", "instrument_source": 0,
            "instrument_source_str": "acoustic", "pitch": 60, "velocity": 100, "sample_rate": sr}


def nsynth_root(tmp_path, notes: dict, entries: dict | None = None, sr: int = 16000):
    """nsynth-train with two good notes plus ``notes`` ({note_str: (audio, rate)})."""
    root = tmp_path / "nsynth"
    audio = root / "nsynth-train" / "audio"
    examples = {}
    for name in ("bass_acoustic_000-060-100", "bass_acoustic_000-062-100"):
        write(audio / f"{name}.wav", tone(NOTE_SECONDS, sr), sr)
        examples[name] = nsynth_entry(name, sr=sr)
    for name, (samples, rate) in notes.items():
        write(audio / f"{name}.wav", samples, rate)
        examples[name] = nsynth_entry(name, sr=sr)
    examples.update(entries or {})
    (root / "nsynth-train" / "examples.json").write_text(json.dumps(examples))
    return root


@pytest.mark.parametrize("problem", ["nan", "inf", "empty", "short", "rate"])
def test_nsynth_features_refuse_a_bad_note(tmp_path, caplog, problem):
    # main a1bd2e3: nan/inf/empty/short/22.05 kHz were all silently turned into features
    samples, rate = bad_audio(problem, NOTE_SECONDS, 16000, short=0.25)
    root = nsynth_root(tmp_path, {"bass_acoustic_000-064-100": (samples, rate)})
    bad = (root / "nsynth-train/audio/bass_acoustic_000-064-100.wav").resolve()
    out = tmp_path / "out"
    rc = run_step("nsynth", "features", "--root", root, "--params", NSYNTH_PARAMS, "--out", out)
    assert_refused(rc, caplog, bad, PROBLEM_TEXT[problem], out)


def test_nsynth_features_an_8khz_note_is_refused_naming_it(tmp_path, caplog):
    # main a1bd2e3: "note_spectrum: fmax 8000.0 Hz is above Nyquist (4000.0 Hz)", no file named
    root = nsynth_root(tmp_path, {"bass_acoustic_000-064-100": (tone(NOTE_SECONDS, 8000), 8000)})
    bad = (root / "nsynth-train/audio/bass_acoustic_000-064-100.wav").resolve()
    out = tmp_path / "out"
    rc = run_step("nsynth", "features", "--root", root, "--params", NSYNTH_PARAMS, "--out", out)
    assert_refused(rc, caplog, bad, "sample rate 8000 Hz", out)


def test_nsynth_features_the_nyquist_error_names_the_file(tmp_path, caplog):
    # a whole dataset at 8 kHz (examples.json agrees): fmax 8000 Hz is above its Nyquist
    # frequency. main a1bd2e3: the error named no file.
    root = nsynth_root(tmp_path, {}, sr=8000)
    first = (root / "nsynth-train/audio/bass_acoustic_000-060-100.wav").resolve()
    out = tmp_path / "out"
    rc = run_step("nsynth", "features", "--root", root, "--params", NSYNTH_PARAMS, "--out", out)
    assert_refused(rc, caplog, first, "Nyquist", out)


def test_nsynth_features_downmix_a_stereo_note_with_a_warning(tmp_path, caplog):
    # main a1bd2e3: averaged silently
    samples, rate = bad_audio("stereo", NOTE_SECONDS, 16000, short=0.25)
    root = nsynth_root(tmp_path, {"bass_acoustic_000-064-100": (samples, rate)})
    bad = (root / "nsynth-train/audio/bass_acoustic_000-064-100.wav").resolve()
    out = tmp_path / "out"
    rc = run_step("nsynth", "features", "--root", root, "--params", NSYNTH_PARAMS, "--out", out)
    assert_downmix_warned(rc, caplog, bad, out)


@pytest.mark.parametrize("kind", ["relative", "absolute"])
def test_nsynth_a_note_str_outside_the_dataset_is_refused(tmp_path, caplog, kind):
    # a real WAV waits outside the dataset. main a1bd2e3: read it silently into the features
    outside = tmp_path / "outside.wav"
    write(outside, tone(NOTE_SECONDS, 16000), 16000)
    note_str = "../../../outside" if kind == "relative" else str(tmp_path / "outside")
    root = nsynth_root(tmp_path, {}, entries={"evil": nsynth_entry(note_str)})
    out = tmp_path / "out"
    rc = run_step("nsynth", "features", "--root", root, "--params", NSYNTH_PARAMS, "--out", out)
    examples = root / "nsynth-train" / "examples.json"
    line = assert_refused(rc, caplog, examples, "not a plain file name", out)
    assert "'evil'" in line


@pytest.mark.parametrize("family", [42, -1])
def test_nsynth_features_refuse_a_family_out_of_range(tmp_path, caplog, family):
    # main a1bd2e3: silently wrote features with family 42 / -1 (a crash only in training)
    root = nsynth_root(tmp_path, {}, entries={
        "odd_note": nsynth_entry("bass_acoustic_000-060-100", family=family)})
    out = tmp_path / "out"
    rc = run_step("nsynth", "features", "--root", root, "--params", NSYNTH_PARAMS, "--out", out)
    line = assert_refused(rc, caplog, root / "nsynth-train" / "examples.json",
                          f"'instrument_family' is {family}, outside 0..10", out)
    assert "'odd_note'" in line


# ---- piano ---------------------------------------------------------------------------------------

PIANO_SECONDS = 0.5


def piano_root(tmp_path, bad: tuple[np.ndarray, int] | None, layout: str = "piano-sf",
               sr: int = 44100):
    """Two recordings (a train and a test piece); the train one is ``bad`` if given."""
    from genex.studies.piano.data import COLUMNS, write_midi

    root = tmp_path / "piano"
    notes = pd.DataFrame([(0.0, 0.3, 60, 80)], columns=["start", "end", "pitch", "velocity"])
    pedal = pd.DataFrame(columns=["time", "value"])
    rows, meta = [], []
    for piece, split in (("a", "train"), ("b", "test")):
        rel = f"inst/MUS/{piece}" if layout == "piano-sf" else f"2004/{piece}"
        samples, rate = bad if (bad is not None and split == "train") else (tone(PIANO_SECONDS, sr), sr)
        write(root / f"{rel}.wav", samples, rate)
        write_midi(root / f"{rel}.mid", notes, pedal)
        rows.append({"recording": rel, "kind": "piece", "piece": piece, "instrument": "inst",
                     "split": split, "audio_path": f"{rel}.wav", "midi_path": f"{rel}.mid",
                     "pitch": -1, "sample_rate": sr, "duration": PIANO_SECONDS})
        meta.append({"split": split, "midi_filename": f"{rel}.mid", "audio_filename": f"{rel}.wav",
                     "canonical_title": piece, "duration": PIANO_SECONDS})
    if layout == "piano-sf":
        pd.DataFrame(rows, columns=COLUMNS).to_csv(root / "index.csv", index=False)
    else:
        pd.DataFrame(meta).to_csv(root / "maestro-v3.0.0.csv", index=False)
    return root, (root / "inst/MUS/a.wav" if layout == "piano-sf" else root / "2004/a.wav").resolve()


def piano_features(root, out) -> int:
    return run_step("piano", "features", "--root", root, "--params", '{"valid_pieces": 0}',
                    "--out", out)


@pytest.mark.parametrize("problem", ["nan", "inf", "empty", "short", "rate"])
def test_piano_features_refuse_a_bad_recording(tmp_path, caplog, problem):
    # main a1bd2e3: every case silently became features (NaN frames, one empty frame,
    # a 22.05 kHz file resampled although piano-sf is 44.1 kHz only)
    root, bad = piano_root(tmp_path, bad_audio(problem, PIANO_SECONDS, 44100, short=0.05))
    out = tmp_path / "out"
    assert_refused(piano_features(root, out), caplog, bad, PROBLEM_TEXT[problem], out)


def test_piano_features_downmix_a_stereo_recording_with_a_warning(tmp_path, caplog):
    # main a1bd2e3: averaged silently
    root, bad = piano_root(tmp_path, bad_audio("stereo", PIANO_SECONDS, 44100, short=0.05))
    out = tmp_path / "out"
    assert_downmix_warned(piano_features(root, out), caplog, bad, out)


def test_piano_maestro_keeps_its_two_rates_and_refuses_others(tmp_path, caplog):
    # MAESTRO v3 mixes 44.1 and 48 kHz: a 48 kHz recording is resampled, a 22.05 kHz one is
    # not MAESTRO's. main a1bd2e3: the 22.05 kHz file was resampled silently.
    root, bad = piano_root(tmp_path / "ok", (tone(PIANO_SECONDS, 48000), 48000), layout="maestro")
    assert piano_features(root, tmp_path / "ok" / "out") == 0
    root, bad = piano_root(tmp_path / "bad", (tone(PIANO_SECONDS, 22050), 22050), layout="maestro")
    out = tmp_path / "bad" / "out"
    assert_refused(piano_features(root, out), caplog, bad, "sample rate 22050 Hz", out)


# ---- vocal ---------------------------------------------------------------------------------------

SONG_SECONDS = 0.5


def vocal_root(tmp_path, bad: tuple[np.ndarray, int], vocal_sf: bool = True):
    """A vocal-sf corpus of three songs; ``song_b`` (train) is ``bad``."""
    from genex.studies.vocal.data import write_filelists, write_lab

    root = tmp_path / "vocal"
    names = ["song_a.wav", "song_b.wav", "song_c.wav"]
    for name in names:
        samples, rate = bad if name == "song_b.wav" else (tone(SONG_SECONDS, 22050), 22050)
        write(root / "audio" / name, samples, rate)
        (root / "labels").mkdir(parents=True, exist_ok=True)
        write_lab(root / "labels" / name.replace(".wav", ".lab"),
                  [(0.0, 0.2, "nosing"), (0.2, SONG_SECONDS, "sing")])
    write_filelists(root, names, ["train", "train", "test"])
    if vocal_sf:
        (root / "songs.json").write_text("[]")
    return root, (root / "audio" / "song_b.wav").resolve()


def vocal_features(root, out) -> int:
    return run_step("vocal", "features", "--root", root, "--params", "{}", "--out", out)


# empty and too short are not here: main a1bd2e3 already refused them naming the file
@pytest.mark.parametrize("problem", ["nan", "inf"])
def test_vocal_features_refuse_a_bad_song(tmp_path, caplog, problem):
    # main a1bd2e3: crashed with a librosa ParameterError traceback naming no file
    root, bad = vocal_root(tmp_path, bad_audio(problem, SONG_SECONDS, 22050, short=0.01))
    out = tmp_path / "out"
    assert_refused(vocal_features(root, out), caplog, bad, PROBLEM_TEXT[problem], out)


def test_vocal_features_refuse_another_rate_in_vocal_sf_only(tmp_path, caplog):
    # main a1bd2e3: a 44.1 kHz song in a 22.05 kHz vocal-sf corpus was resampled silently.
    # Jamendo (no songs.json) may mix rates: there it is still resampled.
    root, bad = vocal_root(tmp_path, bad_audio("rate", SONG_SECONDS, 22050, short=0.01))
    out = tmp_path / "out"
    assert_refused(vocal_features(root, out), caplog, bad, "sample rate 44100 Hz", out)
    (root / "songs.json").unlink()
    assert vocal_features(root, out) == 0 and out.is_dir()


def test_vocal_features_downmix_a_stereo_song_with_a_warning(tmp_path, caplog):
    # main a1bd2e3: averaged silently
    root, bad = vocal_root(tmp_path, bad_audio("stereo", SONG_SECONDS, 22050, short=0.01))
    out = tmp_path / "out"
    assert_downmix_warned(vocal_features(root, out), caplog, bad, out)


def test_vocal_cli_prints_one_error_line_for_a_nan_song(tmp_path):
    # main a1bd2e3: a Python traceback (librosa.util.exceptions.ParameterError), exit 1
    root, bad = vocal_root(tmp_path, bad_audio("nan", SONG_SECONDS, 22050, short=0.01))
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "genex.cli", "vocal", "features", "--root",
                           str(root), "--params", "{}", "--out", str(out)],
                          capture_output=True, text=True,
                          env={**os.environ, "GENEX_NO_PROGRESS": "1"})
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("genex ") or " ERROR " in ln]
    assert len(errors) == 1 and str(bad) in errors[0] and "non-finite" in errors[0]
    assert not out.exists()


# ---- radio ---------------------------------------------------------------------------------------

RADIO_PARAMS = json.dumps({"resolution": 8, "simulator": "DPM", "missing_levels": [1],
                           "measurements": [1, 3], "transmitters_per_map": None, "max_maps": None})
MAPS, SIZE = 7, 16


def png(path, array) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def radio_root(tmp_path):
    root = tmp_path / "radio"
    for m in range(MAPS):
        buildings = np.zeros((SIZE, SIZE), np.uint8)
        buildings[2:6, 2:6] = 255
        png(root / f"png/buildings_complete/{m}.png", buildings)
        png(root / f"png/buildings_missing1/1/{m}.png", np.zeros((SIZE, SIZE), np.uint8))
        antenna = np.zeros((SIZE, SIZE), np.uint8)
        antenna[10, 12] = 255
        png(root / f"png/antennas/{m}_0.png", antenna)
        png(root / f"gain/DPM/{m}_0.png", np.full((SIZE, SIZE), 120, np.uint8))
        (root / "antenna").mkdir(exist_ok=True)
        (root / f"antenna/{m}.json").write_text(json.dumps([[12, 10]]))
    return root


def radio_features(root, out) -> int:
    return run_step("radio", "features", "--root", root, "--params", RADIO_PARAMS, "--out", out)


@pytest.mark.parametrize("problem, text", [
    ("gain size", "pixels, but the dataset's maps are 16x16"),
    ("missing size", "pixels, but the dataset's maps are 16x16"),
    ("gain 16-bit", "expected 8-bit grey"),
    ("gain colour", "a colour image"),
    ("tx outside", "lies outside the 16x16 map"),
])
def test_radio_features_refuse_a_bad_map(tmp_path, caplog, problem, text):
    # main a1bd2e3: a map of another size (here alone in its split), 16-bit gain (values > 1
    # after /255) and colour (channel 0 taken) were accepted silently; a TX outside the map
    # crashed with an IndexError traceback
    root = radio_root(tmp_path)
    if problem == "gain size":
        bad = root / "gain/DPM/3_0.png"
        png(bad, np.full((SIZE + 4, SIZE), 120, np.uint8))
    elif problem == "missing size":
        bad = root / "png/buildings_missing1/1/3.png"
        png(bad, np.zeros((SIZE, SIZE + 8), np.uint8))
    elif problem == "gain 16-bit":
        bad = root / "gain/DPM/3_0.png"
        png(bad, np.full((SIZE, SIZE), 30000, np.uint16))
    elif problem == "gain colour":
        bad = root / "gain/DPM/3_0.png"
        rgb = np.zeros((SIZE, SIZE, 3), np.uint8)
        rgb[..., 0], rgb[..., 1] = 120, 30
        png(bad, rgb)
    else:
        bad = root / "antenna/3.json"
        bad.write_text(json.dumps([[40, 10]]))
    out = tmp_path / "out"
    assert_refused(radio_features(root, out), caplog, bad, text, out)


def test_the_summary_of_maestro_reports_its_two_sample_rates(tmp_path):
    # MAESTRO v3 mixes 44.1 and 48 kHz; the summary stopped the run: "mixed sample rates"
    from genex.pipeline.report.datasets import summarize
    from genex.studies import dataset

    root, _ = piano_root(tmp_path, (tone(PIANO_SECONDS, 48000), 48000), layout="maestro")
    stats = summarize(dataset("maestro"), root, tmp_path / "summary",
                      {"examples_per_dataset": 1, "spectrogram_seconds": 0.25, "example_seconds": 0.25}, seed=0)
    assert stats["sample_rate"] == [44100, 48000]
