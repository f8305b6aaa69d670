"""The nsynth datasets' summary for the report (``genex summarize``): statistics, tables and examples."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from genex.pipeline.report.datasets import (Summary, audio_blocks, audio_seconds, canonical_splits, one_per_group, ordered_splits, require_rows, resolve, rounded, single_rate)


def summarize(root: Path, out: Path, params: dict, rng: np.random.Generator) -> Summary:
    """Notes and instruments per split and family; a spectrogram; one note per family."""
    from genex.studies.nsynth.data import read_nsynth

    df = canonical_splits(read_nsynth(root))
    require_rows(df, root, "NSynth notes")
    df = df.assign(audio_path=[resolve(root, p) for p in df["audio_path"]])
    df = df.sort_values("audio_path", kind="stable").reset_index(drop=True)
    splits = ordered_splits(df["split"])
    families = sorted(df["instrument_family_str"].unique())
    note_seconds = audio_seconds(df["audio_path"].iloc[0])  # NSynth notes all have one length

    stats: dict[str, Any] = {
        "notes": len(df),
        "instruments": int(df["instrument_str"].nunique()),
        "hours": rounded(len(df) * note_seconds / 3600),
        "sample_rate": single_rate(df, root),
        "pitch": {"min": int(df["pitch"].min()), "max": int(df["pitch"].max())},
        "velocities": int(df["velocity"].nunique()),
        "splits": {s: {"notes": int((df["split"] == s).sum()),
                       "instruments": int(df.loc[df["split"] == s, "instrument_str"].nunique())}
                   for s in splits},
        "families": {f: {"notes": int((df["instrument_family_str"] == f).sum()),
                         "instruments": int(df.loc[df["instrument_family_str"] == f,
                                                   "instrument_str"].nunique())}
                     for f in families},
        "sources": {str(k): int(v) for k, v in df["instrument_source_str"].value_counts().items()},
    }
    by_family = df.groupby(["instrument_family_str", "split"]).size()
    table = {"type": "table", "caption": "Notes per family and split",
             "columns": ["family", *splits, "instruments"],
             "rows": [[f, *[int(by_family.get((f, s), 0)) for s in splits],
                       stats["families"][f]["instruments"]] for f in families]}
    table["rows"].append(["all", *[stats["splits"][s]["notes"] for s in splits],
                          stats["instruments"]])

    picks = one_per_group(df, "instrument_family_str", params["examples_per_dataset"], rng)
    captions = [f"{r.instrument_family_str}: {r.note_str} (pitch {int(r.pitch)}, "
                f"velocity {int(r.velocity)}, {r.split})" for r in picks.itertuples()]
    blocks = [table, *audio_blocks(picks["audio_path"], captions, out, params)]
    return Summary(stats, blocks)
