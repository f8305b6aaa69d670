"""Component maps: what one mask entry switches.

A :class:`ComponentMap` turns a mask over ``C`` components (``[..., B, C]``) into a mask over
the input (``[..., B, *S]``) and back (summing entry values per component), so explainers
work over frequency bins, whole spectra, time-frequency tiles, buildings or measurements,
never raw pixels.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import torch
from torch import Tensor

__all__ = ["ComponentMap"]


class ComponentMap:
    """Which input entries each of ``C`` components switches.

    Stored as integer labels over the input: ``labels[..., p] = c`` if entry ``p`` belongs to
    component ``c``, and ``C`` if it belongs to none (such entries take ``uncovered``, by
    default 1 = always kept). Components are disjoint by construction. Labels are shared by
    all inputs (shape ``S``) or given per input (shape ``[B, *S]``, e.g. one city's buildings
    per radio map; pad with components that cover nothing, which :attr:`sizes` shows as 0).

    Args:
        labels: integer tensor ``S`` or ``[B, *S]`` with values in ``[0, C]``.
        n_components: ``C``.
        uncovered: mask value of entries in no component.
    """

    def __init__(self, labels: Tensor, n_components: int, uncovered: float = 1.0,
                 per_input: bool = False) -> None:
        labels = torch.as_tensor(labels, dtype=torch.long)
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) > n_components):
            raise ValueError(f"ComponentMap: labels must lie in [0, {n_components}], got "
                             f"[{int(labels.min())}, {int(labels.max())}]")
        self.labels = labels
        self.n_components = int(n_components)
        self.uncovered = float(uncovered)
        self.per_input = per_input
        self.input_shape = tuple(labels.shape[1:] if per_input else labels.shape)

    # ---- constructors -------------------------------------------------------------------
    @classmethod
    def identity(cls, shape: Sequence[int]) -> "ComponentMap":
        """Every entry is its own component (nsynth per note: 2×1024 components)."""
        n = math.prod(shape)
        return cls(torch.arange(n).view(*shape), n)

    @classmethod
    def along_axis(cls, shape: Sequence[int], axis: int = 0) -> "ComponentMap":
        """One component per index of ``axis`` (nsynth per class: whole magnitude / phase)."""
        shape = tuple(shape)
        axis = axis % len(shape)
        view = [1] * len(shape)
        view[axis] = shape[axis]
        labels = torch.arange(shape[axis]).view(view).expand(shape).contiguous()
        return cls(labels, shape[axis])

    @classmethod
    def from_sets(cls, shape: Sequence[int], sets: Sequence[Tensor | Iterable[int]],
                  uncovered: float = 1.0) -> "ComponentMap":
        """Components given as entry sets: boolean masks of ``shape`` or flat indices.

        For radio maps: one set per building (its pixels in the building channel) and one
        per measurement. Overlapping sets are an error.
        """
        shape = tuple(shape)
        labels = torch.full((math.prod(shape),), len(sets), dtype=torch.long)
        for c, entries in enumerate(sets):
            idx = _flat_indices(entries, shape)
            if bool((labels[idx] != len(sets)).any()):
                raise ValueError(f"ComponentMap.from_sets: set {c} overlaps an earlier set")
            labels[idx] = c
        return cls(labels.view(shape), len(sets), uncovered)

    @classmethod
    def stack(cls, maps: Sequence["ComponentMap"]) -> "ComponentMap":
        """Per-input maps (one per example, same input shape) as one map with labels [B, *S].

        Component counts are padded to the largest; padded components cover nothing.
        """
        if not maps or any(m.per_input for m in maps):
            raise ValueError("ComponentMap.stack: needs a non-empty list of shared maps")
        shape = maps[0].input_shape
        if any(m.input_shape != shape for m in maps):
            raise ValueError("ComponentMap.stack: maps have different input shapes")
        if len({m.uncovered for m in maps}) != 1:
            raise ValueError("ComponentMap.stack: maps have different 'uncovered' values")
        c = max(m.n_components for m in maps)
        labels = torch.stack([torch.where(m.labels == m.n_components, c, m.labels) for m in maps])
        return cls(labels, c, maps[0].uncovered, per_input=True)

    # ---- use ----------------------------------------------------------------------------
    def to(self, device: torch.device | str) -> "ComponentMap":
        """The same map with its labels on ``device``."""
        out = ComponentMap.__new__(ComponentMap)
        out.__dict__.update(self.__dict__)
        out.labels = self.labels.to(device)
        return out

    def _flat_labels(self, batch: int, device: torch.device) -> Tensor:
        labels = self.labels.to(device)
        if self.per_input:
            if labels.shape[0] != batch:
                raise ValueError(f"ComponentMap: labels are per input for {labels.shape[0]} "
                                 f"inputs, got a batch of {batch}")
            return labels.reshape(batch, -1)
        return labels.reshape(-1)

    def expand(self, mask: Tensor) -> Tensor:
        """Component mask ``[..., B, C]`` -> input mask ``[..., B, *S]``."""
        if mask.shape[-1] != self.n_components:
            raise ValueError(f"ComponentMap.expand: mask has {mask.shape[-1]} components, "
                             f"map has {self.n_components}")
        batch = mask.shape[-2]
        pad = torch.full((*mask.shape[:-1], 1), self.uncovered, dtype=mask.dtype, device=mask.device)
        padded = torch.cat([mask, pad], dim=-1)
        labels = self._flat_labels(batch, mask.device)
        if self.per_input:
            out = torch.gather(padded, -1, labels.expand(*mask.shape[:-1], labels.shape[-1]))
        else:
            out = padded.index_select(-1, labels)
        return out.reshape(*mask.shape[:-1], *self.input_shape)

    def reduce(self, values: Tensor, reduction: str = "sum") -> Tensor:
        """Input values ``[B, *S]`` -> per component ``[B, C]`` (``sum`` or ``mean`` of entries)."""
        batch = values.shape[0]
        flat = values.reshape(batch, -1)
        labels = self._flat_labels(batch, values.device)
        labels = labels.expand(batch, -1) if labels.dim() == 1 else labels
        out = torch.zeros(batch, self.n_components + 1, dtype=values.dtype, device=values.device)
        out.scatter_add_(1, labels, flat)
        out = out[:, : self.n_components]
        if reduction == "mean":
            out = out / self.sizes(batch, values.device).to(out.dtype).clamp_min(1)
        elif reduction != "sum":
            raise ValueError(f"ComponentMap.reduce: unknown reduction {reduction!r}")
        return out

    def sizes(self, batch: int = 1, device: torch.device | str = "cpu") -> Tensor:
        """Number of input entries per component, ``[B, C]`` (0 for padded components)."""
        labels = self._flat_labels(batch if self.per_input else 1, torch.device(device))
        labels = labels.expand(batch, -1) if labels.dim() == 1 else labels
        out = torch.zeros(batch, self.n_components + 1, dtype=torch.long, device=labels.device)
        out.scatter_add_(1, labels, torch.ones_like(labels))
        return out[:, : self.n_components]


def _flat_indices(entries: Tensor | Iterable[int], shape: tuple[int, ...]) -> Tensor:
    t = torch.as_tensor(entries) if not isinstance(entries, Tensor) else entries
    if t.dtype == torch.bool:
        if tuple(t.shape) != shape:
            raise ValueError(f"ComponentMap.from_sets: boolean set has shape {tuple(t.shape)}, "
                             f"expected {shape}")
        return t.reshape(-1).nonzero().squeeze(1).cpu()
    idx = t.reshape(-1).long().cpu()
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= math.prod(shape)):
        raise ValueError(f"ComponentMap.from_sets: flat index out of range for shape {shape}")
    return idx
