"""Activation-maximisation steps per second: all examples in one batch vs one at a time.

One AM step = a forward and backward pass of f(G(z)) for every z row plus the Adam update.
"Batched" optimises every trajectory of the grid at once (directions x lr x lambda x N rows,
as the workflow does); "one at a time" runs a single example per call, as a naive loop
over examples would. Throughput is reported as example-steps per second.

Usage: python benchmarks/bench_vocal.py [--profile default|paper] [--steps 5]
       [--device cpu|cuda] [--threads N] [--out benchmarks/results/vocal-cpu.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the workflow's steps (genex.studies.vocal.steps)
import torch  # noqa: E402
import yaml

from genex.xai.activation import maximise, trajectories
from genex.studies.vocal.models import Generator, VocalDetector

ROOT = Path(__file__).resolve().parents[1]


def profile_config(profile: str) -> dict:
    """The vocal config of a profile (config.yaml overlaid with <profile>.yaml)."""
    base = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["vocal"]
    if profile != "default":
        extra = yaml.safe_load((ROOT / "config" / f"{profile}.yaml").read_text()).get("vocal", {})
        for key, value in extra.items():
            base[key] = {**base.get(key, {}), **value}
    return base


def networks(cfg: dict, device: torch.device):
    """Randomly initialised detector and generator of the profile's sizes (frozen, eval)."""
    pool = tuple(cfg["features"]["pool"])
    d, g = cfg["detector"], cfg["gan"]
    det = VocalDetector(tuple(d["conv"]), tuple(d["dense"]), d["dropout"], pool=pool, padding=d["padding"])
    gen = Generator(g["z_dim"], g["g_width"], pool=pool)
    for p in [*det.parameters(), *gen.parameters()]:
        p.requires_grad_(False)
    return det.eval().to(device), gen.eval().to(device)


def rate(det, gen, rows: int, trajs, steps: int, device) -> float:
    """Example-steps per second of ``steps`` AM steps on ``rows`` examples per trajectory."""
    response = lambda z: det.forward_pooled(gen(z))  # noqa: E731
    z0 = torch.randn(rows, gen.z_dim, device=device)
    maximise(response, z0, trajs, [1])  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    maximise(response, z0, trajs, [steps])
    if device.type == "cuda":
        torch.cuda.synchronize()
    return rows * len(trajs) * steps / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="default", choices=["default", "paper"])
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--single-examples", type=int, default=3, help="examples timed one at a time")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    cfg = profile_config(args.profile)
    det, gen = networks(cfg, device)
    am = cfg["am"]
    trajs = trajectories(am["lrs"], am["lambdas"])
    batched = rate(det, gen, am["examples"], trajs, args.steps, device)
    single = sum(rate(det, gen, 1, trajs[:1], args.steps, device)
                 for _ in range(args.single_examples)) / args.single_examples
    full_grid_s = max(am["iterations"]) * am["examples"] * len(trajs) / batched
    result = {
        "profile": args.profile, "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine(),
        "torch": torch.__version__, "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "load_average_1min": os.getloadavg()[0], "batch_rows": am["examples"] * len(trajs),
        "steps_timed": args.steps,
        "batched_example_steps_per_s": batched, "batched_steps_per_s": batched / (am["examples"] * len(trajs)),
        "single_example_steps_per_s": single, "speedup": batched / single,
        "full_grid_seconds_batched": full_grid_s,
        "full_grid_seconds_one_at_a_time": max(am["iterations"]) * am["examples"] * len(trajs) / single,
    }
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
