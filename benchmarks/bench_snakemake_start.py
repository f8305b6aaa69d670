"""How long Snakemake takes to read the workflow and find nothing to do: this checkout against
another commit, on the same finished tiny run, side by side.

Every Snakemake start (a `make run`, each DVC stage, each SLURM job, every pipeline test) asks
every rule for its code inputs (workflow/lib/code_inputs.py). The run is copied twice, each copy
gets one version's Snakefile, workflow/ and src/, Snakemake marks its outputs current
(`--touch`), and then `snakemake -n` runs in turn, A B A B ..., so that a drifting machine
moves both alike; the ratio is taken pair by pair.

Usage: python benchmarks/bench_snakemake_start.py --run DIR [--baseline c05f2e7] [--runs 7]
       [--out benchmarks/results/snakemake_start.json]
(DIR: a finished tiny run, e.g. the tiny_run folder a pipeline test leaves in /tmp/pytest-of-*/)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VERSIONED = ["Snakefile", "workflow", "src", "config"]


def checkout(commit: str | None, dst: Path) -> None:
    """This checkout's (commit None) or ``commit``'s versioned workflow files into ``dst``."""
    for name in VERSIONED:
        target = dst / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    if commit is None:
        for name in VERSIONED:
            src = REPO / name
            if src.is_dir():
                shutil.copytree(src, dst / name, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(src, dst / name)
        return
    archive = subprocess.run(["git", "archive", commit, *VERSIONED], cwd=REPO, capture_output=True,
                             check=True).stdout
    with tempfile.NamedTemporaryFile(suffix=".tar") as tmp:
        Path(tmp.name).write_bytes(archive)
        with tarfile.open(tmp.name) as tar:
            tar.extractall(dst, filter="data")


def snakemake(workdir: Path, *args: str) -> float:
    cmd = [str(Path(sys.executable).parent / "snakemake"), "--cores", "2", "--configfile",
           "config/tiny.yaml", "--quiet", *args]
    start = time.perf_counter()
    out = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} in {workdir} failed:\n{out.stderr[-2000:]}")
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, required=True, help="a finished tiny run (copied, not changed)")
    ap.add_argument("--baseline", default="c05f2e7", help="the commit to compare with")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks/results/snakemake_start.json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        dirs = {}
        for name, commit in (("this", None), ("baseline", args.baseline)):
            dirs[name] = Path(tmp) / name
            shutil.copytree(args.run, dirs[name], symlinks=True)
            shutil.rmtree(dirs[name] / ".snakemake" / "genex", ignore_errors=True)
            checkout(commit, dirs[name])
            snakemake(dirs[name], "--touch")  # this version's code inputs are current
            snakemake(dirs[name], "-n")  # warm-up; "this" also fills its code-inputs store
        times = {"this": [], "baseline": []}
        for _ in range(args.runs):
            for name in ("this", "baseline"):
                times[name].append(snakemake(dirs[name], "-n"))
    ratios = [a / b for a, b in zip(times["this"], times["baseline"])]
    result = {
        "what": "seconds of `snakemake -n` on a finished tiny run (nothing to do), this checkout "
                "against the baseline commit, alternated",
        "baseline": args.baseline,
        "this": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                               text=True).stdout.strip(),
        "runs": args.runs,
        "seconds": {k: [round(t, 3) for t in v] for k, v in times.items()},
        "median_seconds": {k: round(statistics.median(v), 3) for k, v in times.items()},
        "median_ratio_this_to_baseline": round(statistics.median(ratios), 3),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["median_seconds"]), "ratio", result["median_ratio_this_to_baseline"])


if __name__ == "__main__":
    main()
