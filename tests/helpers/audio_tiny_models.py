"""Tiny audio models with a known answer, for the genex.audio tests (factories usable as
``helpers.audio_tiny_models:band_energy`` SPECs with ``tests/`` on the path)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

RATE = 8000
N_FFT, HOP = 256, 64
# which STFT rows (of N_FFT // 2 + 1 = 129, 31.25 Hz apart) each class listens to
BANDS = {"low": (0, 16), "mid": (16, 64), "high": (64, 129)}


def _magnitude(wave: torch.Tensor) -> torch.Tensor:
    # literals, not N_FFT / HOP: TorchScript cannot close over module globals
    window = torch.hann_window(256, device=wave.device, dtype=wave.dtype)
    return torch.stft(wave, 256, 64, window=window, center=True, return_complex=True).abs()


class BandEnergy(nn.Module):
    """Waveform -> logits [B, 3]: 10 x the mean STFT magnitude of the low / mid / high band.

    Class ``low`` depends on rows 0..15 (< 500 Hz) alone, so its explanation must sit there.
    """

    labels = list(BANDS)
    sample_rate = RATE

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        mag = _magnitude(wave)
        return torch.stack([mag[:, 0:16].mean((1, 2)), mag[:, 16:64].mean((1, 2)),
                            mag[:, 64:129].mean((1, 2))], 1) * 10


class SpectrogramBands(nn.Module):
    """STFT magnitude [B, 129, Tf] -> logits [B, 3], as :class:`BandEnergy` on the spectrogram."""

    labels = list(BANDS)
    sample_rate = RATE
    input_kind = "stft"
    n_fft, hop = N_FFT, HOP

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([x[:, 0:16].mean((1, 2)), x[:, 16:64].mean((1, 2)),
                            x[:, 64:129].mean((1, 2))], 1) * 10


class MelBands(nn.Module):
    """Log-mel [B, 32, Tf] -> logits [B, 3]: the mean log-mel of the lowest 8, middle 8 and
    top 16 mel bands."""

    labels = list(BANDS)
    sample_rate = RATE
    input_kind = "mel"
    n_fft, hop, n_mels = N_FFT, HOP, 32

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([x[:, 0:8].mean((1, 2)), x[:, 8:16].mean((1, 2)), x[:, 16:].mean((1, 2))], 1)


class FramewiseBands(nn.Module):
    """Waveform -> framewise logits [B, frames, 3]: band energy of each STFT frame."""

    labels = list(BANDS)
    sample_rate = RATE
    output = "framewise"

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        mag = _magnitude(wave)
        return torch.stack([mag[:, 0:16].mean(1), mag[:, 16:64].mean(1), mag[:, 64:129].mean(1)], -1) * 10


class MultiLabel(BandEnergy):
    """:class:`BandEnergy` read as independent (sigmoid) labels."""

    output = "sigmoid"


class Polarity(nn.Module):
    """Waveform -> logits [B, 2]: ± the correlation with a 200 Hz sine, so a clip and its
    negative (same magnitude, opposite phase) get opposite classes: only the phase tells."""

    labels = ["up", "down"]
    sample_rate = RATE

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        t = torch.arange(wave.shape[-1], device=wave.device, dtype=wave.dtype) / 8000
        c = (wave * torch.sin(2 * torch.pi * 200 * t)).mean(1) * 100
        return torch.stack([c, -c], 1)


class NeedsChannels(nn.Module):
    """Expects stereo [B, 2, T] (a conv1d front end): fails on the mono [B, T] it is given."""

    sample_rate = RATE

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(2, 2, 9)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.conv(wave).mean(-1)


def band_energy() -> nn.Module:
    return BandEnergy()


def tone(freqs: dict[float, float] | None = None, seconds: float = 1.0, rate: int = RATE,
         seed: int = 0) -> np.ndarray:
    """Sines ``{Hz: amplitude}`` plus a little noise, float32 ``[T]``."""
    freqs = freqs or {200.0: 0.6, 2500.0: 0.3}
    t = np.arange(int(seconds * rate)) / rate
    wave = sum(a * np.sin(2 * np.pi * f * t) for f, a in freqs.items())
    noise = 0.01 * np.random.default_rng(seed).standard_normal(t.size)
    return (wave + noise).astype(np.float32)


def save_torchscript(path, module: nn.Module | None = None, meta: dict | None = None):
    """Script ``module`` (BandEnergy) and save it with a genex.json extra file."""
    import json

    module = module or BandEnergy()
    meta = meta if meta is not None else {"labels": list(BANDS), "sample_rate": RATE}
    torch.jit.save(torch.jit.script(module), str(path), _extra_files={"genex.json": json.dumps(meta)})
    return path
