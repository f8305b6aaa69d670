"""Frame-level evaluation of a singing-voice detector on unseen songs.

Per song, the frame probabilities are median-filtered over ``median_frames`` frames
(Schlüter & Grill's smoothing) and thresholded; accuracy and F1 pool every test frame,
AUC uses the unfiltered probabilities.
"""

from __future__ import annotations

import numpy as np

DEFAULTS: dict = {"median_frames": 56, "threshold": 0.5}


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function, stable for large |x|."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, np.float64)))


def median_smooth(prob: np.ndarray, song: np.ndarray, frames: int) -> np.ndarray:
    """Median filter of ``frames`` (odd-rounded) frames within each song."""
    from scipy.ndimage import median_filter

    size = max(1, int(frames) | 1)
    out = np.empty_like(prob)
    for s in np.unique(song):
        sel = song == s
        out[sel] = median_filter(prob[sel], size=size, mode="nearest")
    return out


def binary_scores(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """Accuracy, precision, recall and F1 of boolean frame decisions."""
    pred, target = np.asarray(pred, bool), np.asarray(target, bool)
    tp = int(np.sum(pred & target))
    fp, fn = int(np.sum(pred & ~target)), int(np.sum(~pred & target))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"accuracy": float(np.mean(pred == target)) if len(pred) else 0.0,
            "precision": precision, "recall": recall, "f1": f1}


def evaluate_frames(logits: np.ndarray, labels: np.ndarray, song: np.ndarray,
                    params: dict | None = None) -> dict:
    """Detector scores on frames: accuracy/F1 after median filtering, AUC, and raw scores."""
    from sklearn.metrics import roc_auc_score

    p = {**DEFAULTS, **(params or {})}
    prob = sigmoid(logits)
    target = np.asarray(labels) > 0
    smooth = median_smooth(prob, np.asarray(song), p["median_frames"])
    filtered = binary_scores(smooth > p["threshold"], target)
    raw = binary_scores(prob > p["threshold"], target)
    auc = float(roc_auc_score(target, prob)) if 0 < target.sum() < len(target) else float("nan")
    return {**filtered, "auc": auc, "raw": raw, "frames": int(len(target)),
            "sing_share": float(target.mean()) if len(target) else 0.0,
            "median_frames": int(p["median_frames"]), "threshold": float(p["threshold"])}
