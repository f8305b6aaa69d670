"""Temporal smoothers of the INN's predictions and the non-invertible framewise baseline.

Kelz & Widmer (2019), section 4.1: a small RNN reads one key's (note phase, velocity)
sequence over a whole piece and outputs a smoothed phase, velocity and a note-activity
logit; the same weights serve all 88 keys. Sizes (paper and SPECS.md):

* ``gru``   GRU, 4 units                      111 parameters (trained with Adam 1e-3)
* ``lstm``  LSTM, 4 units                     143 parameters (SGD 0.05, momentum 0.9)
* ``bigru`` 3 bidirectional GRU layers x 8, dropout 0.5 between layers: 3,123 parameters

:class:`FramewiseCNN` is the "CNN only" row: a convolutional network over the frequency
axis of one spectrogram frame with about as many parameters as the INN (~0.9 M), trained
on the same frames with binary cross-entropy on note activity.
"""

from __future__ import annotations

import torch
from torch import nn

SMOOTHER_KINDS = ("gru", "lstm", "bigru")
PAPER_SMOOTHER_PARAMS = {"gru": 111, "lstm": 143, "bigru": 3123}


class KeySmoother(nn.Module):
    """RNN over one key's [phase, velocity] sequence -> [phase, velocity, activity logit]."""

    def __init__(self, kind: str, hidden: int = 4, layers: int = 1, dropout: float = 0.0):
        super().__init__()
        if kind not in SMOOTHER_KINDS:
            raise ValueError(f"unknown smoother {kind!r}; choose one of {SMOOTHER_KINDS}")
        self.kind = kind
        bidirectional = kind == "bigru"
        cell = nn.LSTM if kind == "lstm" else nn.GRU
        self.rnn = cell(2, hidden, num_layers=layers, batch_first=True, bidirectional=bidirectional,
                        dropout=dropout if layers > 1 else 0.0)
        self.head = nn.Linear(hidden * (2 if bidirectional else 1), 3)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """[batch, time, 2] -> [batch, time, 3] (phase, velocity, activity logit)."""
        out, _ = self.rnn(seq)
        return self.head(out)

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def make_smoother(kind: str, params: dict) -> KeySmoother:
    """A smoother from its config block (hidden, layers, dropout)."""
    return KeySmoother(kind, hidden=int(params["hidden"]), layers=int(params.get("layers", 1)),
                       dropout=float(params.get("dropout", 0.0)))


def smoother_optimizer(model: KeySmoother, params: dict) -> torch.optim.Optimizer:
    """Adam for GRUs, SGD with momentum for the LSTM (the paper's two learn-rate regimes)."""
    if params.get("optimizer", "adam") == "sgd":
        return torch.optim.SGD(model.parameters(), lr=float(params["lr"]),
                               momentum=float(params.get("momentum", 0.9)))
    return torch.optim.Adam(model.parameters(), lr=float(params["lr"]))


class FramewiseCNN(nn.Module):
    """Non-invertible framewise baseline: conv over the 144 frequency bins -> 88 logits."""

    def __init__(self, channels: int = 16, hidden: int = 384, n_bins: int = 144, n_keys: int = 88):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv1d(1, channels, 5, padding=2), nn.ReLU(),
            nn.Conv1d(channels, 2 * channels, 5, padding=2), nn.ReLU(),
            nn.MaxPool1d(2))
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(2 * channels * (n_bins // 2), hidden), nn.ReLU(),
            nn.Dropout(0.25), nn.Linear(hidden, n_keys))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Frames [n, 144] -> note-activity logits [n, 88]."""
        return self.classifier(self.features(x.unsqueeze(1)))

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
