"""Matching-pursuit step time on a radio map: candidates batched versus one at a time.

One step of matching pursuit evaluates every remaining component (building or measurement)
added to the current set. Here: a RadioWNet of the default width on the planted scene at
the default resolution plus random measurements, zero infill and full model-based infill
(Φ_gt runs inside the infill).

Usage: python benchmarks/bench_radio.py [--device cpu|cuda] [--resolution 64] [--width 8]
       [--measurements 40] [--repeats 2] [--out benchmarks/results/radio_cpu.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from genex.studies.radio.explain import pursue
from genex.studies.radio.infill import make_infiller
from genex.studies.radio.query import radio_components
from genex.studies.radio.features import planted_scene, sample_measurements
from genex.studies.radio.models import RadioWNet


def scene(resolution: int, measurements: int) -> tuple[np.ndarray, tuple]:
    """The planted scene with ``measurements`` extra measured pixels (more candidates)."""
    s = planted_scene(resolution, 4.0, max(2, resolution // 10))
    x = s["x"].copy()
    extra = sample_measurements(x[0], measurements, np.random.default_rng(0), exclude=x[2] != 0)
    x[2] = np.where(extra > 0, s["gain"], x[2])
    return x, s["box"]


def time_step(phi, phi_gt, x, box, p: float, batch: int, repeats: int, device) -> float:
    """Seconds per matching-pursuit step (k = 1: every component is a candidate)."""
    comps = radio_components(x)
    xt = torch.from_numpy(x)[None].to(device)
    infiller = make_infiller(p, phi_gt)
    pursue(phi, infiller, comps, xt, box, 1, batch, 1, 0)  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(repeats):
        pursue(phi, infiller, comps, xt, box, 1, batch, 1, 0)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / repeats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--resolution", type=int, default=64)
    ap.add_argument("--width", type=int, default=8)
    ap.add_argument("--measurements", type=int, default=40)
    ap.add_argument("--batch", type=int, default=128, help="batched: candidates per forward")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    os.environ.setdefault("GENEX_NO_PROGRESS", "1")
    torch.manual_seed(0)
    device = torch.device(args.device)
    phi = RadioWNet(3, args.width, 3).to(device).eval()
    phi_gt = RadioWNet(2, args.width, 3).to(device).eval()
    x, box = scene(args.resolution, args.measurements)
    components = radio_components(x).cmap.n_components
    results = {"device": str(device), "device_name": (torch.cuda.get_device_name(device)
                                                      if device.type == "cuda" else platform.processor()),
               "torch": torch.__version__, "threads": torch.get_num_threads(),
               "load_average_1min": os.getloadavg()[0], "resolution": args.resolution,
               "width": args.width, "candidates": components, "batch": args.batch, "steps": {}}
    for name, p in (("zero", 0.0), ("model", 1.0)):
        batched = time_step(phi, phi_gt, x, box, p, args.batch, args.repeats, device)
        single = time_step(phi, phi_gt, x, box, p, 1, args.repeats, device)
        results["steps"][name] = {"batched_s": batched, "one_at_a_time_s": single,
                                  "speedup": single / batched}
    print(json.dumps(results, indent=2))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
