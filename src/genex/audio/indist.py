"""Do the obfuscations stay in distribution *for your model*? One table per explanation.

:func:`in_distribution_table` runs :func:`genex.xai.in_distribution` for each infiller (the
library's noise, zero, mean and blur, and a fitted :mod:`genex.audio.infiller` when given)
on the explained spectrograms: random component masks keep each component with probability
``keep_rate``, the rest is infilled, and two numbers say how far the model's view moved:

* ``frechet``: the Fréchet distance between the model's features of the clean and of the
  obfuscated inputs (lower = closer to the clean inputs; compare rows, not across models);
* ``agreement``: the share of obfuscated inputs whose predicted class is the clean input's.

An infiller that is far out of distribution (high Fréchet distance, low agreement at a keep
rate where an in-distribution infill keeps the decision) makes removal explanations report
what the model does on inputs it never saw, not why it decided.

Call::

    in_distribution_table(forward, embed, x, component_map, infillers=None, keep_rates=(0.5,),
                          n_samples=4, seed=0, fitted=None, batch_size=64)
        -> [{"infiller": "noise", "keep_rate": 0.5, "frechet": 12.3, "agreement": 0.75}, ...]
"""

from __future__ import annotations

import math
import warnings
from typing import Callable, Sequence

import torch
from torch import Tensor

from genex.xai import BlurInfiller, Infiller, MeanInfiller, NoiseInfiller, ZeroInfiller, in_distribution
from genex.xai.components import ComponentMap

__all__ = ["in_distribution_table", "library_infillers", "format_table"]


def library_infillers(x: Tensor, blur_sigma: float = 4.0, seed: int = 0) -> dict[str, Infiller]:
    """The library's infillers with statistics of ``x [B, F, Tf]``: ``noise`` (Gaussian with
    the mean and std of all entries), ``zero``, ``mean`` (each frequency row's mean over the
    clips and frames) and ``blur`` (Gaussian along time, ``blur_sigma`` frames)."""
    std = x.std() if x.numel() > 1 else torch.ones((), dtype=x.dtype)
    return {"noise": NoiseInfiller(x.mean(), std, seed=seed), "zero": ZeroInfiller(),
            "mean": MeanInfiller(x.mean(dim=(0, 2)).unsqueeze(-1)), "blur": BlurInfiller(blur_sigma)}


def _as_logits(forward: Callable[[Tensor], Tensor]) -> Callable[[Tensor], Tensor]:
    """``forward`` with outputs ``[N, K]``: a framewise ``[N, frames, K]`` output (or any
    output with more axes) is averaged over the middle axes, the clip's mean logits."""
    def wrapped(z: Tensor) -> Tensor:
        out = forward(z)
        return out.flatten(1, -2).mean(1) if out.dim() > 2 else out.reshape(out.shape[0], -1)
    return wrapped


def _as_samples(embed: Callable[[Tensor], Tensor]) -> Callable[[Tensor], Tensor]:
    """``embed`` with outputs ``[rows, D]``: per-frame features ``[N, frames, D]`` become
    ``N·frames`` samples (as the Fréchet audio distance treats frame embeddings)."""
    def wrapped(z: Tensor) -> Tensor:
        out = embed(z)
        return out.reshape(-1, out.shape[-1]) if out.dim() > 2 else out.reshape(out.shape[0], -1)
    return wrapped


def in_distribution_table(forward: Callable[[Tensor], Tensor], embed: Callable[[Tensor], Tensor],
                          x: Tensor, component_map: ComponentMap,
                          infillers: dict[str, Infiller] | None = None,
                          keep_rates: Sequence[float] = (0.5,), n_samples: int = 4, seed: int = 0,
                          fitted: Infiller | None = None, batch_size: int = 64) -> list[dict]:
    """One row per infiller and keep rate: ``{infiller, keep_rate, frechet, agreement}``.

    Args:
        forward: ``[N, F, Tf] -> logits [N, K]`` (framewise ``[N, frames, K]`` is averaged over
            frames; the agreement compares the argmax class).
        embed: ``[N, F, Tf] -> features [N, D]``, or ``[N, frames, D]`` (each frame a sample).
            The logits serve when the model exposes nothing deeper.
        x: the explained inputs ``[B, F, Tf]``. With one clip and clip-level features the clean
            side has a single feature vector; the clip is then used twice (two random masks),
            and the distance is ``E‖f(z) − f(x)‖²``-like (the clean covariance is 0).
        component_map: the explanation's components (masks are drawn over them).
        infillers: name -> infiller; ``None`` = :func:`library_infillers` of ``x``.
        keep_rates: probabilities of keeping each component (one row per rate and infiller).
        n_samples: infill draws per input.
        seed: seeds the masks (shared by every infiller: the rows compare like with like) and draws.
        fitted: an extra infiller reported as ``"fitted"`` (e.g. :func:`genex.audio.load_infiller`).
    """
    if x.dim() != 3:
        raise ValueError(f"in_distribution_table: x must be [B, F, Tf], got {tuple(x.shape)}")
    table = dict(library_infillers(x, seed=seed) if infillers is None else infillers)
    if fitted is not None:
        table["fitted"] = fitted
    if not table:
        raise ValueError("in_distribution_table: no infillers given")
    logits, features = _as_logits(forward), _as_samples(embed)
    with torch.no_grad():
        rows_per_input = features(x[:1]).shape[0]
    if x.shape[0] * rows_per_input < 2:  # a Fréchet distance needs two clean feature vectors
        x = x.repeat(2, 1, 1)
        if component_map.per_input:
            component_map = ComponentMap(component_map.labels.repeat(2, *[1] * (component_map.labels.dim() - 1)),
                                         component_map.n_components, component_map.uncovered, per_input=True)
    rows = []
    for name, infiller in table.items():
        with warnings.catch_warnings():
            # few clips give singular covariances; frechet_distance handles them (eps fallback)
            warnings.filterwarnings("ignore", message="Matrix is singular")
            result = in_distribution(logits, features, infiller, x, component_map, keep_rates,
                                     n_samples=n_samples, seed=seed, batch_size=batch_size)
        for rate, values in result.items():
            rows.append({"infiller": name, "keep_rate": rate,
                         "frechet": _round(values["frechet"]), "agreement": _round(values["agreement"])})
    return rows


def _round(value: float) -> float:
    return float(value) if not math.isfinite(value) else round(float(value), 6)


def format_table(rows: Sequence[dict]) -> str:
    """The table as aligned text (for a terminal or a log)."""
    lines = [f"{'infiller':<16} {'keep':>5} {'Fréchet':>12} {'agreement':>9}"]
    for r in rows:
        lines.append(f"{str(r['infiller']):<16} {r['keep_rate']:>5.2f} {r['frechet']:>12.4g} "
                     f"{r['agreement']:>9.3f}")
    return "\n".join(lines)
