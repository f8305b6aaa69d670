"""Sliced Wasserstein distance between two equally sized sample batches (torch, differentiable).

Kelz & Widmer (2019), Algorithm 1: project both batches onto ``n_projections`` random unit
directions, sort each projection over the batch, and average the squared differences of the
sorted values. No square root: this is the squared SW_2 distance, whose gradient stays
finite when the two batches coincide (POT's ``ot.sliced_wasserstein_distance`` returns the
root and serves as the test oracle only).
"""

from __future__ import annotations

import torch


def random_projections(dim: int, n_projections: int, generator: torch.Generator | None = None,
                       device: torch.device | str | None = None,
                       dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``[dim, n_projections]`` matrix of random unit column vectors (uniform on the sphere).

    Drawn on the generator's device when a generator is given, then moved to ``device``.
    """
    draw_device = generator.device if generator is not None else device
    proj = torch.randn(dim, n_projections, generator=generator, device=draw_device, dtype=dtype)
    proj = proj / proj.norm(dim=0, keepdim=True)
    return proj.to(device) if device is not None else proj


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, n_projections: int = 2048,
                       generator: torch.Generator | None = None,
                       projections: torch.Tensor | None = None) -> torch.Tensor:
    """Squared sliced Wasserstein-2 distance between batches ``a`` and ``b`` of shape [n, d].

    Fresh projections are drawn on every call (from ``generator`` when given) unless
    ``projections`` ([d, k], unit columns) are passed. Returns a scalar tensor.
    """
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"sliced_wasserstein needs two [n, d] batches of the same shape, "
                         f"got {tuple(a.shape)} and {tuple(b.shape)}")
    if projections is None:
        projections = random_projections(a.shape[1], n_projections, generator, a.device, a.dtype)
    elif projections.shape[0] != a.shape[1]:
        raise ValueError(f"projections have {projections.shape[0]} rows, samples have "
                         f"{a.shape[1]} dimensions")
    projections = projections.to(device=a.device, dtype=a.dtype)
    a_sorted = torch.sort(a @ projections, dim=0).values
    b_sorted = torch.sort(b @ projections, dim=0).values
    return ((a_sorted - b_sorted) ** 2).mean()
