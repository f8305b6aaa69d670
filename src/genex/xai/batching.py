"""Forward passes under a memory budget: the same outputs, at most so many rows at a time.

Explainers push many obfuscated copies of an input through a model at once (matching
pursuit: candidates x infill draws; RDE: inputs x Monte-Carlo draws). At real sizes one
such forward can need more memory than a GPU has. :class:`Chunked` wraps a model (or a
generative infiller's network) so that its forward runs on slices of the batch and
concatenates the results: every random draw is still made once for the whole batch by the
caller, so the outputs equal the unchunked ones (up to the floating-point effects of a
smaller batch, none on CPU in practice). Under autograd each slice is checkpointed
(:func:`torch.utils.checkpoint.checkpoint`), so only one slice's activations are alive at a
time; the gradients are those of the whole batch.

:func:`activation_bytes` measures what one row costs (the outputs of every layer of one
forward, which autograd keeps), and :func:`rows_for_budget` turns a budget in MB into rows.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

__all__ = ["Chunked", "activation_bytes", "rows_for_budget", "chunked_for_budget"]


class Chunked(nn.Module):
    """``module`` run on at most ``rows`` rows at a time (``None``: all at once).

    Every tensor argument with the batch's length (the first tensor's ``shape[0]``) is sliced
    along dim 0; other arguments are passed unchanged. The module's own attributes stay
    reachable through the wrapper (e.g. a generator's ``noise_dim``).
    """

    def __init__(self, module: nn.Module, rows: int | None) -> None:
        super().__init__()
        if rows is not None and int(rows) < 1:
            raise ValueError(f"Chunked: rows must be >= 1 or None, got {rows}")
        self.module = module
        self.rows = None if rows is None else int(rows)

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["module"], name)

    def forward(self, *args):
        tensors = [a for a in args if isinstance(a, Tensor)]
        if not tensors:
            raise ValueError("Chunked: the forward needs at least one tensor argument")
        n = tensors[0].shape[0]
        if self.rows is None or n <= self.rows:
            return self.module(*args)
        # checkpoint only where a graph is built: it trades a second forward for memory
        graph = torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
        parts = []
        for start in range(0, n, self.rows):
            part = [a[start: start + self.rows] if isinstance(a, Tensor) and a.dim() and a.shape[0] == n
                    else a for a in args]
            if graph:
                parts.append(checkpoint(self.module, *part, use_reentrant=False))
            else:
                parts.append(self.module(*part))
        return torch.cat(parts)


@torch.no_grad()
def activation_bytes(module: nn.Module, *example: Tensor) -> int:
    """Bytes of the outputs of every layer (module without children) in one forward of
    ``example``, plus the inputs: what autograd keeps for the backward pass, and an upper
    bound on a no-grad forward's peak. Run it on one row for the cost per row."""
    total = sum(t.numel() * t.element_size() for t in example if isinstance(t, Tensor))

    def count(_module, _inputs, output) -> None:
        nonlocal total
        outs = output if isinstance(output, (tuple, list)) else (output,)
        total += sum(t.numel() * t.element_size() for t in outs if isinstance(t, Tensor))

    leaves = [m for m in module.modules() if not any(True for _ in m.children())] or [module]
    handles = [m.register_forward_hook(count) for m in leaves]
    was_training = module.training
    try:
        module.eval()
        module(*example)
    finally:
        module.train(was_training)
        for h in handles:
            h.remove()
    return int(total)


def rows_for_budget(bytes_per_row: int, budget_mb: float | None) -> int | None:
    """Rows per forward within ``budget_mb`` (MiB) at ``bytes_per_row``; at least 1;
    ``None`` (no limit) when the budget is ``None`` or ``<= 0``."""
    if budget_mb is None or float(budget_mb) <= 0:
        return None
    return max(1, int(float(budget_mb) * 2**20 // max(1, int(bytes_per_row))))


def chunked_for_budget(module: nn.Module, example_row: tuple[Tensor, ...],
                       budget_mb: float | None) -> Chunked:
    """``module`` wrapped in :class:`Chunked` with the rows that fit ``budget_mb``, measured
    on ``example_row`` (one row of each forward argument)."""
    if budget_mb is None or float(budget_mb) <= 0:
        return Chunked(module, None)
    return Chunked(module, rows_for_budget(activation_bytes(module, *example_row), budget_mb))
