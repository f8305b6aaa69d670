"""The piano study's metrics file and report section.

``metrics.json`` gathers every number the section quotes (the section is built from it and
from nothing else), with the paper's Table 1 beside ours. It holds no timings, dates or
paths, so two runs from scratch give the same bytes.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from genex.pipeline import atomic_dir, read_json, write_json

# Kelz & Widmer (2019), Table 1 (MAPS, framewise, percent); no INN-threshold row there.
PAPER_TABLE_1 = {
    "inn_threshold": None,
    "inn_gru": {"precision": 79.74, "recall": 63.73, "f1": 70.84},
    "inn_lstm": {"precision": 80.12, "recall": 63.91, "f1": 71.10},
    "inn_bigru": {"precision": 81.72, "recall": 64.81, "f1": 72.29},
    "cnn_baseline": {"precision": 81.18, "recall": 65.07, "f1": 71.60},
}
ROW_NAMES = {"inn_threshold": "INN, ŷ phase > threshold", "inn_gru": "INN + GRU (S)",
             "inn_lstm": "INN + LSTM (S)", "inn_bigru": "INN + biGRU (L)",
             "cnn_baseline": "CNN only (framewise baseline)"}
FIGURES = [
    ("fig1_forward_backward.png", "Fig 1: a test excerpt x, the INN's outputs ŷ and ẑ, the "
     "reconstruction x̂ = f⁻¹([ẑ; 0; ŷ]) with the yz-padding zeroed, and x − x̂."),
    ("fig4_denoised_backward.png", "Fig 4: ŷ denoised by zeroing small entries, zero padding and "
     "z ~ N(0, I), run backwards."),
    ("fig5_groundtruth_backward.png", "Fig 5: the ground-truth labels y run backwards with "
     "z ~ N(0, I) (an oracle's perfect denoising)."),
    ("fig6_concept_quantiles.png", "Fig 6: per key, quantiles of the framewise Euclidean distances "
     "between samples f⁻¹([z; 0; y_ref]) and the isolated reference note of an unseen instrument."),
    ("fig7_concept_samples.png", "Fig 7: isolated reference notes and three samples of the model "
     "for their labels."),
]


def key_coverage(features: Path) -> dict:
    """Which of the 88 keys sound (have a labelled frame) in training, and in each split's
    pieces and chord sets: ``{name: {'sounding': count, 'silent': [MIDI pitches]}}``."""
    from genex.studies.piano.data import MIN_PITCH, is_chord_set
    from genex.studies.piano.features import FrameSet
    from genex.studies.piano.labels import PHASE

    pieces = FrameSet.load(features / "pieces.npz", mmap=True)

    def keys(recordings) -> dict | None:
        if not len(recordings):
            return None
        sounding = np.zeros(PHASE.stop - PHASE.start, dtype=bool)
        for i in recordings:
            sounding |= (pieces.y[pieces.frames(i), PHASE] > 0).any(axis=0)
        return {"sounding": int(sounding.sum()),
                "silent": [int(k) + MIN_PITCH for k in np.flatnonzero(~sounding)]}

    groups = {"train": pieces.select("train")}
    for split in ("train", "valid", "test"):
        chords = np.array([is_chord_set(p) for p in pieces.pieces[pieces.select(split)]], bool)
        groups[f"{split}_pieces"] = pieces.select(split)[~chords]
        groups[f"{split}_chord_sets"] = pieces.select(split)[chords]
    coverage = {name: found for name, recs in groups.items() if (found := keys(recs)) is not None}
    # how much each key is seen in training: the chord sets make every key sound, but rarely
    train = pieces.frame_mask("train")
    frames = (pieces.y[train, PHASE] > 0).sum(axis=0)
    coverage["train"]["labelled_frames"] = {
        "per_key": [int(n) for n in frames], "median": int(np.median(frames)),
        "fewest": int(frames.min()), "fewest_key": int(frames.argmin()) + MIN_PITCH}
    return coverage


def build_metrics(predictions: Path, evaluation: Path, inspection: Path, features: Path) -> dict:
    """Every number of the section, from the steps' JSON outputs."""
    stats = read_json(predictions / "inn_stats.json")
    framewise = read_json(evaluation / "framewise.json")
    inspected = read_json(inspection / "inspection.json")
    meta = read_json(features / "meta.json")
    return {
        "inn": {"reconstruction_max_abs_error": stats["reconstruction_max_abs_error"],
                "parameters": stats["parameters"], "yz_pad_abs_mean": stats["yz_pad_abs_mean"],
                "test_frames": stats["test_frames"]},
        "latent": stats["latent"],
        "framewise": framewise["models"],
        "framewise_registers": framewise["registers"],
        "evaluation": {"threshold": framewise["threshold"], "test_pieces": framewise["pieces"],
                       "test_chord_sets": framewise["chord_sets"],
                       "implementation": framewise["implementation"],
                       "parameters": framewise.get("parameters", {})},
        "paper_table_1": {k: v for k, v in PAPER_TABLE_1.items() if v is not None},
        "concept": inspected["concept"],
        "concept_instrument": None if inspected.get("concept_instrument") is None
        else meta["instruments"][inspected["concept_instrument"]],
        "concept_skipped": inspected.get("concept_skipped"),
        "excerpt": inspected["excerpt"] | inspected["excerpt_errors"],
        "data": {"instruments": meta["instruments"], "recordings": meta["recordings"],
                 "frames": meta["frames"], "valid_pieces": meta["valid_pieces"],
                 "keys": key_coverage(features)},
    }


def _pct(value: float | None) -> float | None:
    return None if value is None else round(100.0 * value, 2)


def table_1(metrics: dict) -> dict:
    """Table 1 block: our P/R/F1 (percent) beside the paper's."""
    rows = []
    for model, name in ROW_NAMES.items():
        ours, paper = metrics["framewise"][model], PAPER_TABLE_1[model] or {}
        rows.append([name, *(_pct(ours[k]) for k in ("precision", "recall", "f1")),
                     *(paper.get(k) for k in ("precision", "recall", "f1"))])
    return {"type": "table", "columns": ["Method", "P (ours)", "R (ours)", "F1 (ours)",
                                         "P (paper)", "R (paper)", "F1 (paper)"], "rows": rows,
            "caption": "Table 1: framewise precision, recall and F1 (%) on the test pieces, mean "
                       "over pieces. Paper: MAPS (60 Disklavier pieces); ours: the configured "
                       "dataset's test pieces (unseen pieces and instruments; the chord sets are "
                       "scored per register below, not here)."}


def _f1(score: dict) -> float | None:
    return _pct(score["f1"]) if score["f1"] is not None else None


def register_table(metrics: dict) -> dict:
    """F1 (%) per register of the keyboard, on the test pieces and on the test chord sets."""
    registers = metrics["framewise_registers"]
    keys, scores = registers["keys"], registers["scores"]
    materials = [m for m in ("pieces", "chord_sets") if m in scores]
    label = {"pieces": "pieces", "chord_sets": "chord sets"}
    columns = ["Method"] + [f"{name} {lo}–{hi}, {label[m]}" for m in materials
                            for name, (lo, hi) in keys.items()]
    rows = [[name, *(_f1(scores[m][model][reg]) for m in materials for reg in keys)]
            for model, name in ROW_NAMES.items()]
    first = next(iter(ROW_NAMES))  # the support is the ground truth's: the same for every model
    rows.append(["active cells (support)", *(scores[m][first][reg]["support"]
                                             for m in materials for reg in keys)])
    return {"type": "table", "columns": columns, "rows": rows,
            "caption": "Framewise F1 (%) per register of the keyboard (MIDI pitches, both ends "
                       "included), pooled over every (frame, key) cell of the test material: the "
                       "test pieces (Table 1's) and the test instruments' chord sets (RAND: random "
                       "chords over all 88 keys, UCHO: usual chords), which reach the extremes the "
                       "pieces never play. Empty: no note of that register to find. The paper "
                       "reports no per-register scores."}


def coverage_text(metrics: dict) -> str:
    """One paragraph: which keys sound in training and in the test material."""
    keys = metrics["data"]["keys"]
    frames = keys["train"]["labelled_frames"]

    def says(name: str) -> str:
        found = keys.get(name)
        if found is None:
            return "none"
        silent = found["silent"]
        return (f"{found['sounding']} of 88 keys" + (f" (silent: {_ranges(silent)})" if silent else ""))

    return ("Keys that sound (at least one labelled frame) — training split, all material: "
            f"{says('train')}; training pieces alone: {says('train_pieces')}; training chord "
            f"sets: {says('train_chord_sets')}; test pieces: {says('test_pieces')}; test chord "
            f"sets: {says('test_chord_sets')}. The corpus pieces leave the extremes of the "
            "keyboard silent; the chord sets (twins of MAPS's RAND and UCHO) make every key sound "
            "in training and give the per-register scores notes to find. Sounding is not "
            "learning: labelled training frames per key range from "
            f"{frames['fewest']} (key {frames['fewest_key']}) to a median of {frames['median']}, "
            "and the register table shows whether the extremes keep up with the middle.")


def _ranges(keys: list[int]) -> str:
    """[21, 22, 23, 33] -> '21–23, 33'."""
    parts, start = [], None
    for k, nxt in zip(keys, keys[1:] + [None]):
        start = k if start is None else start
        if nxt != k + 1:
            parts.append(f"{start}–{k}" if k > start else f"{k}")
            start = None
    return ", ".join(parts)


def concept_summary(metrics: dict) -> dict:
    """A short table of the concept quantiles for a few keys (all 88 are in metrics.json)."""
    if metrics.get("concept_skipped"):
        return {"type": "text", "text": f"Concept test: {metrics['concept_skipped']}."}
    keys = sorted(metrics["concept"], key=int)  # MIDI pitches; JSON sorts them as strings
    shown = keys[:: max(1, len(keys) // 8)]
    rows = [[k, *metrics["concept"][k].values()] for k in shown]
    return {"type": "table", "columns": ["MIDI pitch", "q05", "q25", "q50", "q75", "q95"], "rows": rows,
            "caption": f"Concept test (Fig 6) for every {max(1, len(keys) // 8)}th key: quantiles of the "
                       f"framewise distances (instrument {metrics['concept_instrument']})."}


def section_blocks(metrics: dict, audio: list[str]) -> list[dict]:
    inn, latent = metrics["inn"], metrics["latent"]
    intro = (
        "An invertible network (FrEIA: 5 × random permutation + RealNVP coupling, ATAN clamp 2, "
        f"{inn['parameters']:,} parameters) maps a 144-bin log-filterbank frame x (+ 112 padding) "
        "to [z 9 | padding 62 | y 185], y = note phase, velocity and instrument of the 88 keys. "
        "It is trained with losses (8)–(13) (MSE on ŷ, sliced Wasserstein on [ẑ; ŷ] and on backward "
        "samples, reconstruction and padding terms), then used forwards for transcription "
        "(Table 1, with per-key RNN smoothers) and backwards for interpretation (Figs 1–7).\n\n"
        f"- Reconstruction x → f → f⁻¹ on the test frames (eval, zero padding): max |x − x̂| = "
        f"{inn['reconstruction_max_abs_error']:.2e}\n"
        f"- ẑ on the test frames: mean {latent['z_mean']:.3f}, std {latent['z_std']:.3f}, "
        f"Kolmogorov–Smirnov statistic against N(0, 1) {latent['ks_statistic']:.3f} "
        "(0 would be a perfect normal)\n"
        f"- Test pieces: {metrics['evaluation']['test_pieces']} (Table 1), test chord sets: "
        f"{metrics['evaluation']['test_chord_sets']} (per-register scores only); threshold "
        f"{metrics['evaluation']['threshold']}; metric implementation: "
        f"{metrics['evaluation']['implementation']}")
    blocks = [{"type": "text", "text": intro}, table_1(metrics), register_table(metrics),
              {"type": "text", "text": coverage_text(metrics)}]
    for name, caption in FIGURES:
        blocks.append({"type": "figure", "path": name, "caption": caption})
        if name.startswith("fig5"):
            blocks.append({"type": "text", "text": "Excerpt RMSE against x: reconstruction "
                           f"{metrics['excerpt']['fig1_rmse']:.3f}, denoised-ŷ sample "
                           f"{metrics['excerpt']['fig4_rmse']:.3f}, ground-truth-y sample "
                           f"{metrics['excerpt']['fig5_rmse']:.3f} (recording "
                           f"`{metrics['excerpt']['recording']}`)."})
    blocks.append(concept_summary(metrics))
    for name in audio:
        blocks.append({"type": "audio", "path": name,
                       "caption": f"{name[:-4].replace('_', ' ')} (filterbank → NNLS → Griffin-Lim)"})
    blocks.append({"type": "metrics", "path": "metrics.json", "caption": "all numbers of this section"})
    return blocks


def write_metrics_and_section(predictions: Path, evaluation: Path, inspection: Path, features: Path,
                              metrics_path: Path, section_dir: Path, params: dict) -> None:
    """Write ``metrics.json`` and the section folder (figures, audio, section.json)."""
    metrics = build_metrics(predictions, evaluation, inspection, features)
    audio = read_json(inspection / "inspection.json")["audio"]
    with atomic_dir(section_dir) as tmp:
        for name, _ in FIGURES:
            if (inspection / name).exists():
                shutil.copy2(inspection / name, tmp / name)
        for name in audio:
            shutil.copy2(inspection / name, tmp / name)
        write_json(tmp / "metrics.json", metrics)
        blocks = [b for b in section_blocks(metrics, audio)
                  if b["type"] != "figure" or (tmp / b["path"]).exists()]
        write_json(tmp / "section.json", {"id": "piano", "title": params.get(
            "title", "Piano: an invertible network for transcription, run both ways"),
            "group": "Studies", "order": int(params.get("order", 20)), "blocks": blocks})
    write_json(metrics_path, metrics)
