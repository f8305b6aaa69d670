"""Training of the vocal study's networks: the singing-voice detector and the DCGAN.

Both trainers follow :mod:`genex.pipeline.checkpoint`: checkpoints in a folder outside the
rule's outputs, resume after a kill, each epoch's order from ``epoch_rng(seed, epoch)``,
the best epoch on validation kept. On CUDA they use mixed precision (float16 autocast
with a grad scaler); on CPU they run in float32, deterministically for a seed.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from genex.studies.vocal.features import SplitFeatures
from genex.pipeline.checkpoint import Checkpointer, epoch_rng, finite_loss, fingerprint

log = logging.getLogger("genex.vocal")

DETECTOR_DEFAULTS: dict = {
    "conv": [64, 32, 128, 64], "dense": [256, 64], "dropout": 0.5, "padding": 0,
    "targets": [0.02, 0.98], "epochs": 20, "batch": 32, "lr": 1e-3, "train_hop": 1,
    "excerpts_per_epoch": 0, "valid_hop": 10,
}
GAN_DEFAULTS: dict = {
    "z_dim": 128, "g_width": 64, "d_width": 64, "epochs": 25, "batch": 64, "lr": 2e-4,
    "betas": [0.5, 0.999], "train_hop": 1, "excerpts_per_epoch": 0, "valid_samples": 512,
}


def batches(indices: np.ndarray, size: int) -> Iterator[np.ndarray]:
    """Consecutive chunks of ``indices`` of at most ``size``."""
    for start in range(0, len(indices), size):
        yield indices[start:start + size]


def epoch_indices(n: int, hop: int, per_epoch: int, seed: int, epoch: int) -> np.ndarray:
    """This epoch's excerpt order: every ``hop``-th excerpt, shuffled, at most ``per_epoch``."""
    rng = epoch_rng(seed, epoch)
    offset = int(rng.integers(hop)) if hop > 1 else 0  # a different subset each epoch
    idx = rng.permutation(np.arange(offset, n, hop))
    return idx[:per_epoch] if per_epoch else idx


def build_detector(params: dict, pool: tuple[int, int], n_mels: int, frames: int):
    """The detector described by ``params`` (detector config) on ``pool``'s grid."""
    from genex.studies.vocal.models import VocalDetector

    p = {**DETECTOR_DEFAULTS, **params}
    return VocalDetector(tuple(p["conv"]), tuple(p["dense"]), p["dropout"], n_mels, frames,
                         tuple(pool), p["padding"])


def build_gan(params: dict, pool: tuple[int, int], n_mels: int, frames: int):
    """Generator and discriminator described by ``params`` (gan config)."""
    from genex.studies.vocal.models import Discriminator, Generator

    p = {**GAN_DEFAULTS, **params}
    return (Generator(p["z_dim"], p["g_width"], n_mels, frames, tuple(pool)),
            Discriminator(p["d_width"], n_mels, frames, tuple(pool)))


def _amp(device: torch.device):
    """Mixed precision on CUDA (float16 autocast + grad scaler), plain float32 elsewhere."""
    cuda = device.type == "cuda"
    return (torch.autocast("cuda", dtype=torch.float16, enabled=cuda),
            torch.amp.GradScaler("cuda", enabled=cuda))


@torch.no_grad()
def predict(model, feats: SplitFeatures, idx: np.ndarray, frames: int, device: torch.device,
            batch: int = 512) -> np.ndarray:
    """Detector logits of the excerpts ``idx`` of a split (eval mode)."""
    model.eval()
    out = [model(torch.from_numpy(feats.excerpts(b, frames)).to(device)).float().cpu()
           for b in batches(np.asarray(idx), batch)]
    return torch.cat(out).numpy() if out else np.zeros(0, np.float32)


def train_detector(train: SplitFeatures, valid: SplitFeatures, params: dict, pool: tuple[int, int],
                   frames: int, seed: int, device: torch.device, ckpt_dir: Path,
                   inputs: dict | None = None):
    """Train the detector; returns (model with the best validation weights, TrainState)."""
    from genex.pipeline import progress

    p = {**DETECTOR_DEFAULTS, **params}
    n_mels = train.mel.shape[1]
    model = build_detector(p, pool, n_mels, frames).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=p["lr"])
    autocast, scaler = _amp(device)
    ckpt = Checkpointer(ckpt_dir, {"model": model, "opt": opt, "scaler": scaler},
                        fingerprint("detector", p, list(pool), frames, seed, train.mel.shape), inputs)
    state = ckpt.resume()
    lo, hi = p["targets"]
    valid_idx = np.arange(0, len(valid.centres), max(1, p["valid_hop"]))
    valid_y = valid.labels[valid_idx].astype(np.float32)
    for epoch in progress(range(state.epoch, p["epochs"]), desc="detector", total=p["epochs"] - state.epoch,
                          unit="epoch"):
        model.train()
        order = epoch_indices(len(train.centres), p["train_hop"], p["excerpts_per_epoch"], seed, epoch)
        total = 0.0
        for b in batches(order, p["batch"]):
            x = torch.from_numpy(train.excerpts(b, frames)).to(device)
            y = torch.from_numpy(np.where(train.labels[b] > 0, hi, lo).astype(np.float32)).to(device)
            with autocast:
                loss = F.binary_cross_entropy_with_logits(model(x).float(), y)
            value = finite_loss(loss, state)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            state.step += 1
            total += value * len(b)
        logits = predict(model, valid, valid_idx, frames, device)
        val_loss = float(F.binary_cross_entropy_with_logits(torch.from_numpy(logits),
                                                            torch.from_numpy(valid_y)))
        val_acc = float(np.mean((logits > 0) == (valid_y > 0.5))) if len(valid_y) else 0.0
        state.epoch = epoch + 1
        state.history.append({"epoch": state.epoch, "train_loss": total / max(1, len(order)),
                              "valid_loss": val_loss, "valid_accuracy": val_acc})
        ckpt.save(state, best=state.improved(val_loss))
        log.info("detector epoch %d: train %.4f valid %.4f acc %.3f", state.epoch,
                 state.history[-1]["train_loss"], val_loss, val_acc)
    ckpt.load_best()
    return model.eval(), state


def pooled_excerpts(feats: SplitFeatures, idx: np.ndarray, frames: int, pool: tuple[int, int]) -> torch.Tensor:
    """Excerpts on the models' coarse grid [B, 1, H, W] (average-pooled)."""
    x = torch.from_numpy(feats.excerpts(idx, frames))
    return F.avg_pool2d(x, pool) if tuple(pool) != (1, 1) else x


def band_frechet(real: torch.Tensor, fake: torch.Tensor) -> float:
    """Fréchet distance² of the per-band means of two excerpt sets (GAN model selection).

    A cheap spectral-envelope check that needs no classifier; the reported GAN quality
    is the Fréchet distance of detector features (:mod:`genex.xai.activation`).
    """
    from genex.xai.frechet import frechet_distance

    return frechet_distance(real.mean(dim=3).flatten(1).double().numpy(),
                            fake.mean(dim=3).flatten(1).double().numpy())


def train_gan(train: SplitFeatures, valid: SplitFeatures, params: dict, pool: tuple[int, int],
              frames: int, seed: int, device: torch.device, ckpt_dir: Path,
              inputs: dict | None = None):
    """Train the DCGAN; returns (generator with the best validation weights, TrainState).

    Validation: :func:`band_frechet` between ``valid_samples`` validation excerpts and as
    many generated from fixed noise (lower is better).
    """
    from genex.pipeline import progress

    p = {**GAN_DEFAULTS, **params}
    n_mels = train.mel.shape[1]
    gen, disc = build_gan(p, pool, n_mels, frames)
    gen, disc = gen.to(device), disc.to(device)
    opt_g = torch.optim.Adam(gen.parameters(), lr=p["lr"], betas=tuple(p["betas"]))
    opt_d = torch.optim.Adam(disc.parameters(), lr=p["lr"], betas=tuple(p["betas"]))
    autocast, scaler = _amp(device)
    ckpt = Checkpointer(ckpt_dir, {"gen": gen, "disc": disc, "opt_g": opt_g, "opt_d": opt_d,
                                   "scaler": scaler},
                        fingerprint("gan", p, list(pool), frames, seed, train.mel.shape), inputs)
    state = ckpt.resume()
    vrng = np.random.default_rng([seed, 7])
    n_valid = min(p["valid_samples"], len(valid.centres))
    valid_x = pooled_excerpts(valid, np.sort(vrng.choice(len(valid.centres), n_valid, replace=False)),
                              frames, pool)
    fixed_z = torch.from_numpy(vrng.standard_normal((n_valid, p["z_dim"])).astype(np.float32))
    for epoch in progress(range(state.epoch, p["epochs"]), desc="dcgan", total=p["epochs"] - state.epoch,
                          unit="epoch"):
        gen.train(), disc.train()
        order = epoch_indices(len(train.centres), p["train_hop"], p["excerpts_per_epoch"], seed, epoch)
        d_sum = g_sum = 0.0
        for b in batches(order, p["batch"]):
            if len(b) < 2:
                continue  # batch norm needs two examples
            real = pooled_excerpts(train, b, frames, pool).to(device)
            z = torch.randn(len(b), p["z_dim"], device=device)
            ones, zeros = torch.ones(len(b), device=device), torch.zeros(len(b), device=device)
            with autocast:
                fake = gen(z)
                d_loss = (F.binary_cross_entropy_with_logits(disc(real).float(), ones)
                          + F.binary_cross_entropy_with_logits(disc(fake.detach()).float(), zeros))
            d_value = finite_loss(d_loss, state, "discriminator loss")
            opt_d.zero_grad(set_to_none=True)
            scaler.scale(d_loss).backward()
            scaler.step(opt_d)
            with autocast:
                g_loss = F.binary_cross_entropy_with_logits(disc(fake).float(), ones)
            g_value = finite_loss(g_loss, state, "generator loss")
            opt_g.zero_grad(set_to_none=True)
            scaler.scale(g_loss).backward()
            scaler.step(opt_g)
            scaler.update()
            state.step += 1
            d_sum, g_sum = d_sum + d_value * len(b), g_sum + g_value * len(b)
        gen.eval()
        with torch.no_grad():
            fake = torch.cat([gen(z.to(device)).float().cpu() for z in fixed_z.split(256)])
        score = band_frechet(valid_x, fake)
        state.epoch = epoch + 1
        state.history.append({"epoch": state.epoch, "d_loss": d_sum / max(1, len(order)),
                              "g_loss": g_sum / max(1, len(order)), "valid_band_frechet": score})
        ckpt.save(state, best=state.improved(score))
        log.info("dcgan epoch %d: d %.3f g %.3f band-FD %.3f", state.epoch,
                 state.history[-1]["d_loss"], state.history[-1]["g_loss"], score)
    ckpt.load_best()
    return gen.eval(), state
