"""Evaluation of explanations and infillers, for any model (written once, used by every study).

* **Curves.** :func:`keep_curve` (distortion when each input keeps its top fraction of
  components and the rest is infilled: the RDE paper's faithfulness curve),
  :func:`deletion_curve` and :func:`insertion_curve` (the target's score as the top
  components are removed from / inserted into the infilled input, as in RISE),
  :func:`order_curve` (keep the first 0..k components of a given order: matching pursuit,
  random or nearest orders) and :func:`evaluate_masks` under all of them. Every value is
  a Monte-Carlo mean over ``n_samples`` infill draws; a :class:`Curve` carries the mean
  over inputs, its standard error and the per-input values; :func:`auc` integrates it.
* **Masks.** :func:`mask_distortion` of any mask (relaxed or binary) and
  :func:`binarised_distortion` of scores made binary (top-k, top fraction or threshold),
  to report beside an optimiser's relaxed distortion; :func:`prune` drops the components a
  binary mask keeps that its rate-distortion objective does not need.
* **Infillers.** :func:`in_distribution`: for random masks at each keep rate, the Fréchet
  distance of the model's own features (clean vs obfuscated inputs) and the share of
  obfuscated inputs whose predicted class is unchanged.
* **Sanity.** :func:`randomisation_sanity` (Adebayo et al.): rank correlation of an
  explainer's scores for the trained and a randomised model (near 0 = the explanation
  depends on the weights); :func:`frechet_distance` is re-exported from
  :mod:`genex.xai.frechet`.

Shared arguments (see also :mod:`genex.xai.base`): ``model``, ``infiller``,
``component_map``, ``x`` ``[B, *S]``, ``scores`` ``[B, C]`` (higher = more important),
``target``; ``n_samples`` infill draws per input and step; ``seed`` seeds the draws;
``batch_size`` bounds the inputs per forward (each forward holds ``n_samples * batch_size``
rows, draw-major). The draws, hence the values, depend on ``seed`` and ``batch_size``;
every method evaluated with the same seed sees the same draws, so curves compare fairly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor

from genex.xai.base import Model
from genex.xai.components import ComponentMap
from genex.xai.frechet import frechet_distance
from genex.xai.infill import Infiller
from genex.xai.rde import frozen
from genex.xai.target import Target, TargetSpec

__all__ = [
    "Curve", "auc", "keep_top", "binarise", "top_order", "random_orders", "prefix_masks",
    "evaluate_masks", "mask_distortion", "binarised_distortion", "prune", "keep_curve",
    "deletion_curve", "insertion_curve", "order_curve", "in_distribution", "mean_spearman",
    "randomisation_sanity", "frechet_distance",
]

METRICS = ("distortion", "score")
DRAWS = ("per_step", "per_curve")


@dataclass(frozen=True)
class Curve:
    """A curve over ``F`` steps (keep fractions, or component counts for :func:`order_curve`).

    Attributes:
        steps: ``[F]``, the x axis.
        mean: ``[F]``, the mean over inputs.
        sem: ``[F]``, its standard error over inputs (NaN for a single input).
        per_input: ``[B, F]``, each input's Monte-Carlo mean.
    """

    steps: Tensor
    mean: Tensor
    sem: Tensor
    per_input: Tensor

    def auc(self) -> float:
        """Trapezoidal area under :attr:`mean` over :attr:`steps`."""
        return auc(self)

    def as_dict(self) -> dict[str, list]:
        """Plain lists (for JSON)."""
        return {"steps": self.steps.tolist(), "mean": self.mean.tolist(), "sem": self.sem.tolist(),
                "per_input": self.per_input.tolist()}


def auc(curve: Curve, per_input: bool = False) -> float | Tensor:
    """Trapezoidal area under a curve's mean (a float), or under each input's curve (``[B]``)."""
    steps = curve.steps.to(torch.float64)
    if per_input:
        return torch.trapezoid(curve.per_input.to(torch.float64), steps, dim=-1)
    return float(torch.trapezoid(curve.mean.to(torch.float64), steps))


# --- masks and orders -------------------------------------------------------------------------

def keep_top(scores: Tensor, fraction: float | None = None, k: int | None = None) -> Tensor:
    """Binary masks ``[B, C]`` keeping each row's ``k`` (or ``round(fraction · C)``) highest
    scores; ties go to the lower index, so the mask is deterministic."""
    b, c = scores.shape
    if (fraction is None) == (k is None):
        raise ValueError("keep_top: give exactly one of fraction and k")
    k = int(round(fraction * c)) if k is None else int(k)
    if not 0 <= k <= c:
        raise ValueError(f"keep_top: cannot keep {k} of {c} components")
    mask = torch.zeros(b, c, dtype=scores.dtype, device=scores.device)
    if k > 0:
        order = torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :k]
        mask.scatter_(1, order, 1.0)
    return mask


def binarise(scores: Tensor, k: int | None = None, fraction: float | None = None,
             threshold: float | None = None) -> Tensor:
    """``scores [B, C]`` as a binary keep mask: the top ``k``, the top ``fraction`` or every
    score above ``threshold`` (e.g. 0.5 for keep probabilities); exactly one is given."""
    if sum(v is not None for v in (k, fraction, threshold)) != 1:
        raise ValueError("binarise: give exactly one of k, fraction and threshold")
    if threshold is not None:
        return (scores > threshold).to(scores.dtype if scores.is_floating_point() else torch.float32)
    return keep_top(scores, fraction=fraction, k=k)


def top_order(scores: Tensor, k: int) -> Tensor:
    """The ``k`` highest-scoring components of each row, best first ``[B, k]`` (ties by index)."""
    if scores.dim() != 2:
        raise ValueError(f"top_order: scores must be [B, C], got {tuple(scores.shape)}")
    return torch.sort(scores.detach(), dim=1, descending=True, stable=True).indices[:, :k]


def random_orders(n_components: int, k: int, count: int,
                  rng: np.random.Generator | int = 0) -> Tensor:
    """``count`` random orders of ``k`` distinct components ``[count, k]`` (a random baseline
    for :func:`order_curve`); ``rng`` is a numpy generator or its seed."""
    rng = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
    if not 0 <= k <= n_components:
        raise ValueError(f"random_orders: cannot order {k} of {n_components} components")
    rows = [rng.permutation(n_components)[:k] for _ in range(count)]
    return torch.as_tensor(np.asarray(rows, dtype=np.int64).reshape(count, k))


def prefix_masks(orders: Tensor | Sequence, n_components: int, k: int,
                 dtype: torch.dtype = torch.float32) -> Tensor:
    """``[k + 1, B, C]``: nothing kept, then the first 1..k components of each order.

    ``orders`` is ``[B, K]`` (or one order ``[K]``, B = 1); entries < 0 are padding (an
    order shorter than k keeps its last mask).
    """
    o = torch.as_tensor(orders, dtype=torch.long)
    o = o.reshape(1, -1) if o.dim() < 2 else o
    if o.numel() and int(o.max()) >= n_components:
        raise ValueError(f"prefix_masks: component {int(o.max())} out of range for {n_components}")
    o = o[:, :k]
    steps = torch.zeros(o.shape[0], k, n_components + 1, dtype=dtype)  # column C: padding
    idx = torch.where(o < 0, n_components, o)
    steps[:, : o.shape[1]].scatter_(2, idx.unsqueeze(2), 1.0)
    cum = steps[..., :n_components].cumsum(1).clamp_max(1)
    return torch.cat([torch.zeros(1, o.shape[0], n_components, dtype=dtype), cum.transpose(0, 1)])


# --- evaluating masks -------------------------------------------------------------------------

def _chunks(n: int, size: int) -> Iterator[slice]:
    if size < 1:
        raise ValueError(f"evaluate: batch_size must be >= 1, got {size}")
    return (slice(i, i + size) for i in range(0, n, size))


def _target_rows(tgt: Target, rows: Tensor) -> Target:
    """The target of inputs ``rows`` (any subset, repeats allowed) of a resolved target."""
    out = Target(None, len(rows))
    out.spec = tgt.spec
    if tgt._index is not None:
        out._index = tgt._index[rows]
    if tgt._weights is not None:
        parent = torch.arange(tgt.batch_size) if tgt._weight_rows is None else tgt._weight_rows
        out._weights = tgt._weights
        out._weight_rows = parent[rows]
        out._weights_inputs = tgt.batch_size if tgt._weight_rows is None else tgt._weights_inputs
    return out


def _map_rows(cmap: ComponentMap, rows: Tensor) -> ComponentMap:
    if not cmap.per_input:
        return cmap
    return ComponentMap(cmap.labels[rows.to(cmap.labels.device)], cmap.n_components,
                        cmap.uncovered, per_input=True)


@torch.no_grad()
def _reference(model: Model, x: Tensor, tgt: Target, batch_size: int) -> Tensor:
    parts = []
    for s in _chunks(len(x), batch_size):
        rows = torch.arange(len(x))[s]
        parts.append(_target_rows(tgt, rows).select(model(x[s])))
    return torch.cat(parts)


@torch.no_grad()
def evaluate_masks(model: Model, infiller: Infiller, component_map: ComponentMap, x: Tensor,
                   masks: Tensor, target: TargetSpec = None, n_samples: int = 1, seed: int = 0,
                   batch_size: int = 64, metric: str = "distortion",
                   draws: str = "per_step") -> Tensor:
    """Each input under each of ``F`` component masks ``masks [F, B, C]``: ``[F, B]``.

    Args:
        metric: ``"distortion"`` = ``½ E_z Σ_k w_k (Φ_k(x) − Φ_k(z))²`` (the RDE distortion
            on the target's outputs) or ``"score"`` = ``E_z Σ_k w_k Φ_k(z)`` (the target's
            score of the obfuscated input, for deletion / insertion curves).
        draws: ``"per_step"``: the generator restarts at every step, so every step sees the
            same draws; ``"per_curve"``: one stream for the whole curve, the steps batched
            together (step-major rows), so each step has its own draws.
    """
    if metric not in METRICS:
        raise ValueError(f"evaluate: unknown metric {metric!r}; known: {METRICS}")
    if draws not in DRAWS:
        raise ValueError(f"evaluate: unknown draws {draws!r}; known: {DRAWS}")
    if masks.dim() != 3 or masks.shape[1] != x.shape[0] or masks.shape[2] != component_map.n_components:
        raise ValueError(f"evaluate: masks must be [F, B={x.shape[0]}, C={component_map.n_components}], "
                         f"got {tuple(masks.shape)}")
    if n_samples < 1:
        raise ValueError(f"evaluate: n_samples must be >= 1, got {n_samples}")
    n_steps, batch = masks.shape[:2]
    cmap = component_map.to(x.device)
    tgt = Target(target, batch)
    out = torch.empty(n_steps, batch, dtype=x.dtype)
    groups = [[f] for f in range(n_steps)] if draws == "per_step" else [list(range(n_steps))]
    with frozen([model, *infiller.modules()]):
        ref = _reference(model, x, tgt, batch_size) if metric == "distortion" else None
        for group in groups:
            gen = torch.Generator(device=x.device).manual_seed(seed)
            steps = torch.tensor(group).repeat_interleave(batch)
            inputs = torch.arange(batch).repeat(len(group))
            for s in _chunks(len(steps), batch_size):
                f, b = steps[s], inputs[s]
                keep = _map_rows(cmap, b).expand(masks[f, b].to(x.device))
                xb = x[b.to(x.device)]
                z = infiller(xb, keep, n_samples, generator=gen)
                y = model(z.reshape(n_samples * len(b), *x.shape[1:]))
                sub = _target_rows(tgt, b)
                if metric == "distortion":
                    v = sub.sq_error(y, ref[b.to(ref.device)])
                else:
                    v = sub.score(y)
                out[f, b] = v.view(n_samples, len(b)).mean(0).cpu().to(out.dtype)
    return out


def mask_distortion(model: Model, infiller: Infiller, component_map: ComponentMap, x: Tensor,
                    mask: Tensor, target: TargetSpec = None, n_samples: int = 1, seed: int = 0,
                    batch_size: int = 64) -> Tensor:
    """Distortion ``[B]`` of each input keeping component ``mask [B, C]`` (relaxed or binary)."""
    return evaluate_masks(model, infiller, component_map, x, mask.unsqueeze(0), target,
                          n_samples, seed, batch_size)[0]


def binarised_distortion(model: Model, infiller: Infiller, component_map: ComponentMap, x: Tensor,
                         scores: Tensor, target: TargetSpec = None, k: int | None = None,
                         fraction: float | None = None, threshold: float | None = None,
                         n_samples: int = 1, seed: int = 0, batch_size: int = 64) -> dict[str, Tensor]:
    """Distortion of ``scores [B, C]`` (or a relaxed mask) made binary by :func:`binarise`.

    Returns ``{"mask": [B, C] binary, "kept": [B] components kept, "distortion": [B]}``.
    """
    mask = binarise(scores.detach(), k=k, fraction=fraction, threshold=threshold)
    return {"mask": mask, "kept": mask.sum(1),
            "distortion": mask_distortion(model, infiller, component_map, x, mask, target,
                                          n_samples, seed, batch_size)}


def prune(model: Model, infiller: Infiller, component_map: ComponentMap, x: Tensor, mask: Tensor,
          target: TargetSpec = None, lam: float = 0.0, scores: Tensor | None = None,
          n_samples: int = 1, seed: int = 0, batch_size: int = 64,
          passes: int | None = None) -> Tensor:
    """Greedy backward passes over a binary ``mask [B, C]``: each kept component, lowest
    ``scores`` first (mask order without them), is dropped when that lowers the binary
    objective ``distortion + lam * kept / C`` (RDE's, with its rate normalised by ``C``); the
    passes repeat until one drops nothing (a drop can make another component unneeded), or
    ``passes`` times.

    A relaxed optimisation can end with components at high keep probability that the binary
    objective does not need (e.g. rows between a note's harmonics that change nothing); this
    removes them and never raises the objective. Every evaluation uses the same ``seed``, so
    the draws are common to the comparisons. Costs one forward of ``n_samples * B`` rows per
    kept component and pass. Returns the pruned mask ``[B, C]`` (a subset of ``mask``).
    """
    mask = (mask.detach() > 0.5).to(x.dtype)
    n_components = mask.shape[1]
    rank = (scores.detach() if scores is not None else torch.zeros_like(mask)).to(torch.float64)
    rows = torch.arange(mask.shape[0])

    def objective(m: Tensor) -> Tensor:
        d = mask_distortion(model, infiller, component_map, x, m, target, n_samples, seed, batch_size)
        return d.to(torch.float64) + lam * m.sum(1).to(torch.float64) / n_components

    best = objective(mask)
    dropped, done = True, 0
    while dropped and (passes is None or done < passes):
        dropped, done = False, done + 1
        # each input's kept components first, lowest score first (the rest sort last, at inf)
        order = torch.where(mask > 0, rank, torch.inf).argsort(dim=1, stable=True)
        kept = mask.sum(1).long()
        for j in range(int(kept.max()) if kept.numel() else 0):
            active = kept > j
            trial = mask.clone()
            trial[rows[active], order[active, j]] = 0
            value = objective(trial)
            better = active & (value < best)
            mask[better] = trial[better]
            best = torch.where(better, value, best)
            dropped = dropped or bool(better.any())
    return mask


def _curve(steps: Sequence[float], values: Tensor) -> Curve:
    """``values [F, B]`` as a :class:`Curve` (means row by row, as a 1-D mean would give)."""
    mean = torch.stack([row.mean() for row in values])
    batch = values.shape[1]
    sem = (values.std(1) / math.sqrt(batch) if batch > 1
           else torch.full_like(mean, float("nan")))
    return Curve(torch.as_tensor(list(steps), dtype=torch.float64), mean, sem, values.t().contiguous())


def _fraction_curve(model, infiller, component_map, x, scores, target, fractions, n_samples,
                    seed, batch_size, metric, draws, remove: bool) -> Curve:
    scores = scores.detach()
    masks = torch.stack([keep_top(scores, fraction=float(f)) for f in fractions])
    if remove:
        masks = 1 - masks
    values = evaluate_masks(model, infiller, component_map, x, masks, target, n_samples, seed,
                            batch_size, metric, draws)
    return _curve(fractions, values)


def keep_curve(model: Model, infiller: Infiller, component_map: ComponentMap, x: Tensor,
               scores: Tensor, target: TargetSpec = None, fractions: Sequence[float] = (0.0, 0.5, 1.0),
               n_samples: int = 1, seed: int = 0, batch_size: int = 64, metric: str = "distortion",
               draws: str = "per_step") -> Curve:
    """Keep each input's top ``fraction`` of components (by ``scores``), infill the rest:
    the distortion (falls to 0 as the fraction reaches 1; lower = more faithful)."""
    return _fraction_curve(model, infiller, component_map, x, scores, target, fractions,
                           n_samples, seed, batch_size, metric, draws, remove=False)


def deletion_curve(model: Model, infiller: Infiller, component_map: ComponentMap, x: Tensor,
                   scores: Tensor, target: TargetSpec = None, fractions: Sequence[float] = (0.0, 0.5, 1.0),
                   n_samples: int = 1, seed: int = 0, batch_size: int = 64, metric: str = "score",
                   draws: str = "per_step") -> Curve:
    """Remove (infill) each input's top ``fraction`` of components: by default the target's
    score, which a faithful ranking makes fall fast (lower AUC = better)."""
    return _fraction_curve(model, infiller, component_map, x, scores, target, fractions,
                           n_samples, seed, batch_size, metric, draws, remove=True)


def insertion_curve(model: Model, infiller: Infiller, component_map: ComponentMap, x: Tensor,
                    scores: Tensor, target: TargetSpec = None, fractions: Sequence[float] = (0.0, 0.5, 1.0),
                    n_samples: int = 1, seed: int = 0, batch_size: int = 64, metric: str = "score",
                    draws: str = "per_step") -> Curve:
    """Insert each input's top ``fraction`` of components into the fully infilled input: by
    default the target's score, which a faithful ranking makes rise fast (higher AUC = better)."""
    return _fraction_curve(model, infiller, component_map, x, scores, target, fractions,
                           n_samples, seed, batch_size, metric, draws, remove=False)


def order_curve(model: Model, infiller: Infiller, component_map: ComponentMap, x: Tensor,
                orders: Tensor | Sequence, k: int, target: TargetSpec = None, n_samples: int = 1,
                seed: int = 0, batch_size: int = 64, metric: str = "distortion",
                draws: str = "per_curve") -> Curve:
    """Keep the first 0..k components of each input's order (``[B, K]``, -1 = padding):
    steps 0..k. By default one draw stream for the whole curve (steps batched)."""
    masks = prefix_masks(orders, component_map.n_components, k, x.dtype)
    if masks.shape[1] != x.shape[0]:
        raise ValueError(f"order_curve: {masks.shape[1]} orders for {x.shape[0]} inputs")
    values = evaluate_masks(model, infiller, component_map, x, masks, target, n_samples, seed,
                            batch_size, metric, draws)
    return _curve(range(k + 1), values)


# --- infillers: in distribution? --------------------------------------------------------------

@torch.no_grad()
def in_distribution(model: Model, features_fn: Callable[[Tensor], Tensor], infiller: Infiller,
                    x: Tensor, component_map: ComponentMap, keep_rates: Sequence[float],
                    n_samples: int = 1, seed: int = 0, batch_size: int = 256,
                    classify: Callable[[Tensor], Tensor] | None = None) -> dict[float, dict[str, float]]:
    """Are an infiller's obfuscations in distribution *for this model*?

    Per keep rate, every input gets one i.i.d. random component mask keeping each component
    with that probability (the uniforms are drawn once with ``seed``, so the masks are
    nested across rates), and ``n_samples`` infill draws (generator ``seed + 1``).

    Args:
        features_fn: the model's own features (e.g. its penultimate layer), ``[N, *S] -> [N, D]``.
        classify: features -> outputs (e.g. the model's last layer), to take the predictions
            from the features without a second forward; ``None`` = ``model``'s outputs.

    Returns:
        ``{rate: {"agreement": share of obfuscated inputs whose predicted class (argmax)
        equals the clean input's, "frechet": Fréchet distance of the features, clean vs
        obfuscated}}``.
    """
    if n_samples < 1:
        raise ValueError(f"in_distribution: n_samples must be >= 1, got {n_samples}")
    batch = x.shape[0]
    cmap = component_map.to(x.device)
    every = torch.arange(batch)

    def predict(parts_x: list[Tensor], parts_f: list[Tensor]) -> Tensor:
        if classify is not None:
            return classify(torch.cat(parts_f)).argmax(1)
        return torch.cat([model(p).argmax(1) for p in parts_x])

    with frozen([model, *infiller.modules()]):
        xs = [x[s] for s in _chunks(batch, batch_size)]
        real_parts = [features_fn(p) for p in xs]
        real = torch.cat(real_parts)
        pred = predict(xs, real_parts)
        out: dict[float, dict[str, float]] = {}
        for rate in keep_rates:
            gen = torch.Generator().manual_seed(seed)
            keep = (torch.rand((batch, cmap.n_components), generator=gen) < rate).to(x.dtype)
            g = torch.Generator(device=x.device).manual_seed(seed + 1)
            zs, feats, clean = [], [], []
            for s in _chunks(batch, batch_size):
                rows = every[s]
                mask = _map_rows(cmap, rows).expand(keep[s].to(x.device))
                z = infiller(x[s], mask, n_samples, generator=g)
                z = z.reshape(n_samples * len(rows), *x.shape[1:])
                zs.append(z)
                feats.append(features_fn(z))
                clean.append(pred[s].repeat(n_samples))
            fake = torch.cat(feats)
            agree = float((predict(zs, feats) == torch.cat(clean)).float().mean())
            out[float(rate)] = {"agreement": agree,
                                "frechet": frechet_distance(real.cpu().double().numpy(),
                                                            fake.cpu().double().numpy())}
    return out


# --- sanity -----------------------------------------------------------------------------------

def mean_spearman(a: Tensor, b: Tensor) -> float:
    """Mean over rows of the Spearman rank correlation of ``a[i]`` and ``b[i]`` (a row with
    a constant side counts as 0)."""
    from scipy.stats import spearmanr  # here: scipy.stats costs 0.5-0.7 s, and every `import genex.xai`

    values = []
    for u, v in zip(a.detach().cpu().double().numpy(), b.detach().cpu().double().numpy()):
        if np.ptp(u) == 0 or np.ptp(v) == 0:
            values.append(0.0)
            continue
        values.append(float(spearmanr(u, v).statistic))
    return float(np.mean(values)) if values else float("nan")


def randomisation_sanity(explain_fn: Callable[[Model, Tensor, TargetSpec], Tensor], model: Model,
                         randomise_fn: Callable[[Model], Model], x: Tensor,
                         target: TargetSpec = None, scores: Tensor | None = None) -> float:
    """Model-randomisation check: mean per-input Spearman correlation of
    ``explain_fn(model, x, target)`` (or the given ``scores``) and
    ``explain_fn(randomise_fn(model), x, target)``. Near 1: the explanation ignores the
    weights (it fails the check); near 0: it depends on them."""
    if scores is None:
        scores = explain_fn(model, x, target)
    randomised = explain_fn(randomise_fn(model), x, target)
    if tuple(randomised.shape) != tuple(scores.shape):
        raise ValueError(f"randomisation_sanity: scores {tuple(scores.shape)} and randomised "
                         f"scores {tuple(randomised.shape)} differ in shape")
    return mean_spearman(scores, randomised)
