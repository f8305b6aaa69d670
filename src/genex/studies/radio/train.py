"""Training Φ (buildings with some missing + TX + measurements) and Φ_gt (complete city + TX).

Both are RadioWNet-style UNets trained with MSE on the scaled gain (RadioUNet's loss; optionally
weighted towards shadows, :func:`loss_weights`, or on the departure from free space, target
``free_space_residual``: neither alone taught the models shadows, benchmarks/results/radio_shadows.json;
the default profile adds line-of-sight maps to the residual target,
:class:`~genex.studies.radio.models.LineOfSight`),
Adam and a step learning-rate schedule, in the pipeline's training loop
(:func:`genex.pipeline.training.fit`): resume after a kill, epoch order from
``epoch_rng(seed, epoch)``, best model on validation RMSE. Φ's training measurements are
drawn afresh every epoch (from the same epoch generator; a share ``unmeasured_share`` of the
maps gets none, as matching pursuit shows Φ), its validation measurements are
fixed by the features step. Mixed precision (bf16 autocast) is used on CUDA only; CPU runs
stay in float32 and are deterministic.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from genex.studies.radio.features import (
    draw_measurements,
    free_space_gain,
    load_meta,
    load_split,
    phi_gt_inputs,
    phi_inputs,
)
from genex.studies.radio.models import build_model
from genex.pipeline.checkpoint import Checkpointer, epoch_rng, fingerprint
from genex.pipeline.training import EpochLosses, Loop, fit, index_batches
from genex.pipeline import atomic_file, load_tensors, save_tensors

MODELS = ("phi", "phi_gt")


def model_inputs(model: str, data: dict[str, np.ndarray], measured: np.ndarray | None = None) -> np.ndarray:
    """The input tensor of ``model`` for a split (Φ uses ``measured``, or the split's own)."""
    if model == "phi":
        meas = data["measured"] if measured is None else measured
        return phi_inputs(data["missing"], data["tx"], data["gain"], meas)
    if model == "phi_gt":
        return phi_gt_inputs(data["complete"], data["tx"])
    raise ValueError(f"unknown radio model {model!r}; known: {MODELS}")


def batch_inputs(model: str, data: dict[str, np.ndarray], idx: np.ndarray,
                 measured: np.ndarray | None = None) -> np.ndarray:
    """The inputs of rows ``idx`` only: ``model_inputs(model, data, measured)[idx]``, built
    when a batch needs them. At 256 x 256 the whole training split's Φ inputs are ~31.5 GB
    (float32, 3 channels); the split itself is uint8 buildings and measurements plus one
    float32 gain channel."""
    if model == "phi":
        keys = ("missing", "tx", "gain") + (("measured",) if measured is None else ())
    else:
        keys = ("complete", "tx")
    rows = {key: data[key][idx] for key in keys}
    return model_inputs(model, rows, None if measured is None else measured[idx])


def loss_weights(gain: np.ndarray, buildings: np.ndarray, txs: np.ndarray, metres_per_pixel: float,
                 shadow: float = 0.0, building: float = 1.0) -> np.ndarray:
    """Per-pixel weights ``[N, H, W]`` of the training loss, where the shadows are.

    A street pixel weighs ``1 + shadow * max(free space - gain, 0)``: the further the simulated
    gain falls below free-space gain (walls, shadows), the more its error counts; under plain MSE
    the distance decay, which free space alone explains, dominates the loss. A building pixel
    (of the complete city, the target's: its gain has no meaning) weighs ``building``.
    ``shadow = 0, building = 1`` is plain MSE.
    """
    inside = np.asarray(buildings) > 0
    weights = np.ones(np.shape(gain), dtype=np.float32)
    if shadow:
        free = np.stack([free_space_gain(tx, b, metres_per_pixel) for tx, b in zip(txs, inside)])
        weights += float(shadow) * np.maximum(free - gain, 0.0)
    weights[inside] = float(building)
    return weights


def weighted_mse(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """``sum(w (pred - target)^2) / sum(w)`` (plain MSE when ``weights`` is None): normalising by
    the weights keeps the loss's scale, and so the learning rate's meaning, for any weighting."""
    if weights is None:
        return nn.functional.mse_loss(pred, target)
    return (weights * (pred - target) ** 2).sum() / weights.sum().clamp_min(1e-12)


def predict_split(net: nn.Module, model: str, data: dict[str, np.ndarray], device: torch.device,
                  batch: int = 64) -> np.ndarray:
    """:func:`predict` on a split's inputs, built ``batch`` rows at a time."""
    n = len(data["tx"])
    return np.concatenate([predict(net, batch_inputs(model, data, np.arange(i, min(i + batch, n))),
                                   device, batch) for i in range(0, n, batch)])


def in_channels(model: str) -> int:
    return 3 if model == "phi" else 2


@torch.no_grad()
def predict(net: nn.Module, x: np.ndarray, device: torch.device, batch: int = 64) -> np.ndarray:
    """Predicted maps ``[N, H, W]`` clipped to the gain range [0, 1]."""
    net.eval()
    out = []
    for i in range(0, len(x), batch):
        xb = torch.from_numpy(x[i: i + batch]).to(device)
        out.append(net(xb).float().clamp(0, 1)[:, 0].cpu().numpy())
    return np.concatenate(out)


def rmse(pred: np.ndarray, gain: np.ndarray, chunk: int = 256) -> float:
    """Root mean squared error over every pixel (RadioUNet's measure), in float64.

    The squared errors are computed ``chunk`` maps at a time into one float64 array (not
    three float64 temporaries of the whole split: ~14 GB for RadioMapSeer's validation
    maps); the mean runs over the same array, so the value is that of the one-line formula.
    """
    pred, gain = np.asarray(pred), np.asarray(gain)
    squares = np.empty(np.broadcast_shapes(pred.shape, gain.shape), np.float64)
    for i in range(0, len(squares), chunk):
        np.square(np.asarray(pred[i: i + chunk], np.float64) - gain[i: i + chunk], out=squares[i: i + chunk])
    return float(np.sqrt(np.mean(squares)))


def train_model(model: str, features: Path, params: dict, seed: int, device: torch.device,
                checkpoints: Path, out: Path) -> dict:
    """Train ``model`` (phi or phi_gt); write the best weights to ``out``; return the summary."""
    train, valid = load_split(features, "train"), load_split(features, "valid")
    meta = load_meta(features)
    if params.get("target", "gain") == "free_space_residual" or params.get("line_of_sight"):
        # the model file rebuilds the free-space map
        params = {**params, "metres_per_pixel": float(meta["metres_per_pixel"])}
    loss = {"shadow_weight": 0.0, "building_weight": 1.0, **(params.get("loss") or {})}
    plain = not loss["shadow_weight"] and loss["building_weight"] == 1.0
    torch.manual_seed(seed)
    net = build_model(in_channels(model), params).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=float(params["lr"]))
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=int(params["lr_step"]),
                                            gamma=float(params["lr_gamma"]))
    ckpt = Checkpointer(checkpoints, {"model": net, "opt": opt, "sched": sched},
                        fingerprint(model, params, seed, meta, train["gain"].shape),
                        {"features": features})
    counts = tuple(meta["measurements"])  # as the test measurements
    batch = int(params["batch_size"])
    n = len(train["gain"])
    unmeasured = float(params.get("unmeasured_share", 0.0))

    def batches(epoch: int):
        """The epoch's (inputs, target gain) batches; Φ's measurements drawn afresh per epoch."""
        rng = epoch_rng(seed, epoch)
        order = rng.permutation(n)
        # uint8 maps: the float inputs are built per batch (batch_inputs), not for the split
        measured = draw_measurements(train["complete"], train["tx"], counts, rng) if model == "phi" else None
        if measured is not None and unmeasured:
            # matching pursuit shows Φ maps with few or no measurements: let it have seen some
            measured[rng.random(n) < unmeasured] = 0
        for idx in index_batches(order, batch):
            xb = torch.from_numpy(batch_inputs(model, train, idx, measured))
            yb = torch.from_numpy(train["gain"][idx]).unsqueeze(1)
            if plain:
                yield xb, yb
            else:
                wb = loss_weights(train["gain"][idx], train["complete"][idx], train["tx"][idx],
                                  float(meta["metres_per_pixel"]), float(loss["shadow_weight"]),
                                  float(loss["building_weight"]))
                yield xb, yb, torch.from_numpy(wb).unsqueeze(1)

    def step(batch: tuple[torch.Tensor, ...], loop: Loop) -> dict[str, float]:
        xb, yb = batch[0].to(device), batch[1].to(device)
        wb = batch[2].to(device) if len(batch) > 2 else None
        with loop.autocast():
            value = weighted_mse(net(xb).float(), yb, wb)
        return {"mse": loop.update(value, opt)}

    def evaluate(epoch: int, losses: EpochLosses) -> tuple[float, dict]:
        score = rmse(predict_split(net, model, valid, device), valid["gain"])
        return score, {"epoch": epoch + 1, "train_mse": losses.sums["mse"] / n, "valid_rmse": score}

    state = fit(f"train {model}", epochs=int(params["epochs"]), checkpointer=ckpt, device=device,
                batches=batches, step=step, evaluate=evaluate, modules=[net], schedulers=[sched],
                weight=lambda batch: len(batch[0]))
    payload = {"model": model, "params": params, "in_channels": in_channels(model),
               "state_dict": {k: v.cpu() for k, v in net.state_dict().items()},
               "best_epoch": state.best_epoch, "best_valid_rmse": state.best,
               "history": state.history}
    save_model(out, payload)
    return payload


def save_model(out: Path, payload: dict) -> None:
    """The model file :func:`load_model` and :func:`load_summary` read, written atomically."""
    with atomic_file(out) as tmp:
        save_tensors(tmp, payload)


def load_model(path: Path, device: torch.device | str = "cpu") -> nn.Module:
    """A trained model from the file :func:`train_model` wrote, in eval mode."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: radio model not found (run the radio training step)")
    payload = load_tensors(path)
    net = build_model(payload["in_channels"], payload["params"])
    net.load_state_dict(payload["state_dict"])
    return net.to(device).eval()


def load_summary(path: Path) -> dict:
    """The training summary (history, best epoch, params) stored beside the weights."""
    payload = load_tensors(path)
    return {k: payload[k] for k in ("best_epoch", "best_valid_rmse", "history", "params")}
