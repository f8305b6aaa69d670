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


class Shadow(nn.Module):
    """A model that learned shadows and nothing else: the map dims where buildings stand and
    around them. No parameters, no buffers (a fixed function)."""

    def forward(self, x):
        return 1.0 - nn.functional.avg_pool2d(x[:, :1], 5, 1, 2)


def tiny_radio_features(root):
    """A tiny radio-sim render (6 maps x 2 TX at 64 px) and its features at 16 x 16 under
    ``root``; returns the features folder."""
    from genex.studies.radio.features import build_features
    from genex.studies.radio.render import render

    data, out = root / "data", root / "features"
    data.mkdir()
    out.mkdir()
    render(data, {"maps": 6, "transmitters": 2, "size": 64, "buildings_missing_levels": 1,
                  "buildings_missing_versions": 1, "workers": 1}, seed=5)
    build_features(data, out, {"resolution": 16, "simulator": "DPM", "missing_levels": [1],
                               "measurements": [3, 6]}, seed=5)
    return out
