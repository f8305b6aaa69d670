"""Paper profile: CPU-measured step costs and a FLOP-based ESTIMATE of the hours on one H100.

For every model of the paper profile (benchmarks/paper_workloads.py: paper sizes, paper
batch), one optimisation step (forward + backward + update) is timed on this CPU and its
FLOPs (torch's FlopCounterMode) and dispatched ATen operators counted; the largest batches
are measured on a share of the batch (``cpu_batch_divisor``) and scaled linearly. Each rule is
``steps × step`` (config/paper.yaml's epochs/steps and the real datasets' sizes, listed in
the JSON under ``assumptions``). The GPU time of a step is ESTIMATED, not measured, as

    max(FLOPs / sustained throughput,  operators × launch latency,  RNN time steps × step latency)

with the throughput, latency and per-step constants below (``--sustained-*``,
``--launch-us``, ``--rnn-step-us``), clearly an estimate until `gpu_paper_burst.py` has
been run on a GPU. Totals are given for the per-note RDE at the paper's 10⁶ steps and at
``--rde-steps`` (the converging schedule's count, see benchmarks/bench_rde_steps.py).

Usage: python benchmarks/bench_paper_costs.py [--out benchmarks/results/paper_costs.json]
       [--rde-steps 10000] [--class-steps 5000] [--only nsynth_classifier ...] [--reuse OLD.json] [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from paper_workloads import DATASET_SIZES, WORKLOADS, count_ops_and_flops, rnn_flops, rule_steps  # noqa: E402

from genex.pipeline.io import write_json  # noqa: E402

#: H100 SXM dense peaks (NVIDIA data sheet): bf16/fp16 989 TFLOP/s, TF32 495 TFLOP/s.
PEAK = {"bf16": 989e12, "fp16": 989e12, "fp32": 495e12}
RNN_SPEC = {"piano_gru": ("gru", 4, 1), "piano_lstm": ("lstm", 4, 1), "piano_bigru": ("bigru", 8, 3)}


def time_step(step, repeat: int, budget_s: float) -> float:
    """Median seconds of one step (after a warm-up step), at most ``repeat`` timings or
    until ``budget_s`` is spent."""
    step()
    times = []
    start = time.perf_counter()
    while len(times) < repeat and (not times or time.perf_counter() - start < budget_s):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def gpu_estimate(name: str, flops: float, ops: int, args) -> dict:
    w = WORKLOADS[name]
    sustained = PEAK[w.amp] * (args.sustained_half if w.amp in ("bf16", "fp16") else args.sustained_fp32)
    compute = flops / sustained
    # a fused cuDNN RNN is a handful of kernels (the CPU runs it as per-time-step operators)
    launch = (0 if w.sequential_steps else ops) * args.launch_us * 1e-6
    rnn = w.sequential_steps * args.rnn_step_us * 1e-6 * 3  # forward + backward (~2x)
    bound = max(("compute", compute), ("launch", launch), ("rnn_latency", rnn), key=lambda t: t[1])
    return {"seconds": bound[1], "bound": bound[0], "compute_s": compute, "launch_s": launch,
            "rnn_s": rnn, "sustained_flop_s": sustained}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="benchmarks/results/paper_costs.json")
    ap.add_argument("--rde-steps", type=int, default=10000, help="per-note RDE steps with the cosine schedule")
    ap.add_argument("--class-steps", type=int, default=5000, help="per-class RDE steps with the cosine schedule")
    ap.add_argument("--sustained-half", type=float, default=0.3,
                    help="ASSUMED share of the bf16/fp16 peak sustained by these convnets")
    ap.add_argument("--sustained-fp32", type=float, default=0.3,
                    help="ASSUMED share of the TF32 peak sustained by fp32 models")
    ap.add_argument("--launch-us", type=float, default=10.0,
                    help="ASSUMED eager-mode cost per ATen operator on a GPU (launch + Python)")
    ap.add_argument("--rnn-step-us", type=float, default=5.0,
                    help="ASSUMED cuDNN latency per RNN time step and layer-direction")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--budget", type=float, default=60.0, help="seconds of timing per workload at most")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", nargs="*", help="workloads to measure (default: all; with --reuse, the ones "
                                                "to measure again)")
    ap.add_argument("--reuse", type=Path,
                    help="a previous output: its measured workloads are kept (only the missing ones and "
                         "those named by --only are measured) and the totals recomputed, e.g. for other "
                         "--rde-steps")
    ap.add_argument("--quick", action="store_true", help="tiny batches: checks the script runs")
    args = ap.parse_args()
    os.environ.setdefault("GENEX_NO_PROGRESS", "1")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device("cpu")
    names = args.only or list(WORKLOADS)
    measured = {}
    if args.reuse:
        import json
        previous = json.loads(args.reuse.read_text())
        measured = {k: v for k, v in previous["workloads"].items() if not args.only or k not in args.only}
        names = list(WORKLOADS)
        for name in measured:  # the estimate follows this run's assumed constants
            measured[name]["gpu_estimate"] = gpu_estimate(name, measured[name]["flops"],
                                                          measured[name]["aten_ops"], args)
    for name in names:
        if name in measured:
            continue
        w = WORKLOADS[name]
        div = 1 if args.quick else w.cpu_div
        step = w.make(device, args.quick, div)
        flops, ops = count_ops_and_flops(step)
        flops *= div  # measured on 1/div of the batch: FLOPs and CPU time are linear in it
        if name in RNN_SPEC:
            flops = rnn_flops(*RNN_SPEC[name], 50 if args.quick else DATASET_SIZES["maps_smoother_frames"]) \
                * (2 if args.quick else w.batch)
        seconds = time_step(step, args.repeat, args.budget) * div
        measured[name] = {"what": w.what, "batch": w.batch, "cpu_batch_divisor": div,
                          "amp_on_cuda": w.amp, "cpu_step_s": seconds,
                          "flops": flops, "aten_ops": ops, "cpu_flop_s": flops / seconds,
                          "gpu_estimate": gpu_estimate(name, flops, ops, args)}
        print(f"{name}: {seconds:.3f} s/step on CPU, {flops / 1e9:.2f} GFLOP, {ops} ops, "
              f"GPU ESTIMATE {measured[name]['gpu_estimate']['seconds'] * 1e3:.2f} ms "
              f"({measured[name]['gpu_estimate']['bound']})", flush=True)

    def totals(rde_steps: int, class_steps: int) -> dict:
        rules, total = {}, 0.0
        for rule, parts in rule_steps(rde_steps, class_steps).items():
            if not all(n in measured for n, _ in parts):
                continue
            hours = sum(s * measured[n]["gpu_estimate"]["seconds"] for n, s in parts) / 3600
            cpu_hours = sum(s * measured[n]["cpu_step_s"] for n, s in parts) / 3600
            rules[rule] = {"steps": {n: s for n, s in parts}, "gpu_hours_ESTIMATE": hours,
                           "cpu_hours_at_measured_step": cpu_hours}
            total += hours
        return {"rules": rules, "total_gpu_hours_ESTIMATE": total}

    results = {
        "ESTIMATE": "GPU hours are estimates from CPU-counted FLOPs/operators and the assumed "
                    "constants below, not measured on a GPU",
        "device_measured": f"cpu x{os.cpu_count()}", "threads": args.threads,
        "loadavg": previous["loadavg"] if args.reuse else os.getloadavg(),
        "quick": args.quick,
        "assumptions": {"dataset_sizes": DATASET_SIZES, "gpu": "one H100 SXM",
                        "peak_flop_s": PEAK, "sustained_share_half": args.sustained_half,
                        "sustained_share_fp32": args.sustained_fp32, "launch_us_per_op": args.launch_us,
                        "rnn_step_us": args.rnn_step_us,
                        "not_counted": "features, data loading, validation passes, checkpoints, report"},
        "workloads": measured,
        "paper_rde_1e6": totals(1_000_000, 200_000),
        "converging_rde": {"rde_steps": args.rde_steps, "class_steps": args.class_steps,
                           **totals(args.rde_steps, args.class_steps)},
        "aim_hours": 12.0,
    }
    write_json(args.out, results)
    print(f"total GPU hours ESTIMATE: paper RDE 10^6 steps {results['paper_rde_1e6']['total_gpu_hours_ESTIMATE']:.1f} h, "
          f"converging RDE {results['converging_rde']['total_gpu_hours_ESTIMATE']:.1f} h (aim <= 12 h)")


if __name__ == "__main__":
    main()
