"""Networks of the vocal study: the singing-voice detector and the DCGAN on mel excerpts.

:class:`VocalDetector` is Schlüter & Grill's (2015) 8-layer VGG-like network
(conv 64-32 3×3, max-pool 3, conv 128-64 3×3, max-pool 3, dense 256-64-1, leaky ReLU,
dropout 0.5), with its widths as parameters so the CPU profiles can shrink them. It
returns the pre-sigmoid logit; :meth:`VocalDetector.features` gives the penultimate
(dense-64) activations the GAN's Fréchet distance is computed on.

:class:`Generator` / :class:`Discriminator` are a DCGAN pair (Radford et al. 2016):
z ∈ R^n → dense → (C, 5, 8) → transposed convs 4×4 stride 2 with batch norm and ReLU →
(1, 80, 128), cropped to the excerpt's 115 frames; the discriminator mirrors it with
strided convs and leaky ReLU. Excerpts are standardised log mels [B, 1, 80, 115].
"""

from __future__ import annotations

import math

import torch
from torch import nn

N_MELS = 80
EXCERPT_FRAMES = 115


def pooled_shape(n_mels: int, frames: int, pool: tuple[int, int]) -> tuple[int, int]:
    """The coarse grid the models work on: ``(n_mels // pool[0], frames // pool[1])``."""
    return n_mels // pool[0], frames // pool[1]


def upsample(coarse: torch.Tensor, pool: tuple[int, int], frames: int) -> torch.Tensor:
    """Coarse excerpts [B, 1, H, W] → full grid [B, 1, H·pf, frames] by repetition.

    Frames beyond ``W·pt`` repeat the last cell, frames beyond ``frames`` are cut, so
    ``AvgPool2d(pool)`` of the result is exactly ``coarse``: activation maximisation may
    run on the coarse grid and mean the full excerpt.
    """
    pf, pt = pool
    x = coarse.repeat_interleave(pf, dim=2).repeat_interleave(pt, dim=3)
    if x.shape[3] < frames:
        x = torch.cat([x, x[..., -1:].expand(*x.shape[:3], frames - x.shape[3])], dim=3)
    return x[..., :frames]


class VocalDetector(nn.Module):
    """The singing-voice detector; ``forward`` gives the logit of P(vocal) per excerpt.

    ``pool`` average-pools the excerpt first (``(1, 1)``, the paper: no pooling); the CPU
    profiles use a coarse grid so that activation maximisation fits their time budget.
    ``padding`` 0 is the paper's valid convolutions; 1 keeps small grids from vanishing.
    """

    def __init__(self, conv: tuple[int, int, int, int] = (64, 32, 128, 64),
                 dense: tuple[int, int] = (256, 64), dropout: float = 0.5,
                 n_mels: int = N_MELS, frames: int = EXCERPT_FRAMES, pool: tuple[int, int] = (1, 1),
                 padding: int = 0, slope: float = 0.01) -> None:
        super().__init__()
        c1, c2, c3, c4 = conv
        self.pool = tuple(pool)
        act = lambda: nn.LeakyReLU(slope)  # noqa: E731 - one fresh module per layer
        self.downsample = nn.AvgPool2d(self.pool) if self.pool != (1, 1) else nn.Identity()
        self.convs = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=padding), act(), nn.Conv2d(c1, c2, 3, padding=padding), act(),
            nn.MaxPool2d(3),
            nn.Conv2d(c2, c3, 3, padding=padding), act(), nn.Conv2d(c3, c4, 3, padding=padding), act(),
            nn.MaxPool2d(3),
        )
        h, w = pooled_shape(n_mels, frames, self.pool)
        with torch.no_grad():
            flat = self.convs(torch.zeros(1, 1, h, w)).numel()
        self.dense = nn.Sequential(
            nn.Flatten(), nn.Dropout(dropout), nn.Linear(flat, dense[0]), act(),
            nn.Dropout(dropout), nn.Linear(dense[0], dense[1]), act(), nn.Dropout(dropout),
        )
        self.out = nn.Linear(dense[1], 1)

    def features_pooled(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations [B, dense[1]] of coarse excerpts [B, 1, H, W]."""
        return self.dense(self.convs(x))

    def forward_pooled(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [B] of coarse (already pooled) excerpts."""
        return self.out(self.features_pooled(x)).squeeze(1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations [B, dense[1]] of excerpts ``x`` [B, 1, mels, frames]."""
        return self.features_pooled(self.downsample(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_pooled(self.downsample(x))


class Generator(nn.Module):
    """DCGAN generator: z [B, z_dim] → standardised log-mel excerpt on the coarse grid.

    ``k = log2(H / 5)`` transposed convs 4×4 stride 2 grow (5, ⌈W / 2^k⌉) to (H, ≥W),
    cut to W. :meth:`forward` gives the coarse grid [B, 1, H, W], :meth:`full` the
    excerpt [B, 1, 80, 115] (see :func:`upsample`).
    """

    def __init__(self, z_dim: int = 128, width: int = 64, n_mels: int = N_MELS,
                 frames: int = EXCERPT_FRAMES, pool: tuple[int, int] = (1, 1)) -> None:
        super().__init__()
        self.z_dim, self.frames, self.pool = z_dim, frames, tuple(pool)
        self.h, self.w = pooled_shape(n_mels, frames, self.pool)
        k = int(round(math.log2(self.h / 5)))
        if k < 1 or 5 * 2**k != self.h:
            raise ValueError(f"Generator: the coarse grid needs 5·2^k mel rows, got {self.h}")
        self.c0, self.w0 = width * 2 ** (k - 1), math.ceil(self.w / 2**k)
        self.project = nn.Sequential(nn.Linear(z_dim, self.c0 * 5 * self.w0),
                                     nn.BatchNorm1d(self.c0 * 5 * self.w0), nn.ReLU())
        layers: list[nn.Module] = []
        c = self.c0
        for _ in range(k - 1):
            layers += [nn.ConvTranspose2d(c, c // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(c // 2), nn.ReLU()]
            c //= 2
        layers.append(nn.ConvTranspose2d(c, 1, 4, 2, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.project(z).view(z.shape[0], self.c0, 5, self.w0)
        return self.net(h)[..., : self.w]

    def full(self, z: torch.Tensor) -> torch.Tensor:
        """Excerpts on the full grid [B, 1, 80, 115]."""
        return upsample(self(z), self.pool, self.frames)


class Discriminator(nn.Module):
    """DCGAN discriminator on the coarse grid: [B, 1, H, W] → real/fake logit [B]."""

    def __init__(self, width: int = 64, n_mels: int = N_MELS, frames: int = EXCERPT_FRAMES,
                 pool: tuple[int, int] = (1, 1), slope: float = 0.2) -> None:
        super().__init__()
        h, w = pooled_shape(n_mels, frames, tuple(pool))
        k = int(round(math.log2(h / 5)))
        layers: list[nn.Module] = [nn.Conv2d(1, width, 4, 2, 1), nn.LeakyReLU(slope)]
        c = width
        for _ in range(k - 1):
            layers += [nn.Conv2d(c, 2 * c, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * c), nn.LeakyReLU(slope)]
            c *= 2
        layers += [nn.AdaptiveAvgPool2d((5, 7)), nn.Flatten(), nn.Linear(c * 35, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
