"""Training of the vocal study's networks: the singing-voice detector and the DCGAN.

Both trainers run the pipeline's training loop (:func:`genex.pipeline.training.fit`):
checkpoints in a folder outside the rule's outputs, resume after a kill, each epoch's order
from ``epoch_rng(seed, epoch)``, the best epoch on validation kept. On CUDA they use its
mixed precision (bf16 autocast, no grad scaler); on CPU they run in float32,
deterministically for a seed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from genex.studies.vocal.features import SplitFeatures
from genex.pipeline.checkpoint import Checkpointer, epoch_rng, fingerprint
from genex.pipeline.training import EpochLosses, Loop, fit, index_batches


DETECTOR_DEFAULTS: dict = {
    "conv": [64, 32, 128, 64], "dense": [256, 64], "dropout": 0.5, "padding": 0,
    "targets": [0.02, 0.98], "epochs": 20, "batch": 32, "lr": 1e-3, "train_hop": 1,
    "excerpts_per_epoch": 0, "valid_hop": 10,
}
GAN_DEFAULTS: dict = {
    "z_dim": 128, "g_width": 64, "d_width": 64, "epochs": 25, "batch": 64, "lr": 2e-4,
    "betas": [0.5, 0.999], "train_hop": 1, "excerpts_per_epoch": 0, "valid_samples": 512,
}


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


@torch.no_grad()
def predict(model, feats: SplitFeatures, idx: np.ndarray, frames: int, device: torch.device,
            batch: int = 512) -> np.ndarray:
    """Detector logits of the excerpts ``idx`` of a split (eval mode)."""
    model.eval()
    out = [model(torch.from_numpy(feats.excerpts(b, frames)).to(device)).float().cpu()
           for b in index_batches(np.asarray(idx), batch)]
    return torch.cat(out).numpy() if out else np.zeros(0, np.float32)


def train_detector(train: SplitFeatures, valid: SplitFeatures, params: dict, pool: tuple[int, int],
                   frames: int, seed: int, device: torch.device, ckpt_dir: Path,
                   inputs: dict | None = None):
    """Train the detector; returns (model with the best validation weights, TrainState)."""
    p = {**DETECTOR_DEFAULTS, **params}
    n_mels = train.mel.shape[1]
    model = build_detector(p, pool, n_mels, frames).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=p["lr"])
    ckpt = Checkpointer(ckpt_dir, {"model": model, "opt": opt},
                        fingerprint("detector", p, list(pool), frames, seed, train.mel.shape), inputs)
    lo, hi = p["targets"]
    valid_idx = np.arange(0, len(valid.centres), max(1, p["valid_hop"]))
    valid_y = valid.labels[valid_idx].astype(np.float32)
    excerpts = {}  # the epoch's excerpt count: the denominator of its mean training loss

    def epoch_batches(epoch: int):
        order = epoch_indices(len(train.centres), p["train_hop"], p["excerpts_per_epoch"], seed, epoch)
        excerpts[epoch] = len(order)
        return index_batches(order, p["batch"])

    def step(b: np.ndarray, loop: Loop) -> dict[str, float]:
        x = torch.from_numpy(train.excerpts(b, frames)).to(device)
        y = torch.from_numpy(np.where(train.labels[b] > 0, hi, lo).astype(np.float32)).to(device)
        with loop.autocast():
            loss = F.binary_cross_entropy_with_logits(model(x).float(), y)
        return {"loss": loop.update(loss, opt)}

    def evaluate(epoch: int, losses: EpochLosses) -> tuple[float, dict]:
        logits = predict(model, valid, valid_idx, frames, device)
        val_loss = float(F.binary_cross_entropy_with_logits(torch.from_numpy(logits),
                                                            torch.from_numpy(valid_y)))
        val_acc = float(np.mean((logits > 0) == (valid_y > 0.5))) if len(valid_y) else 0.0
        return val_loss, {"epoch": epoch + 1,
                          "train_loss": losses.sums.get("loss", 0.0) / max(1, excerpts[epoch]),
                          "valid_loss": val_loss, "valid_accuracy": val_acc}

    state = fit("detector", epochs=p["epochs"], checkpointer=ckpt, device=device, batches=epoch_batches,
                step=step, evaluate=evaluate, modules=[model], weight=len)
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
    p = {**GAN_DEFAULTS, **params}
    n_mels = train.mel.shape[1]
    gen, disc = build_gan(p, pool, n_mels, frames)
    gen, disc = gen.to(device), disc.to(device)
    opt_g = torch.optim.Adam(gen.parameters(), lr=p["lr"], betas=tuple(p["betas"]))
    opt_d = torch.optim.Adam(disc.parameters(), lr=p["lr"], betas=tuple(p["betas"]))
    ckpt = Checkpointer(ckpt_dir, {"gen": gen, "disc": disc, "opt_g": opt_g, "opt_d": opt_d},
                        fingerprint("gan", p, list(pool), frames, seed, train.mel.shape), inputs)
    vrng = np.random.default_rng([seed, 7])
    n_valid = min(p["valid_samples"], len(valid.centres))
    valid_x = pooled_excerpts(valid, np.sort(vrng.choice(len(valid.centres), n_valid, replace=False)),
                              frames, pool)
    fixed_z = torch.from_numpy(vrng.standard_normal((n_valid, p["z_dim"])).astype(np.float32))
    excerpts = {}  # the epoch's excerpt count: the denominator of its mean losses

    def epoch_batches(epoch: int):
        order = epoch_indices(len(train.centres), p["train_hop"], p["excerpts_per_epoch"], seed, epoch)
        excerpts[epoch] = len(order)
        return index_batches(order, p["batch"])

    def step(b: np.ndarray, loop: Loop) -> dict[str, float] | None:
        if len(b) < 2:
            return None  # batch norm needs two examples
        real = pooled_excerpts(train, b, frames, pool).to(device)
        z = torch.randn(len(b), p["z_dim"], device=device)
        ones, zeros = torch.ones(len(b), device=device), torch.zeros(len(b), device=device)
        with loop.autocast():
            fake = gen(z)
            d_loss = (F.binary_cross_entropy_with_logits(disc(real).float(), ones)
                      + F.binary_cross_entropy_with_logits(disc(fake.detach()).float(), zeros))
        d_value = loop.update(d_loss, opt_d, "discriminator loss")
        with loop.autocast():
            g_loss = F.binary_cross_entropy_with_logits(disc(fake).float(), ones)
        return {"d_loss": d_value, "g_loss": loop.update(g_loss, opt_g, "generator loss")}

    def evaluate(epoch: int, losses: EpochLosses) -> tuple[float, dict]:
        gen.eval()
        with torch.no_grad():
            fake = torch.cat([gen(z.to(device)).float().cpu() for z in fixed_z.split(256)])
        score = band_frechet(valid_x, fake)
        n = max(1, excerpts[epoch])
        return score, {"epoch": epoch + 1, "d_loss": losses.sums.get("d_loss", 0.0) / n,
                       "g_loss": losses.sums.get("g_loss", 0.0) / n, "valid_band_frechet": score}

    state = fit("dcgan", epochs=p["epochs"], checkpointer=ckpt, device=device, batches=epoch_batches,
                step=step, evaluate=evaluate, modules=[gen, disc], weight=len)
    return gen.eval(), state
