"""The root of every genex explainer.

An explainer is built around one model (given at construction, as Captum's ``Attribution``)
and one :class:`~genex.xai.components.ComponentMap`, and answers one question::

    explainer.attribute(x, target) -> [B, C]

one score per input and component, higher = more important to the target (RDE: keep
probabilities or mask values; matching pursuit: earlier picks score higher; gradient
baselines: summed absolute attributions).

Arguments shared by every explainer, documented here once:

* ``model``: ``Φ``, any callable mapping a batch ``[N, *S]`` to outputs ``[N, *O]``: an
  ``nn.Module`` or a plain function, with or without parameters. While an explainer runs,
  modules are in eval mode with parameter gradients off; both are restored afterwards.
* ``component_map``: what each of the ``C`` scores switches.
* ``infiller``: what replaces removed components (:mod:`genex.xai.infill`), for methods
  that remove components.
* ``target``: which outputs are explained (:mod:`genex.xai.target`): ``None`` (a single
  output), a class index (one for all inputs, or one per input), or weights over a dense
  output (a region of a map, a span of frames).
* ``seed``: seeds every random draw of the method: the same seed gives the same scores.
"""

from __future__ import annotations

from typing import Callable

from torch import Tensor

from genex.xai.components import ComponentMap
from genex.xai.target import TargetSpec

__all__ = ["Explainer", "Model"]

Model = Callable[[Tensor], Tensor]


class Explainer:
    """Base class: holds the model and the component map; subclasses fill :meth:`attribute`."""

    def __init__(self, model: Model, component_map: ComponentMap) -> None:
        if not callable(model):
            raise TypeError(f"{type(self).__name__}: model must be callable, got {type(model).__name__}")
        if not isinstance(component_map, ComponentMap):
            raise TypeError(f"{type(self).__name__}: component_map must be a ComponentMap, "
                            f"got {type(component_map).__name__}")
        self.model = model
        self.component_map = component_map

    @property
    def n_components(self) -> int:
        """``C``, the number of scores per input."""
        return self.component_map.n_components

    def attribute(self, x: Tensor, target: TargetSpec = None) -> Tensor:
        """Scores ``[B, C]`` for the inputs ``x`` ``[B, *S]`` (see the module docstring)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(C={self.n_components})"
