"""Dataset summaries: statistics, one figure and a few audio examples per dataset.

``genex summarize <dataset> --root DIR --out DIR`` calls :func:`summarize`, which writes a
*section folder* (see :mod:`genex.pipeline.report.html` for the format) with

- ``stats.json``: numbers only, sorted keys, no timestamps (DVC tracks it as metrics);
- ``section.json``: a short text, tables of the statistics, one figure and audio examples;
- the figure (``spectrogram.png`` or, for radio maps, ``radio_maps.png``) and the wavs.

Each study summarises its own datasets (``genex.studies.<study>.summary``, named by its
registry entry) with the helpers here; embedded and real datasets share a reader, so
``nsynth-sf`` and ``nsynth`` are summarised by the same code; only the text differs.
"""

from __future__ import annotations

import importlib
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from genex.pipeline.report.figures import pyplot, save_figure
from genex.pipeline import atomic_dir, read_json, write_json

SPLITS = ("train", "valid", "test")
SPLIT_ALIASES = {"val": "valid", "validation": "valid"}
DEFAULT_PARAMS = {"examples_per_dataset": 3, "spectrogram_seconds": 4.0, "example_seconds": 10.0}


@dataclass
class Summary:
    """What one dataset summariser produces: numbers for stats.json and report blocks."""

    stats: dict[str, Any]
    blocks: list[dict[str, Any]] = field(default_factory=list)


# ---------------------------------------------------------------------------- entry point

def summarize(dataset, root: Path, out: Path, params: dict, seed: int) -> dict:
    """Write the section folder of ``dataset`` (read from ``root``) to ``out``, atomically.

    ``dataset`` is a study's dataset descriptor (:class:`genex.studies.Dataset`: name, title,
    description, order and the ``"module:function"`` of its summariser). ``params`` is the
    config's ``report`` section (``examples_per_dataset``, ``spectrogram_seconds``,
    ``example_seconds``); missing keys take their defaults. Examples are picked with
    ``numpy.random.default_rng(seed)``. Returns the statistics.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: dataset folder of {dataset.name} not found")
    module, _, function = dataset.summarize.partition(":")
    summarizer: Callable[[Path, Path, dict, np.random.Generator], Summary] = getattr(
        importlib.import_module(module), function)
    options = {**DEFAULT_PARAMS, **(params or {})}
    rng = np.random.default_rng(seed)
    with atomic_dir(out) as tmp:
        summary = summarizer(root, tmp, options, rng)
        stats = {**summary.stats, **_storage_stats(root)}
        write_json(tmp / "stats.json", stats)
        seconds = _render_seconds(root)
        timing = [] if seconds is None else [
            {"type": "text", "text": f"Rendered on this machine in {seconds:.1f} s."}]
        blocks = [{"type": "text", "text": dataset.description + f" Source: {dataset.source}."},
                  *summary.blocks, *timing,
                  {"type": "metrics", "path": "stats.json", "caption": "All statistics"}]
        # the id may equal a study's (real nsynth): the report qualifies ids by their group
        write_json(tmp / "section.json", {"id": dataset.name, "title": dataset.title,
                                          "group": "Datasets", "order": dataset.order,
                                          "blocks": blocks})
    return stats


# ---------------------------------------------------------------------------- audio helpers

def audio_blocks(paths, captions: list[str], out: Path, params: dict,
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
        name = f"example{i + 1}_{safe_name(Path(path).stem)}.wav"
        _copy_excerpt(Path(path), out / name, start, float(params["example_seconds"]))
        blocks.append({"type": "audio", "path": name, "caption": caption})
    return blocks


def _copy_excerpt(src: Path, dst: Path, start: float, max_seconds: float) -> None:
    """Copy a wav as is when it is short enough, else write the excerpt as 16-bit PCM."""
    import soundfile as sf

    from genex.pipeline import write_wav

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


def audio_seconds(path: Path) -> float:
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except RuntimeError as err:
        raise ValueError(f"{path}: cannot read audio ({err})") from None
    return info.frames / info.samplerate


def audio_rate(path: Path) -> int:
    import soundfile as sf

    return int(sf.info(str(path)).samplerate)


# ---------------------------------------------------------------------------- small helpers



def pick_rows(df, n: int, rng: np.random.Generator):
    """``n`` distinct rows in a seed-determined order (``df`` must be sorted already)."""
    n = min(int(n), len(df))
    return df.iloc[sorted(rng.choice(len(df), size=n, replace=False))] if n else df.iloc[:0]


def one_per_group(df, column: str, n: int, rng: np.random.Generator):
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


def canonical_splits(df):
    """Readers name the validation split 'valid', 'val' or 'validation'; the report says 'valid'."""
    if df is None or "split" not in getattr(df, "columns", ()):
        return df
    return df.assign(split=df["split"].astype(str).replace(SPLIT_ALIASES))


def ordered_splits(column) -> list[str]:
    present = set(column.astype(str))
    return [s for s in SPLITS if s in present] + sorted(present - set(SPLITS))


def single_rate(df, root: Path, missing_ok: bool = False, mixed_ok: bool = False) -> int | list[int] | None:
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


def require_rows(df, root: Path, what: str) -> None:
    if df is None or len(df) == 0:
        raise ValueError(f"{root}: no {what} found")


def present(value) -> bool:
    return value is not None and not (isinstance(value, float) and np.isnan(value)) \
        and str(value) != ""


def resolve(root: Path, path) -> Path:
    path = Path(path)
    return path if path.is_absolute() else root / path


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)[:60] or "audio"


def rounded(value, digits: int = 4) -> float:
    return round(float(value), digits)


def _storage_stats(root: Path) -> dict:
    """Size on disk (MB, file sizes summed)."""
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    return {"size_mb": rounded(size / 1e6, 2)}


def _render_seconds(root: Path) -> float | None:
    """Render time from the renderer's genex.json: shown in the report, kept out of
    stats.json, because metrics must be identical for identical inputs."""
    if not (root / "genex.json").is_file():
        return None
    seconds = (read_json(root / "genex.json").get("summary") or {}).get("render_seconds")
    return None if seconds is None else float(seconds)
