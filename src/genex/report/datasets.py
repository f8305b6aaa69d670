"""Dataset summaries: statistics, one figure and a few audio examples per dataset.

``genex summarize <dataset> --root DIR --out DIR`` calls :func:`summarize`, which writes a
*section folder* (see :mod:`genex.report.html` for the format) with

- ``stats.json``: numbers only, sorted keys, no timestamps (DVC tracks it as metrics);
- ``section.json``: a short text, tables of the statistics, one figure and audio examples;
- the figure (``spectrogram.png`` or, for radio maps, ``radio_maps.png``) and the wavs.

Embedded and real datasets share a reader, so ``nsynth-sf`` and ``nsynth`` are summarised by
the same code; only the text differs. Readers are imported lazily, inside the functions,
so that this module imports without them.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from genex.report.figures import pyplot, save_figure
from genex.utils import atomic_dir, read_json, write_json

# dataset name -> (kind of summary, source, order in the report's "Datasets" group)
DATASETS: dict[str, tuple[str, str, int]] = {
    "nsynth-sf": ("nsynth", "embedded", 10),
    "nsynth": ("nsynth", "real", 11),
    "piano-sf": ("piano", "embedded", 20),
    "maestro": ("piano", "real", 21),
    "maps": ("piano", "real", 22),
    "vocal-sf": ("vocal", "embedded", 30),
    "jamendo": ("vocal", "real", 31),
    "radio-sim": ("radio", "embedded", 40),
    "radiomapseer": ("radio", "real", 41),
}

TITLES = {
    "nsynth-sf": "NSynth-SF (embedded single notes)",
    "nsynth": "NSynth (real)",
    "piano-sf": "Piano-SF (embedded piano pieces)",
    "maestro": "MAESTRO (real)",
    "maps": "MAPS (real)",
    "vocal-sf": "Vocal-SF (embedded songs)",
    "jamendo": "Jamendo (real)",
    "radio-sim": "Radio-Sim (embedded radio maps)",
    "radiomapseer": "RadioMapSeer (real)",
}

DESCRIPTIONS = {
    "nsynth-sf": (
        "Single notes (4 s, note held 3 s) of the 11 NSynth instrument families, rendered on "
        "this machine with FluidSynth from the General MIDI soundfonts Debian ships "
        "(FluidR3_GM, TimGM6mb, MuseScore_General), several GM programs per family. As in "
        "NSynth, an *instrument* is one program in one soundfont, and the valid and test "
        "instruments are unseen in training. Unlike NSynth it has far fewer instruments (tens, "
        "not a thousand), every note is a soundfont sample (NSynth's electronic and synthetic "
        "sources are stood in for by GM's electric and synth programs), and there are no "
        "quality annotations."
    ),
    "nsynth": (
        "NSynth (Engel et al. 2017): 305,979 four-second notes at 16 kHz from 1,006 "
        "instruments in 11 families, split by instrument. CC BY 4.0."
    ),
    "piano-sf": (
        "Polyphonic piano pieces rendered with several piano programs and soundfonts, which "
        "play the role of MAPS's *instruments*, plus isolated notes per key (as MAPS's ISOL "
        "set). The MIDI ground truth is exact. Unlike MAPS, there are no real recordings "
        "(no Disklavier in a room): the test instruments are held-out soundfonts instead."
    ),
    "maestro": (
        "MAESTRO (Hawthorne et al. 2019): virtuosic piano performances on a Disklavier with "
        "aligned MIDI, split by composition."
    ),
    "maps": (
        "MAPS (Emiya et al. 2010): synthesised and Disklavier piano recordings with MIDI "
        "ground truth, nine instruments; trained on synthesised pieces, tested on the "
        "Disklavier sets ENSTDkCl and ENSTDkAm."
    ),
    "vocal-sf": (
        "Songs with and without a voice-like lead (GM choir and voice programs) over "
        "accompaniment, rendered with FluidSynth, with frame-exact *sing*/*nosing* labels "
        "in Jamendo's `.lab` format. Unlike Jamendo, the 'voice' is a sampled instrument, not "
        "a singer with lyrics, so a detector trained on it learns a simpler concept."
    ),
    "jamendo": (
        "The Jamendo corpus (Ramona et al. 2008): 93 Creative-Commons songs with "
        "*sing*/*nosing* annotations, split into jam_train, jam_valid and jam_test."
    ),
    "radio-sim": (
        "Procedurally generated cities and a simple propagation simulator (line of sight, "
        "path loss, shadowing and diffraction around buildings) written in the RadioMapSeer "
        "layout: city maps, one transmitter per image and the resulting gain map. Unlike "
        "RadioMapSeer, whose gain maps come from a dominant-path model on real OpenStreetMap "
        "cities, both the cities and the physics here are simplified."
    ),
    "radiomapseer": (
        "RadioMapSeer (Levie et al. 2021): 700 city maps from OpenStreetMap with 80 "
        "transmitters each, 256x256 gain maps from several simulators."
    ),
}

SPLITS = ("train", "valid", "test")
SPLIT_ALIASES = {"val": "valid", "validation": "valid"}
DEFAULT_PARAMS = {"examples_per_dataset": 3, "spectrogram_seconds": 4.0, "example_seconds": 10.0}


@dataclass
class Summary:
    """What one dataset summariser produces: numbers for stats.json and report blocks."""

    stats: dict[str, Any]
    blocks: list[dict[str, Any]] = field(default_factory=list)


# ---------------------------------------------------------------------------- entry point

def summarize(dataset: str, root: Path, out: Path, params: dict, seed: int) -> dict:
    """Write the section folder of ``dataset`` (read from ``root``) to ``out``, atomically.

    ``params`` is the config's ``report`` section (``examples_per_dataset``,
    ``spectrogram_seconds``, ``example_seconds``); missing keys take their defaults.
    Examples are picked with ``numpy.random.default_rng(seed)``. Returns the statistics.
    """
    if dataset not in DATASETS:
        raise ValueError(f"summarize: unknown dataset {dataset!r}; known: {sorted(DATASETS)}")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: dataset folder of {dataset} not found")
    kind, source, order = DATASETS[dataset]
    options = {**DEFAULT_PARAMS, **(params or {})}
    rng = np.random.default_rng(seed)
    with atomic_dir(out) as tmp:
        summary = SUMMARIZERS[kind](root, tmp, options, rng)
        stats = {**summary.stats, **_storage_stats(root)}
        write_json(tmp / "stats.json", stats)
        seconds = _render_seconds(root)
        timing = [] if seconds is None else [
            {"type": "text", "text": f"Rendered on this machine in {seconds:.1f} s."}]
        blocks = [{"type": "text", "text": DESCRIPTIONS[dataset] + f" Source: {source}."},
                  *summary.blocks, *timing,
                  {"type": "metrics", "path": "stats.json", "caption": "All statistics"}]
        # "dataset-": the real nsynth dataset and the nsynth study each have a section
        write_json(tmp / "section.json", {"id": f"dataset-{dataset}", "title": TITLES[dataset],
                                          "group": "Datasets", "order": order,
                                          "blocks": blocks})
    return stats


# ---------------------------------------------------------------------------- NSynth

def summarize_nsynth(root: Path, out: Path, params: dict, rng: np.random.Generator) -> Summary:
    """Notes and instruments per split and family; a spectrogram; one note per family."""
    from genex.data.nsynth import read_nsynth

    df = _canonical_splits(read_nsynth(root))
    _require_rows(df, root, "NSynth notes")
    df = df.assign(audio_path=[_resolve(root, p) for p in df["audio_path"]])
    df = df.sort_values("audio_path", kind="stable").reset_index(drop=True)
    splits = _ordered_splits(df["split"])
    families = sorted(df["instrument_family_str"].unique())
    note_seconds = _audio_seconds(df["audio_path"].iloc[0])  # NSynth notes all have one length

    stats: dict[str, Any] = {
        "notes": len(df),
        "instruments": int(df["instrument_str"].nunique()),
        "hours": _round(len(df) * note_seconds / 3600),
        "sample_rate": _single_rate(df, root),
        "pitch": {"min": int(df["pitch"].min()), "max": int(df["pitch"].max())},
        "velocities": int(df["velocity"].nunique()),
        "splits": {s: {"notes": int((df["split"] == s).sum()),
                       "instruments": int(df.loc[df["split"] == s, "instrument_str"].nunique())}
                   for s in splits},
        "families": {f: {"notes": int((df["instrument_family_str"] == f).sum()),
                         "instruments": int(df.loc[df["instrument_family_str"] == f,
                                                   "instrument_str"].nunique())}
                     for f in families},
        "sources": {str(k): int(v) for k, v in df["instrument_source_str"].value_counts().items()},
    }
    by_family = df.groupby(["instrument_family_str", "split"]).size()
    table = {"type": "table", "caption": "Notes per family and split",
             "columns": ["family", *splits, "instruments"],
             "rows": [[f, *[int(by_family.get((f, s), 0)) for s in splits],
                       stats["families"][f]["instruments"]] for f in families]}
    table["rows"].append(["all", *[stats["splits"][s]["notes"] for s in splits],
                          stats["instruments"]])

    picks = _one_per_group(df, "instrument_family_str", params["examples_per_dataset"], rng)
    captions = [f"{r.instrument_family_str}: {r.note_str} (pitch {int(r.pitch)}, "
                f"velocity {int(r.velocity)}, {r.split})" for r in picks.itertuples()]
    blocks = [table, *_audio_blocks(picks["audio_path"], captions, out, params)]
    return Summary(stats, blocks)


# ---------------------------------------------------------------------------- piano

def summarize_piano(root: Path, out: Path, params: dict, rng: np.random.Generator) -> Summary:
    """Pieces, recordings and hours per split and instrument; a spectrogram; piece excerpts."""
    from genex.data.piano import read_piano

    df = _canonical_splits(read_piano(root))
    _require_rows(df, root, "piano recordings")
    # MAESTRO's MIDI-only variant lists where the audio would be: keep only files that exist
    df = df.assign(audio_path=[_resolve(root, p) if _present(p) and _resolve(root, p).is_file()
                               else None for p in df["audio_path"]])
    df = df.sort_values("recording", kind="stable").reset_index(drop=True)
    splits = _ordered_splits(df["split"])
    pieces = df[df["kind"] == "piece"]
    isolated = df[df["kind"] == "isolated"]
    instruments = sorted(df["instrument"].astype(str).unique())

    def split_stats(s: str) -> dict:
        part = df[df["split"] == s]
        return {"recordings": len(part),
                "pieces": int((part["kind"] == "piece").sum()),
                "isolated_notes": int((part["kind"] == "isolated").sum()),
                "instruments": int(part["instrument"].nunique()),
                "hours": _round(part["duration"].sum() / 3600)}

    stats: dict[str, Any] = {
        "recordings": len(df),
        "pieces": len(pieces),
        "distinct_pieces": int(pieces["piece"].nunique()),
        "isolated_notes": len(isolated),
        "hours": _round(df["duration"].sum() / 3600),
        "piece_seconds": {"min": _round(pieces["duration"].min(), 2) if len(pieces) else 0.0,
                          "max": _round(pieces["duration"].max(), 2) if len(pieces) else 0.0},
        "splits": {s: split_stats(s) for s in splits},
        "instruments": {i: {"recordings": int((df["instrument"].astype(str) == i).sum()),
                            "hours": _round(df.loc[df["instrument"].astype(str) == i,
                                                   "duration"].sum() / 3600)}
                        for i in instruments},
    }
    sr = _single_rate(df, root, missing_ok=True, mixed_ok=True)
    if sr is not None:
        stats["sample_rate"] = sr
    table = {"type": "table", "caption": "Recordings per split",
             "columns": ["split", "pieces", "isolated notes", "instruments", "hours"],
             "rows": [[s, v["pieces"], v["isolated_notes"], v["instruments"], v["hours"]]
                      for s, v in stats["splits"].items()]}
    by_inst = df.groupby(["instrument", "split"]).size()
    inst_table = {"type": "table", "caption": "Recordings per instrument and split",
                  "columns": ["instrument", *splits],
                  "rows": [[i, *[int(by_inst.get((i, s), 0)) for s in splits]]
                           for i in sorted(df["instrument"].unique())]}
    blocks: list[dict] = [table, inst_table]

    with_audio = pieces[pieces["audio_path"].notna()]
    if with_audio.empty:  # e.g. MAESTRO's MIDI-only variant
        blocks.append({"type": "text", "text": "No audio in this dataset: no examples."})
        return Summary(stats, blocks)
    picks = _one_per_group(with_audio, "instrument", params["examples_per_dataset"], rng)
    captions = [f"{r.piece} on {r.instrument} ({r.split})" for r in picks.itertuples()]
    blocks += _audio_blocks(picks["audio_path"], captions, out, params)
    return Summary(stats, blocks)


# ---------------------------------------------------------------------------- vocal

def summarize_vocal(root: Path, out: Path, params: dict, rng: np.random.Generator) -> Summary:
    """Songs, hours and the share of sung time per split; a labelled spectrogram; excerpts."""
    from genex.data.vocal import read_lab, read_vocal

    df = _canonical_splits(read_vocal(root))
    _require_rows(df, root, "songs")
    df = df.assign(audio_path=[_resolve(root, p) for p in df["audio_path"]],
                   lab_path=[_resolve(root, p) for p in df["lab_path"]])
    df = df.sort_values("song", kind="stable").reset_index(drop=True)
    labs = {row.song: read_lab(row.lab_path) for row in df.itertuples()}
    sung = {song: _label_seconds(lab, "sing") for song, lab in labs.items()}
    df = df.assign(sung=[sung[s] for s in df["song"]])
    splits = _ordered_splits(df["split"])
    segments = {label: int(sum((lab["label"] == label).sum() for lab in labs.values()))
                for label in ("sing", "nosing")}

    def split_stats(part) -> dict:
        total = float(part["duration"].sum())
        return {"songs": len(part), "hours": _round(total / 3600),
                "sung_share": _round(part["sung"].sum() / total if total else 0.0)}

    stats: dict[str, Any] = {
        **split_stats(df),
        "sample_rate": (_single_rate(df, root, missing_ok=True, mixed_ok=True)
                        or _audio_rate(df["audio_path"].iloc[0])),
        "splits": {s: split_stats(df[df["split"] == s]) for s in splits},
        "labels": {label: {"segments": segments[label],
                           "hours": _round(sum(_label_seconds(lab, label) for lab in labs.values())
                                           / 3600)}
                   for label in ("sing", "nosing")},
        "songs_without_voice": int((df["sung"] == 0).sum()),
    }
    table = {"type": "table", "caption": "Songs per split",
             "columns": ["split", "songs", "hours", "share of sung time"],
             "rows": [[s, v["songs"], v["hours"], v["sung_share"]]
                      for s, v in stats["splits"].items()]}
    table["rows"].append(["all", stats["songs"], stats["hours"], stats["sung_share"]])

    voiced = df[df["sung"] > 0]
    picks = _pick_rows(voiced if len(voiced) else df, params["examples_per_dataset"], rng)
    starts = [_first_sung(labs[s]) for s in picks["song"]]
    captions = [f"{r.song} ({r.split}), from {start:.1f} s" for r, start in
                zip(picks.itertuples(), starts)]
    shade = [labs[s] for s in picks["song"]]
    blocks = [table, *_audio_blocks(picks["audio_path"], captions, out, params,
                                    starts=starts, shade=shade)]
    return Summary(stats, blocks)


def _label_seconds(lab, label: str) -> float:
    part = lab[lab["label"] == label]
    return float((part["end"] - part["start"]).sum())


def _first_sung(lab) -> float:
    """Start an excerpt a second before the voice enters, so that it is heard."""
    sung = lab[lab["label"] == "sing"]
    return max(0.0, float(sung["start"].min()) - 1.0) if len(sung) else 0.0


# ---------------------------------------------------------------------------- radio

def summarize_radio(root: Path, out: Path, params: dict, rng: np.random.Generator) -> Summary:
    """Maps and transmitters per split, building and gain statistics, a map/TX/gain figure."""
    from genex.data.radio import RadioMapSeer
    from genex.utils import progress

    ds = RadioMapSeer(root, simulator=params.get("simulator", "DPM"))
    maps = sorted(ds.maps)
    if not maps:
        raise ValueError(f"{root}: no city maps found")
    split = {SPLIT_ALIASES.get(k, k): list(v) for k, v in ds.split(seed=42).items()}
    n_tx = {m: len(ds.transmitters(m)) for m in maps}
    # one (map, first TX) per map: building cover is per map, gain varies with the TX
    first = [ds.load(m, sorted(ds.transmitters(m))[0]) for m in progress(maps, "radio maps")]
    height, width = first[0]["buildings"].shape[-2:]
    stats: dict[str, Any] = {
        "maps": len(maps),
        "radio_maps": int(sum(n_tx.values())),
        "transmitters_per_map": {"min": min(n_tx.values()), "max": max(n_tx.values())},
        "image_size": {"height": int(height), "width": int(width)},
        "building_fraction": _round(np.mean([(x["buildings"] > 0).mean() for x in first])),
        "gain_mean": _round(np.mean([x["gain"].mean() for x in first])),
        "splits": {s: {"maps": len(split[s]), "radio_maps": int(sum(n_tx[m] for m in split[s]))}
                   for s in _ordered_splits(pd.Series(list(split)))},
    }
    table = {"type": "table", "caption": "Maps per split",
             "columns": ["split", "maps", "radio maps (map x TX)"],
             "rows": [[s, v["maps"], v["radio_maps"]] for s, v in stats["splits"].items()]}
    table["rows"].append(["all", stats["maps"], stats["radio_maps"]])

    chosen = [maps[i] for i in sorted(rng.choice(len(maps), size=min(2, len(maps)),
                                                 replace=False))]
    examples = [(m, ds.transmitters(m)[int(rng.integers(n_tx[m]))]) for m in chosen]
    loaded = [ds.load(m, tx) for m, tx in examples]
    _radio_figure(examples, loaded, out / "radio_maps.png")
    names = ", ".join(f"map {m} / TX {tx}" for m, tx in examples)
    figure = {"type": "figure", "path": "radio_maps.png",
              "caption": f"City map, transmitter and gain map ({params.get('simulator', 'DPM')})"
                         f" for {names}"}
    return Summary(stats, [table, figure])


def _radio_figure(examples: list, loaded: list[dict], path: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(len(loaded), 3, figsize=(9, 3 * len(loaded)), squeeze=False)
    for row, ((m, tx), x) in enumerate(zip(examples, loaded)):
        panels = [("city map", x["buildings"], "gray_r"), ("transmitter", x["tx"], "gray_r"),
                  ("gain", x["gain"], "viridis")]
        for ax, (name, img, cmap) in zip(axes[row], panels):
            ax.imshow(img, cmap=cmap, interpolation="nearest")
            if name == "transmitter":  # one pixel is invisible at this scale: circle it
                ys, xs = np.nonzero(img)
                ax.imshow(x["buildings"], cmap="gray_r", alpha=0.25, interpolation="nearest")
                ax.scatter(xs, ys, s=80, facecolors="none", edgecolors="red")
            ax.set_title(f"map {m}, TX {tx}: {name}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    save_figure(fig, path)


# ---------------------------------------------------------------------------- audio helpers

def _audio_blocks(paths, captions: list[str], out: Path, params: dict,
                  starts: list[float] | None = None, shade: list | None = None) -> list[dict]:
    """A spectrogram of the first example, then the examples cut to ``example_seconds``."""
    paths = list(paths)
    if not paths:
        return []
    starts = starts or [0.0] * len(paths)
    blocks = []
    seconds = float(params["spectrogram_seconds"])
    _spectrogram_figure(paths[0], out / "spectrogram.png", starts[0], seconds,
                        shade[0] if shade else None)
    blocks.append({"type": "figure", "path": "spectrogram.png",
                   "caption": f"Log-mel spectrogram, {seconds:g} s of {captions[0]}"
                              + (" (green bar: sung)" if shade else "")})
    for i, (path, caption, start) in enumerate(zip(paths, captions, starts)):
        name = f"example{i + 1}_{_safe_name(Path(path).stem)}.wav"
        _copy_excerpt(Path(path), out / name, start, float(params["example_seconds"]))
        blocks.append({"type": "audio", "path": name, "caption": caption})
    return blocks


def _copy_excerpt(src: Path, dst: Path, start: float, max_seconds: float) -> None:
    """Copy a wav as is when it is short enough, else write the excerpt as 16-bit PCM."""
    import soundfile as sf

    from genex.utils import write_wav

    try:
        info = sf.info(str(src))
    except RuntimeError as err:
        raise ValueError(f"{src}: cannot read audio ({err})") from None
    first = int(round(start * info.samplerate))
    frames = int(round(max_seconds * info.samplerate))
    if first == 0 and info.frames <= frames and src.suffix.lower() == ".wav":
        shutil.copyfile(src, dst)
        return
    audio, sr = sf.read(str(src), start=first, frames=frames, dtype="float32", always_2d=True)
    write_wav(dst, audio.mean(axis=1), sr)


def _spectrogram_figure(src: Path, path: Path, start: float, seconds: float, lab=None) -> None:
    """Log-mel spectrogram of ``seconds`` of ``src`` from ``start``; mark sung regions."""
    import soundfile as sf

    info = sf.info(str(src))
    audio, sr = sf.read(str(src), start=int(round(start * info.samplerate)),
                        frames=int(round(seconds * info.samplerate)), dtype="float32",
                        always_2d=True)
    audio = audio.mean(axis=1)
    hop = 256 if sr <= 24000 else 512
    db = log_mel_spectrogram(audio, sr, hop)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 3.2))
    duration = len(audio) / sr
    image = ax.imshow(db, origin="lower", aspect="auto", cmap="magma", vmin=-80.0, vmax=0.0,
                      extent=(start, start + duration, 0, db.shape[0]))
    hz = [f for f in (200, 500, 1000, 2000, 4000, 8000, 16000) if f < sr / 2]
    edges = _mel_to_hz(np.linspace(_hz_to_mel(MEL_FMIN), _hz_to_mel(sr / 2), db.shape[0] + 2))
    ax.set_yticks(np.interp(hz, edges[1:-1], np.arange(db.shape[0])))
    ax.set_yticklabels([f"{f / 1000:g}k" if f >= 1000 else str(f) for f in hz])
    ax.set_xlabel("time (s)")
    ax.set_ylabel("frequency (Hz, mel scale)")
    if lab is not None:
        for row in lab[lab["label"] == "sing"].itertuples():
            lo, hi = max(row.start, start), min(row.end, start + duration)
            if hi > lo:
                # a bar along the top: shading would vanish on the dark spectrogram
                ax.axvspan(lo, hi, ymin=0.96, ymax=1.0, color="lime", lw=0)
    fig.colorbar(image, ax=ax, label="dB")
    ax.set_title(Path(src).name, fontsize=9)
    save_figure(fig, path)


MEL_FMIN = 20.0


def log_mel_spectrogram(audio: np.ndarray, sr: int, hop: int, n_mels: int = 128) -> np.ndarray:
    """Power mel spectrogram in dB re its maximum, floored at -80 dB: [n_mels, frames].

    Plain numpy (Hann STFT with n_fft = 4 hop, HTK mel triangles from 20 Hz to Nyquist),
    because importing librosa costs seconds, more than a whole summary of a tiny dataset.
    """
    n_fft = 4 * hop
    padded = np.pad(np.asarray(audio, np.float64), n_fft // 2)
    if len(padded) < n_fft:
        padded = np.pad(padded, (0, n_fft - len(padded)))
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]
    power = np.abs(np.fft.rfft(frames * np.hanning(n_fft), axis=1)) ** 2  # [frames, bins]
    edges = _mel_to_hz(np.linspace(_hz_to_mel(MEL_FMIN), _hz_to_mel(sr / 2), n_mels + 2))
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    weights = np.maximum(0.0, np.minimum((freqs - lower) / (centre - lower),
                                         (upper - freqs) / (upper - centre)))
    mel = weights @ power.T
    db = 10.0 * np.log10(np.maximum(mel, 1e-10))
    return np.maximum(db - db.max(), -80.0)


def _hz_to_mel(hz):
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=float) / 700.0)


def _mel_to_hz(mel):
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=float) / 2595.0) - 1.0)


def _audio_seconds(path: Path) -> float:
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except RuntimeError as err:
        raise ValueError(f"{path}: cannot read audio ({err})") from None
    return info.frames / info.samplerate


def _audio_rate(path: Path) -> int:
    import soundfile as sf

    return int(sf.info(str(path)).samplerate)


# ---------------------------------------------------------------------------- small helpers



def _pick_rows(df, n: int, rng: np.random.Generator):
    """``n`` distinct rows in a seed-determined order (``df`` must be sorted already)."""
    n = min(int(n), len(df))
    return df.iloc[sorted(rng.choice(len(df), size=n, replace=False))] if n else df.iloc[:0]


def _one_per_group(df, column: str, n: int, rng: np.random.Generator):
    """One random row from each of ``n`` random groups: examples that differ audibly."""
    groups = sorted(df[column].astype(str).unique())
    n = min(int(n), len(df))
    chosen = [groups[i] for i in rng.permutation(len(groups))[:n]]
    rows = [int(rng.choice(np.flatnonzero(df[column].astype(str).to_numpy() == g)))
            for g in chosen]
    if len(rows) < n:  # fewer groups than examples: fill with other rows
        rest = np.setdiff1d(np.arange(len(df)), rows)
        rows += [int(i) for i in rng.choice(rest, size=n - len(rows), replace=False)]
    return df.iloc[rows]


def _canonical_splits(df):
    """Readers name the validation split 'valid', 'val' or 'validation'; the report says 'valid'."""
    if df is None or "split" not in getattr(df, "columns", ()):
        return df
    return df.assign(split=df["split"].astype(str).replace(SPLIT_ALIASES))


def _ordered_splits(column) -> list[str]:
    present = set(column.astype(str))
    return [s for s in SPLITS if s in present] + sorted(present - set(SPLITS))


def _single_rate(df, root: Path, missing_ok: bool = False, mixed_ok: bool = False) -> int | list[int] | None:
    """The dataset's sample rate; with ``mixed_ok`` the sorted list when files differ (MAESTRO
    v3 mixes 44.1 and 48 kHz; the features resample each file, the summary reports both)."""
    if "sample_rate" not in df.columns:
        if missing_ok:
            return None
        raise ValueError(f"{root}: reader gave no sample_rate column")
    rates = sorted(int(r) for r in df["sample_rate"].dropna().unique() if r > 0)  # -1: no audio
    if len(rates) > 1:
        if mixed_ok:
            return rates
        raise ValueError(f"{root}: mixed sample rates {rates}")
    return rates[0] if rates else None


def _require_rows(df, root: Path, what: str) -> None:
    if df is None or len(df) == 0:
        raise ValueError(f"{root}: no {what} found")


def _present(value) -> bool:
    return value is not None and not (isinstance(value, float) and np.isnan(value)) \
        and str(value) != ""


def _resolve(root: Path, path) -> Path:
    path = Path(path)
    return path if path.is_absolute() else root / path


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)[:60] or "audio"


def _round(value, digits: int = 4) -> float:
    return round(float(value), digits)


def _storage_stats(root: Path) -> dict:
    """Size on disk (MB, file sizes summed)."""
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    return {"size_mb": _round(size / 1e6, 2)}


def _render_seconds(root: Path) -> float | None:
    """Render time from the renderer's genex.json: shown in the report, kept out of
    stats.json, because metrics must be identical for identical inputs."""
    if not (root / "genex.json").is_file():
        return None
    seconds = (read_json(root / "genex.json").get("summary") or {}).get("render_seconds")
    return None if seconds is None else float(seconds)


SUMMARIZERS: dict[str, Callable[[Path, Path, dict, np.random.Generator], Summary]] = {
    "nsynth": summarize_nsynth,
    "piano": summarize_piano,
    "vocal": summarize_vocal,
    "radio": summarize_radio,
}
