"""Which model outputs an explanation is about.

A :class:`Target` selects ``K`` values from the model's outputs and weights them:

* ``None``: every output (flattened);
* ``int``: one column of ``[N, n_classes]`` outputs (a pre-softmax logit);
* a sequence / 1-D integer tensor of length ``B``: one column per input (e.g. each note's
  predicted class);
* a float or bool tensor of the output shape ``O`` or ``[B, *O]``: weights over every output
  (a region of interest of a dense output; bool = sum over the region, a region divided by
  its size = mean over it);
* a callable ``outputs [N, *O] -> [N, ...]`` applied row-wise.

Batches of ``N = r * B`` rows are laid out *draw-major*: row ``i`` belongs to input ``i % B``
(the layout of Monte-Carlo draws here and of Captum's integrated-gradient steps).
"""

from __future__ import annotations

from typing import Callable, Sequence, Union

import torch
from torch import Tensor

TargetSpec = Union[None, int, Sequence[int], Tensor, Callable[[Tensor], Tensor]]

__all__ = ["Target", "TargetSpec"]


class Target:
    """A resolved target for a batch of ``batch_size`` inputs."""

    def __init__(self, spec: TargetSpec, batch_size: int) -> None:
        self.spec = spec
        self.batch_size = batch_size
        self._index: Tensor | None = None     # per-input column, [B]
        self._weights: Tensor | None = None   # O or [B, *O]
        self._weight_rows: Tensor | None = None  # which row of per-input weights each input uses
        if isinstance(spec, (list, tuple)) or (isinstance(spec, Tensor) and not spec.is_floating_point()
                                                and spec.dtype != torch.bool):
            index = torch.as_tensor(spec, dtype=torch.long).reshape(-1)
            if index.numel() != batch_size:
                raise ValueError(f"target: {index.numel()} class indices for {batch_size} inputs")
            self._index = index
        elif isinstance(spec, Tensor):
            self._weights = spec.to(torch.get_default_dtype()) if spec.dtype == torch.bool else spec

    def select(self, outputs: Tensor) -> Tensor:
        """Selected outputs ``[N, K]`` from ``outputs [N, *O]``."""
        n = outputs.shape[0]
        if n % self.batch_size:
            raise ValueError(f"target: {n} output rows is not a multiple of the batch {self.batch_size}")
        spec = self.spec
        if spec is None or self._weights is not None:
            return outputs.reshape(n, -1)
        if isinstance(spec, int):
            return outputs.reshape(n, -1)[:, spec: spec + 1]
        if self._index is not None:
            index = self._index.to(outputs.device).repeat(n // self.batch_size)
            return outputs.reshape(n, -1).gather(1, index.unsqueeze(1))
        if callable(spec):
            return spec(outputs).reshape(n, -1)
        raise TypeError(f"target: unsupported target of type {type(spec).__name__}")

    def weights(self, n_rows: int, like: Tensor) -> Tensor | None:
        """Weights ``[n_rows, K]`` (or None = all ones) for selected outputs ``like``."""
        if self._weights is None:
            return None
        w = self._weights.to(device=like.device, dtype=like.dtype)
        k = like.shape[-1]
        if w.numel() == k:
            return w.reshape(1, k)
        rows = self._weight_rows
        n_inputs = self.batch_size if rows is None else self._weights_inputs
        if w.numel() == n_inputs * k:
            w = w.reshape(n_inputs, k)
            if rows is not None:
                w = w[rows.to(w.device)]
            return w.repeat(n_rows // self.batch_size, 1)
        raise ValueError(f"target: weights of shape {tuple(w.shape)} match neither the output "
                         f"({k} values) nor [B={self.batch_size}, {k}]")

    def score(self, outputs: Tensor) -> Tensor:
        """One scalar per row ``[N]``: the weighted sum of the selected outputs (for Captum)."""
        sel = self.select(outputs)
        w = self.weights(sel.shape[0], sel)
        return (sel if w is None else sel * w).sum(1)

    def sq_error(self, outputs: Tensor, reference: Tensor) -> Tensor:
        """Per row ``½ Σ_k w_k (out_k − ref_k)²`` ``[N]``; ``reference`` is ``[B, K]``."""
        sel = self.select(outputs)
        reps = sel.shape[0] // self.batch_size
        diff = sel - reference.repeat(reps, 1)
        w = self.weights(sel.shape[0], sel)
        sq = diff.square() if w is None else w * diff.square()
        return 0.5 * sq.sum(1)

    def for_input(self, b: int, repeats: int) -> "Target":
        """The target of input ``b`` alone, for a batch of ``repeats`` copies of it."""
        return self.for_rows(torch.full((repeats,), b, dtype=torch.long))

    def for_rows(self, rows: Tensor) -> "Target":
        """The target of inputs ``rows`` of this batch, for a batch of ``len(rows)`` inputs
        (repeats allowed: candidates of several inputs batched together)."""
        rows = torch.as_tensor(rows, dtype=torch.long).cpu()
        out = Target(None, rows.numel())
        out.spec = self.spec
        if self._index is not None:
            out._index = self._index[rows.to(self._index.device)]
        if self._weights is not None:
            out._weights = self._weights
            parent_rows = (torch.arange(self.batch_size) if self._weight_rows is None
                           else self._weight_rows)
            out._weight_rows = parent_rows[rows.to(parent_rows.device)]
            out._weights_inputs = (self.batch_size if self._weight_rows is None
                                   else self._weights_inputs)
        return out
