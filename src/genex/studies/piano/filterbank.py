"""Logarithmic filterbank spectrogram of the piano study, madmom-compatible, and its inverse.

Kelz & Widmer (2019) feed the INN with madmom's ``LogarithmicFilteredSpectrogram``:
44.1 kHz mono, frame = FFT = 4096 samples (Hann window), hop 1764 (25 fps), a logarithmic
filterbank with 24 bands per octave between 30 and 10000 Hz (reference 440 Hz) made of
triangular filters placed on the nearest FFT bins, duplicates removed ("unique filters") and
each filter normalised to unit area, then ``log10(1 + x)``. madmom does not install on
current Python, so this module rebuilds the same numbers with numpy: 144 bands with centre
frequencies 43.07 ... 9668 Hz.

The inverse (:func:`filterbank_to_magnitude`, :func:`filterbank_to_audio`) is approximate:
the filterbank throws away the fine frequency structure, so it is undone with non-negative
least squares and the phase is estimated with Griffin-Lim; good enough to *listen* to what
the INN generates backwards, not a reconstruction.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

SAMPLE_RATE = 44100
FRAME_SIZE = 4096  # = FFT size
HOP_SIZE = 1764  # 44100 / 1764 = 25 frames per second
FPS = SAMPLE_RATE / HOP_SIZE
BANDS_PER_OCTAVE = 24
FMIN, FMAX, FREF = 30.0, 10000.0, 440.0
N_BINS = 144

_FRAMES_PER_CHUNK = 512  # bounds the memory of the framed signal (512 x 4096 floats)


@dataclass(frozen=True)
class LogFilterbank:
    """A filterbank matrix with its frequency axes.

    ``matrix`` has shape ``[n_fft_bins, n_bands]`` (spectrogram @ matrix = filtered bands);
    ``center_bins`` are the FFT bins of the filter peaks, ``center_frequencies`` their Hz.
    """

    matrix: np.ndarray
    bin_frequencies: np.ndarray
    center_bins: np.ndarray
    center_frequencies: np.ndarray

    @property
    def n_bands(self) -> int:
        """Number of filter bands (144 for the paper's settings)."""
        return self.matrix.shape[1]


# ----------------------------------------------------------------------------- filterbank

def fft_bin_frequencies(sample_rate: int = SAMPLE_RATE, fft_size: int = FRAME_SIZE) -> np.ndarray:
    """Frequencies of the ``fft_size // 2`` non-negative FFT bins madmom keeps (no Nyquist)."""
    return np.arange(fft_size // 2) * (sample_rate / fft_size)


def log_frequencies(bands_per_octave: int, fmin: float, fmax: float, fref: float = FREF) -> np.ndarray:
    """Frequencies ``fref * 2**(k / bands_per_octave)`` within [fmin, fmax] (madmom's rule)."""
    left = np.floor(np.log2(fmin / fref) * bands_per_octave)
    right = np.ceil(np.log2(fmax / fref) * bands_per_octave)
    freqs = fref * 2.0 ** (np.arange(left, right) / bands_per_octave)
    freqs = freqs[np.searchsorted(freqs, fmin):]
    return freqs[:np.searchsorted(freqs, fmax, "right")]


def frequencies_to_bins(frequencies: np.ndarray, bin_frequencies: np.ndarray,
                        unique: bool = True) -> np.ndarray:
    """Nearest FFT bin of each frequency; with ``unique`` the duplicates are dropped."""
    idx = np.clip(np.searchsorted(bin_frequencies, frequencies), 1, len(bin_frequencies) - 1)
    left, right = bin_frequencies[idx - 1], bin_frequencies[idx]
    idx = idx - (frequencies - left < right - frequencies)
    return np.unique(idx) if unique else idx


def triangular_filters(bins: np.ndarray, n_fft_bins: int, normalise: bool = True
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping triangular filters on consecutive (start, centre, stop) bin triples.

    As in madmom: the rising edge excludes the centre, the falling edge includes it and
    excludes ``stop``; a filter narrower than 2 bins collapses to the single bin ``start``;
    overlapping filters are merged with ``max``. Returns ``(matrix [n_fft_bins, n_bands],
    centre_bins)``.
    """
    if len(bins) < 3:
        raise ValueError(f"need at least 3 bins for a triangular filterbank, got {len(bins)}")
    n_bands = len(bins) - 2
    matrix = np.zeros((n_fft_bins, n_bands), dtype=np.float64)
    centres = np.zeros(n_bands, dtype=np.int64)
    for band, (start, centre, stop) in enumerate(zip(bins[:-2], bins[1:-1], bins[2:])):
        if stop - start < 2:
            centre, stop = start, start + 1
        data = np.zeros(stop - start)
        data[:centre - start] = np.linspace(0, 1, centre - start, endpoint=False)
        data[centre - start:] = np.linspace(1, 0, stop - centre, endpoint=False)
        if normalise:
            data /= data.sum()
        stop_clip = min(stop, n_fft_bins)
        matrix[start:stop_clip, band] = np.maximum(data[:stop_clip - start], matrix[start:stop_clip, band])
        centres[band] = centre
    return matrix, centres


@lru_cache(maxsize=8)
def log_filterbank(sample_rate: int = SAMPLE_RATE, fft_size: int = FRAME_SIZE,
                   bands_per_octave: int = BANDS_PER_OCTAVE, fmin: float = FMIN,
                   fmax: float = FMAX, fref: float = FREF) -> LogFilterbank:
    """madmom's ``LogarithmicFilterbank(norm_filters=True, unique_filters=True)``.

    With the defaults: 144 bands, centre frequencies 43.07 ... 9668 Hz. Cached: treat the
    returned arrays as read-only.
    """
    bin_freqs = fft_bin_frequencies(sample_rate, fft_size)
    bins = frequencies_to_bins(log_frequencies(bands_per_octave, fmin, fmax, fref), bin_freqs,
                               unique=True)
    matrix, centres = triangular_filters(bins, len(bin_freqs), normalise=True)
    for arr in (matrix, bin_freqs, centres):
        arr.setflags(write=False)
    centre_freqs = bin_freqs[centres]
    centre_freqs.setflags(write=False)
    return LogFilterbank(matrix, bin_freqs, centres, centre_freqs)


# ----------------------------------------------------------------------------- forward

def n_frames(n_samples: int, hop_size: int = HOP_SIZE) -> int:
    """Frames madmom returns for a signal: one per hop while the frame centre is inside it."""
    return int(n_samples // hop_size) + 1


def magnitude_spectrogram(audio: np.ndarray, frame_size: int = FRAME_SIZE,
                          hop_size: int = HOP_SIZE) -> np.ndarray:
    """|STFT| ``[frames, frame_size // 2]`` with madmom's framing.

    Frame ``t`` is centred on sample ``t * hop_size`` (zero padding at both ends), weighted
    with a symmetric Hann window (``np.hanning``), no circular shift; the Nyquist bin is
    dropped.
    """
    audio = np.asarray(audio, dtype=np.float64)
    if audio.ndim != 1:
        raise ValueError(f"expected mono audio (1-D), got shape {audio.shape}")
    total = n_frames(len(audio), hop_size)
    half = frame_size // 2
    padded = np.zeros(half + total * hop_size + frame_size, dtype=np.float64)
    padded[half:half + len(audio)] = audio
    window = np.hanning(frame_size)
    out = np.empty((total, frame_size // 2), dtype=np.float32)
    for first in range(0, total, _FRAMES_PER_CHUNK):
        count = min(_FRAMES_PER_CHUNK, total - first)
        starts = (first + np.arange(count)) * hop_size  # padded index of each frame's start
        frames = padded[starts[:, None] + np.arange(frame_size)[None, :]]
        out[first:first + count] = np.abs(np.fft.rfft(frames * window, axis=1))[:, :frame_size // 2]
    return out


def filterbank_spectrogram(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The INN input x: ``log10(1 + |STFT| @ filterbank)``, shape ``[frames, 144]``, float32.

    ``audio`` is mono (or ``[samples, channels]``, averaged) at any rate; it is resampled to
    44.1 kHz first.
    """
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 2:
        audio = audio.mean(axis=1)
    if sample_rate != SAMPLE_RATE:
        import librosa

        audio = librosa.resample(audio, orig_sr=sample_rate, target_sr=SAMPLE_RATE)
    fb = log_filterbank()
    bands = magnitude_spectrogram(audio) @ fb.matrix.astype(np.float32)
    return np.log10(1.0 + bands).astype(np.float32)


def load_audio(path: str | Path, **checks) -> np.ndarray:
    """Mono float32 audio of a file at 44.1 kHz (channels averaged, resampled if needed).

    ``checks`` go to :func:`genex.pipeline.audio.read_audio` (the dataset's rates, mono or
    not); a file too short for one analysis frame is refused, naming it.
    """
    from genex.pipeline.audio import read_audio

    audio, rate = read_audio(path, min_seconds=FRAME_SIZE / SAMPLE_RATE,
                             **{"mono_dataset": False, **checks})
    if rate != SAMPLE_RATE:
        import librosa

        audio = librosa.resample(audio, orig_sr=rate, target_sr=SAMPLE_RATE)
    return audio.astype(np.float32)


def audio_file_features(path: str | Path, **checks) -> np.ndarray:
    """:func:`filterbank_spectrogram` of an audio file, ``[frames, 144]`` float32."""
    return filterbank_spectrogram(load_audio(path, **checks), SAMPLE_RATE)


# ----------------------------------------------------------------------------- inverse

def filterbank_to_magnitude(x: np.ndarray, n_iter: int = 100) -> np.ndarray:
    """Approximate |STFT| ``[frames, 2048]`` from filterbank features ``[frames, 144]``.

    Undoes ``log10(1 + .)`` (negative band energies, possible in INN samples, are clipped to
    0) and then the filterbank by non-negative least squares, solved with multiplicative
    updates (Lee & Seung) batched over frames: ``librosa.util.nnls`` gives the same kind of
    answer but is ~100x slower on whole pieces. Starts from the band energies spread over
    their filters' bins; bins outside every filter (below ~38 Hz, above ~9.9 kHz) stay 0.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != N_BINS:
        raise ValueError(f"expected filterbank features [frames, {N_BINS}], got shape {x.shape}")
    from scipy import sparse

    bands = np.clip(10.0 ** x - 1.0, 0.0, None).T  # [144, frames]
    fb = log_filterbank().matrix  # [2048, 144], ~2% non-zero: sparse products are ~50x faster
    fb_s, fb_t = sparse.csr_matrix(fb), sparse.csr_matrix(fb.T)
    numerator = fb_s @ bands  # fixed part of the update
    mag = sparse.csr_matrix(fb / np.maximum(fb.sum(axis=1, keepdims=True), 1e-12)) @ bands
    for _ in range(n_iter):
        mag *= numerator / np.maximum(fb_s @ (fb_t @ mag), 1e-12)
    return np.ascontiguousarray(mag.T, dtype=np.float32)


def filterbank_to_audio(x: np.ndarray, n_iter: int = 64, seed: int = 0) -> np.ndarray:
    """Listenable 44.1 kHz audio for filterbank features: NNLS inverse + Griffin-Lim.

    Deterministic for a seed (Griffin-Lim starts from random phases drawn from it).
    """
    import librosa

    mag = filterbank_to_magnitude(x)
    spec = np.concatenate([mag, np.zeros((len(mag), 1), np.float32)], axis=1).T  # + Nyquist bin
    audio = librosa.griffinlim(spec, n_iter=n_iter, hop_length=HOP_SIZE, win_length=FRAME_SIZE,
                               n_fft=FRAME_SIZE, window="hann", center=True,
                               random_state=np.random.default_rng(seed))
    return audio.astype(np.float32)
