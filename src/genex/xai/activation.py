"""Activation maximisation through a generator, selected by Fréchet distance (Mishra et al.).

Objective per example (Eq. 1 of the paper): ``ẑ = argmax_z s·f(G(z)) + λ log p(z)`` with
``p = N(0, I)``, so ``log p(z) = −½‖z‖² + const``; ``s = +1`` maximises the detector's
response (vocal), ``s = −1`` minimises it (non-vocal). ``f`` is the output neuron's
pre-sigmoid activation (the sigmoid saturates, its gradient vanishes).

Batching: Adam's update is elementwise, so optimising many independent ``z`` rows in one
tensor with a per-row learning rate is exactly the same as optimising each alone. All
trajectories (direction × lr × λ, each of N examples, from the same N initial ``z``) run
in one batch; the iteration counts of the grid are snapshots of the same trajectories
(``z`` after 100, 500 and 1000 steps), so 27 configurations per direction cost one
1000-step run of 9 trajectories.

Selection: for each configuration, the Fréchet distance between the 1-D distribution of
detector responses of its N examples and that of the N highest (maximise) or lowest
(minimise) responding dataset excerpts; best / median / worst = lowest / median / highest.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch

from genex.xai.base import Explainer, Model
from genex.xai.components import ComponentMap
from genex.xai.frechet import frechet_distance
from genex.xai.rde import frozen
from genex.xai.target import Target, TargetSpec

__all__ = ["ActivationMaximisation", "Trajectory", "maximise", "trajectories", "config_name",
           "response_frechet", "reference_responses", "select", "DIRECTIONS"]

DIRECTIONS = {"maximise": 1.0, "minimise": -1.0}  # maximise = vocal, minimise = non-vocal


@dataclass(frozen=True)
class Trajectory:
    """One optimisation run of N examples: a direction, a learning rate and a prior weight."""

    direction: str
    lr: float
    lam: float


def config_name(lr: float, lam: float, iterations: int) -> str:
    """A configuration's key in metrics.json, e.g. ``lr0.01_lam0.001_it500``."""
    return f"lr{lr:g}_lam{lam:g}_it{iterations:d}"


def trajectories(lrs: list[float], lambdas: list[float]) -> list[Trajectory]:
    """All (direction, lr, λ) runs of the grid, maximise first."""
    return [Trajectory(d, float(lr), float(lam))
            for d, lr, lam in itertools.product(DIRECTIONS, lrs, lambdas)]


def maximise(response, z0: torch.Tensor, trajs: list[Trajectory], iterations: list[int],
             betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, progress=None
             ) -> dict[int, torch.Tensor]:
    """Adam on ``z`` for every trajectory at once; returns ``{iterations: z [T, N, D]}``.

    ``response(x)`` maps ``z`` rows [B, D] to the response [B] (``f∘G``, networks frozen
    and in eval mode). ``z0`` [N, D] is the shared start of every trajectory. The update
    is torch.optim.Adam's, written out so each row carries its own learning rate.
    """
    n_traj, (n, dim) = len(trajs), z0.shape
    sign = torch.tensor([DIRECTIONS[t.direction] for t in trajs], dtype=z0.dtype, device=z0.device)
    lr = torch.tensor([t.lr for t in trajs], dtype=z0.dtype, device=z0.device)
    lam = torch.tensor([t.lam for t in trajs], dtype=z0.dtype, device=z0.device)
    sign, lam = sign.repeat_interleave(n), lam.repeat_interleave(n)
    lr = lr.repeat_interleave(n)[:, None]
    z = z0.repeat(n_traj, 1).clone()
    m, v = torch.zeros_like(z), torch.zeros_like(z)
    b1, b2 = betas
    snapshots, wanted = {}, sorted(set(int(i) for i in iterations))
    steps = range(1, wanted[-1] + 1)
    for step in (progress(steps) if progress else steps):
        z.requires_grad_(True)
        # minimise the negative objective: −(s·f(G(z)) + λ log p(z)), summed over rows
        loss = (-sign * response(z) + lam * 0.5 * (z * z).sum(dim=1)).sum()
        (grad,) = torch.autograd.grad(loss, z)
        with torch.no_grad():
            z = z.detach()
            m.mul_(b1).add_(grad, alpha=1 - b1)
            v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
            denom = (v.sqrt() / (1 - b2 ** step) ** 0.5).add_(eps)
            z = z - (lr / (1 - b1 ** step)) * m / denom
        if step in wanted:
            snapshots[step] = z.detach().view(n_traj, n, dim).clone()
    return snapshots


def response_frechet(responses: np.ndarray, reference: np.ndarray) -> float:
    """Fréchet distance² between the 1-D response distributions of two example sets."""
    return frechet_distance(np.asarray(responses, np.float64)[:, None],
                            np.asarray(reference, np.float64)[:, None])


def reference_responses(dataset: np.ndarray, n: int, direction: str) -> np.ndarray:
    """The ``n`` highest (maximise) or lowest (minimise) dataset responses."""
    order = np.argsort(dataset, kind="stable")
    return dataset[order[-n:]] if DIRECTIONS[direction] > 0 else dataset[order[:n]]


def select(frechets: dict[str, float]) -> dict[str, str]:
    """Best, median and worst configuration by Fréchet distance (ties by name)."""
    ranked = sorted(frechets, key=lambda k: (frechets[k], k))
    return {"best": ranked[0], "median": ranked[len(ranked) // 2], "worst": ranked[-1]}


class ActivationMaximisation(Explainer):
    """Generative activation maximisation: latent codes ``ẑ`` whose generated inputs
    ``G(ẑ)`` drive the model's target response up (``direction="maximise"``) or down,
    under the prior ``N(0, I)`` on ``z`` (Eq. 1 of Mishra et al.).

    The explained "input" is the starting latent batch ``z0`` ``[B, D]``; the components are
    the ``D`` latent dimensions, and :meth:`attribute` returns the optimised codes ``[B, D]``
    (``generator(ẑ)`` are the examples to look at and listen to).

    Args:
        model: ``f``, maps generated inputs to outputs (see :mod:`genex.xai.base`).
        generator: ``G``, maps latents ``[N, D]`` to the model's inputs; frozen while it runs.
        latent_dim: ``D``.
        direction: ``"maximise"`` or ``"minimise"``.
        lr: Adam step size on ``z``. lam: ``λ``, weight of ``log p(z)``. steps: Adam steps.
    """

    def __init__(self, model: Model, generator: Model, latent_dim: int, direction: str = "maximise",
                 lr: float = 0.01, lam: float = 0.01, steps: int = 500) -> None:
        super().__init__(model, ComponentMap.identity((int(latent_dim),)))
        if direction not in DIRECTIONS:
            raise ValueError(f"ActivationMaximisation: direction must be one of {sorted(DIRECTIONS)}, "
                             f"got {direction!r}")
        if steps < 1 or lr <= 0 or lam < 0:
            raise ValueError("ActivationMaximisation: need steps >= 1, lr > 0, lam >= 0")
        self.generator = generator
        self.direction, self.lr, self.lam, self.steps = direction, float(lr), float(lam), int(steps)

    def attribute(self, x: torch.Tensor, target: TargetSpec = None) -> torch.Tensor:
        """Optimise the latent codes ``x`` ``[B, D]``; returns ``ẑ`` ``[B, D]``."""
        z0 = x.detach()
        if z0.dim() != 2 or z0.shape[1] != self.n_components:
            raise ValueError(f"ActivationMaximisation: latents must be [B, {self.n_components}], "
                             f"got {tuple(z0.shape)}")
        traj = [Trajectory(self.direction, self.lr, self.lam)]

        def response(z: torch.Tensor) -> torch.Tensor:
            return Target(target, z.shape[0]).score(self.model(self.generator(z)))

        with frozen([self.model, self.generator]), torch.enable_grad():
            return maximise(response, z0, traj, [self.steps])[self.steps][0]
