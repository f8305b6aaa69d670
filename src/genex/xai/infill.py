"""Infillers: what replaces the dropped part of an input.

An :class:`Infiller` is called as ``infiller(x, keep_mask, n_samples) -> samples``:

* ``x``: ``[B, *S]``, the inputs being explained;
* ``keep_mask``: ``[B, *S]`` (one mask for every draw) or ``[n_samples, B, *S]`` (one mask
  per draw, as the concrete optimiser samples them), values in ``[0, 1]``; 1 = keep;
* returns ``[n_samples, B, *S]`` equal to ``x`` *bit-exactly* wherever ``keep_mask == 1``.

Binary masks are composed with :func:`torch.where`, relaxed masks (or masks that carry a
gradient) as ``keep * x + (1 - keep) * fill`` so the objective stays differentiable in the
mask. Subclasses only say what the fill is (:meth:`Infiller.fill`); the composition lives in
the base class, so no infiller can leak fill values into kept entries.

Explainers mask *components* (:class:`genex.xai.components.ComponentMap`), never raw
entries; the infiller sees the expanded entry mask.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
from torch import Tensor, nn

__all__ = [
    "Infiller", "ZeroInfiller", "MeanInfiller", "NoiseInfiller", "BlurInfiller",
    "GenerativeInfiller", "compose", "gaussian_blur_1d",
]


def compose(x: Tensor, keep: Tensor, fill: Tensor) -> Tensor:
    """``x`` where ``keep == 1``, ``fill`` where ``keep == 0``, the convex mix in between.

    Shapes broadcast (``x`` [B, *S] against ``keep``/``fill`` [n, B, *S]). A mask that needs
    a gradient is always mixed arithmetically (``1 * x + 0 * fill`` is still exactly ``x``
    for finite fills); a binary mask without gradient uses :func:`torch.where`, which is
    exact even for non-finite fills.
    """
    if not keep.requires_grad and bool(((keep == 0) | (keep == 1)).all()):
        return torch.where(keep == 1, x, fill)
    return keep * x + (1 - keep) * fill


class Infiller:
    """Base class: replace the entries of ``x`` where ``keep_mask`` is 0 by a fill.

    Args:
        seed: seed of the infiller's own random generator, used when the caller passes none
            (random infillers only; the optimisers pass theirs so one seed fixes a run).
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self._generators: dict[torch.device, torch.Generator] = {}

    def generator(self, device: torch.device) -> torch.Generator:
        """The infiller's own generator on ``device`` (created on first use)."""
        device = torch.device(device)
        if device not in self._generators:
            self._generators[device] = torch.Generator(device=device).manual_seed(self.seed)
        return self._generators[device]

    #: True when every draw is the same function of ``(x, keep)`` (no randomness): then a
    #: fractional mask can reproduce the output by scaling the input (see ``RelaxationWarning``).
    deterministic: bool = False

    def modules(self) -> list[nn.Module]:
        """Networks the infiller runs (frozen while a mask is optimised)."""
        return []

    def fill(self, x: Tensor, keep: Tensor, n_samples: int, generator: torch.Generator) -> Tensor:
        """Fill values ``[n_samples, B, *S]`` (or broadcastable to it); ``keep`` is ``[n, B, *S]``."""
        raise NotImplementedError

    def __call__(self, x: Tensor, keep_mask: Tensor, n_samples: int = 1,
                 generator: torch.Generator | None = None) -> Tensor:
        """Draw ``n_samples`` infilled versions of ``x``: ``[n_samples, B, *S]``."""
        keep = self._check(x, keep_mask, n_samples)
        gen = generator if generator is not None else self.generator(x.device)
        fill = self.fill(x, keep, n_samples, gen)
        out = compose(x.unsqueeze(0), keep, fill)
        return out.expand(n_samples, *x.shape)

    @staticmethod
    def _check(x: Tensor, keep_mask: Tensor, n_samples: int) -> Tensor:
        if n_samples < 1:
            raise ValueError(f"infiller: n_samples must be >= 1, got {n_samples}")
        if keep_mask.shape == x.shape:
            return keep_mask.unsqueeze(0).expand(n_samples, *x.shape)
        if keep_mask.shape == (n_samples, *x.shape):
            return keep_mask
        raise ValueError(f"infiller: keep_mask has shape {tuple(keep_mask.shape)}; expected "
                         f"{tuple(x.shape)} or {(n_samples, *x.shape)} for x {tuple(x.shape)}")


class ZeroInfiller(Infiller):
    """Dropped entries become 0 (the 'background colour' obfuscation)."""

    deterministic = True

    def fill(self, x: Tensor, keep: Tensor, n_samples: int, generator: torch.Generator) -> Tensor:
        return torch.zeros((), dtype=x.dtype, device=x.device)


class MeanInfiller(Infiller):
    """Dropped entries become a fixed mean (e.g. the training set's mean spectrum).

    Args:
        mean: a scalar or a tensor broadcastable to one input ``[*S]``.
    """

    deterministic = True

    def __init__(self, mean: Tensor | float) -> None:
        super().__init__()
        self.mean = torch.as_tensor(mean)

    def fill(self, x: Tensor, keep: Tensor, n_samples: int, generator: torch.Generator) -> Tensor:
        return self.mean.to(device=x.device, dtype=x.dtype)


class NoiseInfiller(Infiller):
    """Dropped entries are drawn independently from N(mean, std²), per entry and draw.

    Args:
        mean, std: scalars or tensors broadcastable to one input ``[*S]`` (e.g. the
            per-component training-set statistics, as in MacDonald et al.'s RDE).
    """

    def __init__(self, mean: Tensor | float = 0.0, std: Tensor | float = 1.0, seed: int = 0) -> None:
        super().__init__(seed)
        self.mean = torch.as_tensor(mean)
        self.std = torch.as_tensor(std)
        if bool((self.std < 0).any()):
            raise ValueError("NoiseInfiller: std must be >= 0")

    def fill(self, x: Tensor, keep: Tensor, n_samples: int, generator: torch.Generator) -> Tensor:
        noise = torch.randn((n_samples, *x.shape), generator=generator, device=x.device, dtype=x.dtype)
        return self.mean.to(x) + self.std.to(x) * noise


def gaussian_blur_1d(x: Tensor, sigma: float) -> Tensor:
    """Blur ``x`` along its last axis with a Gaussian of ``sigma`` entries (reflect padding)."""
    if sigma <= 0:
        return x
    radius = max(1, int(math.ceil(3 * sigma)))
    radius = min(radius, x.shape[-1] - 1)  # reflect padding needs pad < length
    taps = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = (kernel / kernel.sum()).view(1, 1, -1)
    flat = x.reshape(-1, 1, x.shape[-1])
    padded = torch.nn.functional.pad(flat, (radius, radius), mode="reflect")
    return torch.nn.functional.conv1d(padded, kernel).reshape(x.shape)


class BlurInfiller(Infiller):
    """Dropped entries take the value of ``x`` blurred along its last axis (Fong & Vedaldi).

    Args:
        sigma: standard deviation of the Gaussian kernel, in entries of the last axis.
    """

    deterministic = True

    def __init__(self, sigma: float) -> None:
        super().__init__()
        if sigma < 0:
            raise ValueError(f"BlurInfiller: sigma must be >= 0, got {sigma}")
        self.sigma = float(sigma)

    def fill(self, x: Tensor, keep: Tensor, n_samples: int, generator: torch.Generator) -> Tensor:
        return gaussian_blur_1d(x, self.sigma)


class GenerativeInfiller(Infiller):
    """Dropped entries come from a conditional generator (the inpainting GAN, Φ_gt, ...).

    Contract of ``generator(x_masked, mask, noise) -> x_full``:

    * ``x_masked``: ``[N, *S]`` = ``mask * x`` (dropped entries are 0), ``N = n_samples * B``
      laid out draw-major (row ``i`` belongs to input ``i % B``);
    * ``mask``: ``[N, *S]`` in ``[0, 1]``, 1 = kept (relaxed while a mask is optimised);
    * ``noise``: ``[N, *noise_shape]`` standard normal, fresh per draw;
    * returns ``[N, *S]``, a full input; its values at kept entries are ignored (the
      composition puts ``x`` back exactly), so the generator need not copy them.

    The generator must be differentiable in ``x_masked`` and ``mask`` for the gradient
    optimisers; an ``nn.Module`` is put in eval mode by the caller, not here.

    Args:
        generator: the callable above (an ``nn.Module`` or any function).
        noise_shape: per-input noise shape; ``None`` = the input's shape ``S``; ``()`` or
            ``0``-size for generators without noise.
    """

    def __init__(self, generator: Callable[[Tensor, Tensor, Tensor], Tensor],
                 noise_shape: Sequence[int] | None = None, seed: int = 0) -> None:
        super().__init__(seed)
        self.net = generator
        self.noise_shape = None if noise_shape is None else tuple(noise_shape)

    def modules(self) -> list[nn.Module]:
        return [self.net] if isinstance(self.net, nn.Module) else []

    def fill(self, x: Tensor, keep: Tensor, n_samples: int, generator: torch.Generator) -> Tensor:
        flat_keep = keep.reshape(-1, *x.shape[1:])
        flat_x = x.unsqueeze(0).expand(n_samples, *x.shape).reshape(-1, *x.shape[1:])
        noise_shape = tuple(x.shape[1:]) if self.noise_shape is None else self.noise_shape
        noise = torch.randn((flat_x.shape[0], *noise_shape), generator=generator,
                            device=x.device, dtype=x.dtype)
        full = self.net(flat_keep * flat_x, flat_keep, noise)
        if full.shape != flat_x.shape:
            raise ValueError(f"GenerativeInfiller: generator returned {tuple(full.shape)}, "
                             f"expected {tuple(flat_x.shape)}")
        return full.reshape(n_samples, *x.shape)
