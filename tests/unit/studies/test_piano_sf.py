"""piano-sf (the embedded MAPS twin) and the MAPS / MAESTRO readers."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml
from helpers.workflow import REPO
from snakemake.utils import update_config

from genex.studies.piano import render as piano_sf
from genex.studies.piano.data import (
    COLUMNS,
    MAX_PITCH,
    MIN_PITCH,
    CHORD_SETS,
    apply_sustain,
    detect_layout,
    is_chord_set,
    read_midi_notes,
    read_piano,
    write_midi,
)
from genex.pipeline import read_json, write_wav

SEED = 1234
FRAME = 0.05  # seconds per RMS frame in the audio checks


def tiny_params() -> dict:
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    update_config(config, yaml.safe_load((REPO / "config" / "tiny.yaml").read_text()))
    return config["datasets"]["piano_sf"]


@pytest.fixture(scope="module")
def params() -> dict:
    return tiny_params()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, params) -> Path:
    out = tmp_path_factory.mktemp("piano-sf")
    piano_sf.render(out, params, SEED)
    return out


@pytest.fixture(scope="module")
def index(tiny) -> pd.DataFrame:
    return read_piano(tiny)


def frame_rms(audio: np.ndarray, sr: int) -> np.ndarray:
    hop = int(FRAME * sr)
    n = len(audio) // hop
    return np.sqrt((audio[: n * hop].reshape(n, hop) ** 2).mean(axis=1))


def digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


# ----------------------------------------------------------------------------- render

def test_tiny_profile_validates_and_is_small(params):
    from snakemake.utils import validate

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    update_config(config, yaml.safe_load((REPO / "config" / "tiny.yaml").read_text()))
    validate(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    assert params["max_piece_seconds"] <= 10 and params["pieces"] <= 6


def test_reader_columns_and_paths(index):
    assert list(index.columns) == COLUMNS
    assert index["recording"].is_unique
    assert set(index["kind"]) == {"piece", "isolated"}
    assert set(index["split"]) == {"train", "test"}
    for path in list(index["audio_path"]) + list(index["midi_path"]):
        assert Path(path).is_absolute() and Path(path).is_file(), path
    pieces = index[index["kind"] == "piece"]
    assert (pieces["pitch"] == -1).all()
    assert (index["sample_rate"] == 44100).all()
    row = index.iloc[0]
    info = sf.info(row["audio_path"])
    assert info.samplerate == row["sample_rate"] and info.channels == 1
    assert info.frames / info.samplerate == pytest.approx(row["duration"], abs=1e-3)


def test_isolated_notes_per_instrument(index, params):
    iso = index[index["kind"] == "isolated"]
    names = [f"{i['soundfont']}-p{i['program']:03d}" for i in params["instruments"]]
    assert sorted(iso["instrument"].unique()) == sorted(names)
    step = params["isolated_key_step"]
    for name, group in iso.groupby("instrument"):
        assert sorted(group["pitch"]) == piano_sf.isolated_keys(step), name
        assert 60 in set(group["pitch"]), name  # middle C: the concept test's reference key
    assert piano_sf.isolated_keys(1) == list(range(MIN_PITCH, MAX_PITCH + 1))  # MAPS's ISOL
    assert piano_sf.isolated_keys(4) == list(range(24, MAX_PITCH + 1, 4))
    for row in iso.sample(8, random_state=0).itertuples():
        notes, pedal = read_midi_notes(row.midi_path)
        assert list(notes["pitch"]) == [row.pitch] and len(pedal) == 0
        assert notes["end"].iloc[0] == pytest.approx(params["isolated_duration"])


def test_split_rules(index, params, tiny):
    pieces = index[(index["kind"] == "piece") & ~index["piece"].map(is_chord_set)]
    train, test = pieces[pieces["split"] == "train"], pieces[pieces["split"] == "test"]
    n_test_inst = params["test_instruments"]
    names = [f"{i['soundfont']}-p{i['program']:03d}" for i in params["instruments"]]
    assert set(test["instrument"]) == set(names[-n_test_inst:])
    assert set(train["instrument"]) == set(names[:-n_test_inst])
    assert not set(test["piece"]) & set(train["piece"])
    assert test["piece"].nunique() == params["test_pieces"]
    assert train["piece"].nunique() == params["pieces"] - params["test_pieces"]
    # every instrument of a split plays every piece of that split (as rendered, not sampled)
    for split in (train, test):
        assert len(split) == split["piece"].nunique() * split["instrument"].nunique()
    iso = index[index["kind"] == "isolated"]
    assert set(iso.loc[iso["split"] == "test", "instrument"]) == set(names[-n_test_inst:])
    # every instrument plays one RAND and one UCHO set of its own, in its split
    chords = index[index["piece"].map(is_chord_set)]
    assert (chords["kind"] == "piece").all()
    assert sorted(chords["piece"]) == sorted(f"{s}-{n}" for s in CHORD_SETS for n in names)
    for row in chords.itertuples():
        assert row.split == ("test" if row.instrument in names[-n_test_inst:] else "train")
        assert row.recording == f"{row.instrument}/{row.piece[:4]}/{row.piece}"
    meta = read_json(tiny / "meta.json")
    assert meta["instruments"] == names and meta["test_instruments"] == names[-n_test_inst:]


def test_midi_holds_the_notes_and_pedal_that_were_rendered(index, params, tiny):
    meta = read_json(tiny / "meta.json")
    pieces = index[index["kind"] == "piece"]
    for row in pieces.itertuples():
        if is_chord_set(row.piece):
            kind, instrument = row.piece.split("-", 1)
            perf = piano_sf.chord_set(kind, instrument, params, SEED)
        else:
            perf = piano_sf.perform(meta["sources"][row.piece], params, SEED)
        notes, pedal = read_midi_notes(row.midi_path)
        assert len(notes) > 10
        # same notes, times exactly equal (the renderer snaps to the MIDI grid)
        np.testing.assert_array_equal(notes[["pitch", "velocity"]].to_numpy(),
                                      perf.notes[["pitch", "velocity"]].to_numpy())
        np.testing.assert_allclose(notes[["start", "end"]].to_numpy(),
                                   perf.notes[["start", "end"]].to_numpy(), atol=1e-9)
        np.testing.assert_allclose(pedal.to_numpy(dtype=float), perf.pedal.to_numpy(dtype=float),
                                   atol=1e-9)
        assert notes["pitch"].between(MIN_PITCH, MAX_PITCH).all()
        assert (notes["end"] > notes["start"]).all()
        if not is_chord_set(row.piece):  # chord sets have their own length
            assert notes["end"].max() <= params["max_piece_seconds"] + 1e-9
        assert row.duration == pytest.approx(perf.duration, abs=1e-3)
    # the pedal is used: some piece presses (>64) and lifts (<=64) it, and it lengthens notes
    with_pedal = 0
    for path in pieces["midi_path"]:
        notes, pedal = read_midi_notes(path)
        if (pedal["value"] > 64).any() and (pedal["value"] <= 64).any():
            with_pedal += 1
            assert (apply_sustain(notes, pedal)["end"] - notes["end"]).max() > 0.1
    assert with_pedal >= 1


def test_audio_sounds_where_notes_sound_and_is_quiet_elsewhere(index):
    for row in index[index["kind"] == "piece"].itertuples():
        audio, sr = sf.read(row.audio_path, dtype="float32")
        rms = frame_rms(audio, sr)
        t = (np.arange(len(rms)) + 0.5) * FRAME
        notes, pedal = read_midi_notes(row.midi_path)
        sounding = apply_sustain(notes, pedal)
        # audible: right after every onset
        onset_frames = np.unique((notes["start"] / FRAME).astype(int) + 1)
        onset_frames = onset_frames[onset_frames < len(rms)]
        assert np.median(rms[onset_frames]) > 1e-3, row.recording
        assert (rms[onset_frames] > 1e-4).mean() > 0.95, row.recording
        # silent before the first key (up to 1 LSB of the synth's history), quiet once
        # everything is released and decayed
        assert rms[t < notes["start"].min() - FRAME].max(initial=0.0) < 1e-4, row.recording
        # (a chord set may end on the extreme keys, whose release rings longer: the top
        # ones have no dampers)
        decay, floor = (1.4, 2e-3) if is_chord_set(row.piece) else (0.6, 1e-3)
        tail = t > sounding["end"].max() + decay
        assert tail.sum() >= 4
        assert rms[tail].max() < floor * rms.max(), row.recording


def test_every_key_sounds_in_the_training_split(index, params):
    """The corpus pieces leave the extremes silent; the chord sets make all 88 keys sound."""
    train = index[(index["kind"] == "piece") & (index["split"] == "train")]
    sounding, in_pieces = set(), set()
    for row in train.itertuples():
        notes, pedal = read_midi_notes(row.midi_path)
        audible = apply_sustain(notes, pedal)
        audible = audible[audible["end"] - audible["start"] >= 0.04]  # at least a label frame
        sounding |= set(audible["pitch"])
        if not is_chord_set(row.piece):
            in_pieces |= set(audible["pitch"])
    assert sounding == set(range(MIN_PITCH, MAX_PITCH + 1))
    assert len(in_pieces) < 88  # what the chord sets are for (the pieces alone miss keys)
    # and they sound in the audio: each RAND set's extremes are audible at their onsets
    for row in train[train["piece"].str.startswith("RAND-")].itertuples():
        audio, sr = sf.read(row.audio_path, dtype="float32")
        notes, _ = read_midi_notes(row.midi_path)
        for key in (MIN_PITCH, MAX_PITCH):
            start = notes.loc[notes["pitch"] == key, "start"].iloc[0]
            window = audio[int(start * sr): int((start + 0.1) * sr)]
            assert np.sqrt(np.mean(window**2)) > 1e-3, (row.recording, key)


def test_chord_sets_deal_whole_rounds_and_usual_chords(params):
    rand = piano_sf.chord_set("RAND", "TimGM6mb-p000", params, SEED)
    counts = rand.notes["pitch"].value_counts()
    assert set(counts.index) == set(range(MIN_PITCH, MAX_PITCH + 1))
    assert counts.nunique() == 1  # whole rounds of the deck: every key equally often
    long = piano_sf.chord_set("RAND", "TimGM6mb-p000",
                              {**params, "chords": {**params["chords"], "rand_seconds": 30.0}}, SEED)
    assert long.duration >= 30.0 and long.notes["pitch"].value_counts().nunique() == 1
    chords = rand.notes.groupby("end")["pitch"].size()  # a chord is released at once
    lo, hi = params["chords"]["polyphony"]
    assert chords.max() <= hi and len(rand.pedal) == 0
    ucho = piano_sf.chord_set("UCHO", "TimGM6mb-p000", params, SEED)
    assert ucho.notes["pitch"].between(MIN_PITCH, MAX_PITCH).all()
    v_lo, v_hi = params["chords"]["velocity"]
    assert ucho.notes["velocity"].between(v_lo, v_hi).all()
    # every chord is a usual chord: its intervals, in some inversion, match a table entry
    shapes = {frozenset(np.array(i) % 12) for i in piano_sf.USUAL_CHORDS.values()}
    for _, group in ucho.notes.groupby("end"):
        pitches = np.array(sorted(group["pitch"]))
        assert any(frozenset((pitches - root) % 12) == shape for root in pitches for shape in shapes), pitches
    # another instrument plays other chords (the test instruments' are not the training ones)
    other = piano_sf.chord_set("RAND", "FluidR3_GM-p000", params, SEED)
    assert not other.notes[["pitch"]].equals(rand.notes[["pitch"]])
    with pytest.raises(ValueError, match="chord set"):
        piano_sf.chord_set("ISOL", "TimGM6mb-p000", params, SEED)


def test_isolated_notes_sound_then_decay(index, params):
    hold = params["isolated_duration"]
    iso = index[index["kind"] == "isolated"]
    for row in iso[iso["pitch"].isin([21, 60, 108])].itertuples():
        audio, sr = sf.read(row.audio_path, dtype="float32")
        rms = frame_rms(audio, sr)
        t = (np.arange(len(rms)) + 0.5) * FRAME
        assert rms[t < hold].max() > 1e-3, row.recording
        assert rms[-1] < 0.05 * rms.max(), row.recording


def test_pedal_changes_the_audio(tmp_path, params):
    from genex.pipeline.soundfont import SoundfontSynth

    source = piano_sf.corpus_pool()[1][0]  # a chorale
    perf = piano_sf.perform(source, {**params, "pedal_share": 1.0}, SEED)
    assert len(perf.pedal) >= 2
    notes, controls = piano_sf._as_events(perf)
    with SoundfontSynth(44100, ["TimGM6mb"]) as synth:
        wet = synth.render_performance([("TimGM6mb", 0, notes, controls)], perf.duration)
        dry = synth.render_performance([("TimGM6mb", 0, notes, [])], perf.duration)
    assert np.sum(wet**2) > 1.1 * np.sum(dry**2)


def test_renderer_plays_exactly_the_ground_truth(tmp_path, params, monkeypatch):
    """The synthesiser receives the notes and CC64 events that the .mid files hold."""
    from genex.pipeline import soundfont

    played = []

    def fake_performance(self, tracks, duration):
        played.append(tracks)
        return np.zeros(int(round(duration * self.sample_rate)), np.float32)

    def fake_note(self, sf_name, program, pitch, velocity, hold, duration):
        return np.zeros(int(round(duration * self.sample_rate)), np.float32)

    monkeypatch.setattr(soundfont.SoundfontSynth, "render_performance", fake_performance)
    monkeypatch.setattr(soundfont.SoundfontSynth, "render_note", fake_note)
    params = {**params, "instruments": params["instruments"][:1] + params["instruments"][-1:],
              "test_instruments": 1}
    piano_sf.render(tmp_path, params, SEED)
    pieces = read_piano(tmp_path).query("kind == 'piece'")
    # the music pieces, then a RAND and a UCHO set per instrument
    assert len(played) == len(pieces) == params["pieces"] + len(CHORD_SETS) * 2
    by_midi = {}
    for row in pieces.itertuples():
        notes, pedal = read_midi_notes(row.midi_path)
        by_midi[(row.instrument, tuple(notes["pitch"]), tuple(notes["velocity"]))] = (notes, pedal)
    for [(sf_name, program, notes, controls)] in played:
        truth, pedal = by_midi[(f"{sf_name}-p{program:03d}", tuple(n.pitch for n in notes),
                                tuple(n.velocity for n in notes))]
        # equal up to float rounding (the MIDI stores ticks on the same grid)
        np.testing.assert_allclose([(n.start, n.end, n.pitch, n.velocity) for n in notes],
                                   truth.to_numpy(dtype=float), rtol=0, atol=1e-9)
        np.testing.assert_allclose(np.array([(c.time, c.value) for c in controls]).reshape(-1, 2),
                                   pedal.to_numpy(dtype=float), rtol=0, atol=1e-9)
        assert all(c.number == 64 for c in controls)
    assert sum(len(controls) > 0 for [(_, _, _, controls)] in played) >= 1  # pieces pedal


def test_same_seed_gives_identical_files(tmp_path, tiny, params):
    again = tmp_path / "again"
    again.mkdir()
    piano_sf.render(again, params, SEED)
    assert digest(again) == digest(tiny)


def test_another_seed_changes_the_performances(params):
    source = "mozart/k545/movement1_exposition.mxl"
    a, b = piano_sf.perform(source, params, 1), piano_sf.perform(source, params, 2)
    assert not a.notes.equals(b.notes)
    train_a, test_a = piano_sf.select_pieces(30, 8, 1)
    assert (train_a, test_a) == piano_sf.select_pieces(30, 8, 1)
    assert not set(train_a) & set(test_a) and len(set(train_a)) == 22


def test_fold_into_keyboard():
    folded = piano_sf._fold_into_keyboard(np.array([10, 30, 60, 115, 127]), 0)
    assert folded.min() >= MIN_PITCH and folded.max() <= MAX_PITCH
    np.testing.assert_array_equal(piano_sf._fold_into_keyboard(np.array([20, 60]), 0), [32, 72])
    np.testing.assert_array_equal(piano_sf._fold_into_keyboard(np.array([40, 60]), 2), [42, 62])


def test_bad_split_sizes_are_named():
    with pytest.raises(ValueError, match="test_instruments"):
        piano_sf.parse_instruments({"instruments": [{"soundfont": "TimGM6mb", "program": 0}],
                                    "test_instruments": 1})
    with pytest.raises(ValueError, match="test_pieces"):
        piano_sf.select_pieces(4, 4, 0)


# ----------------------------------------------------------------------------- MIDI helpers

def test_apply_sustain_extends_to_pedal_release_and_cuts_at_restrike():
    notes = pd.DataFrame({"start": [0.0, 0.5, 1.0, 3.0], "end": [0.4, 0.8, 1.2, 3.5],
                          "pitch": [60, 64, 60, 67], "velocity": [80] * 4})
    pedal = pd.DataFrame({"time": [0.2, 2.0, 3.6], "value": [127, 0, 100]})
    out = apply_sustain(notes, pedal)
    # 60 released in the pedal: sustained, but only until struck again at 1.0
    # 64 released in the pedal: until the pedal comes up at 2.0
    # the second 60 likewise; 67 released before the pedal goes down again at 3.6: unchanged
    assert list(out["end"]) == [1.0, 2.0, 2.0, 3.5]


def test_apply_sustain_with_a_pedal_never_lifted_keeps_finite_ends():
    notes = pd.DataFrame({"start": [0.0], "end": [1.0], "pitch": [60], "velocity": [80]})
    out = apply_sustain(notes, pd.DataFrame({"time": [0.5], "value": [127]}))
    assert np.isfinite(out["end"]).all()


def test_read_midi_notes_roundtrip(tmp_path):
    notes = pd.DataFrame({"start": [0.0, 0.5], "end": [0.25, 1.0], "pitch": [21, 108],
                          "velocity": [1, 127]})
    pedal = pd.DataFrame({"time": [0.125, 0.75], "value": [127, 0]})
    write_midi(tmp_path / "a.mid", notes, pedal)
    got, got_pedal = read_midi_notes(tmp_path / "a.mid")
    pd.testing.assert_frame_equal(got, notes)
    pd.testing.assert_frame_equal(got_pedal, pedal)
    with pytest.raises(FileNotFoundError, match="b.mid"):
        read_midi_notes(tmp_path / "b.mid")
    (tmp_path / "c.mid").write_text("not midi")
    with pytest.raises(ValueError, match="c.mid"):
        read_midi_notes(tmp_path / "c.mid")


# ----------------------------------------------------------------------------- real layouts

def _recording(stem: Path, pitch: int = 60, seconds: float = 0.5, sr: int = 44100,
               audio: bool = True) -> None:
    stem.parent.mkdir(parents=True, exist_ok=True)
    notes = pd.DataFrame({"start": [0.0], "end": [0.25], "pitch": [pitch], "velocity": [64]})
    write_midi(stem.parent / f"{stem.name}.mid", notes, pd.DataFrame({"time": [0.1], "value": [127]}))
    if audio:
        write_wav(stem.parent / f"{stem.name}.wav", np.zeros(int(seconds * sr), np.float32), sr)


def test_maps_layout(tmp_path):
    root = tmp_path / "MAPS"
    # MAPS's zips unpack with an extra level: MAPS_<INSTR>_2/<INSTR>/...
    bcht = root / "MAPS_AkPnBcht_2" / "AkPnBcht"
    _recording(bcht / "MUS" / "MAPS_MUS-alb_esp2_AkPnBcht", seconds=1.0)
    _recording(bcht / "MUS" / "MAPS_MUS-chpn_op25_e4_AkPnBcht")  # also played by the Disklavier
    _recording(bcht / "ISOL" / "NO" / "MAPS_ISOL_NO_F_S0_M21_AkPnBcht", pitch=21)
    _recording(bcht / "ISOL" / "RE" / "MAPS_ISOL_RE_F_S0_M60_AkPnBcht")  # repeated notes: not read
    _recording(root / "ENSTDkCl" / "MUS" / "MAPS_MUS-chpn_op25_e4_ENSTDkCl", sr=16000)
    _recording(root / "ENSTDkAm" / "MUS" / "MAPS_MUS-bk_xmas1_ENSTDkAm")
    _recording(root / "ENSTDkAm" / "ISOL" / "NO" / "MAPS_ISOL_NO_P_S1_M108_ENSTDkAm", pitch=108)
    assert detect_layout(root) == "maps"
    frame = read_piano(root).set_index("recording")
    assert list(frame.reset_index().columns) == COLUMNS
    assert sorted(frame.index) == sorted([
        "MAPS_MUS-alb_esp2_AkPnBcht", "MAPS_ISOL_NO_F_S0_M21_AkPnBcht",
        "MAPS_MUS-chpn_op25_e4_ENSTDkCl", "MAPS_MUS-bk_xmas1_ENSTDkAm",
        "MAPS_ISOL_NO_P_S1_M108_ENSTDkAm"])
    row = frame.loc["MAPS_MUS-alb_esp2_AkPnBcht"]
    assert (row["kind"], row["piece"], row["instrument"], row["split"], row["pitch"]) == \
        ("piece", "alb_esp2", "AkPnBcht", "train", -1)
    assert row["duration"] == pytest.approx(1.0) and row["sample_rate"] == 44100
    assert Path(row["midi_path"]).is_file() and Path(row["audio_path"]).is_absolute()
    row = frame.loc["MAPS_MUS-chpn_op25_e4_ENSTDkCl"]
    assert (row["split"], row["piece"], row["sample_rate"]) == ("test", "chpn_op25_e4", 16000)
    row = frame.loc["MAPS_ISOL_NO_P_S1_M108_ENSTDkAm"]
    assert (row["kind"], row["pitch"], row["split"], row["piece"]) == \
        ("isolated", 108, "test", "ISOL_NO_P_S1_M108")
    assert frame.loc["MAPS_ISOL_NO_F_S0_M21_AkPnBcht", "split"] == "train"


def test_maps_recording_without_midi_is_named(tmp_path):
    wav = tmp_path / "AkPnBcht" / "MUS" / "MAPS_MUS-x_AkPnBcht.wav"
    wav.parent.mkdir(parents=True)
    write_wav(wav, np.zeros(100, np.float32), 44100)
    with pytest.raises(FileNotFoundError, match="MAPS_MUS-x_AkPnBcht.mid"):
        read_piano(tmp_path)


def test_maestro_layout(tmp_path):
    base = tmp_path / "maestro-v3.0.0"
    rows = []
    for i, split in enumerate(["train", "validation", "test"]):
        stem = base / "2018" / f"MIDI-Unprocessed_{i:02d}_R1_2018_wav--1"
        _recording(stem, seconds=0.5, sr=48000, audio=(split != "test"))
        rows.append({"canonical_composer": "Frédéric Chopin",
                     "canonical_title": f"Étude Op. 10 No. {i + 1}", "split": split, "year": 2018,
                     "midi_filename": f"2018/{stem.name}.mid",
                     "audio_filename": f"2018/{stem.name}.wav", "duration": 0.5 + i})
    pd.DataFrame(rows).to_csv(base / "maestro-v3.0.0.csv", index=False)
    assert detect_layout(tmp_path) == "maestro"
    frame = read_piano(tmp_path)
    assert list(frame.columns) == COLUMNS
    assert sorted(frame["split"]) == ["test", "train", "validation"]
    assert set(frame["kind"]) == {"piece"} and set(frame["instrument"]) == {"maestro"}
    row = frame.set_index("split").loc["validation"]
    assert row["recording"] == "2018/MIDI-Unprocessed_01_R1_2018_wav--1"
    assert row["piece"] == "Étude Op. 10 No. 2" and row["duration"] == 1.5
    assert row["sample_rate"] == 48000 and row["pitch"] == -1
    notes, pedal = read_midi_notes(row["midi_path"])
    assert list(notes["pitch"]) == [60] and list(pedal["value"]) == [127]
    # the midi-only archive: no audio, sample rate unknown
    assert frame.set_index("split").loc["test", "sample_rate"] == -1


def test_unknown_layout_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a piano dataset"):
        read_piano(tmp_path)
    with pytest.raises(FileNotFoundError, match="not found"):
        read_piano(tmp_path / "missing")
