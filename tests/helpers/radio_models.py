"""Radio models for tests."""

from __future__ import annotations

import torch
from torch import nn


class Flat(nn.Module):
    """A model that learned no shadow at all: the same map whatever the buildings."""

    def __init__(self) -> None:
        super().__init__()
        self.level = nn.Parameter(torch.tensor(0.5))

    def forward(self, x):
        return self.level.expand(x.shape[0], 1, *x.shape[2:]).clone()
