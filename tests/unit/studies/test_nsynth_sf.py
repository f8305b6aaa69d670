"""nsynth-sf rendering (tiny profile) and the NSynth reader."""

from __future__ import annotations

import copy
import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from genex.studies.nsynth.data import COLUMNS, FAMILIES, SOURCES, SPLITS, load_note, read_nsynth
from genex.studies.nsynth.render import (
    FAMILY_PROGRAMS,
    Instrument,
    choose_programs,
    note_pairs,
    render,
    split_instruments,
)

ROOT = Path(__file__).resolve().parents[3]
NSYNTH_FIELDS = {"note": int, "note_str": str, "instrument": int, "instrument_str": str,
                 "instrument_family": int, "instrument_family_str": str,
                 "instrument_source": int, "instrument_source_str": str, "pitch": int,
                 "velocity": int, "sample_rate": int, "qualities": list, "qualities_str": list}


def _merge(base: dict, overlay: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def tiny_params() -> dict:
    """The nsynth_sf section of config.yaml overlaid with tiny.yaml, as the rules pass it."""
    base = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    tiny = yaml.safe_load((ROOT / "config/tiny.yaml").read_text())
    return _merge(base, tiny)["datasets"]["nsynth_sf"]


def _examples(root: Path) -> dict[str, dict]:
    return {s: json.loads((root / f"nsynth-{s}/examples.json").read_text()) for s in SPLITS}


def _wav_hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*.wav"))}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("nsynth_sf") / "seed7"
    out.mkdir()
    summary = render(out, tiny_params(), seed=7)
    return out, summary


def test_tiny_profile_is_small():
    params = tiny_params()
    assert params["notes_per_instrument"] * params["programs_per_family"] \
        * len(params["soundfonts"]) * len(FAMILIES) <= 200


def test_layout_and_nsynth_fields(rendered):
    root, summary = rendered
    params = tiny_params()
    examples = _examples(root)
    total = 0
    for split, entries in examples.items():
        wavs = {p.stem for p in (root / f"nsynth-{split}/audio").glob("*.wav")}
        assert wavs == set(entries), f"{split}: wavs and examples.json disagree"
        for key, e in entries.items():
            for field, kind in NSYNTH_FIELDS.items():
                assert isinstance(e[field], kind), (key, field)
            note_str = f"{e['instrument_str']}-{e['pitch']:03d}-{e['velocity']:03d}"
            assert key == e["note_str"] == note_str
            assert re.fullmatch(r"[a-z_]+_(acoustic|electronic|synthetic)_[a-z0-9]+_\d{3}",
                                e["instrument_str"])
            assert FAMILIES[e["instrument_family"]] == e["instrument_family_str"]
            assert SOURCES[e["instrument_source"]] == e["instrument_source_str"]
            assert e["instrument_str"].startswith(e["instrument_family_str"] + "_")
            assert 21 <= e["pitch"] <= 108 and e["velocity"] in params["velocities"]
            assert e["sample_rate"] == 16000
            assert e["qualities"] == [0] * 10 and e["qualities_str"] == []
        total += len(entries)
    notes = [e["note"] for entries in examples.values() for e in entries.values()]
    assert sorted(notes) == list(range(total)), "note ids are not unique and consecutive"
    expected = (len(FAMILIES) * params["programs_per_family"] * len(params["soundfonts"])
                * params["notes_per_instrument"])
    assert total == summary["notes_total"] == expected
    assert summary["short_instruments"] == []


def test_every_family_in_every_split_and_splits_disjoint(rendered):
    root, _ = rendered
    examples = _examples(root)
    instruments = {s: {e["instrument_str"] for e in entries.values()}
                   for s, entries in examples.items()}
    for split, entries in examples.items():
        assert {e["instrument_family_str"] for e in entries.values()} == set(FAMILIES), split
    assert not instruments["train"] & instruments["valid"]
    assert not instruments["train"] & instruments["test"]
    assert not instruments["valid"] & instruments["test"]
    # an instrument's notes all carry the same family, source and instrument id
    for entries in examples.values():
        by_inst = {}
        for e in entries.values():
            ident = (e["instrument"], e["instrument_family"], e["instrument_source"])
            assert by_inst.setdefault(e["instrument_str"], ident) == ident


def test_wav_format_audible_hold_and_release_decay(rendered):
    root, _ = rendered
    wavs = sorted(root.rglob("*.wav"))
    assert wavs
    for path in wavs:
        info = sf.info(str(path))
        assert (info.samplerate, info.channels, info.frames, info.subtype) == \
            (16000, 1, 64000, "PCM_16"), path
        audio, sr = load_note(path)
        assert audio.dtype == np.float32 and audio.shape == (64000,) and sr == 16000
        hold, tail = audio[:48000], audio[-8000:]  # key held 0-3 s; last 0.5 s after release
        assert np.max(np.abs(hold)) >= 1e-3, f"{path.name}: silent during the hold"
        rms_hold = np.sqrt(np.mean(hold ** 2))
        rms_tail = np.sqrt(np.mean(tail ** 2))
        assert rms_tail < rms_hold, f"{path.name}: no decay after release"


def test_same_seed_identical_files_other_seed_other_selection(rendered, tmp_path):
    root, _ = rendered
    again = tmp_path / "again"
    other = tmp_path / "other"
    again.mkdir()
    other.mkdir()
    render(again, tiny_params(), seed=7)
    render(other, tiny_params(), seed=8)
    assert _wav_hashes(again) == _wav_hashes(root)
    assert _examples(again) == _examples(root)
    assert set(_wav_hashes(other)) != set(_wav_hashes(root))


def test_silent_renders_are_skipped_and_counted(tmp_path):
    params = {**tiny_params(), "programs_per_family": 3, "velocities": [25, 127],
              "notes_per_instrument": 2, "min_peak": 0.05}
    summary = render(tmp_path, params, seed=3)
    assert summary["silent_skipped"] > 0
    for path in tmp_path.rglob("*.wav"):
        audio, _ = load_note(path)
        assert np.max(np.abs(audio)) >= 0.05 - 1 / 32768, path.name


def test_reader_columns_and_values(rendered):
    root, summary = rendered
    df = read_nsynth(root)
    assert tuple(df.columns) == COLUMNS
    assert len(df) == summary["notes_total"]
    assert list(df["split"].unique()) == list(SPLITS)
    assert df["audio_path"].map(lambda p: Path(p).is_absolute() and Path(p).is_file()).all()
    for col in ("instrument_family", "instrument_source", "pitch", "velocity", "sample_rate"):
        assert df[col].dtype == np.int64, col
    row = df.iloc[0]
    assert Path(row.audio_path).name == f"{row.note_str}.wav"
    only_test = read_nsynth(root, splits=("test",))
    assert set(only_test["split"]) == {"test"}
    assert len(only_test) == summary["notes"]["test"]


def test_reader_skips_missing_splits_and_rejects_empty_root(rendered, tmp_path):
    root, summary = rendered
    partial = tmp_path / "partial"
    (partial / "nsynth-valid").mkdir(parents=True)
    (partial / "nsynth-valid/examples.json").write_text(
        (root / "nsynth-valid/examples.json").read_text())
    df = read_nsynth(partial)
    assert set(df["split"]) == {"valid"} and len(df) == summary["notes"]["valid"]
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "empty")):
        read_nsynth(tmp_path / "empty")


@pytest.mark.parametrize("content", ["{not json", "[1, 2]",
                                     '{"x-060-100": {"pitch": 60}}',
                                     '{"x-060-100": {"instrument_family": 0, '
                                     '"instrument_source": 0, '
                                     '"pitch": "sixty", "velocity": 100, "sample_rate": 16000, '
                                     '"instrument_str": "x", "instrument_family_str": "bass", '
                                     '"instrument_source_str": "acoustic"}}'])
def test_reader_malformed_examples_names_the_file(tmp_path, content):
    path = tmp_path / "nsynth-train" / "examples.json"
    path.parent.mkdir()
    path.write_text(content)
    with pytest.raises(ValueError, match=re.escape(str(path))):
        read_nsynth(tmp_path)


def test_load_note_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.wav"):
        load_note(tmp_path / "missing.wav")
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not a wav")
    with pytest.raises(ValueError, match="bad.wav"):
        load_note(bad)


def test_program_table_is_consistent():
    assert list(FAMILY_PROGRAMS) == list(FAMILIES)
    seen = [p for progs in FAMILY_PROGRAMS.values() for p in progs]
    assert len(seen) == len(set(seen)), "a GM program is in two families"
    for family, progs in FAMILY_PROGRAMS.items():
        for program, source in progs.items():
            assert 0 <= program <= 127 and source in SOURCES
            lo, hi = Instrument(0, family, program, "TimGM6mb").pitch_range
            assert 21 <= lo < hi <= 108


def test_choose_programs_spreads_and_depends_on_seed():
    a = choose_programs(np.random.default_rng(0), 3)
    b = choose_programs(np.random.default_rng(0), 3)
    assert a == b
    for family, programs in a.items():
        assert len(programs) == 3 and len(set(programs)) == 3
        groups = np.array_split(np.array(sorted(FAMILY_PROGRAMS[family])), 3)
        assert all(p in g for p, g in zip(programs, groups)), family
    draws = [choose_programs(np.random.default_rng(s), 3) for s in range(5)]
    assert any(d != draws[0] for d in draws[1:])


def test_split_quota_and_too_few_instruments():
    rng = np.random.default_rng(0)
    instruments = [Instrument(i, f, p, sfont) for i, (f, p, sfont) in enumerate(
        (f, p, s) for f in FAMILIES for p in sorted(FAMILY_PROGRAMS[f])[:3]
        for s in ("FluidR3_GM", "TimGM6mb", "MuseScore_General"))]
    splits = split_instruments(instruments, 0.15, 0.2, rng)
    counts = {s: list(splits.values()).count(s) for s in SPLITS}
    assert counts == {"train": 64, "valid": 15, "test": 20}  # round(0.15*99), round(0.2*99)
    two_each = [Instrument(i, f, min(FAMILY_PROGRAMS[f]), sfont) for i, (f, sfont) in enumerate(
        (f, s) for f in FAMILIES for s in ("FluidR3_GM", "TimGM6mb"))]
    with pytest.raises(ValueError, match="too few"):
        split_instruments(two_each, 0.15, 0.2, np.random.default_rng(0))


def test_note_pairs_unique_and_in_range():
    inst = Instrument(0, "flute", 73, "TimGM6mb")
    pairs = note_pairs(inst, [25, 50, 75, 100, 127], np.random.default_rng(0))
    lo, hi = inst.pitch_range
    assert len(pairs) == len(set(pairs)) == (hi - lo + 1) * 5
    assert all(lo <= p <= hi for p, _ in pairs)


def test_cli_render_writes_summary(tmp_path):
    from genex.cli import main

    params = {**tiny_params(), "notes_per_instrument": 1}
    out = tmp_path / "nsynth-sf"
    assert main(["render", "nsynth-sf", "--params", json.dumps(params), "--seed", "1",
                 "--out", str(out)]) == 0
    record = json.loads((out / "genex.json").read_text())
    assert record["summary"]["notes_total"] == len(read_nsynth(out)) == 33
    assert record["provenance"]["seed"] == 1
