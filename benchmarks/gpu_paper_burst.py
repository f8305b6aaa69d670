"""The paper profile on one GPU, measured in under 10 minutes: run it whenever a GPU is available.

Two parts, both recorded in ``benchmarks/results/gpu_paper_burst.json``:

1. **The paper-smoke DAG**: the whole paper profile (config/paper.yaml) with the
   ``config/paper-smoke.yaml`` overlay (paper model sizes, epochs/steps cut to 1–2) on tiny
   fake datasets in the real layouts (``tests/helpers/paper_format.py: write_all``), run by
   Snakemake in a temporary folder; per rule: seconds and peak host RSS from Snakemake's
   benchmark files (``logs/benchmarks/``). Skipped, with the reason in the JSON, when the
   overlay or the generator is missing or with ``--skip-dag``.
2. **A training burst per model**: every workload of ``benchmarks/paper_workloads.py`` (each
   model at paper size and paper batch, on ``--device``, with the precision its trainer uses
   there: bf16 for piano's CNN, fp16 for vocal, fp32 elsewhere) runs ``--steps`` steps or
   ``--seconds`` seconds, whichever ends first; recorded: seconds, steps/s, peak GPU memory
   (``torch.cuda.max_memory_allocated``) and the host RSS, then extrapolated to the paper
   schedule's hours per rule (steps from config/paper.yaml and the real datasets' sizes,
   with the per-note RDE at ``--rde-steps``).

On a GPU box (the .venv with the CUDA build of torch):
    PYTHONPATH=src .venv/bin/python benchmarks/gpu_paper_burst.py            # ~6-9 min
On CPU, to check the script itself (tiny batches, 3 steps per model, no DAG; numbers mean nothing):
    PYTHONPATH=src .venv/bin/python benchmarks/gpu_paper_burst.py --device cpu --quick --skip-dag
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
from paper_workloads import DATASET_SIZES, WORKLOADS, rule_steps  # noqa: E402

from genex.pipeline.io import write_json  # noqa: E402

SMOKE_OVERLAY = REPO / "config" / "paper-smoke.yaml"
FORMAT_HELPER = REPO / "tests" / "helpers" / "paper_format.py"


def host_rss_mb() -> dict:
    """Current and peak resident memory of this process, MB."""
    current = float("nan")
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                current = int(line.split()[1]) / 1024
    except OSError:
        pass
    return {"rss_mb": current, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def burst(name: str, device: torch.device, steps: int, seconds: float, quick: bool) -> dict:
    """Run one workload for ``steps`` steps or ``seconds`` seconds (after 2 warm-up steps)."""
    w = WORKLOADS[name]
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    step = w.make(device, quick, 1)
    for _ in range(2):  # warm-up: cuDNN autotuning, allocator, lazy init
        step()
    _sync(device)
    done, t0 = 0, time.perf_counter()
    while done < steps and (done == 0 or time.perf_counter() - t0 < seconds):
        step()
        done += 1
        if device.type == "cuda" and done % 10 == 0:
            _sync(device)  # bounds the queue, so the time check sees real progress
    _sync(device)
    elapsed = time.perf_counter() - t0
    out = {"what": w.what, "batch": w.batch, "precision": w.amp if device.type == "cuda" else "fp32",
           "steps": done, "seconds": elapsed, "steps_per_s": done / elapsed, **host_rss_mb()}
    if device.type == "cuda":
        out["peak_gpu_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    del step
    return out


def bursts(names, device, steps, seconds, quick) -> dict:
    results = {}
    for name in names:
        try:
            results[name] = burst(name, device, steps, seconds, quick)
        except Exception as exc:  # one model's failure (e.g. out of memory) must not lose the rest
            results[name] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"}
            if device.type == "cuda":
                torch.cuda.empty_cache()
        r = results[name]
        print(f"{name}: " + (r["error"] if "error" in r else
              f"{r['steps']} steps in {r['seconds']:.1f} s = {r['steps_per_s']:.2f} steps/s, "
              + (f"peak GPU {r['peak_gpu_mb']:.0f} MB, " if "peak_gpu_mb" in r else "")
              + f"RSS {r['rss_mb']:.0f} MB"), flush=True)
    return results


def extrapolate(measured: dict, rde_steps: int, class_steps: int) -> dict:
    """Hours per rule at the paper schedule from the measured steps/s (None: a model failed)."""
    rules, total = {}, 0.0
    for rule, parts in rule_steps(rde_steps, class_steps).items():
        if not all(n in measured for n, _ in parts):
            continue
        if any("error" in measured[n] for n, _ in parts):
            rules[rule] = None
            continue
        hours = sum(s / measured[n]["steps_per_s"] for n, s in parts) / 3600
        rules[rule] = {"hours": hours, "steps": {n: s for n, s in parts}}
        total += hours
    return {"rde_steps": rde_steps, "class_steps": class_steps, "rules": rules, "total_hours": total}


def _benchmark_table(folder: Path) -> dict:
    """Snakemake's benchmark files under ``folder``: name -> seconds and peak RSS (MB)."""
    table = {}
    for path in sorted(folder.rglob("*.tsv")):
        with path.open() as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
        if rows:
            table[str(path.relative_to(folder).with_suffix(""))] = {
                "seconds": float(rows[-1]["s"]), "max_rss_mb": float(rows[-1]["max_rss"] or "nan")}
    return table


def smoke_dag(device: str, timeout: float, cores: int, keep: Path | None) -> dict:
    """Run the paper-smoke DAG in a temporary folder; per-rule seconds and peak RSS."""
    missing = [str(p.relative_to(REPO)) for p in (SMOKE_OVERLAY, FORMAT_HELPER) if not p.exists()]
    if missing:
        msg = f"paper-smoke DAG skipped: {', '.join(missing)} not found (the paper-smoke profile is not in this tree)"
        print(msg, flush=True)
        return {"skipped": msg}
    sys.path.insert(0, str(REPO / "tests"))
    from helpers.paper_format import write_all  # the smoke profile's fake real-format datasets

    root = Path(tempfile.mkdtemp(prefix="genex-paper-burst-"))
    try:
        t0 = time.perf_counter()
        overlay = write_all(root / "data")
        overlay["device"] = device
        data_yaml = root / "datasets.yaml"
        import yaml
        data_yaml.write_text(yaml.safe_dump(overlay))
        generate_s = time.perf_counter() - t0
        workdir = root / "run"
        workdir.mkdir()
        snakemake = Path(sys.executable).with_name("snakemake")
        cmd = [str(snakemake if snakemake.exists() else "snakemake"),
               "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
               "--profile", str(REPO / "workflow" / "profiles" / "default"), "--cores", str(cores),
               "--configfile", str(REPO / "config" / "paper.yaml"), str(SMOKE_OVERLAY), str(data_yaml)]
        env = {**os.environ, "GENEX_NO_PROGRESS": "1",
               "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")]))}
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
            rc, tail = proc.returncode, (proc.stdout + proc.stderr)[-3000:]
        except subprocess.TimeoutExpired:
            rc, tail = "timeout", f"stopped after {timeout:.0f} s"
        seconds = time.perf_counter() - t0
        out = {"returncode": rc, "seconds": seconds, "generate_datasets_s": generate_s,
               "rules": _benchmark_table(workdir / "logs" / "benchmarks")}
        if rc != 0:
            out["log_tail"] = tail
        print(f"paper-smoke DAG: rc {rc} in {seconds:.0f} s, {len(out['rules'])} rule benchmarks", flush=True)
        return out
    finally:
        if keep:
            shutil.copytree(root, keep, dirs_exist_ok=True)
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    ap.add_argument("--quick", action="store_true", help="tiny batches and sizes: checks the script, no real numbers")
    ap.add_argument("--steps", type=int, default=200, help="steps per model at most")
    ap.add_argument("--seconds", type=float, default=15.0, help="seconds per model at most (after warm-up)")
    ap.add_argument("--only", nargs="*", help="workloads to run (default: all)")
    ap.add_argument("--skip-dag", action="store_true", help="bursts only")
    ap.add_argument("--dag-timeout", type=float, default=330.0, help="seconds the paper-smoke DAG may take")
    ap.add_argument("--cores", type=int, default=min(8, os.cpu_count() or 1))
    ap.add_argument("--keep", type=Path, help="copy the DAG's run folder (logs, results) here")
    ap.add_argument("--rde-steps", type=int, default=10000, help="per-note RDE steps to extrapolate to")
    ap.add_argument("--class-steps", type=int, default=5000, help="per-class RDE steps to extrapolate to")
    ap.add_argument("--out", default=str(HERE / "results" / "gpu_paper_burst.json"))
    args = ap.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu_paper_burst: --device cuda but torch sees no GPU "
                         f"(torch {torch.__version__}); install the CUDA build or use --device cpu --quick")
    os.environ.setdefault("GENEX_NO_PROGRESS", "1")
    torch.manual_seed(0)
    started = time.perf_counter()
    results = {"device": str(device), "quick": args.quick, "torch": torch.__version__,
               "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu x{os.cpu_count()}",
               "steps_cap": args.steps, "seconds_cap": args.seconds,
               "assumed_dataset_sizes": DATASET_SIZES}  # what the paper-schedule step counts rest on
    results["dag"] = ({"skipped": "--skip-dag"} if args.skip_dag
                      else smoke_dag(args.device, args.dag_timeout, args.cores, args.keep))
    names = args.only or list(WORKLOADS)
    results["bursts"] = bursts(names, device, 3 if args.quick else args.steps,
                               float("inf") if args.quick else args.seconds, args.quick)
    results["paper_schedule"] = {"paper_rde_1e6": extrapolate(results["bursts"], 1_000_000, 200_000),
                                 "converging_rde": extrapolate(results["bursts"], args.rde_steps, args.class_steps)}
    results["total_seconds"] = time.perf_counter() - started
    write_json(args.out, results)
    for key, ex in results["paper_schedule"].items():
        print(f"paper schedule, {key}: {ex['total_hours']:.1f} h in all" +
              (" (quick: meaningless)" if args.quick else ""))


if __name__ == "__main__":
    main()
