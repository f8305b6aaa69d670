"""The one training loop every trainer runs: the studies' eight and ``genex fit-infiller``.

:func:`fit` does the shared work once: it resumes from the :class:`Checkpointer`, runs the
remaining epochs (with a progress bar), puts the trained modules in train mode, feeds each
batch to the trainer's ``step``, sums the losses it returns, steps the learning-rate
schedulers, asks ``evaluate`` for the epoch's validation score, keeps the best epoch, logs
and checkpoints at every epoch end, and restores the best weights at the end. A trainer
fills three callables:

``batches(epoch) -> iterable``
    the epoch's batches, drawn from ``epoch_rng(seed, epoch)`` so that a resumed epoch
    replays exactly (see :mod:`genex.pipeline.checkpoint`). Anything iterable: index arrays,
    tensors built per batch, a generator that builds each batch's inputs only when asked.
``step(batch, loop) -> {name: value} | None``
    one training step. It computes its losses under ``loop.autocast()`` and applies each with
    ``loop.update(loss, optimizer)`` (the non-finite check, the backward pass, gradient
    clipping, the optimiser step); a GAN calls ``update`` once per optimiser. ``None`` skips
    the batch (it is neither counted nor summed).
``evaluate(epoch, losses) -> (score, record)``
    the validation score (lower is better) and the epoch's history record, built from
    ``losses`` (:class:`EpochLosses`, the summed step values).

Mixed precision follows one policy: bf16 autocast on CUDA, nothing on CPU (exact and
deterministic for a seed). bf16 keeps float32's exponent range, so no gradient scaler is
needed. A trainer whose model must stay exact in float32 (the piano INN, inverted later)
passes ``amp=False``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn

from genex.pipeline.checkpoint import Checkpointer, TrainState, finite_loss
from genex.progress import progress

log = logging.getLogger("genex.pipeline.training")

Batch = TypeVar("Batch")

__all__ = ["EpochLosses", "Loop", "autocast", "fit", "index_batches"]


def autocast(device: torch.device, enabled: bool = True):
    """The one mixed-precision policy: bf16 autocast on CUDA, nothing on CPU."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def index_batches(order: np.ndarray, size: int, full: bool = False, limit: int | None = None) -> list[np.ndarray]:
    """``order`` (an epoch's permutation, or ``arange`` for evaluation) cut into batches of
    ``size``: the last one shorter, or with ``full`` only full batches (at least one, so a set
    smaller than a batch still trains); at most ``limit`` batches when given (0 = all)."""
    count = max(1, len(order) // size) if full else -(-len(order) // size)
    if limit:
        count = min(count, int(limit))
    return [order[i * size:(i + 1) * size] for i in range(count)]


@dataclass
class EpochLosses:
    """What the steps of one epoch returned: ``sums[name]`` is the sum over the counted
    batches of ``value * weight(batch)`` (of ``value`` without a weight), ``batches`` their
    number."""

    sums: dict[str, float] = field(default_factory=dict)
    batches: int = 0

    def add(self, values: Mapping[str, float], weight: float | None) -> None:
        for name, value in values.items():
            value = float(value)
            self.sums[name] = self.sums.get(name, 0.0) + (value * weight if weight is not None else value)
        self.batches += 1


class Loop:
    """What a trainer's ``step`` uses: the device, the training state, autocast and
    :meth:`update`."""

    def __init__(self, device: torch.device, state: TrainState, amp: bool = True) -> None:
        self.device = device
        self.state = state
        self.amp = amp

    def autocast(self):
        """bf16 autocast on CUDA (unless the trainer opted out), nothing on CPU."""
        return autocast(self.device, self.amp)

    def update(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer, name: str = "loss",
               clip_norm: float | None = None, clip_value: float | None = None) -> float:
        """One optimiser step on ``loss``; returns its value.

        The loss is checked first (:func:`finite_loss`: NaN/inf stops training naming the
        epoch and step), then gradients are computed, clipped (``clip_norm``: the total norm
        of the optimiser's parameters' gradients; ``clip_value``: every element to ±value)
        and applied.
        """
        value = finite_loss(loss, self.state, name)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip_norm is not None or clip_value is not None:
            params = [p for group in optimizer.param_groups for p in group["params"]]
            if clip_value is not None:
                nn.utils.clip_grad_value_(params, clip_value)
            if clip_norm is not None:
                nn.utils.clip_grad_norm_(params, clip_norm)
        optimizer.step()
        return value


def fit(name: str, *, epochs: int, checkpointer: Checkpointer, device: torch.device,
        batches: Callable[[int], Iterable[Batch]],
        step: Callable[[Batch, Loop], Mapping[str, float] | None],
        evaluate: Callable[[int, EpochLosses], tuple[float, dict]],
        modules: Sequence[nn.Module] = (), schedulers: Sequence[Any] = (),
        weight: Callable[[Batch], float] | None = None, amp: bool = True,
        batch_progress: bool = False, quiet: bool = False, state: TrainState | None = None,
        restore_best: bool = True) -> TrainState:
    """Train for ``epochs`` epochs (resuming where ``checkpointer`` left off); return the state.

    ``modules`` are put in train mode at each epoch start (``evaluate`` may switch them to
    eval mode); ``schedulers`` step once per epoch after the last batch; ``weight(batch)``
    weighs each step's values in :attr:`EpochLosses.sums` (e.g. ``len`` for per-example
    means); ``batch_progress`` adds a progress bar over each epoch's batches (for long
    epochs); ``quiet`` shows no progress bar at all. ``state``: one the caller already resumed from ``checkpointer`` (to plan the
    remaining epochs from it). At the end the best epoch's weights are loaded back into the
    objects of ``checkpointer``; with ``restore_best=False`` the last epoch's stay (a trainer
    whose validation score is a diagnostic, not a model choice).
    """
    if state is None:
        state = checkpointer.resume()
    loop = Loop(device, state, amp)
    remaining = range(state.epoch, int(epochs))
    for epoch in remaining if quiet else progress(remaining, desc=name, total=len(remaining), unit="epoch"):
        for module in modules:
            module.train()
        losses = EpochLosses()
        epoch_batches = batches(epoch)
        if batch_progress and not quiet:
            epoch_batches = progress(epoch_batches, desc=f"{name} epoch {epoch + 1}/{epochs}", unit="batch")
        for batch in epoch_batches:
            values = step(batch, loop)
            if values is None:
                continue
            state.step += 1
            losses.add(values, weight(batch) if weight is not None else None)
        for scheduler in schedulers:
            scheduler.step()
        score, record = evaluate(epoch, losses)
        state.epoch = epoch + 1
        best = restore_best and state.improved(score)  # no best.pt without a best to restore
        state.history.append(record)
        log.info("%s epoch %d/%d: %s%s", name, state.epoch, epochs,
                 ", ".join(f"{k} {v:.4g}" for k, v in record.items()
                           if k != "epoch" and isinstance(v, (int, float))),
                 " (best)" if best else "")
        checkpointer.save(state, best=best)
    if restore_best:
        checkpointer.load_best()
    return state
