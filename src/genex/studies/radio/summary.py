"""The radio datasets' summary for the report (``genex summarize``): statistics, tables and examples."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from genex.pipeline.report.figures import pyplot, save_figure
from genex.pipeline.report.datasets import (SPLIT_ALIASES, Summary, ordered_splits, rounded)


def summarize(root: Path, out: Path, params: dict, rng: np.random.Generator) -> Summary:
    """Maps and transmitters per split, building and gain statistics, a map/TX/gain figure."""
    from genex.studies.radio.data import RadioMapSeer
    from genex.pipeline import progress

    ds = RadioMapSeer(root, simulator=params.get("simulator", "DPM"))
    maps = sorted(ds.maps)
    if not maps:
        raise ValueError(f"{root}: no city maps found")
    split = {SPLIT_ALIASES.get(k, k): list(v) for k, v in ds.split(seed=42).items()}
    n_tx = {m: len(ds.transmitters(m)) for m in maps}
    # one (map, first TX) per map: building cover is per map, gain varies with the TX
    first = [ds.load(m, sorted(ds.transmitters(m))[0]) for m in progress(maps, "radio maps")]
    height, width = first[0]["buildings"].shape[-2:]
    stats: dict[str, Any] = {
        "maps": len(maps),
        "radio_maps": int(sum(n_tx.values())),
        "transmitters_per_map": {"min": min(n_tx.values()), "max": max(n_tx.values())},
        "image_size": {"height": int(height), "width": int(width)},
        "building_fraction": rounded(np.mean([(x["buildings"] > 0).mean() for x in first])),
        "gain_mean": rounded(np.mean([x["gain"].mean() for x in first])),
        "splits": {s: {"maps": len(split[s]), "radio_maps": int(sum(n_tx[m] for m in split[s]))}
                   for s in ordered_splits(pd.Series(list(split)))},
    }
    table = {"type": "table", "caption": "Maps per split",
             "columns": ["split", "maps", "radio maps (map x TX)"],
             "rows": [[s, v["maps"], v["radio_maps"]] for s, v in stats["splits"].items()]}
    table["rows"].append(["all", stats["maps"], stats["radio_maps"]])

    chosen = [maps[i] for i in sorted(rng.choice(len(maps), size=min(2, len(maps)),
                                                 replace=False))]
    examples = [(m, ds.transmitters(m)[int(rng.integers(n_tx[m]))]) for m in chosen]
    loaded = [ds.load(m, tx) for m, tx in examples]
    _radio_figure(examples, loaded, out / "radio_maps.png")
    names = ", ".join(f"map {m} / TX {tx}" for m, tx in examples)
    figure = {"type": "figure", "path": "radio_maps.png",
              "caption": f"City map, transmitter and gain map ({params.get('simulator', 'DPM')})"
                         f" for {names}"}
    return Summary(stats, [table, figure])


def _radio_figure(examples: list, loaded: list[dict], path: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(len(loaded), 3, figsize=(9, 3 * len(loaded)), squeeze=False)
    for row, ((m, tx), x) in enumerate(zip(examples, loaded)):
        panels = [("city map", x["buildings"], "gray_r"), ("transmitter", x["tx"], "gray_r"),
                  ("gain", x["gain"], "viridis")]
        for ax, (name, img, cmap) in zip(axes[row], panels):
            ax.imshow(img, cmap=cmap, interpolation="nearest")
            if name == "transmitter":  # one pixel is invisible at this scale: circle it
                ys, xs = np.nonzero(img)
                ax.imshow(x["buildings"], cmap="gray_r", alpha=0.25, interpolation="nearest")
                ax.scatter(xs, ys, s=80, facecolors="none", edgecolors="red")
            ax.set_title(f"map {m}, TX {tx}: {name}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    save_figure(fig, path)
