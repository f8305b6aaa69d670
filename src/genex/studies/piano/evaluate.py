"""Forward predictions of the trained INN and the framewise evaluation of every model.

:func:`predict_all` runs the INN forward over every piece (eval mode, zero x-padding) and
keeps ŷ, ẑ and yz-pad; on the test pieces it also runs the outputs backward to measure the
reconstruction error and summarises ẑ against N(0, I).

:func:`evaluate` scores five transcribers on the test pieces with framewise precision,
recall and F1 per piece, averaged over pieces (our numpy implementation in
:mod:`genex.studies.piano.framewise`, checked against ``mir_eval.multipitch`` in the tests):

* ``inn_threshold`` the INN's note-phase output ŷ > threshold (no temporal model)
* ``inn_gru``, ``inn_lstm``, ``inn_bigru`` the smoothers' activity > threshold
* ``cnn_baseline`` the framewise CNN's sigmoid > threshold
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from genex.studies.piano.features import FrameSet
from genex.studies.piano.labels import PHASE
from genex.studies.piano.framewise import framewise_prf, mean_prf
from genex.studies.piano.inn import DIM_YZ_PAD, DIM_Z
from genex.pipeline import load_arrays, write_json

MODELS = ("inn_threshold", "inn_gru", "inn_lstm", "inn_bigru", "cnn_baseline")


def _round(value: float, digits: int = 6) -> float:
    """Fixed precision for metrics files (byte-identical reruns, no float noise)."""
    return float(round(float(value), digits))


@torch.no_grad()
def reconstruction_error(model, x: np.ndarray, out: np.ndarray, batch: int = 4096) -> float:
    """max |x - f⁻¹(f([x; 0]))| over the frames (eval mode, zero padding, float32)."""
    worst = 0.0
    for i in range(0, len(x), batch):
        x_back = model.inverse(torch.as_tensor(out[i:i + batch]))[:, :x.shape[1]]
        worst = max(worst, float(torch.max(torch.abs(x_back - torch.as_tensor(x[i:i + batch])))))
    return worst


def latent_statistics(z: np.ndarray) -> dict[str, float]:
    """Mean, std and the Kolmogorov-Smirnov statistic of all ẑ entries against N(0, 1)."""
    from scipy import stats

    flat = z.astype(np.float64).ravel()
    return {"z_mean": _round(flat.mean()), "z_std": _round(flat.std()),
            "ks_statistic": _round(stats.kstest(flat, "norm").statistic),
            "z_dim_std": [_round(s) for s in z.std(axis=0)]}


def predict_all(features_dir: Path, inn_path: Path, out_dir: Path, device: torch.device) -> dict:
    """Write ``pieces.npz`` (y_hat, z, yz_pad of every frame) and ``inn_stats.json``."""
    from genex.studies.piano.train import encode_frames, load_inn

    pieces = FrameSet.load(features_dir / "pieces.npz")
    model = load_inn(inn_path).to(device)
    out = encode_frames(model, pieces.x, device)
    z, yz_pad, y_hat = out[:, :DIM_Z], out[:, DIM_Z:DIM_Z + DIM_YZ_PAD], out[:, DIM_Z + DIM_YZ_PAD:]
    np.savez(out_dir / "pieces.npz", y_hat=y_hat, z=z, yz_pad=yz_pad)
    test = pieces.frame_mask("test")
    stats = {"reconstruction_max_abs_error": float(f"{reconstruction_error(model.cpu(), pieces.x[test], out[test]):.3e}"),
             "test_frames": int(test.sum()), "parameters": model.n_parameters(),
             "latent": latent_statistics(z[test]),
             "yz_pad_abs_mean": _round(np.abs(yz_pad[test]).mean())}
    write_json(out_dir / "inn_stats.json", stats)
    return stats


def test_rolls(features_dir: Path, predictions_dir: Path, models_dir: Path, threshold: float
               ) -> tuple[FrameSet, dict[str, list[np.ndarray]]]:
    """Boolean piano rolls of every model for every test recording."""
    from genex.studies.piano.train import cnn_roll, load_cnn, load_smoother, smooth_roll

    pieces = FrameSet.load(features_dir / "pieces.npz")
    y_hat = load_arrays(predictions_dir / "pieces.npz", ["y_hat"])["y_hat"]
    cpu = torch.device("cpu")
    smoothers = {k: load_smoother(models_dir / f"{k}.pt") for k in ("gru", "lstm", "bigru")}
    cnn = load_cnn(models_dir / "cnn.pt")
    rolls: dict[str, list[np.ndarray]] = {m: [] for m in MODELS}
    for i in pieces.select("test"):
        frames = pieces.frames(i)
        rolls["inn_threshold"].append(y_hat[frames][:, PHASE] > threshold)
        for kind, model in smoothers.items():
            rolls[f"inn_{kind}"].append(smooth_roll(model, y_hat[frames], cpu) > threshold)
        rolls["cnn_baseline"].append(cnn_roll(cnn, pieces.x[frames], cpu) > threshold)
    return pieces, rolls


def model_sizes(models_dir: Path) -> dict[str, int]:
    """Trainable parameters of the smoothers and the CNN baseline."""
    from genex.studies.piano.train import load_cnn, load_smoother

    sizes = {f"inn_{k}": load_smoother(models_dir / f"{k}.pt").n_parameters() for k in ("gru", "lstm", "bigru")}
    return sizes | {"cnn_baseline": load_cnn(models_dir / "cnn.pt").n_parameters()}


def evaluate(features_dir: Path, predictions_dir: Path, models_dir: Path, out_dir: Path,
             params: dict) -> dict:
    """Write ``framewise.json`` (mean P/R/F1 per model), ``per_piece.csv`` and the test rolls."""
    threshold = float(params["threshold"])
    pieces, rolls = test_rolls(features_dir, predictions_dir, models_dir, threshold)
    test = pieces.select("test")
    rows = []
    for model, preds in rolls.items():
        for i, pred in zip(test, preds):
            score = framewise_prf(pred, pieces.y[pieces.frames(i)][:, PHASE] > 0)
            rows.append({"model": model, "recording": str(pieces.names[i]),
                         **{k: _round(score[k]) for k in ("precision", "recall", "f1")}})
    table = pd.DataFrame(rows)
    table.to_csv(out_dir / "per_piece.csv", index=False, float_format="%.6f")
    summary = {model: {k: _round(v) for k, v in
                       mean_prf(table[table["model"] == model].to_dict("records")).items()}
               for model in MODELS}
    write_json(out_dir / "framewise.json", {"threshold": threshold, "pieces": len(test),
                                            "implementation": "genex.studies.piano.framewise (micro P/R/F1 "
                                            "over frames x 88 keys per piece; equals mir_eval.multipitch)",
                                            "parameters": model_sizes(models_dir), "models": summary})
    np.savez_compressed(out_dir / "rolls.npz", **{m: np.concatenate(r) for m, r in rolls.items()})
    return summary
