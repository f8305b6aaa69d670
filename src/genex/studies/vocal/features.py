"""Log-mel features of the vocal study (Schlüter & Grill 2015) and their excerpts.

Per song: STFT magnitude (frame 1024 at 22.05 kHz, hop sample_rate / fps = 315 samples,
i.e. 70 fps), 80 mel bands 27.5–8000 Hz, ``log(max(x, 1e-7))``; every band standardised
with the mean and standard deviation of the training songs. An *excerpt* is 115 frames
centred on the frame that labels it. Songs are padded by half an excerpt on either side
with the training mean (0 after standardisation) so every frame of a song is a centre and
frame-level evaluation covers whole songs.

:func:`extract` writes one ``<split>.npz`` per split (``mel [frames, 80]`` of all songs
of the split, padded and concatenated; ``centres`` indices into ``mel``; ``labels`` and
``song`` per centre) plus ``stats.npz`` (mean, std) and ``features.json``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genex.pipeline.io import load_arrays

log = logging.getLogger("genex.vocal")

DEFAULTS: dict = {
    "sample_rate": 22050, "frame": 1024, "fps": 70, "n_mels": 80, "fmin": 27.5,
    "fmax": 8000.0, "excerpt_frames": 115, "pool": [1, 1],
}
LOG_FLOOR = 1e-7


def log_mel(audio: np.ndarray, p: dict) -> np.ndarray:
    """Log-mel magnitudes ``[frames, n_mels]`` (float32) of mono ``audio`` at ``p['sample_rate']``."""
    import librosa

    hop = hop_length(p)
    mel = librosa.feature.melspectrogram(
        y=np.asarray(audio, dtype=np.float32), sr=p["sample_rate"], n_fft=p["frame"],
        hop_length=hop, n_mels=p["n_mels"], fmin=p["fmin"], fmax=p["fmax"], power=1.0)
    return np.log(np.maximum(mel, LOG_FLOOR)).T.astype(np.float32)


def hop_length(p: dict) -> int:
    """Samples between frames: 22050 / 70 = 315."""
    hop = p["sample_rate"] / p["fps"]
    if abs(hop - round(hop)) > 1e-9:
        raise ValueError(f"vocal features: sample_rate / fps must be whole samples, got {hop}")
    return int(round(hop))


def mel_to_audio(mel_std: np.ndarray, mean: np.ndarray, std: np.ndarray, p: dict,
                 n_iter: int = 32) -> np.ndarray:
    """Audio from a standardised log-mel excerpt ``[n_mels, frames]`` (Griffin-Lim).

    Undoes the standardisation and the log first, as the features were computed.
    """
    import librosa

    mag = np.exp(mel_std * std[:, None] + mean[:, None])
    return librosa.feature.inverse.mel_to_audio(
        mag.astype(np.float32), sr=p["sample_rate"], n_fft=p["frame"], hop_length=hop_length(p),
        fmin=p["fmin"], fmax=p["fmax"], power=1.0, n_iter=n_iter)


@dataclass
class SplitFeatures:
    """One split's padded mel matrix and its labelled excerpt centres."""

    mel: np.ndarray      # [frames, n_mels] standardised, songs padded and concatenated
    centres: np.ndarray  # [excerpts] index of each excerpt's centre frame in ``mel``
    labels: np.ndarray   # [excerpts] 1 = sing
    song: np.ndarray     # [excerpts] song index within the split
    songs: list[str]

    def excerpts(self, idx: np.ndarray, frames: int) -> np.ndarray:
        """Excerpts ``[len(idx), 1, n_mels, frames]`` centred on ``centres[idx]``."""
        half = frames // 2
        offsets = np.arange(-half, frames - half)
        rows = self.centres[np.asarray(idx)][:, None] + offsets[None, :]
        return self.mel[rows].transpose(0, 2, 1)[:, None].astype(np.float32)


def load_split(folder: str | os.PathLike, split: str) -> SplitFeatures:
    """Read ``<folder>/<split>.npz`` written by :func:`extract`."""
    path = Path(folder) / f"{split}.npz"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: feature file missing (run `genex vocal features`)")
    z = load_arrays(path, ["mel", "centres", "labels", "song", "songs"])
    return SplitFeatures(z["mel"], z["centres"], z["labels"], z["song"], [str(s) for s in z["songs"]])


def load_stats(folder: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Per-band mean and standard deviation of the training log mels."""
    path = Path(folder) / "stats.npz"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: feature statistics missing (run `genex vocal features`)")
    z = load_arrays(path, ["mean", "std"])
    return z["mean"], z["std"]


def _song_features(row, p: dict, checks: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Log mel and per-frame sing labels of one song (a row of ``read_vocal``); ``checks``:
    the corpus's audio format (:func:`genex.studies.vocal.data.audio_checks`)."""
    from genex.pipeline.audio import read_audio
    from genex.studies.vocal.data import frame_labels, read_lab

    # at least one analysis frame; errors name the file (what librosa.load did not check)
    audio, rate = read_audio(row.audio_path, min_seconds=p["frame"] / p["sample_rate"],
                             **(checks or {"mono_dataset": False}))
    if rate != p["sample_rate"]:
        import librosa

        audio = librosa.resample(audio, orig_sr=rate, target_sr=p["sample_rate"])
    mel = log_mel(audio, p)
    times = np.arange(len(mel)) * hop_length(p) / p["sample_rate"]
    return mel, frame_labels(read_lab(row.lab_path), times)


def extract(root: str | os.PathLike, out: Path, params: dict) -> dict:
    """Compute the features of every song under ``root`` into ``out``; returns a summary."""
    from genex.studies.vocal.data import SPLITS, audio_checks, read_vocal
    from genex.pipeline import progress, write_json

    p = {**DEFAULTS, **params}
    corpus = read_vocal(root)
    checks = audio_checks(root, corpus)
    raw: dict[str, list] = {s: [] for s in SPLITS}
    for row in progress(corpus.itertuples(), desc="log mels", total=len(corpus), unit="song"):
        raw[row.split].append((row.song, *_song_features(row, p, checks)))
    if not raw["train"]:
        raise ValueError(f"{root}: no training songs")
    train = np.concatenate([mel for _, mel, _ in raw["train"]]).astype(np.float64)
    mean, std = train.mean(axis=0), train.std(axis=0)
    std = np.maximum(std, 1e-6)  # a silent band must not divide by zero
    np.savez(out / "stats.npz", mean=mean.astype(np.float32), std=std.astype(np.float32))
    summary = {"params": p, "hop": hop_length(p), "splits": {}}
    for split, songs in raw.items():
        feats = _pack(songs, mean, std, p["excerpt_frames"])
        np.savez(out / f"{split}.npz", mel=feats.mel, centres=feats.centres, labels=feats.labels,
                 song=feats.song, songs=np.array(feats.songs))
        summary["splits"][split] = {"songs": len(songs), "frames": int(len(feats.centres)),
                                    "sing_share": float(feats.labels.mean()) if len(feats.labels) else 0.0}
    write_json(out / "features.json", summary)
    return summary


def _pack(songs: list, mean: np.ndarray, std: np.ndarray, frames: int) -> SplitFeatures:
    """Standardise, pad each song by half an excerpt (value 0 = the mean) and concatenate."""
    half = frames // 2
    n_mels = len(mean)
    mels, centres, labels, song_ids, names = [], [], [], [], []
    offset = 0
    for i, (name, mel, lab) in enumerate(songs):
        std_mel = ((mel - mean) / std).astype(np.float32)
        pad = np.zeros((half, n_mels), np.float32)
        mels.append(np.concatenate([pad, std_mel, pad]))
        centres.append(offset + half + np.arange(len(mel)))
        labels.append(lab.astype(np.uint8))
        song_ids.append(np.full(len(mel), i, np.int32))
        names.append(name)
        offset += len(mel) + 2 * half
    if not mels:
        empty = np.zeros(0, np.int64)
        return SplitFeatures(np.zeros((0, n_mels), np.float32), empty, empty.astype(np.uint8),
                             empty.astype(np.int32), [])
    return SplitFeatures(np.concatenate(mels), np.concatenate(centres).astype(np.int64),
                         np.concatenate(labels), np.concatenate(song_ids), names)
