"""vocal-sf (the embedded Jamendo twin) and the Jamendo-layout reader and label helpers."""

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

from genex.studies.vocal import render as vocal_sf
from genex.pipeline.soundfont import SoundfontSynth
from genex.studies.vocal.data import (
    frame_labels,
    read_lab,
    read_vocal,
    segments_from_intervals,
    split_songs,
    write_lab,
)
from genex.studies.vocal.render import (
    LEAD,
    VOCAL,
    compose_song,
    plan_sections,
    render_song,
    song_segments,
)

SEED = 1234


def profile_params(profile: str | None) -> dict:
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    if profile:
        update_config(config, yaml.safe_load((REPO / "config" / f"{profile}.yaml").read_text()))
    return config["datasets"]["vocal_sf"]


@pytest.fixture(scope="module")
def params() -> dict:
    return profile_params("tiny")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, params) -> Path:
    out = tmp_path_factory.mktemp("vocal-sf")
    vocal_sf.render(out, params, SEED)
    return out


@pytest.fixture(scope="module")
def synth(params):
    with SoundfontSynth(params["sample_rate"], params["soundfonts"]) as s:
        yield s


def digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def sample_mask(segments, label: str, n: int, sr: int) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    for start, end, lab in segments:
        if lab == label:
            mask[int(round(start * sr)):int(round(end * sr))] = True
    return mask


# ----------------------------------------------------------------------------- render

def test_tiny_render_has_the_jamendo_layout(tiny, params):
    names = sorted(p.stem for p in (tiny / "audio").glob("*.wav"))
    assert len(names) == params["songs"]
    assert sorted(p.stem for p in (tiny / "labels").glob("*.lab")) == names
    listed = {s: (tiny / "filelists" / s).read_text().split() for s in ("train", "valid", "test")}
    assert len(listed["valid"]) == params["valid_songs"]
    assert len(listed["test"]) == params["test_songs"]
    assert all(listed.values()), "every split must be non-empty"
    assert sorted(n for v in listed.values() for n in v) == [f"{n}.wav" for n in names]
    info = sf.info(str(tiny / "audio" / f"{names[0]}.wav"))
    assert info.samplerate == params["sample_rate"]
    assert info.duration == pytest.approx(params["song_seconds"], abs=1e-3)


def test_labels_are_contiguous_cover_the_song_and_use_both_classes(tiny, params):
    seen = set()
    for lab_path in sorted((tiny / "labels").glob("*.lab")):
        lines = lab_path.read_text().splitlines()
        assert all(len(line.split()[0].split(".")[1]) >= 3 for line in lines), "3+ decimals"
        lab = read_lab(lab_path)
        assert lab["start"].iloc[0] == 0.0
        assert lab["end"].iloc[-1] == pytest.approx(params["song_seconds"])
        assert np.array_equal(lab["start"].to_numpy()[1:], lab["end"].to_numpy()[:-1])
        assert (lab["label"].to_numpy()[1:] != lab["label"].to_numpy()[:-1]).all(), "merged"
        seen |= set(lab["label"])
    assert seen == {"sing", "nosing"}


def test_labels_follow_the_voice_notes(params):
    song = compose_song("s", params, np.random.default_rng(7))
    segments = song_segments(song, params["release_seconds"], params["merge_gap"])
    lab = pd.DataFrame(segments, columns=["start", "end", "label"])
    notes = song.notes_of(VOCAL)
    assert notes, "the voice must sing somewhere"
    onsets = np.array([n.start for n in notes]) + 1e-3
    assert frame_labels(lab, onsets).all()
    # Nothing is labelled sing unless a voice note (or its release) sounds there.
    grid = np.arange(0, song.duration, 0.01)
    sounding = np.zeros_like(grid, dtype=bool)
    for n in notes:
        sounding |= ((grid >= n.start - 1e-3)
                     & (grid < n.end + params["release_seconds"] + params["merge_gap"]))
    assert not (frame_labels(lab, grid) & ~sounding).any()


def test_muting_the_voice_changes_only_the_sing_regions(params, synth):
    sr = params["sample_rate"]
    song = compose_song("s", params, np.random.default_rng(3))
    segments = song_segments(song, params["release_seconds"], params["merge_gap"])
    full = render_song(synth, song)
    no_voice = render_song(synth, song, muted={VOCAL})
    no_lead = render_song(synth, song, muted={LEAD})
    sing = sample_mask(segments, "sing", len(full), sr)
    voice, lead = full - no_voice, full - no_lead
    assert np.sqrt(np.mean(voice[sing] ** 2)) > 0.01, "the voice is audible where it sings"
    assert (voice[sing] ** 2).sum() / (voice ** 2).sum() > 0.97
    # Instrumental leads play only where the voice does not.
    if LEAD in {s.lead for s in song.sections}:
        assert (lead[~sing] ** 2).sum() / (lead ** 2).sum() > 0.9
    # The mix is louder where the voice sings than the same song without it.
    assert np.mean(full[sing] ** 2) > 1.2 * np.mean(no_voice[sing] ** 2)


def test_same_seed_gives_identical_files(tiny, params, tmp_path):
    again = tmp_path / "again"
    again.mkdir()
    vocal_sf.render(again, params, SEED)
    assert digest(again) == digest(tiny)
    other = tmp_path / "other"
    other.mkdir()
    vocal_sf.render(other, params, SEED + 1)
    a, b = digest(tiny), digest(other)
    assert a["audio/song_000.wav"] != b["audio/song_000.wav"]


def test_songs_vary_and_sing_about_half_the_time():
    params = profile_params(None)  # the default profile, composed only (no audio)
    songs = [compose_song(f"s{i}", params, np.random.default_rng([SEED, 1, i]))
             for i in range(params["songs"])]
    shares = []
    for song in songs:
        segments = song_segments(song, params["release_seconds"], params["merge_gap"])
        shares.append(sum(e - s for s, e, lab in segments if lab == "sing") / song.duration)
        assert {lab for *_, lab in segments} == {"sing", "nosing"}
    assert 0.4 <= np.mean(shares) <= 0.6
    assert len({(s.key, s.mode) for s in songs}) >= 10
    assert len({s.tempo for s in songs}) == len(songs)
    vocal_programs = {t.program for s in songs for t in s.tracks if t.role == VOCAL}
    assert vocal_programs == set(params["vocal_programs"])
    assert sum(LEAD in {sec.lead for sec in s.sections} for s in songs) > len(songs) / 2


def test_plan_sections_keeps_intro_and_outro_instrumental():
    rng = np.random.default_rng(0)
    for n_bars in (2, 3, 5, 16, 40):
        plan = plan_sections(rng, n_bars, 4, 0.6)
        assert sum(length for _, _, length, _ in plan) == n_bars
        assert any(sing for *_, sing in plan)
        assert all(not sing for kind, *_, sing in plan if kind in ("intro", "outro"))
    with pytest.raises(ValueError, match="at least 2 bars"):
        plan_sections(rng, 1, 4, 0.5)


def test_split_songs_rejects_an_empty_train_split():
    splits = split_songs(10, 2, 3, np.random.default_rng(0))
    assert [splits.count(s) for s in ("train", "valid", "test")] == [5, 2, 3]
    with pytest.raises(ValueError, match="train would be empty"):
        split_songs(4, 2, 2, np.random.default_rng(0))


# ----------------------------------------------------------------------------- reader

def test_read_vocal_on_vocal_sf(tiny, params):
    df = read_vocal(tiny)
    assert list(df.columns) == ["song", "split", "audio_path", "lab_path", "duration"]
    assert len(df) == params["songs"]
    assert df["split"].value_counts().to_dict() == {
        "train": params["songs"] - params["valid_songs"] - params["test_songs"],
        "valid": params["valid_songs"], "test": params["test_songs"]}
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in df["audio_path"])
    assert all(Path(p).name == f"{s}.lab" for s, p in zip(df["song"], df["lab_path"]))
    assert np.allclose(df["duration"], params["song_seconds"], atol=1e-3)


def make_jamendo(root: Path, ext: str = ".ogg") -> dict[str, str]:
    """A tiny corpus in the real Jamendo layout, with Jamendo-like song names."""
    songs = {"01 - 01 Les Jardins Japonais": "train", "05 - Elles disent. (live)": "train",
             "03 - Say me Good Bye": "valid", "10 - Another Song": "test"}
    sr = 22050
    for sub in ("audio", "labels", "filelists"):
        (root / sub).mkdir(parents=True)
    t = np.arange(int(1.5 * sr)) / sr
    for i, song in enumerate(songs):
        audio = 0.3 * np.sin(2 * np.pi * (220 + 50 * i) * t).astype(np.float32)
        fmt = {".ogg": "OGG", ".wav": "WAV", ".flac": "FLAC"}[ext]
        sf.write(str(root / "audio" / f"{song}{ext}"), audio, sr, format=fmt)
        write_lab(root / "labels" / f"{song}.lab", [(0.0, 0.5, "nosing"), (0.5, 1.5, "sing")])
    for split in ("train", "valid", "test"):
        names = [f"{s}{ext}" for s, sp in songs.items() if sp == split]
        (root / "filelists" / split).write_text("\n".join(names) + "\n\n")
    return songs


@pytest.mark.parametrize("ext", [".ogg", ".wav"])
def test_read_vocal_on_a_jamendo_layout(tmp_path, ext):
    songs = make_jamendo(tmp_path, ext)
    df = read_vocal(tmp_path)
    assert df["song"].tolist() == list(songs)  # train, valid, test in file order
    assert df["split"].tolist() == list(songs.values())
    assert all(p.endswith(ext) for p in df["audio_path"])
    assert np.allclose(df["duration"], 1.5, atol=0.01)


def test_read_vocal_finds_audio_with_another_extension(tmp_path):
    make_jamendo(tmp_path, ".ogg")
    listing = tmp_path / "filelists" / "test"
    listing.write_text("10 - Another Song.mp3\n")  # listed as mp3, stored as ogg
    df = read_vocal(tmp_path)
    assert df.loc[df["split"] == "test", "audio_path"].iloc[0].endswith("10 - Another Song.ogg")


def test_read_vocal_errors_name_what_is_missing(tmp_path):
    make_jamendo(tmp_path)
    (tmp_path / "labels" / "03 - Say me Good Bye.lab").unlink()
    with pytest.raises(FileNotFoundError, match="Say me Good Bye.lab"):
        read_vocal(tmp_path)
    (tmp_path / "filelists" / "valid").unlink()
    with pytest.raises(FileNotFoundError, match=r"filelists/valid: filelist missing"):
        read_vocal(tmp_path)
    (tmp_path / "filelists" / "valid").write_text("01 - 01 Les Jardins Japonais.ogg\n")
    with pytest.raises(ValueError, match="already listed in filelists/train"):
        read_vocal(tmp_path)
    (tmp_path / "filelists" / "valid").write_text("nope.ogg\n")
    with pytest.raises(FileNotFoundError, match="nope.ogg"):
        read_vocal(tmp_path)


@pytest.mark.parametrize("lines, line_no, message", [
    (["0 1 nosing", "1 2 singing"], 2, "label must be one of"),
    (["0 1 nosing", "0.9 2 sing"], 2, "before the previous one ends"),
    (["0 1 nosing", "2 1.5 sing"], 2, "start < end"),
    (["0 1 nosing", "", "1 x sing"], 3, "must be numbers"),
    (["0 1"], 1, "expected 'start end sing|nosing'"),
])
def test_read_lab_rejects_malformed_files(tmp_path, lines, line_no, message):
    path = tmp_path / "bad.lab"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=message) as err:
        read_lab(path)
    assert f"{path}, line {line_no}:" in str(err.value)


def test_read_vocal_reports_a_malformed_label(tmp_path):
    make_jamendo(tmp_path)
    bad = tmp_path / "labels" / "10 - Another Song.lab"
    bad.write_text("0 1 nosing\n1 2 sung\n")
    with pytest.raises(ValueError, match=r"Another Song\.lab, line 2"):
        read_vocal(tmp_path)


def test_read_lab_accepts_jamendo_style_text(tmp_path):
    path = tmp_path / "song.lab"
    path.write_text("0 24.2 nosing\n24.2\t30.5 sing \n30.5 210.01 nosing\n")
    lab = read_lab(path)
    assert lab.to_dict("list") == {"start": [0, 24.2, 30.5], "end": [24.2, 30.5, 210.01],
                                   "label": ["nosing", "sing", "nosing"]}


# ----------------------------------------------------------------------------- labels

def test_frame_labels_use_half_open_segments():
    lab = pd.DataFrame([(0.0, 1.0, "nosing"), (1.0, 2.0, "sing"), (2.5, 3.0, "sing")],
                       columns=["start", "end", "label"])
    times = np.array([0.0, 0.99, 1.0, 1.5, 1.999, 2.0, 2.2, 2.5, 2.9, 3.0, 5.0, -1.0])
    expected = [0, 0, 1, 1, 1, 0, 0, 1, 1, 0, 0, 0]
    assert frame_labels(lab, times).tolist() == [bool(x) for x in expected]


def test_segments_merge_short_gaps_and_cover_the_song():
    segments = segments_from_intervals([(1.0, 2.0), (2.1, 3.0), (3.5, 4.0), (9.5, 12.0)],
                                       duration=10.0, merge_gap=0.2)
    assert segments == [(0.0, 1.0, "nosing"), (1.0, 3.0, "sing"), (3.0, 3.5, "nosing"),
                        (3.5, 4.0, "sing"), (4.0, 9.5, "nosing"), (9.5, 10.0, "sing")]
    assert segments_from_intervals([], 5.0) == [(0.0, 5.0, "nosing")]
    assert segments_from_intervals([(0.0, 5.0)], 5.0) == [(0.0, 5.0, "sing")]
