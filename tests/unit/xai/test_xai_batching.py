"""Chunked forwards (genex.xai.batching): the same outputs and gradients as one forward,
at most so many rows at a time."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from genex.xai import ComponentMap, GenerativeInfiller, RDEConcrete
from genex.xai.batching import Chunked, activation_bytes, chunked_for_budget, rows_for_budget


class CountingNet(nn.Module):
    """A small conv net that records the batch size of every forward."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Conv1d(2, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(64, 3))
        self.noise_dim = 5
        self.sizes: list[int] = []

    def forward(self, x):
        self.sizes.append(x.shape[0])
        return self.body(x)


def test_chunked_forward_equals_one_forward_and_runs_at_most_rows():
    net = CountingNet()
    x = torch.randn(10, 2, 16, generator=torch.Generator().manual_seed(1))
    whole = net(x)
    net.sizes.clear()
    chunked = Chunked(net, 3)
    assert torch.allclose(chunked(x), whole, atol=1e-6)
    assert net.sizes == [3, 3, 3, 1]
    assert chunked.noise_dim == 5  # the wrapped module's attributes stay reachable


def test_chunked_gradients_equal_one_graph():
    net = CountingNet()
    x = torch.randn(7, 2, 16, generator=torch.Generator().manual_seed(2))
    a = x.clone().requires_grad_(True)
    net(a).square().sum().backward()
    b = x.clone().requires_grad_(True)
    Chunked(net, 2)(b).square().sum().backward()
    assert torch.allclose(a.grad, b.grad, atol=1e-6)


def test_rde_with_a_chunked_model_and_generator_matches_unchunked():
    """Monte-Carlo draws are made for the whole batch before the forward: same masks."""
    model = CountingNet()

    class Gen(nn.Module):
        noise_dim = 2 * 16

        def forward(self, x_masked, mask, noise):
            return x_masked + (1 - mask) * noise.view_as(x_masked)

    x = torch.randn(4, 2, 16, generator=torch.Generator().manual_seed(3))
    cmap = ComponentMap.identity((2, 16))

    def masks(m, g):
        infiller = GenerativeInfiller(g, noise_shape=(2 * 16,), seed=0)
        return RDEConcrete(m, infiller, cmap, lam=1.0, steps=15, n_samples=3, seed=0,
                           log_every=0).attribute(x, target=1)

    plain = masks(model, Gen())
    model.sizes.clear()
    chunked = masks(Chunked(model, 5), Chunked(Gen(), 5))
    assert max(model.sizes) == 5
    assert torch.allclose(plain, chunked, atol=1e-6)


def test_budget_in_rows():
    net = CountingNet()
    row = torch.zeros(1, 2, 16)
    per_row = activation_bytes(net, row)
    # input 32 + conv 64 + relu 64 + flatten 64 + linear 3 floats (the Sequential is not a leaf)
    assert per_row == 4 * (32 + 64 + 64 + 64 + 3)
    assert rows_for_budget(per_row, 0) is None and rows_for_budget(per_row, None) is None
    assert rows_for_budget(per_row, per_row * 10 / 2**20) == 10
    assert rows_for_budget(per_row, 1e-9) == 1
    assert chunked_for_budget(net, (row,), per_row * 4 / 2**20).rows == 4
    with pytest.raises(ValueError, match="rows must be"):
        Chunked(net, 0)
