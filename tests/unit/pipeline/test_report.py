"""Dataset summaries (genex summarize) and the HTML report (genex report)."""

from __future__ import annotations

import importlib
import json
import re
import sys
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from genex.pipeline.report.datasets import summarize
from genex.studies import dataset
from genex.pipeline.report.html import SectionError, build_report, load_section, render_text

PARAMS = {"examples_per_dataset": 2, "spectrogram_seconds": 1.0, "example_seconds": 2.0}


# ---------------------------------------------------------------------------- fixtures

def _tone(path: Path, seconds: float, sr: int, freq: float = 440.0) -> None:
    t = np.arange(int(seconds * sr)) / sr
    sf.write(str(path), (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), sr,
             subtype="PCM_16")


# split -> [(family, instrument, pitch)]: 3 families in train, unseen instruments in valid/test
NSYNTH_NOTES = {
    "train": [("bass", "bass_sf_000", 40), ("bass", "bass_sf_000", 45),
              ("flute", "flute_sf_001", 72), ("organ", "organ_sf_002", 60),
              ("organ", "organ_sf_002", 62)],
    "valid": [("bass", "bass_sf_003", 41), ("flute", "flute_sf_004", 70)],
    "test": [("organ", "organ_sf_005", 64)],
}
FAMILY_INDEX = {"bass": 0, "flute": 2, "organ": 6}


@pytest.fixture
def nsynth_root(tmp_path: Path) -> Path:
    """NSynth's layout: nsynth-{split}/examples.json + audio/<note_str>.wav (0.5 s notes)."""
    root = tmp_path / "nsynth-sf"
    for split, notes in NSYNTH_NOTES.items():
        audio = root / f"nsynth-{split}" / "audio"
        audio.mkdir(parents=True)
        examples = {}
        for family, instrument, pitch in notes:
            note_str = f"{instrument}-{pitch:03d}-100"
            _tone(audio / f"{note_str}.wav", 0.5, 16000, 440 * 2 ** ((pitch - 69) / 12))
            examples[note_str] = {
                "note_str": note_str, "instrument_str": instrument, "pitch": pitch,
                "velocity": 100, "sample_rate": 16000, "instrument_family": FAMILY_INDEX[family],
                "instrument_family_str": family, "instrument_source": 0,
                "instrument_source_str": "acoustic"}
        (root / f"nsynth-{split}" / "examples.json").write_text(json.dumps(examples))
    (root / "genex.json").write_text(json.dumps({"summary": {"render_seconds": 12.5}}))
    return root


# song -> (split, seconds, [(start, end, label)])
VOCAL_SONGS = {
    "song_a": ("train", 3.0, [(0.0, 1.0, "nosing"), (1.0, 2.5, "sing"), (2.5, 3.0, "nosing")]),
    "song_b": ("train", 3.0, [(0.0, 3.0, "nosing")]),
    "song_c": ("valid", 3.0, [(0.0, 1.5, "sing"), (1.5, 3.0, "nosing")]),
    "song_d": ("test", 3.0, [(0.0, 0.5, "nosing"), (0.5, 3.0, "sing")]),
}


@pytest.fixture
def vocal_root(tmp_path: Path) -> Path:
    """Jamendo's layout: audio/*.wav, labels/*.lab, filelists/{train,valid,test}."""
    root = tmp_path / "vocal-sf"
    for sub in ("audio", "labels", "filelists"):
        (root / sub).mkdir(parents=True)
    for split in ("train", "valid", "test"):
        names = [f"{s}.wav" for s, (sp, _, _) in VOCAL_SONGS.items() if sp == split]
        (root / "filelists" / split).write_text("".join(f"{n}\n" for n in names))
    for song, (_, seconds, segments) in VOCAL_SONGS.items():
        _tone(root / "audio" / f"{song}.wav", seconds, 22050)
        (root / "labels" / f"{song}.lab").write_text(
            "".join(f"{a:.3f} {b:.3f} {lab}\n" for a, b, lab in segments))
    return root


RADIO_MAPS, RADIO_TX, RADIO_SIZE = 5, 3, 32


@pytest.fixture
def radio_root(tmp_path: Path) -> Path:
    """RadioMapSeer's layout: png/buildings_complete/{m}.png, png/antennas/{m}_{tx}.png,
    gain/DPM/{m}_{tx}.png (32x32 here)."""
    from PIL import Image

    root = tmp_path / "radio-sim"
    for sub in ("png/buildings_complete", "png/antennas", "gain/DPM"):
        (root / sub).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for m in range(RADIO_MAPS):
        city = np.zeros((RADIO_SIZE, RADIO_SIZE), np.uint8)
        city[4:10, 4 + m:12 + m] = 255
        Image.fromarray(city).save(root / "png/buildings_complete" / f"{m}.png")
        for tx in range(RADIO_TX):
            ant = np.zeros_like(city)
            ant[20, 3 + 5 * tx] = 255
            Image.fromarray(ant).save(root / "png/antennas" / f"{m}_{tx}.png")
            gain = rng.integers(0, 256, city.shape).astype(np.uint8)
            Image.fromarray(gain).save(root / "gain/DPM" / f"{m}_{tx}.png")
    return root


class _StubRadioMapSeer:
    """Minimal stand-in for genex.studies.radio.data.RadioMapSeer, used only while that module is
    missing: enough of the documented API for summarize."""

    def __init__(self, root, simulator="DPM"):
        self.root, self.simulator = Path(root), simulator
        self.maps = sorted(int(p.stem) for p in (self.root / "png/buildings_complete").glob("*.png"))

    def transmitters(self, m):
        return sorted(int(p.stem.split("_")[1]) for p in (self.root / "png/antennas").glob(f"{m}_*.png"))

    def split(self, seed=42):
        order = [self.maps[i] for i in np.random.default_rng(seed).permutation(len(self.maps))]
        return {"train": order[2:], "valid": order[:1], "test": order[1:2]}

    def load(self, m, tx, missing=0):
        from PIL import Image

        def png(rel):
            return np.asarray(Image.open(self.root / rel), dtype=np.float32) / 255

        city = png(f"png/buildings_complete/{m}.png")
        return {"buildings": city, "buildings_missing": city, "tx": png(f"png/antennas/{m}_{tx}.png"),
                "gain": png(f"gain/{self.simulator}/{m}_{tx}.png")}


@pytest.fixture
def radio_reader(monkeypatch):
    """The real reader when it exists, else the stub above."""
    try:
        importlib.import_module("genex.studies.radio.data")
    except ModuleNotFoundError:
        monkeypatch.setitem(sys.modules, "genex.studies.radio.data",
                            types.SimpleNamespace(RadioMapSeer=_StubRadioMapSeer))


@pytest.fixture
def piano_root(tmp_path: Path, monkeypatch) -> Path:
    """A piano-like folder; read_piano is monkeypatched to index it."""
    root = tmp_path / "piano-sf"
    root.mkdir()
    rows = []
    for i, (split, inst, kind) in enumerate([("train", "FluidR3_GM-0", "piece"),
                                             ("train", "TimGM6mb-0", "piece"),
                                             ("train", "FluidR3_GM-0", "isolated"),
                                             ("test", "MuseScore_General-0", "piece")]):
        wav = root / f"rec{i}.wav"
        _tone(wav, 3.0, 8000)
        rows.append({"recording": f"rec{i}", "kind": kind, "piece": f"piece{i % 2}",
                     "instrument": inst, "split": split, "audio_path": str(wav),
                     "midi_path": None, "pitch": 60 if kind == "isolated" else None,
                     "sample_rate": 8000, "duration": 3.0})
    fake = lambda _root: pd.DataFrame(rows)  # noqa: E731
    try:
        module = importlib.import_module("genex.studies.piano.data")
        monkeypatch.setattr(module, "read_piano", fake)
    except ModuleNotFoundError:
        monkeypatch.setitem(sys.modules, "genex.studies.piano.data", types.SimpleNamespace(read_piano=fake))
    return root


def _blocks(section: dict, kind: str) -> list[dict]:
    return [b for b in section["blocks"] if b["type"] == kind]


# ---------------------------------------------------------------------------- summarize

def test_summarize_nsynth_counts_and_section(nsynth_root: Path, tmp_path: Path):
    out = tmp_path / "summary"
    summarize(dataset("nsynth-sf"), nsynth_root, out, PARAMS, seed=3)
    stats = json.loads((out / "stats.json").read_text())
    assert stats["notes"] == 8
    assert stats["instruments"] == 6
    assert {s: v["notes"] for s, v in stats["splits"].items()} == {"train": 5, "valid": 2, "test": 1}
    assert stats["splits"]["train"]["instruments"] == 3
    assert stats["families"]["organ"] == {"notes": 3, "instruments": 2}
    assert stats["sample_rate"] == 16000
    assert stats["hours"] == pytest.approx(8 * 0.5 / 3600, abs=1e-4)
    assert "render_seconds" not in stats  # timings vary run to run; metrics must not
    assert "Rendered on this machine in 12.5 s." in (out / "section.json").read_text()
    assert stats["size_mb"] > 0

    section = load_section(out)  # validates the format and every referenced file
    assert section.id == "nsynth-sf" and section.group == "Datasets"
    data = json.loads((out / "section.json").read_text())
    audio = _blocks(data, "audio")
    assert len(audio) == 2 and len(_blocks(data, "figure")) == 1
    families = {b["caption"].split(":")[0] for b in audio}
    assert len(families) == 2, "examples come from different families"
    table = _blocks(data, "table")[0]
    assert table["rows"][-1] == ["all", 5, 2, 1, 6]


def test_summarize_is_deterministic_for_a_seed(nsynth_root: Path, tmp_path: Path):
    summarize(dataset("nsynth-sf"), nsynth_root, tmp_path / "a", PARAMS, seed=7)
    summarize(dataset("nsynth-sf"), nsynth_root, tmp_path / "b", PARAMS, seed=7)
    for name in ("stats.json", "section.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    stats_text = (tmp_path / "a" / "stats.json").read_text()
    assert stats_text == json.dumps(json.loads(stats_text), indent=2, sort_keys=True) + "\n"


def test_summarize_vocal_sung_share_and_cut_examples(vocal_root: Path, tmp_path: Path):
    out = tmp_path / "summary"
    summarize(dataset("vocal-sf"), vocal_root, out, {**PARAMS, "examples_per_dataset": 3}, seed=0)
    stats = json.loads((out / "stats.json").read_text())
    assert stats["songs"] == 4
    assert {s: v["songs"] for s, v in stats["splits"].items()} == {"train": 2, "valid": 1, "test": 1}
    assert stats["sung_share"] == pytest.approx((1.5 + 1.5 + 2.5) / 12.0, abs=1e-4)
    assert stats["splits"]["train"]["sung_share"] == pytest.approx(1.5 / 6.0, abs=1e-4)
    assert stats["labels"]["sing"]["segments"] == 3
    assert stats["songs_without_voice"] == 1
    assert "render_seconds" not in stats  # no genex.json: a real dataset

    data = json.loads((out / "section.json").read_text())
    audio = _blocks(data, "audio")
    assert len(audio) == 3
    assert not any("song_b" in b["path"] for b in audio), "examples have a voice"
    for block in audio:  # cut to example_seconds, from a second before the voice
        info = sf.info(str(out / block["path"]))
        assert info.duration <= PARAMS["example_seconds"] + 1e-3
    load_section(out)


def test_summarize_radio_counts_and_figure(radio_root: Path, radio_reader, tmp_path: Path):
    out = tmp_path / "summary"
    summarize(dataset("radio-sim"), radio_root, out, PARAMS, seed=1)
    stats = json.loads((out / "stats.json").read_text())
    assert stats["maps"] == RADIO_MAPS
    assert stats["radio_maps"] == RADIO_MAPS * RADIO_TX
    assert sum(v["maps"] for v in stats["splits"].values()) == RADIO_MAPS
    assert stats["image_size"] == {"height": RADIO_SIZE, "width": RADIO_SIZE}
    assert 0 < stats["building_fraction"] < 1
    data = json.loads((out / "section.json").read_text())
    assert _blocks(data, "audio") == []
    (figure,) = _blocks(data, "figure")
    assert (out / figure["path"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    load_section(out)


def test_summarize_piano_with_patched_reader(piano_root: Path, tmp_path: Path):
    out = tmp_path / "summary"
    summarize(dataset("piano-sf"), piano_root, out, PARAMS, seed=0)
    stats = json.loads((out / "stats.json").read_text())
    assert stats["pieces"] == 3 and stats["isolated_notes"] == 1
    assert stats["splits"]["train"] == {"recordings": 3, "pieces": 2, "isolated_notes": 1,
                                        "instruments": 2, "hours": round(9.0 / 3600, 4)}
    data = json.loads((out / "section.json").read_text())
    audio = _blocks(data, "audio")
    assert len(audio) == 2
    assert all(sf.info(str(out / b["path"])).duration <= 2.0 + 1e-3 for b in audio)
    load_section(out)


def test_summarize_failure_leaves_no_output(nsynth_root: Path, tmp_path: Path):
    for wav in nsynth_root.rglob("*.wav"):
        wav.write_bytes(b"not audio")
    out = tmp_path / "summary"
    with pytest.raises(ValueError, match=r"\.wav"):
        summarize(dataset("nsynth-sf"), nsynth_root, out, PARAMS, seed=0)
    assert not out.exists()
    assert not list(tmp_path.glob(".summary*"))


def test_log_mel_spectrogram_peaks_at_the_tone():
    from genex.pipeline.report.datasets import _hz_to_mel, _mel_to_hz, log_mel_spectrogram

    sr, hop = 16000, 256
    t = np.arange(sr) / sr
    db = log_mel_spectrogram(np.sin(2 * np.pi * 1000 * t), sr, hop, n_mels=64)
    assert db.shape == (64, sr // hop + 1)
    assert db.max() == 0.0 and db.min() >= -80.0
    centres = _mel_to_hz(np.linspace(_hz_to_mel(20.0), _hz_to_mel(sr / 2), 66))[1:-1]
    peak = centres[int(np.argmax(db[:, db.shape[1] // 2]))]
    assert abs(peak - 1000) < 60


def test_summarize_unknown_dataset(tmp_path: Path):
    with pytest.raises(ValueError, match="unknown dataset 'nope'"):
        summarize(dataset("nope"), tmp_path, tmp_path / "out", {}, 0)


def test_cli_summarize(nsynth_root: Path, tmp_path: Path):
    from genex.cli import main

    out = tmp_path / "cli"
    assert main(["summarize", "nsynth-sf", "--root", str(nsynth_root), "--out", str(out),
                 "--params", json.dumps(PARAMS), "--seed", "0"]) == 0
    assert json.loads((out / "stats.json").read_text())["notes"] == 8


# ---------------------------------------------------------------------------- report

def _study_section(folder: Path, **overrides) -> Path:
    """A hand-written 'study' section with every block type."""
    from PIL import Image

    folder.mkdir(parents=True)
    (folder / "plots").mkdir()
    Image.new("RGB", (4, 4), "red").save(folder / "plots" / "mask.png")
    _tone(folder / "sample.wav", 0.2, 8000)
    (folder / "metrics.json").write_text(json.dumps({"f1": 0.71, "per_class": {"bass": 1.0}}))
    section = {
        "id": "study-x", "title": "Study X <explained>", "group": "Studies", "order": 1,
        "blocks": [
            {"type": "text", "text": "Masks are **sparse**.\n\n- one\n- two <script>"},
            {"type": "table", "caption": "Table 1", "columns": ["class", "magnitude"],
             "rows": [["bass", 1.0], ["organ", 0.829]]},
            {"type": "figure", "path": "plots/mask.png", "caption": "A mask"},
            {"type": "audio", "path": "sample.wav", "caption": "A sample"},
            {"type": "metrics", "path": "metrics.json"},
        ],
        **overrides,
    }
    (folder / "section.json").write_text(json.dumps(section))
    return folder


def test_build_report_renders_every_section(nsynth_root: Path, vocal_root: Path,
                                            tmp_path: Path):
    nsynth = tmp_path / "sections" / "nsynth-sf"
    vocal = tmp_path / "sections" / "vocal-sf"
    summarize(dataset("nsynth-sf"), nsynth_root, nsynth, PARAMS, seed=0)
    summarize(dataset("vocal-sf"), vocal_root, vocal, PARAMS, seed=0)
    study = _study_section(tmp_path / "sections" / "study-x")
    out = tmp_path / "report"
    index = build_report([study, vocal, nsynth], out, {"title": "My report"})

    page = index.read_text()
    sections = [json.loads((f / "section.json").read_text()) for f in (nsynth, vocal, study)]
    for s in sections:
        assert _escape(s["title"]) in page
    blocks = [b for s in sections for b in s["blocks"]]
    assert page.count("<audio ") == sum(b["type"] == "audio" for b in blocks)
    assert page.count("<img ") == sum(b["type"] == "figure" for b in blocks)
    for s in sections:
        folder = f'{s["group"].lower()}/{s["id"]}'
        for b in s["blocks"]:
            if "path" in b:
                assert (out / folder / b["path"]).is_file(), b["path"]
                assert f'"{folder}/{b["path"]}"' in page
    # Datasets before Studies, ordered by 'order' inside a group; the TOC links to all
    assert page.index("NSynth-SF") < page.index("Vocal-SF") < page.index("Study X")
    assert all(f'href="#sec-{s["group"].lower()}--{s["id"]}"' in page for s in sections)
    # markup in texts and titles is escaped, the little markdown is rendered
    assert "<script>" not in page and "&lt;explained&gt;" in page
    assert "<strong>sparse</strong>" in page and "<li>one</li>" in page
    assert "0.829" in page and "per_class.bass" in page
    # offline: no external resources, and the provenance footer
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert "genex 0.1.0" in page


def _escape(text: str) -> str:
    import html

    return html.escape(text, quote=True)


def test_section_missing_title_is_named(tmp_path: Path):
    folder = tmp_path / "bad"
    _study_section(folder)
    data = json.loads((folder / "section.json").read_text())
    del data["title"]
    (folder / "section.json").write_text(json.dumps(data))
    out = tmp_path / "report"
    with pytest.raises(SectionError, match=r"bad/section\.json.*missing 'title'"):
        build_report([folder], out, {})
    assert not out.exists()


def test_section_missing_file_is_named(tmp_path: Path):
    folder = _study_section(tmp_path / "study")
    (folder / "sample.wav").unlink()
    out = tmp_path / "report"
    with pytest.raises(SectionError, match=r"section 'study-x'.*'sample\.wav' does not exist"):
        build_report([folder], out, {})
    assert not out.exists()


@pytest.mark.parametrize("overrides, message", [
    ({"blocks": [{"type": "video", "path": "x.mp4"}]}, "type must be one of"),
    ({"blocks": [{"type": "figure", "path": "../secret.png"}]}, "inside the section folder"),
    ({"blocks": [{"type": "table", "columns": ["a", "b"], "rows": [[1]]}]}, "row 0"),
    ({"blocks": [{"type": "text", "txt": "typo"}]}, "missing 'text'"),
    ({"id": "has space"}, "'id' must be"),
    ({"colour": "red"}, "unknown key"),
])
def test_invalid_sections_are_rejected(tmp_path: Path, overrides: dict, message: str):
    folder = _study_section(tmp_path / "study", **overrides)
    with pytest.raises(SectionError, match=message):
        load_section(folder)


def test_duplicate_ids_are_rejected(tmp_path: Path):
    a = _study_section(tmp_path / "a")
    b = _study_section(tmp_path / "b")
    with pytest.raises(SectionError, match="already used"):
        build_report([a, b], tmp_path / "report", {})


def test_report_failure_keeps_previous_output(tmp_path: Path, monkeypatch):
    import genex.pipeline.report.html as report_html

    folder = _study_section(tmp_path / "study")
    out = tmp_path / "report"
    build_report([folder], out, {})
    before = (out / "index.html").read_text()

    def broken(*args, **kwargs):
        raise RuntimeError("template exploded")

    monkeypatch.setattr(report_html, "_render_page", broken)
    with pytest.raises(RuntimeError, match="exploded"):
        build_report([folder], out, {})
    assert (out / "index.html").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report", "study"]


def test_render_text_escapes_and_links():
    html = render_text("a <b> & [docs](https://example.org) `x<y`\n\nnext [bad](javascript:alert(1))")
    assert "&lt;b&gt; &amp;" in html
    assert '<a href="https://example.org">docs</a>' in html
    assert "<code>x&lt;y</code>" in html
    assert 'href="javascript' not in html
    assert html.count("<p>") == 2


def test_the_real_nsynth_dataset_and_the_nsynth_study_share_one_report(nsynth_root: Path, tmp_path: Path):
    """The real dataset's section and the study's both have id 'nsynth': the report of every
    real-data run failed. Ids are qualified by their group now, whatever the sections say."""
    folder = tmp_path / "datasets" / "nsynth"
    summarize(dataset("nsynth"), nsynth_root, folder, PARAMS, seed=3)
    assert json.loads((folder / "section.json").read_text())["id"] == "nsynth"
    study = _study_section(tmp_path / "study", id="nsynth")
    out = tmp_path / "report"
    page = build_report([folder, study], out, {}).read_text()
    assert 'id="sec-datasets--nsynth"' in page and 'id="sec-studies--nsynth"' in page
    assert (out / "datasets" / "nsynth" / "stats.json").is_file()
    assert (out / "studies" / "nsynth" / "metrics.json").is_file()


def test_one_id_in_two_groups_is_two_sections_and_twice_in_one_group_an_error(tmp_path: Path):
    a = _study_section(tmp_path / "a", id="same", group="Datasets")
    b = _study_section(tmp_path / "b", id="same", group="Studies")
    page = build_report([a, b], tmp_path / "report", {}).read_text()
    assert page.count('<section id="sec-') == 2
    c = _study_section(tmp_path / "c", id="same", group="Studies")
    with pytest.raises(SectionError, match=r"c/section\.json: id 'same' is already used in group "
                                           r"'Studies' by .*b/section\.json"):
        build_report([a, b, c], tmp_path / "report2", {})


@pytest.mark.parametrize("group", ["Studies", "studies!", "a b", "★"])
def test_group_slugs_are_folder_names_and_anchors_are_unambiguous(group):
    from genex.pipeline.report.html import Section, group_slug

    slug = group_slug(group)
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", slug)
    section = Section(Path("."), "x--y", "t", group, 0, [])
    assert section.anchor == f"sec-{slug}--x--y" and section.folder_name == f"{slug}/x--y"


def test_images_carry_their_pixel_size(tmp_path: Path):
    """Lazy images without a size grow the page while it scrolls (13,061 -> 24,729 px)."""
    from PIL import Image

    folder = _study_section(tmp_path / "study")
    Image.new("RGB", (640, 480), "blue").save(folder / "plots" / "mask.png")
    (folder / "wide.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 300 150"/>')
    data = json.loads((folder / "section.json").read_text())
    data["blocks"].append({"type": "figure", "path": "wide.svg"})
    (folder / "section.json").write_text(json.dumps(data))
    page = build_report([folder], tmp_path / "report", {}).read_text()
    assert re.search(r'<img src="studies/study-x/plots/mask.png" width="640" height="480"', page)
    assert re.search(r'<img src="studies/study-x/wide.svg" width="300" height="150"', page)


def test_an_unreadable_image_is_named(tmp_path: Path):
    folder = _study_section(tmp_path / "study")
    (folder / "plots" / "mask.png").write_bytes(b"not a png")
    with pytest.raises(SectionError, match=r"mask\.png: not a readable image"):
        build_report([folder], tmp_path / "report", {})
    assert not (tmp_path / "report").exists()


def test_every_table_scrolls_in_its_own_box(tmp_path: Path):
    page = build_report([_study_section(tmp_path / "study")], tmp_path / "report", {}).read_text()
    tables = page.count("<table")
    assert tables == 2  # the study's table and the metrics listing
    assert len(re.findall(r'<div class="table-scroll"[^>]*>\s*<table', page)) == tables
    assert re.search(r"\.table-scroll\s*\{[^}]*overflow-x:\s*auto", page)


def test_numbers_in_a_column_share_their_decimals(tmp_path: Path):
    """One formatter: 68.90 under 76.36 (not 68.9), 71.10 beside 70.84, ints of a float
    column padded alike, int-only and text columns left as they are."""
    from genex.pipeline.report.html import column_decimals, format_cell

    assert column_decimals([76.36, 68.9, None, "–"]) == 2
    assert column_decimals([0.829, 1, 0.0]) == 3
    assert column_decimals([0.5652, 1.953]) == 4
    assert column_decimals([1e-7, 2.0]) == 4 and column_decimals([12345.6, 2e9]) == 0
    assert column_decimals([21, 32]) is None and column_decimals(["a", True]) is None
    assert format_cell(1234.5) == "1,234" and format_cell(0.12345) == "0.1235"
    assert format_cell(float("nan")) == "nan" and format_cell(True) == "true"
    folder = _study_section(tmp_path / "study")
    data = json.loads((folder / "section.json").read_text())
    data["blocks"][1] = {"type": "table", "columns": ["method", "F1 (ours)", "F1 (paper)", "rank"],
                         "rows": [["GRU", 72.08, 70.84, 1], ["LSTM", 71.49, 71.1, 2],
                                  ["CNN", 70.5, 71.6, 3], ["none", None, 76, 4]]}
    (folder / "section.json").write_text(json.dumps(data))
    page = build_report([folder], tmp_path / "report", {}).read_text()
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", page.split("<tbody>")[1].split("</tbody>")[0])
    assert cells == ["GRU", "72.08", "70.84", "1", "LSTM", "71.49", "71.10", "2",
                     "CNN", "70.50", "71.60", "3", "none", "–", "76.00", "4"]


def test_a_silent_vocal_example_says_why():
    """vocal/minimise_C3_0.wav was silent with no word on the page: its mel lies hundreds of
    standard deviations below the data, so it clips to -6 σ everywhere. The page says so."""
    from genex.studies.vocal.report import AUDIO_CLIP, audio_note, audio_stats

    std = np.full(80, 2.9)
    silent = audio_stats(np.full((80, 115), -600.0), std)
    assert silent["share_clipped"] == 1.0 and silent["mel_min"] == -600.0
    assert silent["median_level_db"] == pytest.approx(-AUDIO_CLIP * 2.9 * 20 / np.log(10))
    note = audio_note("minimise_C3_0", silent, 809.4, 128, ranked_last=True)
    assert "`minimise_C3_0.wav` is silent" in note and "809.4" in note and "11.3" in note
    assert "ranks this configuration last" in note
    loud = np.zeros((80, 115))
    loud[:20] = 20.0
    assert "partly clipped" in audio_note("maximise_C3_0", audio_stats(loud, std), None, 128)
    assert audio_note("minimise_C1_0", audio_stats(np.zeros((80, 115)), std), 10.0, 128) is None
