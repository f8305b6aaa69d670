"""genex.audio's fitted infiller: seconds per training step of `genex fit-infiller` (default
settings: batch 16, crops of 64 frames, width 0.25) and seconds to infill one 4 s clip
(8 draws, as one RDE step with --infiller DIR asks), for STFT (n_fft 512, 257 rows) and
log-mel (64 bands) inputs at 16 kHz. Random weights and synthetic notes: speed does not
depend on them.

Usage: python benchmarks/bench_fit_infiller.py [--steps 10] [--device cpu] [--threads N]
       [--out benchmarks/results/fit_infiller_<device>.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # sleeping OpenMP waits on a shared machine

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
import torch  # noqa: E402

from genex.audio.infiller import fit_infiller, load_infiller  # noqa: E402
from genex.audio.representations import make_representation  # noqa: E402

RATE = 16000


def _notes(folder: Path, n: int = 4, seconds: float = 4.0) -> list[Path]:
    rng = np.random.default_rng(0)
    t = np.arange(int(RATE * seconds)) / RATE
    files = []
    for i in range(n):
        f0 = rng.uniform(100, 500)
        wave = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 8)) * np.exp(-t) * 0.2
        files.append(folder / f"note{i}.wav")
        sf.write(files[-1], wave.astype(np.float32), RATE)
    return files


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=10, help="training steps timed (after one warm-up step)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    os.environ.setdefault("GENEX_NO_PROGRESS", "1")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        files = _notes(Path(tmp))
        for kind in ("stft", "mel"):
            rep = make_representation(kind, RATE)
            out = Path(tmp) / kind
            fit_infiller(files, rep, out, steps=1, progress=False, device=device)  # warm-up
            t0 = time.perf_counter()
            # resumes at step 1: times the steps (plus reading the files and one checkpoint)
            fit_infiller(files, rep, out, steps=1 + args.steps, progress=False, device=device)
            per_step = (time.perf_counter() - t0) / args.steps
            infiller = load_infiller(out, rep)
            for m in infiller.modules():
                m.to(device)
            wave, _ = sf.read(files[0], dtype="float32")
            x = rep.analyse(torch.from_numpy(wave)[None]).to(device)
            keep = (torch.rand(x.shape, generator=torch.Generator().manual_seed(0)) < 0.5).float().to(device)
            infiller(x, keep, 8)
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(3):
                infiller(x, keep, 8)
            if device.type == "cuda":
                torch.cuda.synchronize()
            results[kind] = {"rows": rep.n_bins, "frames_per_clip": int(x.shape[-1]),
                             "seconds_per_training_step": round(per_step, 4),
                             "seconds_to_infill_4s_clip_8_draws": round((time.perf_counter() - t0) / 3, 4)}
    report = {"benchmark": "fit_infiller", "device": str(device), "threads": torch.get_num_threads(),
              "settings": {"batch_size": 16, "crop_frames": 64, "width": 0.25, "sample_rate": RATE,
                           "timed_steps": args.steps},
              "results": results,
              "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
              "load_average": os.getloadavg()[0], "machine": platform.machine(),
              "torch": torch.__version__}
    out = Path(args.out or f"benchmarks/results/fit_infiller_{device.type}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial")
    tmp.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, out)  # atomic: a killed run leaves the old result
    print(json.dumps(report, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
