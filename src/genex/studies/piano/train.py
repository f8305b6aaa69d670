"""Training loops of the piano study: the INN, the per-key smoothers and the CNN baseline.

All three run the pipeline's training loop (:func:`genex.pipeline.training.fit`) and fill its
hooks: the epoch's data order and noise come from ``epoch_rng(seed, epoch)``, the loop writes
a checkpoint at each epoch end in ``ckpt_dir`` (outside the rule's outputs, so a killed job
resumes) and restores the best epoch on the held-out 'valid' pieces at the end; the final
model is written atomically.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from torch import nn

from genex.studies.piano.features import FrameSet
from genex.studies.piano.labels import N_KEYS, PHASE, VELOCITY
from genex.studies.piano.framewise import framewise_prf_pieces
from genex.studies.piano.inn import PianoINN, inn_losses, make_optimizer
from genex.studies.piano.models import FramewiseCNN, make_smoother, smoother_optimizer
from genex.pipeline.checkpoint import Checkpointer, epoch_rng, fingerprint
from genex.pipeline.training import EpochLosses, Loop, fit, index_batches
from genex.pipeline import atomic_file, load_tensors, save_tensors


# ----------------------------------------------------------------------------- model files

def save_model(path: str | Path, kind: str, model: nn.Module, config: dict, history: list) -> None:
    """Weights plus what is needed to rebuild the model, written atomically."""
    with atomic_file(path) as tmp:
        save_tensors(tmp, {"kind": kind, "config": config, "history": history,
                           "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}})


def _load(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: model file not found")
    return load_tensors(path)


def build_inn(params: dict, seed: int) -> PianoINN:
    """The INN of a config block; weights drawn from torch's generator seeded with ``seed``."""
    torch.manual_seed(seed)
    return PianoINN(hidden=int(params["hidden"]), n_blocks=int(params["blocks"]),
                    clamp=float(params["clamp"]), seed=seed)


def load_inn(path: str | Path) -> PianoINN:
    """A trained INN (eval mode, CPU, float32)."""
    saved = _load(path)
    model = build_inn(saved["config"]["params"], saved["config"]["seed"])
    model.load_state_dict(saved["state_dict"])
    return model.eval()


def load_smoother(path: str | Path):
    saved = _load(path)
    model = make_smoother(saved["config"]["kind"], saved["config"]["params"])
    model.load_state_dict(saved["state_dict"])
    return model.eval()


def load_cnn(path: str | Path) -> FramewiseCNN:
    saved = _load(path)
    p = saved["config"]["params"]
    model = FramewiseCNN(channels=int(p["channels"]), hidden=int(p["hidden"]))
    model.load_state_dict(saved["state_dict"])
    return model.eval()


# ----------------------------------------------------------------------------- INN

def resume_key(params: dict) -> dict:
    """The parameters a checkpoint must match: all but ``epochs``, so that a longer or shorter
    schedule continues from the checkpoint instead of starting again."""
    return {k: v for k, v in params.items() if k != "epochs"}


def gather_frames(features: FrameSet, rows: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """x and y of frames ``rows`` on ``device``: one batch read from the (possibly
    memory-mapped) frame set, never the whole split."""
    return (torch.tensor(features.x[rows], device=device), torch.tensor(features.y[rows], device=device))


def frames_checksum(x: np.ndarray, rows: np.ndarray, chunk: int = 1 << 16) -> float:
    """Sum of ``x[rows]`` (float64, chunk by chunk): the data's part of a checkpoint's
    fingerprint, without copying the split."""
    return float(sum(np.asarray(x[rows[i: i + chunk]], np.float64).sum() for i in range(0, len(rows), chunk)))


@torch.no_grad()
def encode_frames(model: PianoINN, x: np.ndarray, device: torch.device, batch: int = 4096) -> np.ndarray:
    """Outputs [z | yz-pad | y] [n, 256] of frames (eval mode, zero padding).

    Written batch by batch into one array: a list of batches joined at the end held the
    outputs twice (~33 GB for MAESTRO's 16.1 M frames)."""
    model.eval()
    out = np.empty((len(x), 256), np.float32)
    for i in range(0, len(x), batch):
        xb = torch.tensor(x[i:i + batch], device=device)  # a copy: x may be a read-only memory map
        out[i:i + len(xb)] = model(torch.cat([xb, torch.zeros(len(xb), 112, device=device)], 1)).cpu().numpy()
    return out


def _inn_valid_score(model: PianoINN, x: torch.Tensor, y: torch.Tensor) -> float:
    """MSE of ŷ against y on the validation frames (zero padding, eval mode)."""
    with torch.no_grad():
        model.eval()
        _, _, y_hat = model.encode(x)
        return float(nn.functional.mse_loss(y_hat, y))


def train_inn(features: FrameSet, params: dict, seed: int, device: torch.device,
              ckpt_dir: Path, out: Path, inputs: dict | None = None) -> dict:
    """Train the INN on the 'train' frames; keep the epoch with the best validation fit."""
    torch.backends.cuda.matmul.allow_tf32 = False  # invertibility needs full fp32 matmuls
    model = build_inn(params, seed).to(device)
    opt, sched = make_optimizer(model, lr=float(params["lr"]), weight_decay=float(params["weight_decay"]),
                                step_size=int(params["lr_step"]), gamma=float(params["lr_gamma"]))
    # frames are gathered per batch (features may be memory-mapped: FrameSet.load(mmap=True))
    train = features.frame_rows("train")
    valid = features.frame_rows("valid")[: int(params["valid_frames"])]
    xv = torch.as_tensor(features.x[valid], device=device)
    yv = torch.as_tensor(features.y[valid], device=device)
    fp = fingerprint("inn", resume_key(params), seed, [len(train), features.x.shape[1]],
                     frames_checksum(features.x, train))
    ckpt = Checkpointer(ckpt_dir, {"model": model, "optimizer": opt, "scheduler": sched}, fp, inputs)
    epochs, ramp_epochs = int(params["epochs"]), max(float(params["ramp_epochs"]), 1e-6)
    loss_kw = dict(ramp_epochs=ramp_epochs, pad_noise=float(params["pad_noise"]),
                   label_noise=float(params["label_noise"]),
                   n_projections=int(params["n_projections"]),
                   lambda_backward=float(params["lambda_backward"]))

    def batches(epoch: int):
        rng = epoch_rng(seed, epoch)
        order = index_batches(rng.permutation(len(train)), int(params["batch_size"]), full=True,
                              limit=params.get("batches_per_epoch"))
        gen = torch.Generator(device=device).manual_seed(int(rng.integers(2**62)))
        # (epochs so far, counting this one's batches: the loss terms ramp in, rows, noise)
        return [(epoch + i / len(order), train[idx], gen) for i, idx in enumerate(order)]

    def step(batch, loop: Loop) -> dict[str, float]:
        progress_epochs, rows, gen = batch
        xb, yb = gather_frames(features, rows, device)
        terms = inn_losses(model, xb, yb, progress_epochs, generator=gen, **loss_kw)
        # the released code's "gradient clipping" clamps every gradient element
        loop.update(terms["total"], opt, clip_value=float(params["grad_limit"]))
        return {k: float(v.detach()) for k, v in terms.items()}

    def evaluate(epoch: int, losses: EpochLosses) -> tuple[float, dict]:
        score = _inn_valid_score(model, xv, yv)
        return score, {k: v / losses.batches for k, v in losses.sums.items()} | {"epoch": epoch, "valid_fit": score}

    # fp32 throughout (amp=False): the INN is run backwards, which needs the exact forward
    state = fit("INN", epochs=epochs, checkpointer=ckpt, device=device, batches=batches, step=step,
                evaluate=evaluate, modules=[model], schedulers=[sched], amp=False, batch_progress=True)
    save_model(out, "inn", model, {"params": params, "seed": seed}, state.history)
    return {"best_epoch": state.best_epoch, "best_valid_fit": state.best, "epochs": state.epoch}


# ----------------------------------------------------------------------------- smoothers

def key_sequences(y_hat: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-key inputs [88, T, 2] (predicted phase, velocity) and targets [88, T, 3]."""
    inputs = np.stack([y_hat[:, PHASE], y_hat[:, VELOCITY]], axis=-1).transpose(1, 0, 2)
    active = (y[:, PHASE] > 0).astype(np.float32)
    targets = np.stack([y[:, PHASE], y[:, VELOCITY], active], axis=-1).transpose(1, 0, 2)
    return np.ascontiguousarray(inputs, np.float32), np.ascontiguousarray(targets, np.float32)


def smoother_loss(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MSE on the smoothed phase and velocity plus BCE on the activity logit."""
    mse = nn.functional.mse_loss(out[..., :2], target[..., :2])
    return mse + nn.functional.binary_cross_entropy_with_logits(out[..., 2], target[..., 2])


@torch.no_grad()
def smooth_roll(model, y_hat: np.ndarray, device: torch.device) -> np.ndarray:
    """Note-activity probabilities [T, 88] of one recording from the INN's ŷ."""
    model.eval()
    inputs = np.stack([y_hat[:, PHASE], y_hat[:, VELOCITY]], axis=-1).transpose(1, 0, 2)
    logits = model(torch.as_tensor(np.ascontiguousarray(inputs), device=device))[..., 2]
    return torch.sigmoid(logits).cpu().numpy().T


def _recordings(features: FrameSet, y_hat: np.ndarray, split: str) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(y_hat[features.frames(i)], features.y[features.frames(i)]) for i in features.select(split)]


def train_smoother(kind: str, features: FrameSet, y_hat: np.ndarray, params: dict, seed: int,
                   device: torch.device, ckpt_dir: Path, out: Path, inputs: dict | None = None) -> dict:
    """Train one smoother on random crops of per-key sequences of the training pieces."""
    torch.manual_seed(seed)
    model = make_smoother(kind, params).to(device)
    opt = smoother_optimizer(model, params)
    train = [key_sequences(a, b) for a, b in _recordings(features, y_hat, "train")]
    valid = _recordings(features, y_hat, "valid")
    crop = min(int(params["crop"]), min(len(s[0][0]) for s in train))
    # the INN's predictions are part of the data: a retrained INN must not resume old smoothers
    digest = hashlib.sha256(b"".join(s[0].tobytes() for s in train)).hexdigest()
    fp = fingerprint("smoother", kind, resume_key(params), seed, digest)
    ckpt = Checkpointer(ckpt_dir, {"model": model, "optimizer": opt}, fp, inputs)
    epochs, batch, steps = int(params["epochs"]), int(params["batch_size"]), int(params["batches_per_epoch"])

    def batches(epoch: int):
        rng = epoch_rng(seed, epoch)
        for _ in range(steps):  # random crops of random keys of random recordings
            rec = rng.integers(len(train), size=batch)
            key = rng.integers(N_KEYS, size=batch)
            start = [rng.integers(len(train[r][0][0]) - crop + 1) for r in rec]
            inp = np.stack([train[r][0][k, s:s + crop] for r, k, s in zip(rec, key, start)])
            tgt = np.stack([train[r][1][k, s:s + crop] for r, k, s in zip(rec, key, start)])
            yield torch.as_tensor(inp, device=device), torch.as_tensor(tgt, device=device)

    def step(batch, loop: Loop) -> dict[str, float]:
        inp, tgt = batch
        return {"loss": loop.update(smoother_loss(model(inp), tgt), opt, clip_norm=1.0)}

    def evaluate(epoch: int, losses: EpochLosses) -> tuple[float, dict]:
        f1 = framewise_prf_pieces([smooth_roll(model, a, device) for a, _ in valid],
                                  [b[:, PHASE] > 0 for _, b in valid])["f1"]
        return -f1, {"epoch": epoch, "loss": losses.sums["loss"] / steps, "valid_f1": f1}

    # fp32 (amp=False): the recurrent smoothers are small, and kept as they were trained before
    state = fit(kind, epochs=epochs, checkpointer=ckpt, device=device, batches=batches, step=step,
                evaluate=evaluate, modules=[model], amp=False)
    save_model(out, kind, model, {"kind": kind, "params": params, "seed": seed}, state.history)
    return {"parameters": model.n_parameters(), "best_epoch": state.best_epoch}


# ----------------------------------------------------------------------------- CNN baseline

@torch.no_grad()
def cnn_roll(model: FramewiseCNN, x: np.ndarray, device: torch.device, batch: int = 4096) -> np.ndarray:
    """Note-activity probabilities [T, 88] of frames."""
    model.eval()
    outs = [torch.sigmoid(model(torch.tensor(x[i:i + batch], device=device)).float()).cpu()
            for i in range(0, len(x), batch)]
    return torch.cat(outs).numpy()


def train_cnn(features: FrameSet, params: dict, seed: int, device: torch.device,
              ckpt_dir: Path, out: Path, inputs: dict | None = None) -> dict:
    """The "CNN only" baseline: BCE on note activity, Adam, the same training frames."""
    torch.manual_seed(seed)
    model = FramewiseCNN(channels=int(params["channels"]), hidden=int(params["hidden"])).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=float(params["lr"]))
    train = features.frame_rows("train")  # gathered per batch (see gather_frames)
    valid = features.select("valid")
    fp = fingerprint("cnn", resume_key(params), seed, [len(train), features.x.shape[1]])
    ckpt = Checkpointer(ckpt_dir, {"model": model, "optimizer": opt}, fp, inputs)

    def batches(epoch: int):
        order = index_batches(epoch_rng(seed, epoch).permutation(len(train)), int(params["batch_size"]),
                              full=True, limit=params.get("batches_per_epoch"))
        return [train[idx] for idx in order]

    def step(rows: np.ndarray, loop: Loop) -> dict[str, float]:
        xb, yb = gather_frames(features, rows, device)
        with loop.autocast():  # bf16 on CUDA: safe for a plain classifier (no inverse to keep exact)
            logits = model(xb)
        loss = nn.functional.binary_cross_entropy_with_logits(logits.float(), (yb[:, PHASE] > 0).float())
        return {"loss": loop.update(loss, opt)}

    def evaluate(epoch: int, losses: EpochLosses) -> tuple[float, dict]:
        f1 = framewise_prf_pieces([cnn_roll(model, features.x[features.frames(i)], device) for i in valid],
                                  [features.y[features.frames(i)][:, PHASE] > 0 for i in valid])["f1"]
        return -f1, {"epoch": epoch, "loss": losses.sums["loss"] / losses.batches, "valid_f1": f1}

    state = fit("CNN", epochs=int(params["epochs"]), checkpointer=ckpt, device=device, batches=batches,
                step=step, evaluate=evaluate, modules=[model], batch_progress=True)
    save_model(out, "cnn", model, {"params": params, "seed": seed}, state.history)
    return {"parameters": model.n_parameters(), "best_epoch": state.best_epoch}
