"""Fréchet distance between Gaussians fitted to two sets of feature vectors (FID-style).

``d² = ‖μ₁ − μ₂‖² + tr(Σ₁) + tr(Σ₂) − 2 tr((Σ₁ Σ₂)^½)``

Numerical care (as in Heusel et al.'s reference code): if the matrix square root of
``Σ₁ Σ₂`` is not finite (near-singular covariances, e.g. fewer samples than dimensions),
``eps · I`` is added to both covariances; a small imaginary part left by ``sqrtm`` is
dropped, a large one is an error; tiny negative results from round-off are clipped to 0.
"""

from __future__ import annotations

import numpy as np

__all__ = ["frechet_distance", "frechet_gaussians", "gaussian_stats"]


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``[D]`` and covariance ``[D, D]`` (unbiased) of ``features [N, D]``."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim == 1:
        f = f[:, None]  # N scalar responses (e.g. classifier outputs) = D of 1
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"frechet: features must be [N >= 2, D], got shape {f.shape}")
    return f.mean(axis=0), np.atleast_2d(np.cov(f, rowvar=False))


def frechet_gaussians(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                      eps: float = 1e-6, imag_tol: float = 1e-3) -> float:
    """Fréchet (2-Wasserstein) distance² between N(mu1, sigma1) and N(mu2, sigma2)."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError(f"frechet: shapes disagree: mu {mu1.shape} / {mu2.shape}, "
                         f"sigma {s1.shape} / {s2.shape}")
    diff = mu1 - mu2
    covmean = _sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():
        offset = np.eye(s1.shape[0]) * eps
        covmean = _sqrtm((s1 + offset) @ (s2 + offset))
    if np.iscomplexobj(covmean):
        imag = np.max(np.abs(covmean.imag))
        scale = max(1.0, np.max(np.abs(covmean.real)))
        if imag > imag_tol * scale:
            raise ValueError(f"frechet: sqrtm has a large imaginary part ({imag:.3g})")
        covmean = covmean.real
    d = float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean))
    return max(d, 0.0)


def frechet_distance(features1: np.ndarray, features2: np.ndarray, eps: float = 1e-6) -> float:
    """Fréchet distance² between Gaussians fitted to ``features1 [N1, D]`` and ``features2 [N2, D]``."""
    mu1, s1 = gaussian_stats(features1)
    mu2, s2 = gaussian_stats(features2)
    return frechet_gaussians(mu1, s1, mu2, s2, eps)


def _sqrtm(a: np.ndarray) -> np.ndarray:
    from scipy import linalg  # here, not at import: `import genex.xai` stays light

    with np.errstate(all="ignore"):
        out = linalg.sqrtm(a)
    return out[0] if isinstance(out, tuple) else out
