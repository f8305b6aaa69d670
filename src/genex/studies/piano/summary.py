"""The piano datasets' summary for the report (``genex summarize``): statistics, tables and examples."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from genex.pipeline.report.datasets import (Summary, audio_blocks, canonical_splits, one_per_group, ordered_splits, present, require_rows, resolve, rounded, single_rate)


def summarize(root: Path, out: Path, params: dict, rng: np.random.Generator) -> Summary:
    """Pieces, recordings and hours per split and instrument; a spectrogram; piece excerpts."""
    from genex.studies.piano.data import read_piano

    df = canonical_splits(read_piano(root))
    require_rows(df, root, "piano recordings")
    # MAESTRO's MIDI-only variant lists where the audio would be: keep only files that exist
    df = df.assign(audio_path=[resolve(root, p) if present(p) and resolve(root, p).is_file()
                               else None for p in df["audio_path"]])
    df = df.sort_values("recording", kind="stable").reset_index(drop=True)
    splits = ordered_splits(df["split"])
    pieces = df[df["kind"] == "piece"]
    isolated = df[df["kind"] == "isolated"]
    instruments = sorted(df["instrument"].astype(str).unique())

    def split_stats(s: str) -> dict:
        part = df[df["split"] == s]
        return {"recordings": len(part),
                "pieces": int((part["kind"] == "piece").sum()),
                "isolated_notes": int((part["kind"] == "isolated").sum()),
                "instruments": int(part["instrument"].nunique()),
                "hours": rounded(part["duration"].sum() / 3600)}

    stats: dict[str, Any] = {
        "recordings": len(df),
        "pieces": len(pieces),
        "distinct_pieces": int(pieces["piece"].nunique()),
        "isolated_notes": len(isolated),
        "hours": rounded(df["duration"].sum() / 3600),
        "piece_seconds": {"min": rounded(pieces["duration"].min(), 2) if len(pieces) else 0.0,
                          "max": rounded(pieces["duration"].max(), 2) if len(pieces) else 0.0},
        "splits": {s: split_stats(s) for s in splits},
        "instruments": {i: {"recordings": int((df["instrument"].astype(str) == i).sum()),
                            "hours": rounded(df.loc[df["instrument"].astype(str) == i,
                                                   "duration"].sum() / 3600)}
                        for i in instruments},
    }
    sr = single_rate(df, root, missing_ok=True, mixed_ok=True)
    if sr is not None:
        stats["sample_rate"] = sr
    table = {"type": "table", "caption": "Recordings per split",
             "columns": ["split", "pieces", "isolated notes", "instruments", "hours"],
             "rows": [[s, v["pieces"], v["isolated_notes"], v["instruments"], v["hours"]]
                      for s, v in stats["splits"].items()]}
    by_inst = df.groupby(["instrument", "split"]).size()
    inst_table = {"type": "table", "caption": "Recordings per instrument and split",
                  "columns": ["instrument", *splits],
                  "rows": [[i, *[int(by_inst.get((i, s), 0)) for s in splits]]
                           for i in sorted(df["instrument"].unique())]}
    blocks: list[dict] = [table, inst_table]

    with_audio = pieces[pieces["audio_path"].notna()]
    if with_audio.empty:  # e.g. MAESTRO's MIDI-only variant
        blocks.append({"type": "text", "text": "No audio in this dataset: no examples."})
        return Summary(stats, blocks)
    picks = one_per_group(with_audio, "instrument", params["examples_per_dataset"], rng)
    captions = [f"{r.piece} on {r.instrument} ({r.split})" for r in picks.itertuples()]
    blocks += audio_blocks(picks["audio_path"], captions, out, params)
    return Summary(stats, blocks)
