"""nsynth RDE throughput in note·steps per second: all notes (and their Monte-Carlo draws)
in one graph per step versus one note at a time, with the study's networks (Φ and the GAN
infiller at the default profile's widths, random weights: speed does not depend on them).

Usage: python benchmarks/bench_nsynth.py [--batch 32] [--single 4] [--steps 5] [--draws 2]
       [--device cpu] [--threads N] [--out benchmarks/results/nsynth_cpu.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

# sleeping (not spinning) OpenMP waits, as the study's steps use (see genex.studies.nsynth.steps)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402 - after the OpenMP setting

from genex.xai import RDEL1, ComponentMap, RDEConcrete  # noqa: E402
from genex.studies.nsynth.explain import generative_infiller  # noqa: E402
from genex.studies.nsynth.models import Inpainter, InstrumentCNN  # noqa: E402


def _rate(explainer, x: torch.Tensor, device: torch.device, one_at_a_time: bool) -> float:
    """note·steps per second of ``explainer`` on ``x``."""
    rows = [x[i: i + 1] for i in range(len(x))] if one_at_a_time else [x]
    explainer.attribute(rows[0][:1])  # warm-up (allocator, kernels)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for r in rows:
        explainer.attribute(r)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return len(x) * explainer.steps / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=32, help="notes in the batched graph")
    ap.add_argument("--single", type=int, default=4, help="notes explained one at a time")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--draws", type=int, default=2, help="Monte-Carlo draws per note and step")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default=None, help="JSON file (default: benchmarks/results/nsynth_<device>.json)")
    args = ap.parse_args()
    os.environ.setdefault("GENEX_NO_PROGRESS", "1")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    model = InstrumentCNN(11, 8, 64).to(device).eval()
    gan = Inpainter(1024, 0.125).to(device).eval()
    infiller = generative_infiller(gan, seed=0)
    cmap = ComponentMap.identity((2, 1024))
    x = torch.rand(args.batch, 2, 1024, device=device)
    results = {"device": str(device), "device_name": (torch.cuda.get_device_name(device)
                                                      if device.type == "cuda" else platform.processor() or platform.machine()),
               "torch": torch.__version__, "threads": torch.get_num_threads(),
               "cpu_count": os.cpu_count(), "load_average_1min": round(os.getloadavg()[0], 2),
               "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
               "batch": args.batch, "single": args.single, "steps": args.steps, "draws": args.draws,
               "classifier": "InstrumentCNN(width 8)", "infiller": "GAN Inpainter(width 0.125)"}
    for name, cls in (("concrete", RDEConcrete), ("l1", RDEL1)):
        explainer = cls(model, infiller, cmap, steps=args.steps, n_samples=args.draws)
        batched = _rate(explainer, x, device, one_at_a_time=False)
        single = _rate(explainer, x[: args.single], device, one_at_a_time=True)
        results[f"{name}_batched_note_steps_per_s"] = round(batched, 2)
        results[f"{name}_one_at_a_time_note_steps_per_s"] = round(single, 2)
        results[f"{name}_speedup"] = round(batched / single, 2)
    print(json.dumps(results, indent=2))
    out = Path(args.out or f"benchmarks/results/nsynth_{device.type}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
