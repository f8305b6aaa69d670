"""The vocal datasets' summary for the report (``genex summarize``): statistics, tables and examples."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from genex.pipeline.report.datasets import (Summary, audio_blocks, audio_rate, canonical_splits, ordered_splits, pick_rows, require_rows, resolve, rounded, single_rate)


def summarize(root: Path, out: Path, params: dict, rng: np.random.Generator) -> Summary:
    """Songs, hours and the share of sung time per split; a labelled spectrogram; excerpts."""
    from genex.studies.vocal.data import read_lab, read_vocal

    df = canonical_splits(read_vocal(root))
    require_rows(df, root, "songs")
    df = df.assign(audio_path=[resolve(root, p) for p in df["audio_path"]],
                   lab_path=[resolve(root, p) for p in df["lab_path"]])
    df = df.sort_values("song", kind="stable").reset_index(drop=True)
    labs = {row.song: read_lab(row.lab_path) for row in df.itertuples()}
    sung = {song: _label_seconds(lab, "sing") for song, lab in labs.items()}
    df = df.assign(sung=[sung[s] for s in df["song"]])
    splits = ordered_splits(df["split"])
    segments = {label: int(sum((lab["label"] == label).sum() for lab in labs.values()))
                for label in ("sing", "nosing")}

    def split_stats(part) -> dict:
        total = float(part["duration"].sum())
        return {"songs": len(part), "hours": rounded(total / 3600),
                "sung_share": rounded(part["sung"].sum() / total if total else 0.0)}

    stats: dict[str, Any] = {
        **split_stats(df),
        "sample_rate": (single_rate(df, root, missing_ok=True, mixed_ok=True)
                        or audio_rate(df["audio_path"].iloc[0])),
        "splits": {s: split_stats(df[df["split"] == s]) for s in splits},
        "labels": {label: {"segments": segments[label],
                           "hours": rounded(sum(_label_seconds(lab, label) for lab in labs.values())
                                           / 3600)}
                   for label in ("sing", "nosing")},
        "songs_without_voice": int((df["sung"] == 0).sum()),
    }
    table = {"type": "table", "caption": "Songs per split",
             "columns": ["split", "songs", "hours", "share of sung time"],
             "rows": [[s, v["songs"], v["hours"], v["sung_share"]]
                      for s, v in stats["splits"].items()]}
    table["rows"].append(["all", stats["songs"], stats["hours"], stats["sung_share"]])

    voiced = df[df["sung"] > 0]
    picks = pick_rows(voiced if len(voiced) else df, params["examples_per_dataset"], rng)
    starts = [_first_sung(labs[s]) for s in picks["song"]]
    captions = [f"{r.song} ({r.split}), from {start:.1f} s" for r, start in
                zip(picks.itertuples(), starts)]
    shade = [labs[s] for s in picks["song"]]
    blocks = [table, *audio_blocks(picks["audio_path"], captions, out, params,
                                    starts=starts, shade=shade)]
    return Summary(stats, blocks)


def _label_seconds(lab, label: str) -> float:
    part = lab[lab["label"] == label]
    return float((part["end"] - part["start"]).sum())


def _first_sung(lab) -> float:
    """Start an excerpt a second before the voice enters, so that it is heard."""
    sung = lab[lab["label"] == "sing"]
    return max(0.0, float(sung["start"].min()) - 1.0) if len(sung) else 0.0
