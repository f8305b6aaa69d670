"""Log-frequency DFT features of single notes (nsynth study, paper §3.1).

The transform, exactly:

1. ``X = rfft(audio, n_fft)``: the DFT of the whole note (4 s at 16 kHz in NSynth), zero
   padded to ``n_fft`` samples (default 2^18, a 0.061 Hz grid at 16 kHz, finer than the
   0.117 Hz step between the two lowest log-spaced frequencies).
2. ``f_k = fmin · (fmax / fmin)^(k / (K − 1))``, ``k = 0 … K−1``: ``K = 1024`` log-spaced
   frequencies from 20 to 8000 Hz; each takes the DFT bin nearest to it.
3. Magnitude ``m_k = |X(f_k)| / sqrt(mean_k |X(f_k)|²)`` (power-normalised: the mean power
   over the 1024 frequencies is 1; a silent note gives zeros), phase ``p_k = angle X(f_k) / π``
   in ``[-1, 1]``.
4. The feature is ``[m, p]``: a ``[2, 1024]`` float32 array (channel 0 magnitude, 1 phase).

:func:`resynthesise` turns such a spectrum back into audio (a sum of sinusoids at the
``f_k``), to listen to what an explanation keeps or removes.
"""

from __future__ import annotations

import numpy as np

__all__ = ["log_frequencies", "note_spectrum", "resynthesise"]


def log_frequencies(n_bins: int = 1024, fmin: float = 20.0, fmax: float = 8000.0) -> np.ndarray:
    """The ``n_bins`` log-spaced analysis frequencies in Hz (float64)."""
    if not 0 < fmin < fmax:
        raise ValueError(f"log_frequencies: need 0 < fmin < fmax, got {fmin}, {fmax}")
    return fmin * (fmax / fmin) ** (np.arange(n_bins) / (n_bins - 1))


def note_spectrum(audio: np.ndarray, sample_rate: int, n_bins: int = 1024, fmin: float = 20.0,
                  fmax: float = 8000.0, n_fft: int = 2 ** 18) -> np.ndarray:
    """Power-normalised magnitude and phase/π of ``audio`` at the log frequencies: ``[2, n_bins]``."""
    audio = np.asarray(audio, dtype=np.float64).reshape(-1)
    if fmax > sample_rate / 2:
        raise ValueError(f"note_spectrum: fmax {fmax} Hz is above Nyquist ({sample_rate / 2} Hz)")
    n_fft = max(int(n_fft), audio.size)
    spec = np.fft.rfft(audio, n_fft)
    bins = np.rint(log_frequencies(n_bins, fmin, fmax) * n_fft / sample_rate).astype(np.int64)
    x = spec[bins]
    mag = np.abs(x)
    power = float(np.mean(mag ** 2))
    mag = mag / np.sqrt(power) if power > 0 else np.zeros_like(mag)
    phase = np.angle(x) / np.pi
    return np.stack([mag, phase]).astype(np.float32)


def resynthesise(spectrum: np.ndarray, sample_rate: int, seconds: float = 1.5, fmin: float = 20.0,
                 fmax: float = 8000.0, peak: float = 0.5) -> np.ndarray:
    """Audio from a ``[2, K]`` spectrum: ``Σ_k m_k cos(2π f_k t + π p_k)`` with 20 ms fades.

    Negative magnitudes (an inpainter's output may have them) are clipped to 0; the result
    is scaled to ``peak`` (silence stays silence).
    """
    spectrum = np.asarray(spectrum, dtype=np.float64)
    mag, phase = np.clip(spectrum[0], 0.0, None), spectrum[1] * np.pi
    freqs = log_frequencies(spectrum.shape[1], fmin, fmax)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    audio = np.zeros_like(t)
    for start in range(0, freqs.size, 128):  # chunks: bounded memory
        sl = slice(start, start + 128)
        audio += (mag[sl, None] * np.cos(2 * np.pi * freqs[sl, None] * t + phase[sl, None])).sum(0)
    fade = min(int(0.02 * sample_rate), t.size // 2)
    if fade:
        ramp = np.linspace(0.0, 1.0, fade)
        audio[:fade] *= ramp
        audio[-fade:] *= ramp[::-1]
    top = float(np.max(np.abs(audio))) if audio.size else 0.0
    return (audio * (peak / top) if top > 0 else audio).astype(np.float32)
