"""Framewise transcription metrics: micro precision / recall / F1 over (frames x keys).

As in Kelz & Widmer (2019): per piece, every (frame, key) cell is one binary decision
(note active in the ground truth vs prediction > threshold); the scores of a test set are
the mean over its pieces (not over the pooled cells).
"""

from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np


def framewise_counts(pred: np.ndarray, target: np.ndarray) -> tuple[int, int, int]:
    """True positives, false positives and false negatives of two boolean rolls [T, keys]."""
    pred, target = np.asarray(pred, dtype=bool), np.asarray(target, dtype=bool)
    if pred.shape != target.shape:
        raise ValueError(f"prediction {pred.shape} and target {target.shape} rolls differ in shape")
    tp = int(np.count_nonzero(pred & target))
    return tp, int(np.count_nonzero(pred & ~target)), int(np.count_nonzero(~pred & target))


def framewise_prf(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """Micro precision, recall and F1 of boolean rolls ``pred`` and ``target`` ([T, 88]).

    A ratio with an empty denominator is 0 (mir_eval's convention), so a piece with no
    predicted notes has precision 0. Returns ``{'precision', 'recall', 'f1', 'tp', 'fp',
    'fn'}``.
    """
    tp, fp, fn = framewise_counts(pred, target)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "fp": fp, "fn": fn}


def mean_prf(per_piece: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """Mean precision, recall and F1 over pieces (the paper's Table 1 numbers)."""
    rows = list(per_piece)
    if not rows:
        raise ValueError("mean_prf needs at least one piece")
    return {k: float(np.mean([r[k] for r in rows])) for k in ("precision", "recall", "f1")}


def framewise_prf_pieces(preds: Iterable[np.ndarray], targets: Iterable[np.ndarray],
                         threshold: float = 0.5) -> dict[str, float]:
    """Mean framewise P/R/F1 over pieces; ``preds`` are scores (> threshold = active) or bools."""
    scores = []
    for pred, target in zip(preds, targets, strict=True):
        pred = np.asarray(pred)
        scores.append(framewise_prf(pred if pred.dtype == bool else pred > threshold, target))
    return mean_prf(scores)


def register_columns(registers: Mapping[str, tuple[int, int]], min_pitch: int = 21
                     ) -> dict[str, slice]:
    """Columns of an 88-key roll for each register ``{name: (lowest, highest MIDI pitch)}``."""
    return {name: slice(lo - min_pitch, hi - min_pitch + 1) for name, (lo, hi) in registers.items()}


def register_prf(preds: Iterable[np.ndarray], targets: Iterable[np.ndarray],
                 registers: Mapping[str, tuple[int, int]], min_pitch: int = 21
                 ) -> dict[str, dict[str, float]]:
    """Micro P/R/F1 per register, pooled over every (frame, key) cell of all recordings.

    Pooled, not averaged over recordings: a piece may play no note of a register, and its
    F1 of 0 there would say nothing about the model. ``support`` is the number of active
    ground-truth cells of the register; with none, its scores are None (nothing to find).
    """
    columns = register_columns(registers, min_pitch)
    counts = {name: np.zeros(3, dtype=np.int64) for name in columns}
    for pred, target in zip(preds, targets, strict=True):
        pred, target = np.asarray(pred, dtype=bool), np.asarray(target, dtype=bool)
        for name, cols in columns.items():
            counts[name] += framewise_counts(pred[:, cols], target[:, cols])
    out = {}
    for name, (tp, fp, fn) in counts.items():
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        has_notes = tp + fn > 0
        out[name] = {"precision": precision if has_notes else None,
                     "recall": recall if has_notes else None,
                     "f1": f1 if has_notes else None, "support": int(tp + fn)}
    return out
