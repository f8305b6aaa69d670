"""Toy data and small hyper-parameters the training tests of several files share."""

from __future__ import annotations

import numpy as np
import torch

from genex.studies.piano.features import FrameSet
from genex.studies.piano.labels import N_KEYS, Y_DIM

# nsynth: [2, 1024] magnitude/phase spectra, 11 families
NSYNTH_SHAPE = (2, 1024)


def toy_family_data(n: int = 66):
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % 11
    x = torch.rand(n, *NSYNTH_SHAPE, generator=g)
    x[torch.arange(n), 0, 100 + 60 * y] += 5.0  # one family, one peak
    return {"train": (x, y), "valid": (x[:22], y[:22])}


CLF_PARAMS = dict(n_classes=11, width=4, hidden=16, dropout=0.0, epochs=3, batch_size=16,
                  lr=0.01, weight_decay=0.0, gain_jitter=0.1)


# piano: 144-bin frames, 185-dim labels
def synthetic_frames(n_rec: int = 4, frames: int = 40, seed: int = 0) -> FrameSet:
    """Recordings whose spectrum lights the bin of each sounding key (learnable in steps)."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for _ in range(n_rec):
        y = np.zeros((frames, Y_DIM), np.float32)
        x = 0.05 * rng.random((frames, 144)).astype(np.float32)
        for _ in range(6):
            key, start = rng.integers(30, 60), rng.integers(0, frames - 8)
            y[start:start + 8, key] = 5 * 0.99 ** np.arange(8)
            y[start:start + 8, N_KEYS + key] = 0.6
            x[start:start + 8, key + 20] += 1.0
        y[:, 2 * N_KEYS] = 1.0
        xs.append(x)
        ys.append(y)
    return FrameSet(x=np.concatenate(xs), y=np.concatenate(ys),
                    offsets=np.arange(n_rec + 1) * frames, names=np.array([f"r{i}" for i in range(n_rec)]),
                    pieces=np.array([f"p{i}" for i in range(n_rec)]),
                    splits=np.array(["train", "train", "valid", "test"][:n_rec]),
                    instruments=np.zeros(n_rec, np.int64), pitches=-np.ones(n_rec, np.int64))


INN_PARAMS = {"hidden": 16, "blocks": 2, "clamp": 2.0, "epochs": 3, "batch_size": 16,
              "batches_per_epoch": 0, "ramp_epochs": 1.0, "n_projections": 32,
              "lambda_backward": 100.0, "pad_noise": 0.03, "label_noise": 0.03, "lr": 1e-3,
              "weight_decay": 2e-5, "lr_step": 12, "lr_gamma": 0.96, "grad_limit": 15.0,
              "valid_frames": 64}


# vocal: mel excerpts pooled 4 x 4
POOL = (4, 4)


def synthetic_split(rng, songs=3, frames=60):
    """Songs whose 'sung' frames are louder in the upper bands."""
    from genex.studies.vocal.features import _pack

    data = []
    for s in range(songs):
        lab = (np.arange(frames) // 15) % 2 == 1
        mel = rng.normal(size=(frames, 80)).astype(np.float32)
        mel[lab, 40:] += 2.0
        data.append((f"s{s}", mel, lab))
    return _pack(data, np.zeros(80), np.ones(80), 115)
