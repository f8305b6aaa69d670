"""RadioUNet / RadioWNet-style networks for radio-map estimation (Levie et al., 2019).

A :class:`UNet` maps ``[N, C_in, H, W]`` input maps to one ``[N, 1, H, W]`` radio map;
:class:`RadioWNet` chains two UNets (the second sees the inputs and the first estimate),
as RadioUNet's "W" variant. Width and depth are set by the profile: the paper's sizes in
``config/paper.yaml``, a small width on CPU.

Φ reads ``[buildings (some missing), TX, measurements]``; Φ_gt reads ``[complete buildings,
TX]``. ``H`` and ``W`` must be divisible by ``2 ** depth``.
"""

from __future__ import annotations

import math

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


def _tx_position(x: Tensor) -> tuple[Tensor, Tensor]:
    """Row and column ``[N, 1, 1]`` of the TX, the one-hot channel ``x[:, 1]``."""
    n, _, _, w = x.shape
    at = x[:, 1].reshape(n, -1).argmax(dim=1)
    return (at // w).to(x.dtype).view(n, 1, 1), (at % w).to(x.dtype).view(n, 1, 1)


def free_space_prior(x: Tensor, metres_per_pixel: float) -> Tensor:
    """Free-space gain ``[N, 1, H, W]`` on the dataset's scale, from the TX channel (``x[:, 1]``,
    one-hot) and 0 inside the buildings channel (``x[:, 0]``, soft under infills): the
    continuous form of :func:`genex.studies.radio.features.free_space_gain` (no 8-bit rounding)."""
    from genex.studies.radio.data import GAIN_DB_MAX, GAIN_DB_MIN, GAIN_FLOOR

    _, _, h, w = x.shape
    tx_row, tx_col = _tx_position(x)
    rows = torch.arange(h, device=x.device, dtype=x.dtype).view(1, h, 1)
    cols = torch.arange(w, device=x.device, dtype=x.dtype).view(1, 1, w)
    dist = torch.hypot(rows - tx_row, cols - tx_col) * metres_per_pixel
    gain_db = GAIN_DB_MAX - 20.0 * torch.log10(dist.clamp_min(1.0))   # exponent 2, as free_space_gain
    grey = ((gain_db - GAIN_DB_MIN) / (GAIN_DB_MAX - GAIN_DB_MIN)).clamp(0.0, 1.0)
    scaled = (grey.clamp_min(GAIN_FLOOR) - GAIN_FLOOR) / (1.0 - GAIN_FLOOR)
    return (scaled * (1.0 - x[:, 0].clamp(0.0, 1.0))).unsqueeze(1)


class FreeSpaceResidual(nn.Module):
    """``net`` predicts the gain's departure from free space: ``free_space_prior(x) + net(x)``.

    The distance decay is given, so the network's capacity (and the loss) goes to what free
    space does not know: walls, shadows, diffraction. The prior reads the same inputs as the
    network (TX and buildings), so removing a building in an explanation moves both.
    """

    def __init__(self, net: nn.Module, metres_per_pixel: float) -> None:
        super().__init__()
        self.net, self.metres_per_pixel = net, float(metres_per_pixel)

    def forward(self, x: Tensor) -> Tensor:
        return free_space_prior(x, self.metres_per_pixel) + self.net(x)


def walls_crossed(x: Tensor, step: float = 0.5) -> Tensor:
    """Building walls ``[N, 1, H, W]`` on the straight ray from the TX (``x[:, 1]``, one-hot) to
    each pixel, counted in the buildings channel ``x[:, 0]`` (soft under infills).

    A wall is an entry into a building: the rise of the occupancy along the ray. The map is
    resampled on polar rays around the TX (``4 * side`` angles, radii ``step`` pixels apart,
    bilinear), the entries are summed outwards along each ray, and the sums are read back at
    every pixel's angle and distance: about 8 times cheaper than marching one ray per pixel, and
    within 0.02 walls of it on average. Differentiable in the buildings, so a mask optimiser
    sees a building's removal open the rays it blocked.
    """
    n, _, h, w = x.shape
    angles = 4 * max(h, w)
    radii = int(math.ceil(math.hypot(h, w) / step)) + 2
    tx_row, tx_col = _tx_position(x)
    theta = torch.arange(angles, device=x.device, dtype=x.dtype).view(1, -1, 1) * (2 * math.pi / angles)
    radius = torch.arange(radii, device=x.device, dtype=x.dtype).view(1, 1, -1) * step
    to_grid_col, to_grid_row = 2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)   # pixels -> [-1, 1]
    rays = torch.stack([(tx_col + radius * torch.cos(theta)) * to_grid_col - 1.0,
                        (tx_row + radius * torch.sin(theta)) * to_grid_row - 1.0], dim=-1)
    occupancy = nn.functional.grid_sample(x[:, :1].clamp(0.0, 1.0), rays, mode="bilinear",
                                          padding_mode="zeros", align_corners=True)   # [N, 1, angle, radius]
    rises = (occupancy[..., 1:] - occupancy[..., :-1]).clamp_min(0.0)
    entries = torch.cat([occupancy[..., :1], occupancy[..., :1] + rises.cumsum(dim=-1)], dim=-1)
    entries = torch.cat([entries, entries[:, :, :1]], dim=2)             # angle 2π is angle 0
    rows, cols = torch.meshgrid(torch.arange(h, device=x.device, dtype=x.dtype),
                                torch.arange(w, device=x.device, dtype=x.dtype), indexing="ij")
    d_row, d_col = rows - tx_row, cols - tx_col
    at_pixel = torch.stack([torch.hypot(d_row, d_col) / step * (2.0 / (radii - 1)) - 1.0,
                            torch.remainder(torch.atan2(d_row, d_col), 2 * math.pi) / math.pi - 1.0], dim=-1)
    return nn.functional.grid_sample(entries, at_pixel, mode="bilinear", padding_mode="border",
                                     align_corners=True)


class LineOfSight(nn.Module):
    """``net`` reads the inputs plus two maps computed from them: free-space gain
    (:func:`free_space_prior`) and line-of-sight visibility ``exp(-walls)``
    (:func:`walls_crossed`).

    A small UNet trained on a CPU budget does not learn that a building darkens the street
    behind it as seen from the TX (a shadow is a ray, not a local pattern). These two maps
    carry the geometry; the network learns the losses, diffraction and the rest. Both are
    recomputed from whatever buildings the network is given, so an explanation that removes a
    building removes its shadow from the visibility map too.
    """

    def __init__(self, net: nn.Module, metres_per_pixel: float) -> None:
        super().__init__()
        self.net, self.metres_per_pixel = net, float(metres_per_pixel)

    def forward(self, x: Tensor) -> Tensor:
        visibility = torch.exp(-walls_crossed(x))
        return self.net(torch.cat([x, free_space_prior(x, self.metres_per_pixel), visibility], dim=1))


TARGETS = ("gain", "free_space_residual")


def build_model(in_channels: int, params: dict) -> nn.Module:
    """The network a training config asks for (``width``, ``depth``, ``chained``;
    ``line_of_sight`` wraps it in :class:`LineOfSight`, ``target`` ``free_space_residual`` in
    :class:`FreeSpaceResidual`; both need ``metres_per_pixel``, stored in the model file's
    params by training)."""
    line_of_sight = bool(params.get("line_of_sight", False))
    target = params.get("target", "gain")
    if target not in TARGETS:
        raise ValueError(f"radio model: unknown target {target!r}; known: {TARGETS}")
    if (line_of_sight or target == "free_space_residual") and "metres_per_pixel" not in params:
        raise ValueError("radio model: line_of_sight and target free_space_residual need metres_per_pixel "
                         "in its params")
    net = RadioWNet(in_channels + 2 * line_of_sight, int(params["width"]), int(params["depth"]),
                    bool(params.get("chained", True)))
    if line_of_sight:
        net = LineOfSight(net, float(params["metres_per_pixel"]))
    if target == "free_space_residual":
        return FreeSpaceResidual(net, float(params["metres_per_pixel"]))
    return net


class BuildingsOnly(nn.Module):
    """Φ_gt behind Φ's input ``[N, 3, H, W]`` (buildings, TX, measurements): it reads the
    first two channels, so Φ's components and infills apply to it unchanged."""

    def __init__(self, phi_gt: nn.Module) -> None:
        super().__init__()
        self.phi_gt = phi_gt

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.phi_gt(x[:, :2])
