"""Reading audio files for explanation: mono, float32, finite, at the rate the model takes."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

__all__ = ["load_audio", "AudioError", "resample"]

log = logging.getLogger("genex.audio")


class AudioError(ValueError):
    """A file that cannot be explained; the message is one line naming the file."""


def resample(wave: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """``wave`` resampled from ``orig_sr`` to ``target_sr`` (librosa's soxr_hq)."""
    if orig_sr == target_sr:
        return wave
    import librosa

    return librosa.resample(wave, orig_sr=orig_sr, target_sr=target_sr).astype(np.float32)


def load_audio(path: str | os.PathLike, sample_rate: int | None = None) -> tuple[np.ndarray, int]:
    """A file as a mono ``float32`` waveform ``[T]`` and its sample rate.

    Channels are averaged; with ``sample_rate`` the clip is resampled to it (with a logged
    notice). Raises :class:`AudioError` (one line, naming the file) for a missing, non-audio,
    empty or non-finite (NaN/inf) file.
    """
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such file")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises LibsndfileError / RuntimeError variants
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise AudioError(f"{path}: not an audio file soundfile can read ({reason})") from None
    if data.size == 0:
        raise AudioError(f"{path}: empty audio file (0 samples)")
    if not np.isfinite(data).all():
        bad = int((~np.isfinite(data)).sum())
        raise AudioError(f"{path}: {bad} samples are NaN or infinite")
    wave = data.mean(axis=1).astype(np.float32)
    if sample_rate is not None and sr != sample_rate:
        log.warning("%s: resampling from %d Hz to the %d Hz the model takes", path, sr, sample_rate)
        wave, sr = resample(wave, sr, sample_rate), int(sample_rate)
    return wave, int(sr)
