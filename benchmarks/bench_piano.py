"""Piano INN training throughput (frames/s): one full training step (forward, two backward
passes, losses (8)-(13), optimiser step) on random frames, on CPU and, when present, CUDA.

Usage: python benchmarks/bench_piano.py [--batch 512] [--projections 512] [--steps 10]
       [--threads 2] [--devices cpu,cuda] [--out benchmarks/results/piano.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from genex.pipeline.checkpoint import TrainState
from genex.pipeline.training import Loop
from genex.studies.piano.inn import PianoINN, inn_losses, make_optimizer


def frames_per_second(device: torch.device, batch: int, projections: int, steps: int,
                      hidden: int = 128) -> dict:
    """Median-free simple timing: one warm-up step, then ``steps`` timed steps."""
    torch.manual_seed(0)
    model = PianoINN(hidden=hidden).to(device)
    opt, _ = make_optimizer(model)
    x = torch.rand(batch, 144, device=device)
    y = torch.rand(batch, 185, device=device)
    gen = torch.Generator(device=device).manual_seed(0)

    loop = Loop(device, TrainState(), amp=False)  # the INN trains in float32, as in the pipeline

    def step() -> None:
        terms = inn_losses(model, x, y, epoch=300.0, n_projections=projections, generator=gen)
        loop.update(terms["total"], opt, clip_value=15.0)

    step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    return {"device": str(device), "device_name": torch.cuda.get_device_name(device)
            if device.type == "cuda" else platform.processor() or platform.machine(),
            "batch": batch, "projections": projections, "steps": steps, "hidden": hidden,
            "parameters": model.n_parameters(), "seconds": round(seconds, 3),
            "frames_per_second": round(steps * batch / seconds, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--projections", type=int, default=512)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--devices", default="cpu,cuda", help="comma-separated; cuda is skipped when absent")
    ap.add_argument("--out", default="benchmarks/results/piano.json")
    args = ap.parse_args()
    os.environ.setdefault("GENEX_NO_PROGRESS", "1")
    torch.set_num_threads(args.threads)
    results = {"torch": torch.__version__, "threads": torch.get_num_threads(),
               "cpu_count": os.cpu_count(), "load_average_1min": os.getloadavg()[0], "runs": []}
    for name in args.devices.split(","):
        if name == "cuda" and not torch.cuda.is_available():
            results["runs"].append({"device": "cuda", "skipped": "CUDA not available"})
            continue
        for batch, projections in ((args.batch, args.projections), (32, 2048)):
            results["runs"].append(frames_per_second(torch.device(name), batch, projections, args.steps))
    print(json.dumps(results, indent=2))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
