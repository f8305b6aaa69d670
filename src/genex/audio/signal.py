"""Reading audio files for explanation: mono, float32, finite, at the rate the model takes."""

from __future__ import annotations

import logging
import os

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

    Read and checked by the pipeline's :func:`genex.pipeline.audio.read_audio` (missing,
    unreadable, empty or non-finite files are refused in one line naming the file; channels
    are averaged); with ``sample_rate`` the clip is resampled to it (with a logged notice).
    Raises :class:`AudioError`.
    """
    from genex.pipeline.audio import read_audio

    try:
        wave, sr = read_audio(path, mono_dataset=False)
    except (OSError, ValueError) as err:
        raise AudioError(str(err)) from None
    if sample_rate is not None and sr != sample_rate:
        log.warning("%s: resampling from %d Hz to the %d Hz the model takes", path, sr, sample_rate)
        wave, sr = resample(wave, sr, sample_rate), int(sample_rate)
    return wave.astype(np.float32, copy=False), int(sr)
