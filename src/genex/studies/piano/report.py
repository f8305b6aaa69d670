"""The piano study's metrics file and report section.

``metrics.json`` gathers every number the section quotes (the section is built from it and
from nothing else), with the paper's Table 1 beside ours. It holds no timings, dates or
paths, so two runs from scratch give the same bytes.
"""

from __future__ import annotations

import shutil
from pathlib import Path

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
        "evaluation": {"threshold": framewise["threshold"], "test_pieces": framewise["pieces"],
                       "implementation": framewise["implementation"],
                       "parameters": framewise.get("parameters", {})},
        "paper_table_1": {k: v for k, v in PAPER_TABLE_1.items() if v is not None},
        "concept": inspected["concept"],
        "concept_instrument": None if inspected.get("concept_instrument") is None
        else meta["instruments"][inspected["concept_instrument"]],
        "concept_skipped": inspected.get("concept_skipped"),
        "excerpt": inspected["excerpt"] | inspected["excerpt_errors"],
        "data": {"instruments": meta["instruments"], "recordings": meta["recordings"],
                 "frames": meta["frames"], "valid_pieces": meta["valid_pieces"]},
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
                       "dataset's test pieces (unseen pieces and instruments)."}


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
        f"- Test pieces: {metrics['evaluation']['test_pieces']}; threshold "
        f"{metrics['evaluation']['threshold']}; metric implementation: "
        f"{metrics['evaluation']['implementation']}")
    blocks = [{"type": "text", "text": intro}, table_1(metrics)]
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
