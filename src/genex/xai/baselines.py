"""Baseline attributions over components, behind the RDE optimisers' contract.

``explainer.attribute(x, target) -> [B, C]``: Captum's Saliency, IntegratedGradients and
occlusion (Captum's ``FeatureAblation`` with one feature group per component, i.e. occlusion
whose windows are the components), plus random scores. Entry-wise attributions are turned
into component scores by summing ``|attr|`` over each component's entries (occlusion: the
absolute change of the target score when the component is replaced by the baseline).

The explained scalar per input is the weighted sum of the selected outputs
(:meth:`genex.xai.target.Target.score`), so every baseline answers the same query as
the RDE optimisers.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from genex.xai.base import Explainer, Model
from genex.xai.components import ComponentMap
from genex.xai.rde import frozen
from genex.xai.target import Target, TargetSpec

__all__ = ["Saliency", "IntegratedGradients", "Occlusion", "Random"]


class _CaptumBaseline(Explainer):
    """Captum is imported when a baseline runs, so genex.xai itself needs no Captum."""

    def _forward(self, target: Target) -> Callable[[Tensor], Tensor]:
        # Captum expands batches draw-major (step-major), the layout Target expects
        return lambda inputs: target.score(self.model(inputs))

    def attribute(self, x: Tensor, target: TargetSpec = None) -> Tensor:
        """Component scores ``[B, C]`` (non-negative; higher = more important)."""
        x = x.detach()
        tgt = Target(target, x.shape[0])
        cmap = self.component_map.to(x.device)
        with frozen([self.model]), torch.enable_grad():
            attr = self._entry_attribution(x, tgt, cmap)
        return cmap.reduce(attr.abs(), "sum").detach()

    def _entry_attribution(self, x: Tensor, target: Target, cmap: ComponentMap) -> Tensor:
        raise NotImplementedError


class Saliency(_CaptumBaseline):
    """|∂ score / ∂ x| (Simonyan et al.), summed per component."""

    def _entry_attribution(self, x: Tensor, target: Target, cmap: ComponentMap) -> Tensor:
        from captum.attr import Saliency as CaptumSaliency

        return CaptumSaliency(self._forward(target)).attribute(x.clone().requires_grad_(True), abs=True)


class IntegratedGradients(_CaptumBaseline):
    """Integrated gradients (Sundararajan et al.) from ``baseline``, |attr| summed per component.

    Args:
        baseline: scalar or tensor broadcastable to ``x`` (e.g. the dataset mean).
        n_steps: Riemann steps; ``internal_batch_size`` bounds rows per forward.
    """

    def __init__(self, model: Model, component_map: ComponentMap, baseline: float | Tensor = 0.0,
                 n_steps: int = 32, internal_batch_size: int | None = None) -> None:
        super().__init__(model, component_map)
        self.baseline, self.n_steps = baseline, n_steps
        self.internal_batch_size = internal_batch_size

    def _entry_attribution(self, x: Tensor, target: Target, cmap: ComponentMap) -> Tensor:
        from captum.attr import IntegratedGradients as CaptumIntegratedGradients

        base = self.baseline
        base = base.to(x).expand_as(x) if isinstance(base, Tensor) else float(base)
        return CaptumIntegratedGradients(self._forward(target)).attribute(
            x.clone().requires_grad_(True), baselines=base, n_steps=self.n_steps,
            internal_batch_size=self.internal_batch_size)


class Occlusion(_CaptumBaseline):
    """Occlusion by component: |score(x) − score(x with component c set to baseline)|.

    Captum's ``FeatureAblation`` with the component labels as feature mask; entries in no
    component form one extra group that is ablated but not reported.

    Args:
        baseline: replacement value (scalar or tensor broadcastable to ``x``).
        perturbations_per_eval: components ablated per forward pass.
    """

    def __init__(self, model: Model, component_map: ComponentMap, baseline: float | Tensor = 0.0,
                 perturbations_per_eval: int = 64) -> None:
        super().__init__(model, component_map)
        self.baseline, self.perturbations_per_eval = baseline, perturbations_per_eval

    def attribute(self, x: Tensor, target: TargetSpec = None) -> Tensor:
        """Component scores ``[B, C]``: absolute score change when the component is occluded."""
        from captum.attr import FeatureAblation

        x = x.detach()
        tgt = Target(target, x.shape[0])
        cmap = self.component_map.to(x.device)
        labels = cmap.labels if cmap.per_input else cmap.labels.unsqueeze(0)
        base = self.baseline
        base = base.to(x).expand_as(x) if isinstance(base, Tensor) else float(base)
        with frozen([self.model]), torch.no_grad():
            attr = FeatureAblation(self._forward(tgt)).attribute(
                x, baselines=base, feature_mask=labels.expand(x.shape[0], *cmap.input_shape),
                perturbations_per_eval=self.perturbations_per_eval)
        # every entry of a group carries the group's value: the mean recovers it
        return cmap.reduce(attr.abs(), "mean")


class Random(Explainer):
    """Uniform random component scores (the floor every explainer should beat); the model
    is never called."""

    def __init__(self, model: Model, component_map: ComponentMap, seed: int = 0) -> None:
        super().__init__(model, component_map)
        self.seed = seed

    def attribute(self, x: Tensor, target: TargetSpec = None) -> Tensor:
        """``[B, C]`` scores from U(0, 1), reproducible for the seed."""
        gen = torch.Generator().manual_seed(self.seed)
        scores = torch.rand(x.shape[0], self.component_map.n_components, generator=gen)
        return scores.to(x.device)
