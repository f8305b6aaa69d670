"""RDE benchmarks.

1. Steps/s for a batch of notes: x [B, 2, 1024], n draws -> one forward of [n·B, 2, 1024],
   and the achieved FLOP/s of one batched step (torch's FlopCounterMode) beside this
   machine's own conv1d and matmul throughput measured in the same run (ratios side by side,
   so a loaded machine still gives comparable numbers).
2. Convergence: RDEConcrete steps to reach within 1 % of the objective of a 20,000-step
   reference run, for the default schedule vs plain Adam at the paper's lr (1e-5), on a
   planted [2, 64] model.

Usage: python benchmarks/bench_rde.py [--batch 64] [--draws 8] [--steps 20] [--device cpu]
       [--reference 20000] [--out benchmarks/rde.json]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch
from torch import nn

from torch.utils.flop_counter import FlopCounterMode

from genex.xai import RDEL1, ComponentMap, NoiseInfiller, RDEConcrete
from genex.xai.target import Target


def small_cnn(n_classes: int = 11) -> nn.Module:
    """A small 1-D CNN over [2, 1024] spectra (stand-in for the instrument classifier)."""
    return nn.Sequential(
        nn.Conv1d(2, 16, 9, stride=2, padding=4), nn.ReLU(),
        nn.Conv1d(16, 32, 9, stride=2, padding=4), nn.ReLU(),
        nn.Conv1d(32, 64, 9, stride=2, padding=4), nn.ReLU(),
        nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(64, n_classes))


def _timed(fn, device, repeat: int = 5) -> float:
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / repeat


def flops(model: nn.Module, x: torch.Tensor, draws: int, device) -> dict:
    """FLOP/s of one batched RDE step vs a plain conv1d and a matmul, measured now."""
    cmap = ComponentMap.identity(tuple(x.shape[1:]))
    rde = RDEConcrete(model, NoiseInfiller(0.0, 1.0), cmap, steps=1, n_samples=draws, log_every=0)
    target = model(x).argmax(1)
    with FlopCounterMode(display=False) as counter:
        rde.attribute(x, target)
    # one step plus the reference and the two result checks: count the step alone
    with FlopCounterMode(display=False) as fwd:
        with torch.no_grad():
            model(x)
    step_flops = counter.get_total_flops() - 3 * fwd.get_total_flops() * draws \
        + fwd.get_total_flops() * (draws - 1)
    rde.steps = 10
    t_step = (_timed(lambda: rde.attribute(x, target), device, 2)
              - 3 * _timed(lambda: model(x.repeat(draws, 1, 1)), device)) / 10
    conv = nn.Conv1d(16, 32, 9, stride=2, padding=4).to(device)
    z = torch.randn(x.shape[0] * draws, 16, 512, device=device)
    with FlopCounterMode(display=False) as cc:
        conv(z)
    with torch.no_grad():
        t_conv = _timed(lambda: conv(z), device)
    a = torch.randn(1024, 1024, device=device)
    t_mm = _timed(lambda: a @ a, device)
    out = {"step_flops": step_flops, "step_s": t_step, "step_flop_s": step_flops / t_step,
           "conv1d_flop_s": cc.get_total_flops() / t_conv, "matmul_flop_s": 2 * 1024**3 / t_mm}
    out["step_vs_conv1d"] = out["step_flop_s"] / out["conv1d_flop_s"]
    out["step_vs_matmul"] = out["step_flop_s"] / out["matmul_flop_s"]
    out["note_steps_per_s"] = x.shape[0] / t_step
    return out


class _Planted(nn.Module):
    def forward(self, x):
        return torch.stack([x[:, 0, 20:26].sum(1) / 2, x.mean((1, 2))], 1)


def objective(explainer: RDEConcrete, x, keep_logits) -> float:
    """The RDE objective of keep probabilities σ(θ), with fixed draws (comparable across runs)."""
    gen = torch.Generator().manual_seed(123)
    obj = explainer.objective
    tgt = Target(0, x.shape[0])
    with torch.no_grad():
        ref = obj.reference(x, tgt)
        draws, obj.n_samples = obj.n_samples, 64
        s = explainer._sample(keep_logits, gen)
        d, r = obj.loss(x, s, ref, tgt, gen)
        obj.n_samples = draws
    return float((d + obj.lam * r).mean())


def convergence(reference_steps: int) -> dict:
    """Steps to within 1 % of the reference objective (the default schedule at
    ``reference_steps``): the default schedule (one run per budget: its decay depends on
    the budget), the old constant lr 0.1 and plain Adam at the paper's lr 1e-5; None = not
    reached within the budgets tried."""
    x = 1.0 + torch.rand(4, 2, 64, generator=torch.Generator().manual_seed(0))
    cmap = ComponentMap.identity((2, 64))

    def run(steps, **kw):
        e = RDEConcrete(_Planted(), NoiseInfiller(0.0, 1.0), cmap, steps=steps, log_every=0, **kw)
        keep = e.attribute(x, 0)
        return objective(e, x, torch.logit(keep.clamp(1e-6, 1 - 1e-6)))

    ref = run(reference_steps)
    budgets = [n for n in (50, 150, 500, 1000, 2000, 5000) if n < reference_steps] + [reference_steps]
    configs = {"default": {}, "old_config_constant_lr_0.1": dict(lr=0.1, schedule="constant"),
               "paper_adam_lr_1e-5": dict(lr=1e-5, schedule="constant")}
    out = {"reference_steps": reference_steps, "reference_objective": ref}
    for name, kw in configs.items():
        curve = {n: run(n, **kw) for n in budgets}
        within = [n for n, v in curve.items() if v <= ref * 1.01]
        out[name] = {"objective_at_steps": curve, "steps_to_1pct": within[0] if within else None}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--draws", type=int, default=8)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--reference", type=int, default=20000)
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
               "device_name": (torch.cuda.get_device_name(device) if device.type == "cuda"
                               else f"cpu x{os.cpu_count()}"),
               "threads": torch.get_num_threads(), "loadavg": os.getloadavg()}
    results["flops"] = flops(model, x, args.draws, device)
    results["convergence"] = convergence(args.reference)
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
