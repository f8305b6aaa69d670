"""Tiny fake datasets in the real datasets' on-disk layouts, for tests of the readers, the
summaries and the workflow on what a user of the ``paper`` profile has on disk.

Each writer takes a folder and returns it; the content is made-up noise and tones (seeded),
only the layout, file formats and sample rates are the real sets'. Written so far:

* NSynth: ``nsynth-{train,valid,test}/examples.json`` + ``audio/<note_str>.wav`` (16 kHz, 4 s)
* MAESTRO v3: ``maestro-v3.0.0.csv``, ``<year>/<name>.midi`` + ``.wav`` at **mixed 44.1 / 48 kHz**
* MAPS: ``<instrument>/MUS/MAPS_MUS-<piece>_<instrument>.{wav,mid,txt}`` and
  ``<instrument>/ISOL/NO/MAPS_ISOL_NO_F_S0_M<pitch>_<instrument>.{wav,mid,txt}``
* RadioMapSeer: ``png/buildings_complete/{m}.png``, ``png/buildings_missing{k}/{v}/{m}.png``,
  ``png/antennas/{m}_{tx}.png``, ``gain/DPM/{m}_{tx}.png`` (256 x 256, 8-bit grey) and
  ``antenna/{m}.json`` ([x, y] = [column, row]); maps numbered from 1, as RadioUNet reads them
* Jamendo (as unpacked by ``genex download jamendo``): ``audio/<song>.{ogg,mp3}`` (44.1 kHz
  stereo, names with spaces, dots and accents), ``labels/<song>.lab`` (``start end sing|nosing``)
  and ``filelists/{train,valid,test}`` (audio file names)

:func:`write_all` writes all five into one folder and returns the ``datasets.<name>.path``
config that reads them in place (the ``paper-smoke`` profile's test and benchmark use it).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

NSYNTH_RATE = 16000


def _wav(path: Path, audio: np.ndarray, rate: int) -> None:
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), audio.astype(np.float32), rate, subtype="PCM_16")


def _tone(pitch: int, seconds: float, rate: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    f0 = 440.0 * 2 ** ((pitch - 69) / 12)
    env = np.exp(-t * 2.0)
    return 0.3 * env * np.sin(2 * np.pi * f0 * t) + 0.01 * rng.standard_normal(len(t))


def nsynth(root: Path, notes_per_split: int = 2, seconds: float = 4.0, seed: int = 0) -> Path:
    """NSynth's layout: one note per family and split up to ``notes_per_split`` (the first
    families), 16 kHz 16-bit mono."""
    from genex.studies.nsynth.data import FAMILIES, SOURCES

    rng = np.random.default_rng(seed)
    for split in ("train", "valid", "test"):
        folder = Path(root) / f"nsynth-{split}"
        examples = {}
        for i in range(notes_per_split):
            family, source, pitch = FAMILIES[i % len(FAMILIES)], SOURCES[i % 3], 60 + i
            instrument = f"{family}_{source}_{split[:2]}{i:03d}"
            note_str = f"{instrument}-{pitch:03d}-100"
            examples[note_str] = {
                "note_str": note_str, "note": len(examples), "pitch": pitch, "velocity": 100,
                "sample_rate": NSYNTH_RATE, "instrument_str": instrument, "instrument": i,
                "instrument_family": FAMILIES.index(family), "instrument_family_str": family,
                "instrument_source": SOURCES.index(source), "instrument_source_str": source,
                "qualities": [0] * 10, "qualities_str": []}
            _wav(folder / "audio" / f"{note_str}.wav", _tone(pitch, seconds, NSYNTH_RATE, rng), NSYNTH_RATE)
        (folder / "examples.json").write_text(json.dumps(examples))
    return Path(root)


def _midi(path: Path, notes: list[tuple[int, float, float]]) -> None:
    """A piano MIDI file of (pitch, onset s, offset s) notes at velocity 80."""
    import pretty_midi

    pm = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(program=0)
    piano.notes = [pretty_midi.Note(velocity=80, pitch=p, start=a, end=b) for p, a, b in notes]
    pm.instruments.append(piano)
    path.parent.mkdir(parents=True, exist_ok=True)
    pm.write(str(path))


def _piece(rng: np.random.Generator, seconds: float) -> list[tuple[int, float, float]]:
    onsets = np.arange(0.1, seconds - 0.5, 0.4)
    return [(int(rng.integers(48, 84)), float(a), float(a) + 0.3) for a in onsets]


def _render(notes, seconds: float, rate: int, rng: np.random.Generator) -> np.ndarray:
    out = 0.005 * rng.standard_normal(int(seconds * rate))
    for pitch, a, b in notes:
        i, j = int(a * rate), int(b * rate)
        out[i:j] += _tone(pitch, (j - i) / rate, rate, rng)[: j - i]
    return out


MAESTRO_PIECES = (  # split, year, canonical title, sample rate: both rates in train and test
    ("train", 2004, "Sonata in C", 44100), ("train", 2018, "Etude in A", 48000),
    ("train", 2006, "Prelude in D", 44100), ("train", 2017, "Waltz in E", 48000),
    ("validation", 2009, "Nocturne in F", 44100),
    ("test", 2011, "Ballade in G", 44100), ("test", 2015, "Mazurka in B", 48000),
)


def maestro(root: Path, seconds: float = 3.0, seed: int = 0) -> Path:
    """MAESTRO v3: ``maestro-v3.0.0.csv`` and ``<year>/<file>.midi`` + ``.wav``, the wavs at
    44.1 and 48 kHz (the real set mixes both, stereo)."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    rows = []
    for i, (split, year, title, rate) in enumerate(MAESTRO_PIECES):
        stem = f"{year}/MIDI-Unprocessed_{i:02d}_R1_{year}_wav--{i + 1}"
        notes = _piece(rng, seconds)
        _midi(Path(root) / f"{stem}.midi", notes)
        mono = _render(notes, seconds, rate, rng)
        _wav(Path(root) / f"{stem}.wav", np.stack([mono, mono], axis=1), rate)
        rows.append({"canonical_composer": "Anon", "canonical_title": title, "split": split,
                     "year": year, "midi_filename": f"{stem}.midi", "audio_filename": f"{stem}.wav",
                     "duration": seconds})
    pd.DataFrame(rows).to_csv(Path(root) / "maestro-v3.0.0.csv", index=False)
    return Path(root)


MAPS_INSTRUMENTS = ("AkPnBcht", "SptkBGCl", "ENSTDkCl")  # the last: a Disklavier (test)


def maps(root: Path, seconds: float = 3.0, isolated: tuple[int, ...] = (60, 64, 67), seed: int = 0) -> Path:
    """MAPS: per instrument ``MUS/`` pieces and ``ISOL/NO/`` single notes (44.1 kHz stereo),
    each with its ``.mid`` and ``.txt`` (OnsetTime OffsetTime MidiPitch)."""
    rng = np.random.default_rng(seed)
    rate = 44100
    pieces = ("bach_846", "chpn_op25_e1", "mz_331_1", "liz_rhap09")
    for k, instrument in enumerate(MAPS_INSTRUMENTS):
        base = Path(root) / instrument
        chosen = pieces[2:] if instrument == "ENSTDkCl" else pieces[:2] + pieces[k % 2 + 2:k % 2 + 3]
        recordings = [(base / "MUS" / f"MAPS_MUS-{p}_{instrument}", _piece(rng, seconds)) for p in chosen]
        recordings += [(base / "ISOL" / "NO" / f"MAPS_ISOL_NO_F_S0_M{p}_{instrument}", [(p, 0.1, 1.0)])
                       for p in isolated]
        for stem, notes in recordings:
            length = seconds if "MUS" in stem.name else 1.5
            mono = _render(notes, length, rate, rng)
            _wav(stem.with_suffix(".wav"), np.stack([mono, mono], axis=1), rate)
            _midi(stem.with_suffix(".mid"), notes)
            stem.with_suffix(".txt").write_text(
                "OnsetTime\tOffsetTime\tMidiPitch\n" + "".join(f"{a:.6f}\t{b:.6f}\t{p}\n" for p, a, b in notes))
    return Path(root)


def radiomapseer(root: Path, maps: int = 4, transmitters: int = 2, size: int = 256, first: int = 1,
                 seed: int = 0) -> Path:
    """RadioMapSeer's layout, maps numbered ``first``.. (the real set: 1..700, 80 TX each)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    png = Path(root) / "png"

    def save(path: Path, image: np.ndarray) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image.astype(np.uint8), mode="L").save(path)

    for m in range(first, first + maps):
        buildings = np.zeros((size, size), np.uint8)
        boxes = []
        for _ in range(6):
            r, c = rng.integers(2, size - size // 4, size=2)
            h, w = rng.integers(2 + size // 32, 2 + size // 8, size=2)
            buildings[r:r + h, c:c + w] = 255
            boxes.append((r, c, h, w))
        save(png / "buildings_complete" / f"{m}.png", buildings)
        for k in (1, 2):
            for version in (1, 2):
                partial = buildings.copy()
                for r, c, h, w in boxes[:k]:
                    partial[r:r + h, c:c + w] = 0
                save(png / f"buildings_missing{k}" / str(version) / f"{m}.png", partial)
        positions = []
        free = np.argwhere(buildings == 0)
        for tx in range(transmitters):
            row, col = (int(v) for v in free[rng.integers(len(free))])
            positions.append([col, row])
            antenna = np.zeros((size, size), np.uint8)
            antenna[row, col] = 255
            save(png / "antennas" / f"{m}_{tx}.png", antenna)
            rows, cols = np.mgrid[0:size, 0:size]
            dist = np.hypot(rows - row, cols - col)
            gain = np.clip(255 - 40 * np.log10(np.maximum(dist, 1.0)) * 2, 0, 255)
            gain[buildings > 0] = 0
            save(Path(root) / "gain" / "DPM" / f"{m}_{tx}.png", gain)
        (Path(root) / "antenna").mkdir(parents=True, exist_ok=True)
        (Path(root) / "antenna" / f"{m}.json").write_text(json.dumps(positions))
    return Path(root)


JAMENDO_RATE = 44100
JAMENDO_SONGS = (  # split, audio file name: Jamendo's "<artist> - <title>" names, ogg and mp3
    ("train", "01 - 01 Les Jardins Japonais.ogg"), ("train", "Arse Tarie - 03 - St. Élan.mp3"),
    ("train", "05 - Elles disent.ogg"), ("valid", "Brad Sucks - Dropping out of school.ogg"),
    ("test", "04 - You Are.mp3"),
)


def _song(sung: list[tuple[float, float]], seconds: float, rate: int, rng: np.random.Generator) -> np.ndarray:
    """A chord pad throughout and a vibrato "voice" (harmonics, formant-like tilt) where sung."""
    t = np.arange(int(seconds * rate)) / rate
    pad = sum(0.05 * np.sin(2 * np.pi * f * t) for f in (110.0, 138.6, 164.8))
    voice = np.zeros_like(t)
    f0 = 220.0 * (1 + 0.01 * np.sin(2 * np.pi * 5.5 * t))
    phase = 2 * np.pi * np.cumsum(f0) / rate
    for a, b in sung:
        inside = (t >= a) & (t < b)
        voice[inside] = sum(0.2 / k * np.sin(k * phase[inside]) for k in range(1, 8))
    return pad + voice + 0.005 * rng.standard_normal(len(t))


def jamendo(root: Path, seconds: float = 4.0, seed: int = 0) -> Path:
    """Jamendo's layout as ``genex download jamendo`` unpacks it: ``audio/`` (ogg and mp3 at
    44.1 kHz stereo, as the corpus), ``labels/<song>.lab`` and ``filelists/<split>``."""
    from genex.studies.vocal.data import song_name, write_lab

    rng = np.random.default_rng(seed)
    root = Path(root)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    (root / "filelists").mkdir(parents=True, exist_ok=True)
    lists: dict[str, list[str]] = {"train": [], "valid": [], "test": []}
    for i, (split, name) in enumerate(JAMENDO_SONGS):
        start = round(float(rng.uniform(0.3, 1.0)), 3)  # each song has both labels
        end = round(float(start + rng.uniform(1.0, seconds - start - 0.5)), 3)
        mono = _song([(start, end)], seconds, JAMENDO_RATE, rng)
        stereo = np.stack([mono, 0.9 * mono], axis=1).astype(np.float32)
        path = root / "audio" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        import soundfile as sf

        if path.suffix == ".mp3":
            sf.write(str(path), stereo, JAMENDO_RATE, format="MP3", subtype="MPEG_LAYER_III")
        else:
            sf.write(str(path), stereo, JAMENDO_RATE, format="OGG", subtype="VORBIS")
        write_lab(root / "labels" / f"{song_name(name)}.lab",
                  [(0.0, start, "nosing"), (start, end, "sing"), (end, seconds, "nosing")])
        lists[split].append(name)
    for split, names in lists.items():
        (root / "filelists" / split).write_text("".join(f"{n}\n" for n in names))
    return root


def write_all(root: Path) -> dict:
    """All five fake datasets under ``root`` (one folder each), as small as the paper profile's
    readers and steps allow; returns ``{"datasets": {name: {"path": folder}}}``, the overlay
    that makes the ``paper`` profile read them in place (MAPS rather than MAESTRO for piano,
    as the paper profile does when ``datasets.maps.path`` is set)."""
    root = Path(root)
    folders = {
        "nsynth": nsynth(root / "nsynth", notes_per_split=11),  # every family in every split
        "maps": maps(root / "MAPS"),
        "maestro": maestro(root / "maestro-v3.0.0"),
        "jamendo": jamendo(root / "jamendo"),
        "radiomapseer": radiomapseer(root / "RadioMapSeer"),
    }
    return {"datasets": {name: {"path": str(folder)} for name, folder in folders.items()}}
