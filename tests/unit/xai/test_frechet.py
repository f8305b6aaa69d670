"""Fréchet distance: closed forms for known Gaussians, ~0 for the same set."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import linalg

from genex.xai.frechet import frechet_distance, frechet_gaussians


def test_frechet_gaussians_matches_diagonal_closed_form():
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.0])
    v1, v2 = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(v1) - np.sqrt(v2)) ** 2)
    got = frechet_gaussians(mu1, np.diag(v1), mu2, np.diag(v2))
    assert got == pytest.approx(expected, rel=1e-10)  # 5 + 4 + 1 + 0 = 10
    assert got == pytest.approx(10.0)


def test_frechet_gaussians_matches_general_closed_form():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(4, 4)), rng.normal(size=(4, 4))
    s1, s2 = a @ a.T + 0.1 * np.eye(4), b @ b.T + 0.1 * np.eye(4)
    r1 = linalg.sqrtm(s1).real
    # symmetric form: tr(S1) + tr(S2) - 2 tr((S1^½ S2 S1^½)^½)
    expected = np.trace(s1) + np.trace(s2) - 2 * np.trace(linalg.sqrtm(r1 @ s2 @ r1).real)
    assert frechet_gaussians(np.zeros(4), s1, np.zeros(4), s2) == pytest.approx(expected, rel=1e-8)


def test_frechet_distance_of_samples():
    rng = np.random.default_rng(1)
    same = rng.normal(size=(500, 3))
    assert frechet_distance(same, same) == pytest.approx(0.0, abs=1e-8)
    # two known Gaussians from samples: within sampling error of the closed form (= 10)
    x = rng.normal([0, 1, -2], [1, 2, 0.5], size=(20000, 3))
    y = rng.normal([1, 1, 0], [3, 1, 0.5], size=(20000, 3))
    assert frechet_distance(x, y) == pytest.approx(10.0, rel=0.03)


def test_frechet_singular_and_scalar_features():
    rng = np.random.default_rng(2)
    few = rng.normal(size=(3, 10))  # fewer samples than dimensions: singular covariances
    d = frechet_distance(few, rng.normal(size=(3, 10)))
    assert np.isfinite(d) and d >= 0
    resp1, resp2 = rng.normal(0, 1, 4000), rng.normal(2, 1, 4000)  # classifier responses
    assert frechet_distance(resp1, resp2) == pytest.approx(4.0, rel=0.1)
    with pytest.raises(ValueError, match="shapes"):
        frechet_gaussians(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))
