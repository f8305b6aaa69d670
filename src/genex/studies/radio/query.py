"""Radio-map queries: components, regions of interest, orders and their distortion curves.

* :func:`radio_components`: every building (4-connected component of Φ's buildings channel)
  and every measurement pixel is one switchable component of a
  :class:`~genex.xai.infill.ComponentMap` over Φ's input ``[3, H, W]``;
* a *query* is a box (region of interest) of Φ's output, at least 75 % street; the distortion
  is the RDE's ``½ mean_{ROI} (Φ(x) − Φ(z))²`` over the box's street pixels (a
  :class:`~genex.xai.target.Target` weighting each by 1/count; building pixels carry none). **darken**: the box where Φ's estimate is darkest against its estimate with
  every component dropped ("where does Φ put a shadow, and what makes it?");
  **brighten**: the box where the measurements brighten Φ's estimate most against its
  estimate from the buildings alone;
* :func:`distortion_curve`: the distortion after keeping the first k components of any
  order (matching pursuit, random, nearest to the region, the RDE optimisers' ranking),
  k = 0..K, all evaluated with the same infill draws so curves compare fairly
  (:func:`genex.xai.evaluate.order_curve` on the box).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from genex.xai import evaluate
from genex.xai.components import ComponentMap
from genex.xai.infill import Infiller
from genex.studies.radio.features import building_components

QUERIES = ("darken", "brighten")


@dataclass
class RadioComponents:
    """The components of one radio map: the map, their kinds and centroids (row, column)."""

    cmap: ComponentMap
    kinds: list[str]              # "building" or "measurement", per component
    centroids: np.ndarray         # (C, 2) float
    building_labels: np.ndarray   # (H, W) int, 0 = free, c + 1 = component c

    @property
    def n_buildings(self) -> int:
        return sum(k == "building" for k in self.kinds)

    @property
    def street(self) -> np.ndarray:
        """(H, W) bool: pixels outside every building, where a radio map means something."""
        return self.building_labels == 0


def radio_components(x: np.ndarray) -> RadioComponents:
    """Components of one Φ input ``[3, H, W]``: buildings first, then measurements.

    A measurement is a nonzero pixel of the measurement channel (a measured gain of exactly
    0 is indistinguishable from no measurement, in RadioUNet's encoding too).
    """
    if x.ndim != 3 or x.shape[0] != 3:
        raise ValueError(f"radio_components: expected a Φ input [3, H, W], got {x.shape}")
    _, h, w = x.shape
    labels, n_b = building_components(x[0])
    sets, kinds, cents = [], [], []
    for c in range(1, n_b + 1):
        rows, cols = np.nonzero(labels == c)
        sets.append(torch.as_tensor(rows * w + cols))  # channel 0
        kinds.append("building")
        cents.append((rows.mean(), cols.mean()))
    for r, c in np.argwhere(x[2] != 0):
        sets.append(torch.as_tensor([2 * h * w + r * w + c]))
        kinds.append("measurement")
        cents.append((float(r), float(c)))
    cmap = ComponentMap.from_sets((3, h, w), sets)
    return RadioComponents(cmap, kinds, np.asarray(cents, dtype=np.float64).reshape(-1, 2), labels)


# --- regions of interest ----------------------------------------------------------------------

# a region of interest is at least this share street: the query explains a shadow, not a footprint
MIN_STREET_SHARE = 0.75


def best_box(score: np.ndarray, size: int, allowed: np.ndarray | None = None,
             min_allowed: float = MIN_STREET_SHARE) -> tuple[int, int, int, int]:
    """The ``size`` x ``size`` box (r0, c0, r1, c1) with the highest mean ``score`` over its
    allowed pixels, among boxes at least ``min_allowed`` allowed (ties: the first in row-major
    order; when no box is allowed enough, the most allowed ones compete)."""
    s = torch.as_tensor(np.asarray(score, dtype=np.float64))
    ok = torch.ones_like(s) if allowed is None else torch.as_tensor(np.asarray(allowed, dtype=np.float64))
    pool = nn.functional.avg_pool2d
    num = pool((s * ok)[None, None], size, stride=1)[0, 0]
    den = pool(ok[None, None], size, stride=1)[0, 0]
    floor = min(min_allowed, float(den.max()) - 1e-9)
    mean = torch.where(den >= floor, num / den.clamp_min(1e-9), torch.full_like(num, -np.inf))
    r0, c0 = divmod(int(torch.argmax(mean)), mean.shape[1])
    return r0, c0, r0 + size, c0 + size


def box_weights(box: tuple[int, int, int, int], shape: tuple[int, int],
                device: torch.device | str = "cpu", street: np.ndarray | None = None) -> Tensor:
    """Target weights ``[1, H, W]``: a mean over the box's ``street`` pixels (every pixel of
    the box when ``street`` is None). Building pixels carry no weight: the map means nothing
    there, and their values jump when the building is dropped."""
    inside = torch.zeros(1, *shape, device=device)
    r0, c0, r1, c1 = box
    inside[0, r0:r1, c0:c1] = 1.0
    if street is not None:
        inside = inside * torch.as_tensor(np.asarray(street, dtype=np.float32), device=device)[None]
    if float(inside.sum()) == 0:
        raise ValueError(f"region of interest {box} has no street pixel")
    return inside / inside.sum()


@torch.no_grad()
def query_box(model: nn.Module, x: Tensor, comps: RadioComponents, query: str, size: int) -> tuple:
    """The region of interest of ``query`` for one input ``x`` ``[1, 3, H, W]``."""
    out = model(x)[0, 0]
    if query == "darken":  # against the estimate with every component dropped
        empty = comps.cmap.expand(torch.zeros(1, comps.cmap.n_components, device=x.device))
        score = model(x * empty)[0, 0] - out
    elif query == "brighten":  # against the estimate from the buildings alone
        kinds = torch.tensor([k == "building" for k in comps.kinds], dtype=x.dtype,
                             device=x.device)[None]
        score = out - model(x * comps.cmap.expand(kinds))[0, 0]
    else:
        raise ValueError(f"unknown radio query {query!r}; known: {QUERIES}")
    return best_box(score.cpu().numpy(), size, comps.street)  # the region lies in the streets


# --- orders and curves ------------------------------------------------------------------------

def nearest_order(comps: RadioComponents, box: tuple[int, int, int, int], k: int) -> list[int]:
    """Components by distance of their centroid to the box centre (ties by index)."""
    centre = np.array([(box[0] + box[2] - 1) / 2, (box[1] + box[3] - 1) / 2])
    dist = np.hypot(*(comps.centroids - centre).T)
    return [int(i) for i in np.lexsort((np.arange(len(dist)), dist))[:k]]


def random_orders(n_components: int, k: int, count: int, rng: np.random.Generator) -> list[list[int]]:
    """``count`` random orders of ``k`` distinct components (as lists)."""
    return evaluate.random_orders(n_components, k, count, rng).tolist()


def ranking_order(scores: Tensor, k: int) -> list[int]:
    """The ``k`` highest-scoring components (an RDE mask as an order; ties by index)."""
    return evaluate.top_order(scores.reshape(1, -1), k)[0].tolist()


def distortion_curve(model: nn.Module, infiller: Infiller, comps: RadioComponents, x: Tensor,
                     box: tuple[int, int, int, int], order: list[int], k: int, n_samples: int,
                     seed: int) -> list[float]:
    """Distortion ``[k + 1]`` on the box after keeping the first 0..k components of ``order``.

    Every order is evaluated with the same generator seed, hence the same infill draws; the
    k + 1 steps go through Φ in one forward.
    """
    weights = box_weights(box, tuple(x.shape[-2:]), x.device, comps.street)
    curve = evaluate.order_curve(model, infiller, comps.cmap, x, [order], k, weights, n_samples,
                                 seed, batch_size=k + 1, draws="per_curve")
    return curve.per_input[0].tolist()
