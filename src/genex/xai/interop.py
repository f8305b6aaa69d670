"""Captum's perturbation methods with an infiller instead of a constant baseline (captum#1125).

Captum's FeatureAblation, ShapleyValueSampling, KernelShap and Lime "remove" a feature by
setting it to ``baselines``, a constant that can push the input far out of the data's
distribution. Here they run on a binary *presence* input ``p`` ``[B, C]`` (one entry per
component, 1 = present, baseline 0, each component its own feature) through the forward::

    f(p) = mean over n draws of  score(model(infiller(x, component_map.expand(p), n)))

so every coalition Captum evaluates is filled in by the infiller (noise from the data's
statistics, a blur, a generative model) and the attributions over ``p`` are component
attributions with in-distribution fills. With a constant infiller (``ZeroInfiller``,
``MeanInfiller``) they are exactly Captum's own results with that constant baseline.

* :class:`CaptumPerturbation`: the four methods under the genex contract,
  ``attribute(x, target) -> [B, C]``.
* :func:`infilled_forward`: the wrapped forward and its presence input, for calling Captum
  (or any perturbation method) yourself.
* :func:`quantus_perturb_func`: a ``perturb_func`` for Quantus's faithfulness metrics that
  fills the perturbed entries with an infiller.

Captum (and, for Lime and KernelShap, scikit-learn) is imported when a method runs; Quantus
is never imported here.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import Tensor

from genex.xai.base import Explainer, Model
from genex.xai.components import ComponentMap
from genex.xai.infill import Infiller
from genex.xai.rde import frozen
from genex.xai.target import Target, TargetSpec

__all__ = ["CaptumPerturbation", "InfilledForward", "infilled_forward", "quantus_perturb_func",
           "METHODS"]

# method name -> Captum class name
METHODS = {
    "feature_ablation": "FeatureAblation",
    "shapley": "ShapleyValueSampling",
    "kernel_shap": "KernelShap",
    "lime": "Lime",
}


# attribute() arguments the explainer sets itself
_RESERVED = {"inputs", "baselines", "feature_mask", "additional_forward_args", "target",
             "perturbations_per_eval", "return_input_shape"}


class InfilledForward:
    """Captum forward over presence vectors: ``forward(p [N, C], rows [N]) -> scores [N]``.

    ``rows[i]`` says which input of ``x`` row ``i`` of ``p`` belongs to; Captum slices and
    repeats it with the presence rows when it is passed as ``additional_forward_args``
    (:attr:`attribute_kwargs` does so), whatever its batching (Lime and KernelShap explain
    one input at a time). Every call restarts the infill generator from ``seed``: a call's
    draws depend only on the seed and its rows, and calls of the same layout share draws
    (common random numbers), so score differences between coalitions come from the removed
    components, not from the noise.

    Attributes:
        inputs: the presence input, ones ``[B, C]``.
        attribute_kwargs: ``baselines`` (0), ``feature_mask`` (one feature per component)
            and ``additional_forward_args`` (the rows) for ``captum_method.attribute``.
    """

    def __init__(self, model: Model, infiller: Infiller, component_map: ComponentMap, x: Tensor,
                 target: TargetSpec = None, n_samples: int = 8, seed: int = 0) -> None:
        if n_samples < 1:
            raise ValueError(f"infilled_forward: n_samples must be >= 1, got {n_samples}")
        if tuple(x.shape[1:]) != component_map.input_shape:
            raise ValueError(f"infilled_forward: inputs have shape {tuple(x.shape[1:])}, the "
                             f"component map {component_map.input_shape}")
        if component_map.per_input and component_map.labels.shape[0] != x.shape[0]:
            raise ValueError(f"infilled_forward: the component map is per input for "
                             f"{component_map.labels.shape[0]} inputs, got {x.shape[0]}")
        self.model, self.infiller = model, infiller
        self.x = x.detach()
        self.component_map = component_map.to(x.device)
        self.target = Target(target, x.shape[0])
        self.n_samples, self.seed = int(n_samples), int(seed)
        batch, c = x.shape[0], component_map.n_components
        self.inputs = torch.ones(batch, c, dtype=x.dtype, device=x.device)
        self.rows = torch.arange(batch, device=x.device)
        self.attribute_kwargs: dict[str, Any] = {
            "baselines": 0.0,
            "feature_mask": torch.arange(c, device=x.device).unsqueeze(0),
            "additional_forward_args": (self.rows,),
        }

    def __call__(self, presence: Tensor, rows: Tensor) -> Tensor:
        n, x = self.n_samples, self.x
        rows = rows.to(x.device).long()
        if presence.shape != (rows.shape[0], self.component_map.n_components):
            raise ValueError(f"infilled_forward: presence has shape {tuple(presence.shape)}, "
                             f"expected {(rows.shape[0], self.component_map.n_components)}")
        cmap = self.component_map
        if cmap.per_input:
            cmap = ComponentMap(cmap.labels[rows], cmap.n_components, cmap.uncovered, per_input=True)
        gen = torch.Generator(device=x.device).manual_seed(self.seed)
        with frozen([self.model, *self.infiller.modules()]), torch.no_grad():
            xr = x[rows]
            z = self.infiller(xr, cmap.expand(presence.to(x.dtype)), n, generator=gen)
            out = self.model(z.reshape(n * xr.shape[0], *xr.shape[1:]))
            scores = _row_scores(self.target, out, rows.repeat(n))
        return scores.view(n, xr.shape[0]).mean(0)


def infilled_forward(model: Model, infiller: Infiller, component_map: ComponentMap, x: Tensor,
                     target: TargetSpec = None, n_samples: int = 8, seed: int = 0) -> InfilledForward:
    """The forward and presence input that make any Captum perturbation method infill.

    Example::

        from captum.attr import KernelShap
        fwd = infilled_forward(model, NoiseInfiller(mean, std), cmap, x, target=3)
        attr = KernelShap(fwd).attribute(fwd.inputs, n_samples=200, **fwd.attribute_kwargs)
        # attr: [B, C], one value per component

    Args:
        x: the inputs ``[B, *S]`` being explained; ``target``: see :mod:`genex.xai.target`
            (pass it here, not to Captum: the forward returns one score per row).
        n_samples: infill draws averaged per coalition (1 for constant infillers).
        seed: seeds the infill draws of every forward call.
    """
    return InfilledForward(model, infiller, component_map, x, target, n_samples, seed)


def _row_scores(target: Target, outputs: Tensor, rows: Tensor) -> Tensor:
    """``target.score`` for outputs whose row ``i`` belongs to input ``rows[i]``."""
    b = target.batch_size
    if rows.numel() % b == 0 and torch.equal(rows, torch.arange(b, device=rows.device).repeat(rows.numel() // b)):
        return target.score(outputs)  # the draw-major layout Target knows
    scores = torch.empty(rows.numel(), dtype=outputs.dtype, device=outputs.device)
    for i in torch.unique(rows).tolist():
        sel = rows == i
        scores[sel] = target.for_input(i, int(sel.sum())).score(outputs[sel])
    return scores


@contextlib.contextmanager
def _seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Captum's samplers draw from torch's global generator: seed it, restore it after."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


class CaptumPerturbation(Explainer):
    """A Captum perturbation method whose removed components are filled by an infiller.

    ``attribute(x, target) -> [B, C]``: Captum's attribution of each component's presence
    (signed: positive = the component raises the target score; ``abs`` for magnitudes),
    computed on :func:`infilled_forward`.

    Args:
        model, infiller, component_map: see :mod:`genex.xai.base`.
        method: ``"feature_ablation"`` (occlusion: score with all − score without ``c``),
            ``"shapley"`` (ShapleyValueSampling), ``"kernel_shap"`` or ``"lime"``.
        n_samples: infill draws averaged per coalition (1 for constant infillers).
        n_evals: Captum's own ``n_samples``: permutations (shapley) or coalitions
            (kernel_shap, lime); ignored by feature_ablation. Captum's default when None.
        perturbations_per_eval: coalitions per forward call.
        abs: return ``|attr|``.
        seed: seeds Captum's sampling and the infill draws.
        similarity_func, interpretable_model: passed to Captum's Lime / KernelShap
            (``interpretable_model``) constructors when given. Lime's default kernel measures
            the distance between presence vectors, i.e. in component space.
        **method_kwargs: further arguments of the Captum method's ``attribute``.
    """

    def __init__(self, model: Model, infiller: Infiller, component_map: ComponentMap,
                 method: str = "shapley", n_samples: int = 8, n_evals: int | None = None,
                 perturbations_per_eval: int = 1, abs: bool = False, seed: int = 0,
                 similarity_func: Callable | None = None, interpretable_model: Any = None,
                 **method_kwargs: Any) -> None:
        super().__init__(model, component_map)
        if method not in METHODS:
            raise ValueError(f"CaptumPerturbation: unknown method {method!r}; one of {sorted(METHODS)}")
        if not isinstance(infiller, Infiller):
            raise TypeError(f"CaptumPerturbation: infiller must be an Infiller, got {type(infiller).__name__}")
        if n_samples < 1 or perturbations_per_eval < 1 or (n_evals is not None and n_evals < 1):
            raise ValueError("CaptumPerturbation: n_samples, n_evals and perturbations_per_eval must be >= 1")
        if similarity_func is not None and method != "lime":
            raise ValueError(f"CaptumPerturbation: similarity_func is for lime, not {method!r}")
        if interpretable_model is not None and method not in ("lime", "kernel_shap"):
            raise ValueError(f"CaptumPerturbation: interpretable_model is for lime / kernel_shap, not {method!r}")
        clash = sorted(_RESERVED & set(method_kwargs))
        if clash:
            raise ValueError(f"CaptumPerturbation: {', '.join(clash)} are set by the explainer, not by method_kwargs")
        self.infiller, self.method = infiller, method
        self.n_samples, self.n_evals = int(n_samples), n_evals
        self.perturbations_per_eval, self.abs, self.seed = int(perturbations_per_eval), abs, int(seed)
        self.similarity_func, self.interpretable_model = similarity_func, interpretable_model
        self.method_kwargs = method_kwargs

    def captum_method(self, forward: Callable) -> Any:
        """The Captum attribution object for ``forward``."""
        import captum.attr

        cls = getattr(captum.attr, METHODS[self.method])
        init: dict[str, Any] = {}
        if self.similarity_func is not None:
            init["similarity_func"] = self.similarity_func
        if self.interpretable_model is not None:
            init["interpretable_model"] = self.interpretable_model
        return cls(forward, **init)

    def attribute(self, x: Tensor, target: TargetSpec = None) -> Tensor:
        """Component attributions ``[B, C]`` (see the class docstring)."""
        x = x.detach()
        fwd = infilled_forward(self.model, self.infiller, self.component_map, x, target,
                               self.n_samples, self.seed)
        kwargs = dict(fwd.attribute_kwargs, perturbations_per_eval=self.perturbations_per_eval,
                      **self.method_kwargs)
        if self.n_evals is not None and self.method != "feature_ablation":
            kwargs["n_samples"] = self.n_evals
        with _seeded(self.seed, x.device), _quiet_batch_warning():
            attr = self.captum_method(fwd).attribute(fwd.inputs, **kwargs)
        attr = attr.detach().to(x.dtype).reshape(x.shape[0], self.n_components)
        return attr.abs() if self.abs else attr


@contextlib.contextmanager
def _quiet_batch_warning() -> Iterator[None]:
    # Lime / KernelShap warn that they fit one model per input: that is the point here
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="You are providing multiple inputs for Lime")
        yield


def quantus_perturb_func(infiller: Infiller, input_shape: tuple[int, ...] | None = None,
                         n_samples: int = 1, seed: int = 0) -> Callable[..., np.ndarray]:
    """A Quantus ``perturb_func`` that fills the perturbed entries with ``infiller``.

    Quantus's faithfulness metrics (FaithfulnessCorrelation, PixelFlipping, ...) call
    ``perturb_func(arr=[N, F], indices=[N, I], **perturb_func_kwargs)`` with flattened
    inputs and, per row, the flat indices of the entries to remove (the signature of
    ``quantus.functions.perturb_func.batch_baseline_replacement_by_indices``). The returned
    array has those entries infilled (the mean of ``n_samples`` draws) and every other entry
    exactly as in ``arr``; ``input_shape`` (``S``, one input without batch axis) unflattens
    the rows for infillers that need the layout (blur, generative). Draws are seeded per
    call, from ``seed``. Quantus's ``perturb_baseline`` keyword is accepted and ignored:
    the infiller is the baseline.

    Example::

        metric = quantus.FaithfulnessCorrelation(
            perturb_func=quantus_perturb_func(NoiseInfiller(mean, std), (1, 64)), ...)
    """
    if n_samples < 1:
        raise ValueError(f"quantus_perturb_func: n_samples must be >= 1, got {n_samples}")
    shape = None if input_shape is None else tuple(int(d) for d in input_shape)

    def perturb_func(arr: np.ndarray, indices: np.ndarray, **kwargs: Any) -> np.ndarray:
        arr = np.asarray(arr)
        indices = np.asarray(indices)
        if arr.ndim != 2 or indices.ndim != 2 or indices.shape[0] != arr.shape[0]:
            raise ValueError(f"quantus_perturb_func: expected arr [N, F] and indices [N, I], got "
                             f"{arr.shape} and {indices.shape}")
        s = (arr.shape[1],) if shape is None else shape
        if int(np.prod(s)) != arr.shape[1]:
            raise ValueError(f"quantus_perturb_func: rows of {arr.shape[1]} entries do not fit "
                             f"input_shape {s}")
        drop = np.zeros(arr.shape, dtype=bool)
        drop[np.arange(arr.shape[0])[:, None], indices] = True
        x = torch.as_tensor(np.ascontiguousarray(arr)).reshape(arr.shape[0], *s)
        keep = torch.as_tensor(~drop).to(x.dtype).reshape(x.shape)
        gen = torch.Generator().manual_seed(seed)
        with frozen(infiller.modules()), torch.no_grad():
            z = infiller(x, keep, n_samples, generator=gen).mean(0)
        z = torch.where(keep == 1, x, z)  # kept entries exactly as given, even after the mean
        return z.reshape(arr.shape).numpy().astype(arr.dtype, copy=False)

    return perturb_func
