"""Components of a spectrogram ``[F, Tf]``: what one mask entry switches on or off.

All are :class:`genex.xai.ComponentMap` s over ``[F, Tf]``; a spec string picks one:

* ``tiles:FxT`` — a grid of ``F`` frequency bands by ``T`` time segments (``F·T`` components);
* ``bands:N`` — ``N`` frequency bands, each over the whole clip;
* ``segments:N`` — ``N`` time segments, each over all frequencies;
* ``harmonics:N`` — bins near the first ``N`` harmonics of the clip's f0 (estimated with
  pYIN unless given), one component each, and one last component for everything else.

Bands and segments split the rows / frames as evenly as possible (``numpy.array_split``);
a component never spans a row or frame twice, so the components tile the input exactly.
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np
import torch

from genex.xai import ComponentMap

__all__ = ["time_frequency_tiles", "frequency_bands", "time_segments", "parse_components",
           "COMPONENT_KINDS"]

COMPONENT_KINDS = ("tiles", "bands", "segments", "harmonics")


def _split_labels(length: int, n: int, what: str) -> np.ndarray:
    if not 1 <= n <= length:
        raise ValueError(f"components: {n} {what} for an axis of {length}; need 1 <= n <= {length}")
    labels = np.empty(length, dtype=np.int64)
    for i, part in enumerate(np.array_split(np.arange(length), n)):
        labels[part] = i
    return labels


def time_frequency_tiles(shape: Sequence[int], freq: int, time: int) -> ComponentMap:
    """``freq`` bands × ``time`` segments over ``shape = (F, Tf)``; component ``f·time + t``."""
    n_rows, n_frames = shape
    rows = _split_labels(n_rows, freq, "frequency bands")
    frames = _split_labels(n_frames, time, "time segments")
    labels = rows[:, None] * time + frames[None, :]
    return ComponentMap(torch.from_numpy(labels), freq * time)


def frequency_bands(shape: Sequence[int], n: int) -> ComponentMap:
    """``n`` frequency bands over ``shape = (F, Tf)``, lowest first."""
    return time_frequency_tiles(shape, n, 1)


def time_segments(shape: Sequence[int], n: int) -> ComponentMap:
    """``n`` time segments over ``shape = (F, Tf)``, earliest first."""
    return time_frequency_tiles(shape, 1, n)


_SPEC = re.compile(r"^(tiles):(\d+)x(\d+)$|^(bands|segments|harmonics):(\d+)$")


def parse_components(spec: str, representation, f0=None, *, n_frames: int,
                     waves: Sequence[np.ndarray] | None = None) -> ComponentMap:
    """The component map that ``spec`` names, over ``[representation.n_bins, n_frames]``.

    Args:
        spec: ``tiles:FxT``, ``bands:N``, ``segments:N`` or ``harmonics:N``.
        representation: the :class:`genex.audio.Representation` explained.
        f0: for ``harmonics``: one f0 in Hz, or one per clip (then the map is per input).
        n_frames: ``Tf`` of the explained clips.
        waves: for ``harmonics`` without ``f0``: the clips, whose f0 is estimated (pYIN).
    """
    match = _SPEC.match(spec.strip())
    if not match:
        raise ValueError(f"components: cannot read {spec!r}; use tiles:FxT, bands:N, segments:N "
                         f"or harmonics:N (e.g. tiles:16x8)")
    shape = (representation.n_bins, int(n_frames))
    if match.group(1):
        return time_frequency_tiles(shape, int(match.group(2)), int(match.group(3)))
    kind, n = match.group(4), int(match.group(5))
    if kind == "bands":
        return frequency_bands(shape, n)
    if kind == "segments":
        return time_segments(shape, n)
    from genex.audio.harmonics import estimate_f0, harmonic_components

    if f0 is None:
        if waves is None:
            raise ValueError("components: harmonics need f0 or the clips to estimate it from")
        f0 = [estimate_f0(np.asarray(w), representation.sample_rate) for w in waves]
    f0s = [float(v) for v in np.atleast_1d(np.asarray(f0, dtype=float))]
    maps = [harmonic_components(representation.frequencies, shape, v, n_harmonics=n) for v in f0s]
    if len(maps) == 1:
        return maps[0]
    return ComponentMap.stack(maps)
