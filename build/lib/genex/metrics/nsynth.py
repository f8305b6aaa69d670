"""Evaluation of the nsynth study: are obfuscations in-distribution, how faithful are the
explanations, and do they depend on the trained weights at all."""

from __future__ import annotations

import numpy as np
import torch
from scipy.stats import spearmanr
from torch import Tensor

from genex.xai.components import ComponentMap
from genex.xai.infill import Infiller
from genex.explain.nsynth import keep_top
from genex.xai.frechet import frechet_distance

__all__ = ["in_distribution", "distortion_at", "deletion_curve", "mean_spearman"]


@torch.no_grad()
def _chunks(n: int, size: int):
    return [slice(i, i + size) for i in range(0, n, size)]


@torch.no_grad()
def in_distribution(model, infillers: dict[str, Infiller], x: Tensor, keep: float, seed: int,
                    batch_size: int = 256) -> dict[str, dict[str, float]]:
    """Per infiller, with one i.i.d. random mask per note keeping ``keep`` of the components:
    ``agreement`` (share of notes whose predicted family is unchanged) and ``frechet``
    (Fréchet distance of Φ's penultimate features, real vs infilled)."""
    gen = torch.Generator().manual_seed(seed)
    masks = (torch.rand(x.shape, generator=gen) < keep).to(x.dtype)
    real = torch.cat([model.embed(x[s]) for s in _chunks(len(x), batch_size)])
    pred = model.head(real).argmax(1)
    out = {}
    for name, infiller in infillers.items():
        feats = []
        g = torch.Generator(device=x.device).manual_seed(seed + 1)
        for s in _chunks(len(x), batch_size):
            z = infiller(x[s], masks[s].to(x.device), 1, generator=g)[0]
            feats.append(model.embed(z))
        fake = torch.cat(feats)
        agree = float((model.head(fake).argmax(1) == pred).float().mean())
        out[name] = {"agreement": agree,
                     "frechet": frechet_distance(real.cpu().double().numpy(),
                                                 fake.cpu().double().numpy())}
    return out


@torch.no_grad()
def distortion_at(model, infiller: Infiller, x: Tensor, mask: Tensor, draws: int, seed: int,
                  batch_size: int = 64) -> Tensor:
    """Per-note distortion ``½ E‖Φ(x) − Φ(z)‖²`` (all pre-softmax scores) with component
    ``mask [B, C]`` kept and ``draws`` infill draws: ``[B]``."""
    cmap = ComponentMap.identity(tuple(x.shape[1:]))
    out = []
    gen = torch.Generator(device=x.device).manual_seed(seed)
    for s in _chunks(len(x), batch_size):
        xb = x[s]
        ref = model(xb)
        z = infiller(xb, cmap.expand(mask[s].to(x.device)), draws, generator=gen)
        scores = model(z.reshape(-1, *xb.shape[1:])).view(draws, len(xb), -1)
        out.append(0.5 * (scores - ref).square().sum(-1).mean(0))
    return torch.cat(out).cpu()


def deletion_curve(model, infiller: Infiller, x: Tensor, scores: dict[str, Tensor],
                   fractions: list[float], draws: int, seed: int) -> dict[str, list[float]]:
    """Mean distortion when each method's top ``fraction`` of components is kept and the
    rest infilled, for every fraction: ``{method: [distortion per fraction]}``."""
    curves = {}
    for name, score in scores.items():
        curves[name] = [float(distortion_at(model, infiller, x, keep_top(score, f), draws,
                                            seed).mean()) for f in fractions]
    return curves


def mean_spearman(a: Tensor, b: Tensor) -> float:
    """Mean over rows of the Spearman rank correlation of ``a[i]`` and ``b[i]`` (rows with
    a constant side count as 0)."""
    values = []
    for u, v in zip(a.double().numpy(), b.double().numpy()):
        if np.ptp(u) == 0 or np.ptp(v) == 0:
            values.append(0.0)
            continue
        values.append(float(spearmanr(u, v).statistic))
    return float(np.mean(values)) if values else float("nan")
