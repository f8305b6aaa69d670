"""radio-sim's locality: the old city-wide relay budget against every relay, on 20 maps.

The reference is the current simulator (every corner the TX sees relays, every corner reached
relays again). Compared with it, on the street pixels of each map (dataset scale, grey / 255
floored at 0.2 and rescaled to [0, 1]):

* ``legacy``: the simulator before the fix (24 first-order relays chosen city-wide by how much
  shadow each lights, 16 second-order by how much still lies below the noise floor), loaded
  from git (``--legacy-commit``);
* ``capped``: the current code with caps 24 / 16 (nearest corners / least loss first).

Locality: per map, TX 0, up to 3 buildings whose every pixel lies >= 130 m from the TX are
removed one at a time; the largest change at the street pixels within 40 m of the TX is
recorded (0 for a local simulator: paths that far and back stay below the noise floor).
Times are per transmitter, including the corner-visibility cache of each city.

Usage: python benchmarks/bench_radio_locality.py [--maps 20] [--transmitters 5]
       [--legacy-commit 8a5ab8b] [--out benchmarks/results/radio_locality.json]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from genex.studies.radio import render
from genex.studies.radio.data import gain_db_to_scaled


def legacy_module(commit: str):
    """render.py as it was at ``commit`` (the city-wide budget), imported under its own name."""
    source = subprocess.run(["git", "show", f"{commit}:src/genex/studies/radio/render.py"],
                            check=True, capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "render_legacy.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("render_legacy", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["render_legacy"] = module
    spec.loader.exec_module(module)
    return module


def maps_of(propagator, mask, txs) -> tuple[np.ndarray, float]:
    """Scaled gains of every TX and the seconds per TX (cache built inside the timing)."""
    start = time.perf_counter()
    city = propagator(mask)
    gains = np.stack([gain_db_to_scaled(city.gain_db(tuple(tx)), mask) for tx in txs])
    return gains, (time.perf_counter() - start) / len(txs)


def errors(gains: np.ndarray, reference: np.ndarray, street: np.ndarray) -> dict:
    d = np.abs(gains - reference)[:, street]
    return {"mean_abs": float(d.mean()), "p99_abs": float(np.quantile(d, 0.99)),
            "max_abs": float(d.max()), "share_over_0.05": float((d > 0.05).mean())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--maps", type=int, default=20)
    ap.add_argument("--transmitters", type=int, default=5)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--legacy-commit", default="8a5ab8b")
    ap.add_argument("--out", default="benchmarks/results/radio_locality.json")
    args = ap.parse_args()
    legacy = legacy_module(args.legacy_commit)
    variants = {
        "reference": lambda m: render.CityPropagator(m),
        "legacy": lambda m: legacy.CityPropagator(m),
        "capped": lambda m: render.CityPropagator(m, render.Propagation(max_corners=24, second_order_corners=16)),
    }
    per_map = []
    for m in range(args.maps):
        labels = render.generate_city(args.size, np.random.default_rng([args.seed, m, 0]))
        mask = labels > 0
        txs = render.place_transmitters(mask, args.transmitters, np.random.default_rng([args.seed, m, 1]))
        street = ~mask
        out = {"map": m, "seconds_per_tx": {}, "errors": {}, "locality": {}}
        gains = {}
        for name, make in variants.items():
            gains[name], out["seconds_per_tx"][name] = maps_of(make, mask, txs)
        for name in ("legacy", "capped"):
            out["errors"][name] = errors(gains[name], gains["reference"], street)
        tx = tuple(txs[0])
        ys, xs = np.indices(mask.shape)
        dist = np.hypot(ys - tx[0], xs - tx[1])
        near = (dist <= 40) & street
        far = [i for i in np.unique(labels[labels > 0]) if dist[labels == i].min() >= 130][:3]
        for name in ("reference", "legacy"):
            base = gains[name][0]
            worst = 0.0
            for i in far:
                g = gain_db_to_scaled(variants[name](mask & (labels != i)).gain_db(tx), mask & (labels != i))
                worst = max(worst, float(np.abs(g - base)[near].max()))
            out["locality"][name] = {"far_buildings": len(far), "max_change_near_tx": worst}
        per_map.append(out)
        print(m, json.dumps(out["errors"]["legacy"]), out["locality"], flush=True)

    def mean(path):
        return float(np.mean([path(r) for r in per_map]))

    summary = {
        "maps": args.maps, "transmitters_per_map": args.transmitters, "size": args.size,
        "legacy_vs_reference": {k: mean(lambda r, k=k: r["errors"]["legacy"][k])
                                for k in ("mean_abs", "p99_abs", "share_over_0.05")},
        "capped_vs_reference": {k: mean(lambda r, k=k: r["errors"]["capped"][k])
                                for k in ("mean_abs", "p99_abs", "share_over_0.05")},
        "legacy_max_abs": max(r["errors"]["legacy"]["max_abs"] for r in per_map),
        "seconds_per_tx": {k: mean(lambda r, k=k: r["seconds_per_tx"][k]) for k in variants},
        "locality_max_change_near_tx": {k: max(r["locality"][k]["max_change_near_tx"] for r in per_map)
                                        for k in ("reference", "legacy")},
        "locality_maps_changed": {k: int(sum(r["locality"][k]["max_change_near_tx"] > 1e-6 for r in per_map))
                                  for k in ("reference", "legacy")},
        "locality_far_buildings": int(sum(r["locality"]["reference"]["far_buildings"] for r in per_map)),
    }
    result = {"benchmark": "radio_locality", "summary": summary, "per_map": per_map,
              "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                          "note": "2 shared cores, loaded by other jobs: times are indicative"}}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(args.out).with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    os.replace(tmp, args.out)            # atomic
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
