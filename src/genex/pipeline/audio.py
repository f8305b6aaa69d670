"""Reading the datasets' audio files with checks whose errors name the file and the problem.

Every audio reader of genex (NSynth notes, piano recordings, songs) goes through
:func:`read_audio`: a file that is missing, unreadable, empty, holds NaN or inf, is at a
sample rate the dataset does not have, or is shorter than the study needs raises
``FileNotFoundError`` / ``ValueError`` with ``"<path>: <problem>"``. A file with several
channels is averaged to mono (the studies all analyse mono audio); where the dataset is
mono a warning names the file, as a stereo file there means a file from somewhere else.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Iterable

import numpy as np

log = logging.getLogger("genex.pipeline.audio")

# soundfile reads all of these; others go through librosa/audioread (as librosa.load did).
_SOUNDFILE_ONLY = {".wav", ".flac", ".ogg", ".aiff", ".aif"}


def _decode(path: Path) -> tuple[np.ndarray, int]:
    """``[samples, channels]`` float32 and the rate, or ValueError naming the file."""
    import soundfile as sf

    try:
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
        return audio, int(rate)
    except Exception as err:  # noqa: BLE001 - libsndfile raises RuntimeError/LibsndfileError
        if path.suffix.lower() in _SOUNDFILE_ONLY:
            raise ValueError(f"{path}: not a readable audio file ({err})") from None
        first = err
    try:  # mp3 etc. without libsndfile support: audioread, as librosa.load falls back to
        import warnings

        import librosa

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            audio, rate = librosa.load(str(path), sr=None, mono=False)
    except Exception:  # noqa: BLE001
        raise ValueError(f"{path}: not a readable audio file ({first})") from None
    audio = np.atleast_2d(np.asarray(audio, dtype=np.float32))
    return np.ascontiguousarray(audio.T), int(rate)


def read_audio(path: str | os.PathLike, *, rates: Iterable[int] | None = None,
               min_seconds: float = 0.0, mono_dataset: bool = True,
               dataset: str = "the dataset") -> tuple[np.ndarray, int]:
    """Mono float32 samples of an audio file and its sample rate, checked.

    ``rates``: the sample rates the dataset has (None: any, the caller resamples);
    ``min_seconds``: the shortest file the study can use; ``mono_dataset``: whether a
    multi-channel file is unexpected (then it is still averaged, with a warning).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: audio file not found")
    audio, rate = _decode(path)
    samples, channels = audio.shape
    if samples == 0:
        raise ValueError(f"{path}: no samples (an empty audio file)")
    bad = ~np.isfinite(audio)
    if bad.any():
        first = int(np.flatnonzero(bad.any(axis=1))[0])
        raise ValueError(f"{path}: {int(bad.sum())} non-finite samples (NaN or inf), the first "
                         f"at {first / rate:.3f} s")
    if rates is not None:
        rates = sorted({int(r) for r in rates})
        if rate not in rates:
            want = " or ".join(f"{r} Hz" for r in rates)
            raise ValueError(f"{path}: sample rate {rate} Hz, but {dataset} is at {want}")
    need = math.ceil(min_seconds * rate - 1e-9)
    if samples < need:
        raise ValueError(f"{path}: {samples} samples ({samples / rate:.3f} s) at {rate} Hz, "
                         f"shorter than the {need} samples ({min_seconds:.3f} s) the study needs")
    if channels == 1:
        return audio[:, 0], rate
    if mono_dataset:
        log.warning("%s: %d channels where %s is mono; averaged to mono", path, channels, dataset)
    return audio.mean(axis=1), rate


def header(path: str | os.PathLike) -> tuple[int, int]:
    """``(samples, sample rate)`` from the file header, or an error naming the file."""
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: audio file not found")
    try:
        info = sf.info(str(path))
    except Exception as err:  # noqa: BLE001
        raise ValueError(f"{path}: not a readable audio file ({err})") from None
    return int(info.frames), int(info.samplerate)


def most_common(values: Iterable[int]) -> int:
    """The most frequent value; a tie goes to the largest (a truncated file is the odd one)."""
    counts: dict[int, int] = {}
    for v in values:
        counts[int(v)] = counts.get(int(v), 0) + 1
    if not counts:
        raise ValueError("most_common: no values")
    return max(counts, key=lambda v: (counts[v], v))
