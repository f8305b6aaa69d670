"""RadioUNet / RadioWNet-style networks for radio-map estimation (Levie et al., 2019).

A :class:`UNet` maps ``[N, C_in, H, W]`` input maps to one ``[N, 1, H, W]`` radio map;
:class:`RadioWNet` chains two UNets (the second sees the inputs and the first estimate),
as RadioUNet's "W" variant. Width and depth are set by the profile: the paper's sizes in
``config/paper.yaml``, a small width on CPU.

Φ reads ``[buildings (some missing), TX, measurements]``; Φ_gt reads ``[complete buildings,
TX]``. ``H`` and ``W`` must be divisible by ``2 ** depth``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def _block(c_in: int, c_out: int) -> nn.Sequential:
    """Two 3x3 convolutions with batch-free normalisation (GroupNorm keeps eval = train)."""
    groups = 4 if c_out % 4 == 0 else 1
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1), nn.GroupNorm(groups, c_out), nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1), nn.GroupNorm(groups, c_out), nn.ReLU(inplace=True))


class UNet(nn.Module):
    """A UNet: ``depth`` poolings, channels ``width * 2**level``; linear output.

    Args:
        in_channels: input maps.
        width: channels of the first level.
        depth: number of 2x downsamplings.
        out_channels: output maps (1: the gain).
    """

    def __init__(self, in_channels: int, width: int = 16, depth: int = 3, out_channels: int = 1):
        super().__init__()
        if depth < 1 or width < 1:
            raise ValueError(f"UNet: depth and width must be >= 1, got {depth}, {width}")
        chans = [width * 2 ** i for i in range(depth + 1)]
        self.depth = depth
        self.down = nn.ModuleList([_block(in_channels, chans[0])] +
                                  [_block(chans[i], chans[i + 1]) for i in range(depth)])
        self.up = nn.ModuleList([nn.ConvTranspose2d(chans[i + 1], chans[i], 2, stride=2)
                                 for i in reversed(range(depth))])
        self.merge = nn.ModuleList([_block(2 * chans[i], chans[i]) for i in reversed(range(depth))])
        self.head = nn.Conv2d(chans[0], out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] % 2 ** self.depth or x.shape[-2] % 2 ** self.depth:
            raise ValueError(f"UNet: input {tuple(x.shape[-2:])} is not divisible by 2^{self.depth}")
        skips = []
        h = self.down[0](x)
        for level in range(self.depth):
            skips.append(h)
            h = self.down[level + 1](nn.functional.max_pool2d(h, 2))
        for up, merge, skip in zip(self.up, self.merge, reversed(skips)):
            h = merge(torch.cat([up(h), skip], dim=1))
        return self.head(h)


class RadioWNet(nn.Module):
    """Two chained UNets (RadioWNet): the second refines the first's estimate.

    ``forward`` returns the refined map ``[N, 1, H, W]``; the first UNet's estimate is
    trained through the same loss (as RadioUNet's second phase, with both phases joint).
    """

    def __init__(self, in_channels: int, width: int = 16, depth: int = 3, chained: bool = True):
        super().__init__()
        self.in_channels = in_channels
        self.first = UNet(in_channels, width, depth)
        self.second = UNet(in_channels + 1, width, depth) if chained else None

    def forward(self, x: Tensor) -> Tensor:
        estimate = self.first(x)
        if self.second is None:
            return estimate
        return self.second(torch.cat([x, estimate], dim=1))


def build_model(in_channels: int, params: dict) -> RadioWNet:
    """The network a training config asks for (``width``, ``depth``, ``chained``)."""
    return RadioWNet(in_channels, int(params["width"]), int(params["depth"]),
                     bool(params.get("chained", True)))


class BuildingsOnly(nn.Module):
    """Φ_gt behind Φ's input ``[N, 3, H, W]`` (buildings, TX, measurements): it reads the
    first two channels, so Φ's components and infills apply to it unchanged."""

    def __init__(self, phi_gt: nn.Module) -> None:
        super().__init__()
        self.phi_gt = phi_gt

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.phi_gt(x[:, :2])
