"""Harmonic components: explain a pitched sound in terms of its f0 and overtones.

* :func:`estimate_f0` — the clip's fundamental (pYIN, median over voiced frames);
* :func:`harmonic_components` — a :class:`genex.xai.ComponentMap` over ``[F, Tf]`` with one
  component per harmonic (the rows near ``k·f0`` in every frame) and one for the rest;
* :func:`harmonic_placement` — how much of an explanation over frequency rows sits on the
  harmonics: the share of the top-``k`` rows within ``width_bins`` of a harmonic, the share of
  the rows a mask keeps, and the share of the score mass, each beside what random rows would
  give (the check of issue 14 on pitch models).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from genex.xai import ComponentMap

__all__ = ["estimate_f0", "harmonic_components", "harmonic_rows", "harmonic_placement"]


def estimate_f0(wave, sample_rate: int, fmin: float = 32.7, fmax: float = 2093.0) -> float:
    """Fundamental frequency of a (mostly) monophonic clip in Hz.

    pYIN (``librosa.pyin``) between ``fmin`` and ``fmax`` (C1 to C7 by default), the median over
    the frames it calls voiced. An error when no frame is voiced (noise, silence, chords).
    """
    import librosa

    wave = np.asarray(wave, dtype=np.float32).reshape(-1)
    if wave.size == 0 or not np.isfinite(wave).all():
        raise ValueError("estimate_f0: the clip is empty or holds NaN/inf")
    # a frame long enough for two periods of fmin, as pYIN needs
    frame_length = int(2 ** np.ceil(np.log2(max(2048 * sample_rate / 22050, 2.2 * sample_rate / fmin))))
    if wave.size < frame_length:
        wave = np.pad(wave, (0, frame_length - wave.size))
    f0, voiced, _ = librosa.pyin(wave, fmin=fmin, fmax=fmax, sr=sample_rate,
                                 frame_length=frame_length)
    f0 = f0[voiced & np.isfinite(f0)]
    if f0.size == 0:
        raise ValueError(f"estimate_f0: no voiced frame between {fmin:g} and {fmax:g} Hz; give f0 "
                         f"explicitly or use other components")
    return float(np.median(f0))


def harmonic_rows(frequencies: Sequence[float], f0_hz: float, n_harmonics: int = 8,
                  width_bins: int = 1) -> np.ndarray:
    """Harmonic number (1..n) of each frequency row, 0 for rows near no harmonic, ``[F]``.

    Harmonic ``h`` owns the rows within ``width_bins`` rows of the row nearest ``h·f0``; where
    two harmonics reach the same row (a low f0 on a coarse grid), the nearer in Hz takes it.
    Harmonics above the grid's top frequency own nothing.
    """
    freqs = np.asarray(frequencies, dtype=np.float64).reshape(-1)
    if freqs.size == 0:
        raise ValueError("harmonic_components: no frequency rows")
    if not np.isfinite(f0_hz) or f0_hz <= 0:
        raise ValueError(f"harmonic_components: f0 must be a positive frequency in Hz, got {f0_hz}")
    if n_harmonics < 1 or width_bins < 0:
        raise ValueError(f"harmonic_components: need n_harmonics >= 1 and width_bins >= 0, got "
                         f"{n_harmonics}, {width_bins}")
    top = freqs[-1] + (freqs[-1] - freqs[-2] if freqs.size > 1 else 0.0) / 2
    harmonics = f0_hz * np.arange(1, n_harmonics + 1)
    rows = np.arange(freqs.size)
    owner = np.zeros(freqs.size, dtype=np.int64)
    best = np.full(freqs.size, np.inf)  # distance in Hz to the owning harmonic
    for h, fh in enumerate(harmonics, start=1):
        if fh > top:
            break
        centre = int(np.argmin(np.abs(freqs - fh)))
        near = np.abs(rows - centre) <= width_bins
        dist = np.abs(freqs - fh)
        take = near & (dist < best)
        owner[take] = h
        best[take] = dist[take]
    return owner


def harmonic_components(frequencies: Sequence[float], shape: Sequence[int], f0_hz: float,
                        n_harmonics: int = 8, width_bins: int = 1) -> ComponentMap:
    """Components over ``shape = (F, Tf)``: harmonic ``k+1`` of ``f0_hz`` is component ``k``.

    Component ``k`` (``0 <= k < n_harmonics``) is every frame of the rows within ``width_bins``
    of harmonic ``k+1`` (see :func:`harmonic_rows`); component ``n_harmonics`` is everything
    else, so the map tiles the spectrogram. A harmonic above the top row is an empty component.

    Args:
        frequencies: centre frequency of each row in Hz, ``[F]``
            (:attr:`genex.audio.Representation.frequencies`).
        shape: ``(F, Tf)``.
        f0_hz: the fundamental (e.g. from :func:`estimate_f0`).
    """
    n_rows, n_frames = (int(s) for s in shape)
    if len(frequencies) != n_rows:
        raise ValueError(f"harmonic_components: {len(frequencies)} frequencies for {n_rows} rows")
    owner = harmonic_rows(frequencies, f0_hz, n_harmonics, width_bins)
    row_labels = np.where(owner > 0, owner - 1, n_harmonics)
    labels = np.repeat(row_labels[:, None], n_frames, axis=1)
    return ComponentMap(torch.from_numpy(labels), n_harmonics + 1)


def harmonic_placement(row_scores, frequencies: Sequence[float], f0_hz: float, top_k: int = 10,
                       width_bins: int = 1, max_harmonic: int | None = None,
                       kept_at: float | None = None) -> dict:
    """How much of an explanation over frequency rows sits on ``f0_hz`` and its harmonics.

    Three views of one explanation, each beside what random rows would give:

    * ``share``: the fraction of the ``top_k`` highest-scoring rows within ``width_bins`` of a
      harmonic. Harsh where a mask keeps fewer than ``top_k`` rows (the rest are dropped rows);
    * ``kept_share``: the fraction of the *kept* rows (score ``>= kept_at``, e.g. an RDE keep
      probability ``>= 0.5``) on a harmonic, with ``n_kept``; only when ``kept_at`` is given,
      and None when nothing is kept;
    * ``mass_share``: the score mass on harmonic rows over the total, ``sum(|s| on harmonics) /
      sum(|s|)`` (magnitudes, so a signed attribution's evidence against counts as weight too).

    ``chance`` is the fraction of all rows near a harmonic: the expected ``share`` and
    ``kept_share`` of rows drawn at random, and the ``mass_share`` of equal scores.

    Args:
        row_scores: one score per frequency row ``[F]`` (e.g. the keep probabilities of
            ``bands:F`` components, or a mask summed over time).
        frequencies: centre frequency of each row in Hz.
        top_k: how many of the highest-scoring rows are checked.
        max_harmonic: the highest harmonic counted (all below the top row when None).
        kept_at: the score from which a row counts as kept (None: no kept-set view).

    Returns:
        ``{"share", "chance", "mass_share", "top_rows": the top_k rows, "harmonic_of_top":
        their harmonic numbers (0 = none)}``, plus ``"kept_share"`` and ``"n_kept"`` with
        ``kept_at``.
    """
    scores = np.asarray(row_scores, dtype=np.float64).reshape(-1)
    freqs = np.asarray(frequencies, dtype=np.float64).reshape(-1)
    if scores.size != freqs.size:
        raise ValueError(f"harmonic_placement: {scores.size} scores for {freqs.size} rows")
    if not np.isfinite(scores).all():
        raise ValueError("harmonic_placement: the scores hold NaN/inf")
    top = freqs[-1] + (freqs[-1] - freqs[-2] if freqs.size > 1 else 0.0) / 2
    n = max_harmonic or max(1, int(top // f0_hz))
    owner = harmonic_rows(freqs, f0_hz, n, width_bins)
    on_harmonic = owner > 0
    # stable order: ties keep the lower row first, so the result is deterministic
    order = np.argsort(-scores, kind="stable")[:top_k]
    weight = np.abs(scores)
    total = weight.sum()
    out = {"share": float(on_harmonic[order].mean()), "chance": float(on_harmonic.mean()),
           "mass_share": float(weight[on_harmonic].sum() / total) if total > 0 else None,
           "top_rows": order.tolist(), "harmonic_of_top": owner[order].tolist()}
    if kept_at is not None:
        kept = scores >= kept_at
        out["n_kept"] = int(kept.sum())
        out["kept_share"] = float(on_harmonic[kept].mean()) if kept.any() else None
    return out
