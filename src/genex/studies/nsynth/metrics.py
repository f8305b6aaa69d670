"""Evaluation of the nsynth study with :mod:`genex.xai.evaluate`: which infillers, masks over
every (channel, frequency) entry, which keep fractions, and the JSON layout."""

from __future__ import annotations

from typing import Callable

from torch import Tensor

from genex.xai.components import ComponentMap
from genex.xai.evaluate import in_distribution as _in_distribution
from genex.xai.evaluate import keep_curve, randomisation_sanity
from genex.xai.infill import Infiller

__all__ = ["in_distribution", "deletion_curve", "sanity"]

# forward batch bounds of the study (the infill draws depend on them: kept as before)
INDIST_BATCH, CURVE_BATCH = 256, 64


def in_distribution(model, infillers: dict[str, Infiller], x: Tensor, keep: float, seed: int,
                    batch_size: int = INDIST_BATCH) -> dict[str, dict[str, float]]:
    """Per infiller, with one i.i.d. random mask per note keeping ``keep`` of the entries:
    ``agreement`` (share of notes whose predicted family is unchanged) and ``frechet``
    (Fréchet distance of Φ's penultimate features, real vs infilled)."""
    cmap = ComponentMap.identity(tuple(x.shape[1:]))
    return {name: _in_distribution(model, model.embed, infiller, x, cmap, [keep], 1, seed,
                                   batch_size, classify=model.head)[float(keep)]
            for name, infiller in infillers.items()}


def deletion_curve(model, infiller: Infiller, x: Tensor, scores: dict[str, Tensor],
                   fractions: list[float], draws: int, seed: int) -> dict[str, list[float]]:
    """Mean distortion (all 11 pre-softmax scores) when each method's top ``fraction`` of
    components is kept and the rest infilled, for every fraction: ``{method: [...]}``."""
    cmap = ComponentMap.identity(tuple(x.shape[1:]))
    return {name: keep_curve(model, infiller, cmap, x, score, None, fractions, draws, seed,
                             CURVE_BATCH).mean.tolist()
            for name, score in scores.items()}


def sanity(explain: Callable[[object, Tensor], Tensor], model, randomise: Callable[[object], object],
           x: Tensor, masks: Tensor) -> float:
    """Mean Spearman correlation of the saved ``masks`` (trained Φ) and ``explain``'s masks
    for ``randomise(model)`` (Φ re-initialised): near 0 when the masks depend on Φ's weights."""
    return randomisation_sanity(lambda m, xs, _t: explain(m, xs), model, randomise, x, None,
                                scores=masks)
