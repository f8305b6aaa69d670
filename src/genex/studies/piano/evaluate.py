"""Forward predictions of the trained INN and the framewise evaluation of every model.

:func:`predict_all` runs the INN forward over every piece (eval mode, zero x-padding) and
keeps ŷ, ẑ and yz-pad; on the test pieces it also runs the outputs backward to measure the
reconstruction error and summarises ẑ against N(0, I).

:func:`evaluate` scores five transcribers on the test pieces with framewise precision,
recall and F1 per piece, averaged over pieces (our numpy implementation in
:mod:`genex.studies.piano.framewise`, checked against ``mir_eval.multipitch`` in the tests),
and per register of the keyboard (:data:`genex.studies.piano.data.REGISTERS`), pooled over
the cells of the test pieces, of the test chord sets (piano-sf's RAND/UCHO twins, which
reach the extremes the pieces never play) and of both. Table 1 is the music pieces alone.

* ``inn_threshold`` the INN's note-phase output ŷ > threshold (no temporal model)
* ``inn_gru``, ``inn_lstm``, ``inn_bigru`` the smoothers' activity > threshold
* ``cnn_baseline`` the framewise CNN's sigmoid > threshold
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from genex.studies.piano.data import MIN_PITCH, REGISTERS, is_chord_set
from genex.studies.piano.features import FrameSet
from genex.studies.piano.labels import PHASE
from genex.studies.piano.framewise import framewise_prf, mean_prf, register_prf
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

    pieces = FrameSet.load(features_dir / "pieces.npz", mmap=True)
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

    pieces = FrameSet.load(features_dir / "pieces.npz", mmap=True)
    y_hat = load_arrays(predictions_dir / "pieces.npz", ["y_hat"], mmap=True)["y_hat"]
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


def test_materials(pieces: FrameSet) -> dict[str, np.ndarray]:
    """Positions (within the test recordings) of the music pieces, the chord sets and all."""
    test = pieces.select("test")
    chords = np.array([is_chord_set(p) for p in pieces.pieces[test]], dtype=bool)
    return {"pieces": np.flatnonzero(~chords), "chord_sets": np.flatnonzero(chords),
            "all": np.arange(len(test))}


def register_scores(rolls: dict[str, list[np.ndarray]], targets: list[np.ndarray],
                    materials: dict[str, np.ndarray]) -> dict:
    """Per-register P/R/F1 (pooled cells) of every model on every non-empty test material."""
    def rounded(score: dict) -> dict:
        return {k: v if v is None or k == "support" else _round(v) for k, v in score.items()}

    out = {}
    for material, positions in materials.items():
        if not len(positions):
            continue
        chosen = [targets[j] for j in positions]
        out[material] = {
            model: {register: rounded(score) for register, score in register_prf(
                [preds[j] for j in positions], chosen, REGISTERS, MIN_PITCH).items()}
            for model, preds in rolls.items()}
    return out


def evaluate(features_dir: Path, predictions_dir: Path, models_dir: Path, out_dir: Path,
             params: dict) -> dict:
    """Write ``framewise.json`` (Table 1: mean P/R/F1 per model over the music pieces; per
    register on pieces, chord sets and both), ``per_piece.csv`` and the test rolls."""
    threshold = float(params["threshold"])
    pieces, rolls = test_rolls(features_dir, predictions_dir, models_dir, threshold)
    test = pieces.select("test")
    materials = test_materials(pieces)
    if not len(materials["pieces"]):
        raise ValueError(f"{features_dir / 'pieces.npz'}: no test piece to score "
                         "(only chord sets in the test split)")
    targets = [pieces.y[pieces.frames(i)][:, PHASE] > 0 for i in test]
    rows = []
    for model, preds in rolls.items():
        for i, pred, target in zip(test, preds, targets):
            score = framewise_prf(pred, target)
            rows.append({"model": model, "recording": str(pieces.names[i]),
                         "material": "chord_set" if is_chord_set(pieces.pieces[i]) else "piece",
                         **{k: _round(score[k]) for k in ("precision", "recall", "f1")}})
    table = pd.DataFrame(rows)
    table.to_csv(out_dir / "per_piece.csv", index=False, float_format="%.6f")
    music = table[table["material"] == "piece"]
    summary = {model: {k: _round(v) for k, v in
                       mean_prf(music[music["model"] == model].to_dict("records")).items()}
               for model in MODELS}
    write_json(out_dir / "framewise.json", {
        "threshold": threshold, "pieces": len(materials["pieces"]),
        "chord_sets": len(materials["chord_sets"]),
        "implementation": "genex.studies.piano.framewise (micro P/R/F1 over frames x 88 keys per "
                          "piece; equals mir_eval.multipitch)",
        "parameters": model_sizes(models_dir), "models": summary,
        "registers": {"keys": {name: list(keys) for name, keys in REGISTERS.items()},
                      "scores": register_scores(rolls, targets, materials)}})
    np.savez_compressed(out_dir / "rolls.npz", **{m: np.concatenate(r) for m, r in rolls.items()})
    return summary
