"""Radio-map infillers: what replaces the buildings and measurements a mask does not keep.

Φ's input is ``[buildings (some missing), TX, measurements]``; components are buildings
(channel 0) and measurement pixels (channel 2), the TX channel is never masked.

* zero infill (:class:`genex.xai.infill.ZeroInfiller`): unchosen buildings and
  measurements are dropped;
* model-based infill (:func:`model_based_infiller`): unchosen buildings are dropped, and each
  unchosen measurement is, with probability ``p``, replaced by Φ_gt's map at that pixel given
  the chosen buildings and the TX (otherwise dropped). ``p = 1`` is the paper's full
  model-based infill, ``p = 0`` the zero infill, ``p = 0.025`` the continuum of its Fig 4c.

Both go through :class:`~genex.xai.infill.Infiller`'s composition, so chosen components
are kept bit-exactly.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from genex.xai.infill import GenerativeInfiller, Infiller, ZeroInfiller

BUILDINGS, TX, MEASUREMENTS = 0, 1, 2


class PhiGtSampler(nn.Module):
    """The generator of the model-based infill (``GenerativeInfiller``'s contract).

    ``forward(x_masked, mask, noise)``: ``x_masked`` ``[N, 3, H, W]`` holds the chosen
    buildings and measurements; ``noise`` ``[N, 1, H, W]`` standard normal decides which
    unchosen measurements are sampled (``noise < Φ⁻¹(p)``, i.e. with probability ``p``).
    Returns a full input: no buildings, the TX, Φ_gt's gain where sampled, 0 elsewhere.
    """

    def __init__(self, phi_gt: nn.Module, p: float) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"model-based infill: p must lie in [0, 1], got {p}")
        self.phi_gt = phi_gt
        self.p = float(p)
        self.threshold = math.inf if p >= 1 else -math.inf if p <= 0 else \
            float(torch.special.ndtri(torch.tensor(p, dtype=torch.float64)))

    def forward(self, x_masked: Tensor, mask: Tensor, noise: Tensor) -> Tensor:
        chosen_buildings = x_masked[:, BUILDINGS: BUILDINGS + 1]
        tx = x_masked[:, TX: TX + 1]
        estimate = self._estimate(torch.cat([chosen_buildings, tx], dim=1))
        sampled = (noise < self.threshold).to(estimate.dtype)
        return torch.cat([torch.zeros_like(tx), tx, estimate.to(x_masked.dtype) * sampled], dim=1)

    def _estimate(self, inputs: Tensor) -> Tensor:
        """Φ_gt's map per row, run once per distinct input: matching-pursuit candidates that
        add a measurement share their buildings, so most rows repeat (not with gradients)."""
        if inputs.requires_grad or inputs.shape[0] == 1:
            return self.phi_gt(inputs).clamp(0, 1)
        unique, inverse = torch.unique(inputs.flatten(1), dim=0, return_inverse=True)
        out = self.phi_gt(unique.view(-1, *inputs.shape[1:])).clamp(0, 1)
        return out[inverse]


def model_based_infiller(phi_gt: nn.Module, p: float = 1.0, seed: int = 0) -> Infiller:
    """Unchosen measurements sampled from Φ_gt (probability ``p`` each); buildings dropped."""
    return _RadioGenerative(PhiGtSampler(phi_gt, p), seed)


class _RadioGenerative(GenerativeInfiller):
    """GenerativeInfiller with one noise channel per radio map (the measurement draw)."""

    def __init__(self, sampler: PhiGtSampler, seed: int) -> None:
        super().__init__(sampler, noise_shape=None, seed=seed)
        self.p = sampler.p

    def fill(self, x: Tensor, keep: Tensor, n_samples: int, generator: torch.Generator) -> Tensor:
        self.noise_shape = (1, *x.shape[2:])
        return super().fill(x, keep, n_samples, generator)


def infill_name(p: float) -> str:
    """``zero`` (p = 0), ``model`` (p = 1), ``model_p<p>`` in between (metrics keys)."""
    if p <= 0:
        return "zero"
    if p >= 1:
        return "model"
    return f"model_p{p:g}"


def make_infiller(p: float, phi_gt: nn.Module, seed: int = 0) -> Infiller:
    """The infiller of a sample fraction ``p`` (0 = zero infill)."""
    return ZeroInfiller() if p <= 0 else model_based_infiller(phi_gt, p, seed)


def draws_for(p: float, mc_samples: int) -> int:
    """Monte-Carlo draws a fraction needs: 1 when the infill is deterministic (p = 0 or 1)."""
    return 1 if p <= 0 or p >= 1 else int(mc_samples)
