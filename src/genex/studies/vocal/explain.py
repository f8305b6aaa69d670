"""The activation-maximisation step of the vocal study: run the grid, score, select, save.

Writes into its output folder:

- ``am.json``: per direction and configuration the Fréchet distance and response
  statistics, the random-z control, the selection (best / median / worst), the GAN's
  Fréchet distance on detector features, and the dataset reference responses;
- ``examples.npz``: the generated excerpts of every configuration on the models' grid
  (``<direction>`` [configs, N, H, W]), the random-z samples, and the N most and least
  vocal dataset excerpts on the full grid.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from genex.xai.activation import (
    DIRECTIONS,
    config_name,
    maximise,
    reference_responses,
    response_frechet,
    select,
    trajectories,
)
from genex.studies.vocal.metrics import (
    sigmoid,  # stable for the huge logits of extreme configurations
)

log = logging.getLogger("genex.vocal")

DEFAULTS: dict = {
    "lrs": [0.1, 0.01, 0.001], "lambdas": [0.1, 0.01, 0.001], "iterations": [100, 500, 1000],
    "examples": 50, "reference_hop": 1, "gan_frechet_samples": 2000, "batch": 1024,
}


@torch.no_grad()
def _batched(fn, x: torch.Tensor, batch: int) -> torch.Tensor:
    return torch.cat([fn(chunk) for chunk in x.split(batch)]) if len(x) else x


def dataset_responses(detector, feats, idx: np.ndarray, frames: int, device, batch: int) -> np.ndarray:
    """Detector logits of the excerpts ``idx`` of a split."""
    from genex.studies.vocal.train import predict

    return predict(detector, feats, idx, frames, device, batch).astype(np.float64)


def gan_frechet(detector, gen, feats, n: int, frames: int, pool, seed: int, device, batch: int) -> float:
    """Fréchet distance² of detector penultimate features: real training vs generated excerpts."""
    from genex.xai.frechet import frechet_distance
    from genex.studies.vocal.train import pooled_excerpts

    rng = np.random.default_rng([seed, 11])
    n = min(n, len(feats.centres))
    idx = np.sort(rng.choice(len(feats.centres), n, replace=False))
    real = torch.cat([detector.features_pooled(pooled_excerpts(feats, b, frames, pool).to(device)).cpu()
                      for b in np.array_split(idx, max(1, n // batch))])
    z = torch.from_numpy(rng.standard_normal((n, gen.z_dim)).astype(np.float32)).to(device)
    fake = _batched(lambda c: detector.features_pooled(gen(c)).cpu(), z, batch)
    return frechet_distance(real.double().numpy(), fake.double().numpy())


def run_activation_max(features: Path, detector, gen, params: dict, seed: int, device, out: Path) -> dict:
    """Run AM on the grid of ``params`` and write ``am.json`` and ``examples.npz`` into ``out``."""
    from genex.studies.vocal.features import load_split
    from genex.pipeline import progress, read_json, write_json

    p = {**DEFAULTS, **params}
    fp = read_json(Path(features) / "features.json")["params"]
    pool, frames = tuple(fp["pool"]), int(fp["excerpt_frames"])
    train = load_split(features, "train")
    n = int(p["examples"])

    # reference: the dataset's (training excerpts') responses
    ref_idx = np.arange(0, len(train.centres), max(1, p["reference_hop"]))
    ref = dataset_responses(detector, train, ref_idx, frames, device, p["batch"])
    order = np.argsort(ref, kind="stable")
    top, bottom = ref_idx[order[-n:][::-1]], ref_idx[order[:n]]

    # AM: all trajectories in one batch, snapshots at the grid's iteration counts
    z0 = torch.from_numpy(np.random.default_rng([seed, 5]).standard_normal((n, gen.z_dim))
                          .astype(np.float32)).to(device)
    trajs = trajectories(p["lrs"], p["lambdas"])
    response = lambda z: detector.forward_pooled(gen(z))  # noqa: E731 - pool∘upsample = id
    snaps = maximise(response, z0, trajs, p["iterations"],
                     progress=lambda it: progress(it, desc="activation maximisation", unit="step"))

    result: dict = {"directions": {}, "grid": {k: p[k] for k in ("lrs", "lambdas", "iterations", "examples")},
                    "trajectories": len(trajs), "batch_rows": len(trajs) * n}
    with torch.no_grad():
        x0 = _batched(gen, z0, p["batch"])
        r0 = _batched(detector.forward_pooled, x0, p["batch"]).cpu().double().numpy()
    arrays = {"random_z": x0[:, 0].cpu().numpy(), "top": train.excerpts(top, frames)[:, 0],
              "bottom": train.excerpts(bottom, frames)[:, 0]}
    for direction in DIRECTIONS:
        reference = reference_responses(ref, n, direction)
        configs, images = {}, []
        for t_i, traj in enumerate(trajs):
            if traj.direction != direction:
                continue
            for it in sorted(snaps):
                with torch.no_grad():
                    x = _batched(gen, snaps[it][t_i], p["batch"])
                    r = _batched(detector.forward_pooled, x, p["batch"]).cpu().double().numpy()
                configs[config_name(traj.lr, traj.lam, it)] = {
                    "lr": traj.lr, "lambda": traj.lam, "iterations": it,
                    "frechet": response_frechet(r, reference), "mean_response": float(r.mean()),
                    "std_response": float(r.std()),
                    "mean_probability": float(np.mean(sigmoid(r))),
                    "mean_z_norm": float(snaps[it][t_i].norm(dim=1).mean()),
                }
                images.append(x[:, 0].cpu().numpy())
        arrays[direction] = np.stack(images)
        result["directions"][direction] = {
            "configs": configs, "order": list(configs),
            "selected": select({k: v["frechet"] for k, v in configs.items()}),
            "random_z": {"frechet": response_frechet(r0, reference), "mean_response": float(r0.mean()),
                         "std_response": float(r0.std()),
                         "mean_probability": float(np.mean(sigmoid(r0)))},
            "reference": {"mean_response": float(reference.mean()), "std_response": float(reference.std()),
                          "excerpts": n},
        }
        log.info("%s: selected %s", direction, result["directions"][direction]["selected"])
    result["gan_frechet"] = gan_frechet(detector, gen, train, p["gan_frechet_samples"], frames, pool,
                                        seed, device, p["batch"])
    result["gan_frechet_samples"] = int(min(p["gan_frechet_samples"], len(train.centres)))
    result["dataset"] = {"excerpts": int(len(ref_idx)), "mean_response": float(ref.mean())}
    np.savez_compressed(out / "examples.npz", **arrays)
    write_json(out / "am.json", result)
    return result
