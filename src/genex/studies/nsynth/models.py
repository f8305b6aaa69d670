"""Networks of the nsynth study: the instrument classifier Φ, the inpainter G (paper Table 2)
and its critic. All work on ``[N, 2, 1024]`` spectra (magnitude, phase/π)."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = ["InstrumentCNN", "Inpainter", "Critic", "count_parameters"]


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


class InstrumentCNN(nn.Module):
    """Φ: a 1D CNN over ``[N, 2, L]`` spectra returning pre-softmax scores ``[N, n_classes]``.

    Magnitudes are compressed with ``log1p`` inside the model (they are heavy-tailed; the
    explained input stays the raw feature). Four conv blocks (kernel 9, max-pool 2; the first
    conv has stride 2 to keep CPU cost low) keep coarse frequency position (adaptive pooling
    to 8 positions), then a penultimate layer of
    ``hidden`` units (:meth:`embed`, the features the Fréchet distance is computed on).

    Args:
        width: channels of the first block (doubling to 4× in later blocks).
        hidden: penultimate units.
        dropout: before the last layer (off in eval mode, hence while explaining).
    """

    def __init__(self, n_classes: int = 11, width: int = 8, hidden: int = 64,
                 dropout: float = 0.2) -> None:
        super().__init__()
        chans = [2, width, 2 * width, 4 * width, 4 * width]
        blocks = []
        for i, (c_in, c_out) in enumerate(zip(chans[:-1], chans[1:])):
            blocks += [nn.Conv1d(c_in, c_out, 9, stride=2 if i == 0 else 1, padding=4),
                       nn.BatchNorm1d(c_out), nn.ReLU(), nn.MaxPool1d(2)]
        self.body = nn.Sequential(*blocks, nn.AdaptiveAvgPool1d(8), nn.Flatten())
        self.penultimate = nn.Sequential(nn.Linear(chans[-1] * 8, hidden), nn.ReLU())
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, n_classes))

    @staticmethod
    def prepare(x: Tensor) -> Tensor:
        """``[log1p(relu(magnitude)), phase]``: the network's own view of a spectrum."""
        return torch.cat([torch.log1p(F.relu(x[:, :1])), x[:, 1:]], dim=1)

    def embed(self, x: Tensor) -> Tensor:
        """Penultimate features ``[N, hidden]``."""
        return self.penultimate(self.body(self.prepare(x)))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.embed(x))


def _conv_len(length: int, kernel: int, stride: int, padding: int = 0) -> int:
    return (length + 2 * padding - kernel) // stride + 1


class Inpainter(nn.Module):
    """G(x ⊙ s, s, n): the residual CNN of the paper's Table 2 (737,266 parameters at width 1).

    Input: masked spectrum (2 channels), mask (2) and 3 noise channels = the table's 7 input
    channels. Encoder Conv1d k=21: 32 → 64 (stride 2) → 128 (stride 2) → 16 (stride 2, pad 1),
    16 noise channels joined at the bottleneck ("noise in the input and deep features"),
    decoder ConvTranspose1d 64 → 128 → 64, skip connection concatenating the decoder output
    with the first conv's output and the input (64 + 32 + 7 = 103 channels), Conv1d k=7
    103 → 128 → 2. All channel counts scale with ``width`` (the default profile uses a
    fraction of the paper's width). The paper ends with a ReLU; our phase channel is signed,
    so the head applies ReLU to the magnitude only and tanh to the phase (same parameters).

    Noise is passed flat (``noise_dim`` values per input: 3·L input noise, then the
    bottleneck noise), which is what :class:`genex.explain.GenerativeInfiller` draws.
    """

    IN_NOISE = 3

    def __init__(self, length: int = 1024, width: float = 1.0) -> None:
        super().__init__()
        c = lambda n: max(1, int(round(n * width)))  # noqa: E731 - scaled channel count
        self.length = length
        self.bottleneck_noise = c(16)
        l1 = _conv_len(length, 21, 2)
        l2 = _conv_len(l1, 21, 2)
        self.bottleneck_len = _conv_len(l2, 21, 2, 1)
        self.noise_dim = self.IN_NOISE * length + self.bottleneck_noise * self.bottleneck_len
        c_in = 2 + 2 + self.IN_NOISE
        self.conv1 = nn.Sequential(nn.Conv1d(c_in, c(32), 21, padding=10), nn.ReLU())
        self.encoder = nn.Sequential(
            nn.Conv1d(c(32), c(64), 21, stride=2), nn.ReLU(), nn.BatchNorm1d(c(64)),
            nn.Conv1d(c(64), c(128), 21, stride=2), nn.ReLU(), nn.BatchNorm1d(c(128)),
            nn.Conv1d(c(128), c(16), 21, stride=2, padding=1), nn.ReLU(), nn.BatchNorm1d(c(16)))
        self.decoder = nn.Sequential(
            nn.ConvTranspose1d(c(16) + self.bottleneck_noise, c(64), 21, stride=2), nn.ReLU(),
            nn.BatchNorm1d(c(64)),
            nn.ConvTranspose1d(c(64), c(128), 21, stride=2), nn.ReLU(), nn.BatchNorm1d(c(128)),
            nn.ConvTranspose1d(c(128), c(64), 20, stride=2, padding=2), nn.ReLU(),
            nn.BatchNorm1d(c(64)))
        self.head = nn.Sequential(nn.Conv1d(c(64) + c(32) + c_in, c(128), 7, padding=3), nn.ReLU(),
                                  nn.Conv1d(c(128), 2, 7, padding=3))

    def split_noise(self, noise: Tensor) -> tuple[Tensor, Tensor]:
        """Flat noise ``[N, noise_dim]`` -> input noise ``[N, 3, L]``, bottleneck noise."""
        n = noise.shape[0]
        flat = noise.reshape(n, -1)
        if flat.shape[1] != self.noise_dim:
            raise ValueError(f"Inpainter: noise has {flat.shape[1]} values per input, "
                             f"expected {self.noise_dim}")
        cut = self.IN_NOISE * self.length
        return (flat[:, :cut].view(n, self.IN_NOISE, self.length),
                flat[:, cut:].view(n, self.bottleneck_noise, self.bottleneck_len))

    def forward(self, x_masked: Tensor, mask: Tensor, noise: Tensor) -> Tensor:
        n_in, n_deep = self.split_noise(noise)
        inp = torch.cat([x_masked, mask, n_in], dim=1)
        first = self.conv1(inp)
        deep = self.decoder(torch.cat([self.encoder(first), n_deep], dim=1))
        if deep.shape[-1] != self.length:  # only lengths other than 1024 need this
            deep = F.interpolate(deep, size=self.length, mode="linear", align_corners=False)
        out = self.head(torch.cat([deep, first, inp], dim=1))
        return torch.cat([F.relu(out[:, :1]), torch.tanh(out[:, 1:])], dim=1)


class Critic(nn.Module):
    """The GAN's critic: strided Conv1d k=21 (LeakyReLU) over a full spectrum -> one score."""

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        c = lambda n: max(1, int(round(n * width)))  # noqa: E731
        chans = [2, c(32), c(64), c(128), c(128)]
        layers = []
        for c_in, c_out in zip(chans[:-1], chans[1:]):
            layers += [nn.Conv1d(c_in, c_out, 21, stride=4, padding=10), nn.LeakyReLU(0.2)]
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool1d(1), nn.Flatten())
        self.out = nn.Linear(chans[-1], 1)

    def forward(self, x: Tensor) -> Tensor:
        x = torch.cat([torch.log1p(F.relu(x[:, :1])), x[:, 1:]], dim=1)
        return self.out(self.body(x)).squeeze(1)
