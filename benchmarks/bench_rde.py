"""RDE steps/s for a batch of notes: x [B, 2, 1024], n draws -> one forward of [n·B, 2, 1024].

Usage: python benchmarks/bench_rde.py [--batch 64] [--draws 8] [--steps 20] [--device cpu]
       [--out benchmarks/rde.json]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch
from torch import nn

from genex.xai import RDEL1, ComponentMap, NoiseInfiller, RDEConcrete


def small_cnn(n_classes: int = 11) -> nn.Module:
    """A small 1-D CNN over [2, 1024] spectra (stand-in for the instrument classifier)."""
    return nn.Sequential(
        nn.Conv1d(2, 16, 9, stride=2, padding=4), nn.ReLU(),
        nn.Conv1d(16, 32, 9, stride=2, padding=4), nn.ReLU(),
        nn.Conv1d(32, 64, 9, stride=2, padding=4), nn.ReLU(),
        nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(64, n_classes))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--draws", type=int, default=8)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    os.environ.setdefault("GENEX_NO_PROGRESS", "1")
    torch.manual_seed(0)
    device = torch.device(args.device)
    model = small_cnn().to(device)
    x = torch.randn(args.batch, 2, 1024, device=device)
    cmap = ComponentMap.identity((2, 1024))
    target = model(x).argmax(1)
    results = {"batch": args.batch, "draws": args.draws, "device": str(device),
               "threads": torch.get_num_threads()}
    for name, cls in (("concrete", RDEConcrete), ("l1", RDEL1)):
        explainer = cls(model, NoiseInfiller(0.0, 1.0), cmap, steps=2, n_samples=args.draws)
        explainer.attribute(x, target)  # warm-up
        explainer.steps = args.steps
        t0 = time.perf_counter()
        explainer.attribute(x, target)
        if device.type == "cuda":
            torch.cuda.synchronize()
        results[f"{name}_steps_per_s"] = args.steps / (time.perf_counter() - t0)
    print(json.dumps(results, indent=2))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
