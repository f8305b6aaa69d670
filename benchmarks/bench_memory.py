"""Peak host memory of the heavy rules at full resolution, before and after issue 16's fixes,
extrapolated to the real datasets; GPU memory estimated from tensor sizes.

Every measurement runs the rule's own code in a fresh subprocess on small fake data in the
real layouts and full resolution (radio 256 x 256, piano 144-bin frames, nsynth 2 x 1024
spectra), and samples the process's resident memory every 2 ms (``VmRSS``; and ``RssAnon``,
the part that cannot be paged out: a memory-mapped file's pages are ``RssFile``). "old" runs
the code before the fix (the file from git revision ``--old-rev``, or the budget off), "new"
the current code. Each case runs at two sizes; the peak is fitted as ``a + b * size`` (a:
imports, model, fixed buffers; b: bytes per sample / frame / row) and extrapolated to the
real size. Where the model part is the paper's but too slow to train on CPU, the rule runs
with a stand-in network (the data path is the rule's own) and the paper model's share is
added from :func:`genex.xai.batching.activation_bytes` (marked ``estimate``).

Usage: python benchmarks/bench_memory.py [--out benchmarks/results/memory.json]
       [--old-rev 956c14a] [--work /tmp/bench_memory] [--cases radio_train,...]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MB = 2**20
GB = 1e9

# Real sizes (sources: RadioUNet's split of RadioMapSeer; MAESTRO v3.0.0's published hours;
# the paper profile's explain settings in config/paper.yaml)
RADIO_TRAIN_SAMPLES = 501 * 80       # 700 maps x 80 TX; train 501 maps, valid 100, test 99
RADIO_VALID_SAMPLES = 100 * 80
MAESTRO_FRAMES = int((159.2 + 20.0) * 3600 * 25)   # train + test hours (validation unused), 25 fps
MAESTRO_TRAIN_SHARE = 159.2 / 179.2
RADIO_EXPLAIN_ROWS = 256 * 8         # batch_candidates x mc_samples in one forward
NSYNTH_CLASS_ROWS = 64 * 11 * 8      # class_notes_per_family x families x n_samples (one graph)
NSYNTH_VERTEX_ROWS = 64 * 256        # notes per batch x vertex_draws (no grad)
ALL_CASES = ("radio_train", "piano_train_inn", "piano_predict", "radio_explain", "nsynth_explain_classes")
PIANO_PREDICT_OLD_REV = "f3edda1"    # encode_frames before it wrote into one array
PAPER_INN = {"hidden": 128, "blocks": 5, "clamp": 2.0}   # config/paper.yaml piano.inn


# ----------------------------------------------------------------------------- measuring

class PeakSampler:
    """Peak VmRSS and RssAnon of this process, sampled every ``interval`` seconds."""

    def __init__(self, interval: float = 0.002) -> None:
        self.interval, self.peak = interval, {"VmRSS": 0, "RssAnon": 0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def now() -> dict[str, int]:
        out = {}
        with open("/proc/self/status") as fh:
            for line in fh:
                key = line.split(":")[0]
                if key in ("VmRSS", "RssAnon", "RssFile"):
                    out[key] = int(line.split()[1]) * 1024
        return out

    def _run(self) -> None:
        while not self._stop.is_set():
            for key, value in self.now().items():
                if key in self.peak:
                    self.peak[key] = max(self.peak[key], value)
            time.sleep(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def old_module(name: str, rel_path: str, rev: str, work: Path):
    """The module ``rel_path`` as it was at ``rev`` (git show), imported under ``name``."""
    path = work / f"old_{name}.py"
    if not path.exists():
        path.write_text(subprocess.run(["git", "show", f"{rev}:{rel_path}"], cwd=ROOT, check=True,
                                       capture_output=True, text=True).stdout)
    spec = importlib.util.spec_from_file_location(f"old_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ----------------------------------------------------------------------------- fake data

def radio_features(folder: Path, n_train: int, n_valid: int, size: int = 256, seed: int = 0) -> None:
    """The radio features step's layout (train/valid/test.npz, meta.json) at full resolution."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("valid", n_valid), ("test", n_valid)):
        complete = (rng.random((n, size, size)) < 0.2).astype(np.uint8)
        missing = complete * (rng.random((n, size, size)) < 0.9).astype(np.uint8)
        data = {"complete": complete, "missing": missing,
                "tx": rng.integers(0, size, size=(n, 2)).astype(np.int64),
                "gain": rng.random((n, size, size), dtype=np.float32),
                "ids": np.zeros((n, 4), np.int64)}
        if split != "train":
            data["measured"] = (rng.random((n, size, size)) < 0.002).astype(np.uint8)
        np.savez_compressed(folder / f"{split}.npz", **data)
    (folder / "meta.json").write_text(json.dumps({"resolution": size, "source_size": size,
                                                  "metres_per_pixel": 1.0, "measurements": [10, 299],
                                                  "samples": {}}))


def piano_features(path: Path, frames: int, seed: int = 0) -> None:
    """pieces.npz as the piano features step writes it (x [N, 144], y [N, 185])."""
    sys.path.insert(0, str(ROOT / "src"))
    from genex.studies.piano.features import FrameSet

    rng = np.random.default_rng(seed)
    cuts = np.array([0, 0.45, 0.87, 0.89, 1.0])   # train, train, valid, test shares
    offsets = (cuts * frames).astype(np.int64)
    path.parent.mkdir(parents=True, exist_ok=True)
    FrameSet(x=rng.random((frames, 144), dtype=np.float32), y=rng.random((frames, 185), dtype=np.float32),
             offsets=offsets, names=np.array(["a", "b", "c", "d"]), pieces=np.array(["a", "b", "c", "d"]),
             splits=np.array(["train", "train", "valid", "test"]), instruments=np.zeros(4, np.int64),
             pitches=-np.ones(4, np.int64)).save(path)


# ----------------------------------------------------------------------------- the cases (children)

def child(case: str, variant: str, size: int, work: Path, rev: str) -> dict:
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(1)
    cpu = torch.device("cpu")
    start = PeakSampler.now()
    info: dict = {}
    with PeakSampler() as peak:
        if case == "radio_train":
            import genex.studies.radio.train as new
            tr = old_module("radio_train", "src/genex/studies/radio/train.py", rev, work) if variant == "old" else new
            params = {"width": 2, "depth": 2, "chained": False, "epochs": 1, "batch_size": 15,
                      "lr": 1e-3, "lr_step": 1, "lr_gamma": 1.0}
            out = work / f"radio_{variant}_{size}"
            tr.train_model("phi", work / f"radio_features_{size}", params, 0, cpu, out / "ck", out / "phi.pt")
        elif case == "piano_train_inn":
            import genex.studies.piano.train as new
            from genex.studies.piano.features import FrameSet
            tp = old_module("piano_train", "src/genex/studies/piano/train.py", rev, work) if variant == "old" else new
            feats = FrameSet.load(work / f"piano_{size}" / "pieces.npz", mmap=variant == "new")
            params = {"hidden": 16, "blocks": 1, "clamp": 2.0, "epochs": 1, "batch_size": 32,
                      "batches_per_epoch": 20, "ramp_epochs": 1.0, "n_projections": 32,
                      "lambda_backward": 100.0, "pad_noise": 0.03, "label_noise": 0.03, "lr": 1e-3,
                      "weight_decay": 2e-5, "lr_step": 12, "lr_gamma": 0.96, "grad_limit": 15.0,
                      "valid_frames": 4096}
            out = work / f"piano_{variant}_{size}"
            tp.train_inn(feats, params, 0, cpu, out / "ck", out / "inn.pt")
        elif case == "piano_predict":
            import genex.studies.piano.train as new
            from genex.studies.piano.evaluate import predict_all
            if variant == "old":   # predict_all imports encode_frames when called
                new.encode_frames = old_module("piano_train_predict", "src/genex/studies/piano/train.py",
                                               PIANO_PREDICT_OLD_REV, work).encode_frames
            inn = work / "piano_inn_paper.pt"
            new.save_model(inn, "inn", new.build_inn(PAPER_INN, 0), {"params": PAPER_INN, "seed": 0}, [])
            out = work / f"piano_predict_{variant}_{size}"
            out.mkdir(parents=True, exist_ok=True)
            predict_all(work / f"piano_{size}", inn, out, cpu)
        elif case == "radio_explain":
            from genex.studies.radio.models import RadioWNet
            from genex.xai.batching import Chunked
            phi = RadioWNet(3, 32, 4).eval()   # the paper profile's Φ (radio.train width 32, depth 4)
            rows, chunk = size, size if variant == "old" else 2
            x = torch.rand(rows, 3, 256, 256)
            with torch.no_grad():
                Chunked(phi, chunk)(x)
            info = {"rows": rows, "chunk": chunk}
        elif case == "nsynth_explain_classes":
            from genex.studies.nsynth.explain import class_query, generative_infiller, within_budget
            from genex.studies.nsynth.models import Inpainter, InstrumentCNN
            model = InstrumentCNN(n_classes=11, width=32, hidden=128).eval()   # paper profile sizes
            gan = Inpainter(1024, width=1.0).eval()
            notes = size // 8
            x = torch.rand(notes, 2, 1024)
            families = torch.arange(notes) % 11
            budget = 0 if variant == "old" else 32 * 4.5   # ~32 rows per slice at these sizes
            model, gan = within_budget(model, gan, x, budget)
            params = {"class_lam": 30.0, "temperature": 0.1, "class_lr": 1e-4, "class_steps": 1,
                      "n_samples": 8, "init": 0.5}
            class_query(model, generative_infiller(gan, 0), x, families, 11, params, seed=0)
            info = {"rows": notes * 8, "chunk": getattr(gan, "rows", None) or notes * 8}
        else:
            raise ValueError(f"unknown case {case!r}")
    return {"case": case, "variant": variant, "size": size, "start_rss": start["VmRSS"],
            "peak_rss": peak.peak["VmRSS"], "peak_anon": peak.peak["RssAnon"], **info}


# ----------------------------------------------------------------------------- the parent

def run_child(args, case: str, variant: str, size: int) -> dict:
    cmd = [sys.executable, __file__, "--child", case, variant, str(size), "--work", str(args.work),
           "--old-rev", args.old_rev]
    env = dict(os.environ, GENEX_NO_PROGRESS="1", PYTHONPATH=str(ROOT / "src"))
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    if res.returncode:
        raise RuntimeError(f"{case} {variant} {size}: child failed:\n{res.stderr[-3000:]}")
    out = json.loads(res.stdout.strip().splitlines()[-1])
    print(f"{case:24s} {variant:4s} size {size:>8d}: peak RSS {out['peak_rss'] / MB:8.0f} MiB, "
          f"anon {out['peak_anon'] / MB:8.0f} MiB", flush=True)
    return out


def fit(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Intercept and slope of the line through two (size, bytes) points."""
    (x0, y0), (x1, y1) = points
    b = (y1 - y0) / (x1 - x0)
    return y0 - b * x0, b


def line(a: float, b: float, size: float) -> float:
    return a + b * size


def old_and_new(args, case: str, sizes: tuple[int, ...], unit: str, real_size: int) -> dict:
    """``{"old": ..., "new": ...}``: each variant measured at ``sizes`` (``unit`` per point) and
    extrapolated along the line through them to ``real_size``."""
    entry = {}
    for variant in ("old", "new"):
        pts = [run_child(args, case, variant, n) for n in sizes]
        a, b = fit([(p["size"], p["peak_anon"]) for p in pts])
        entry[variant] = {"measured": [{f"{unit}s": p["size"], "peak_rss_mb": round(p["peak_rss"] / MB),
                                        "peak_anon_mb": round(p["peak_anon"] / MB)} for p in pts],
                          f"bytes_per_{unit}": round(b), "intercept_mb": round(a / MB),
                          "extrapolated_host_gb": round(line(a, b, real_size) / GB, 1)}
    return entry


def ensure_piano_features(work: Path, sizes: tuple[int, ...]) -> None:
    for n in sizes:
        if not (work / f"piano_{n}" / "pieces.npz").exists():
            piano_features(work / f"piano_{n}" / "pieces.npz", n)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "memory.json")
    ap.add_argument("--old-rev", default="956c14a", help="git revision with the code before the fixes")
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench_memory"))
    ap.add_argument("--cases", default=",".join(ALL_CASES))
    ap.add_argument("--child", nargs=3, metavar=("CASE", "VARIANT", "SIZE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if args.child:
        case, variant, size = args.child
        print(json.dumps(child(case, variant, int(size), args.work, args.old_rev)))
        return

    sys.path.insert(0, str(ROOT / "src"))
    import torch

    from genex.studies.nsynth.models import Inpainter, InstrumentCNN
    from genex.studies.radio.models import RadioWNet
    from genex.xai.batching import activation_bytes, rows_for_budget

    cases = args.cases.split(",")
    results: dict = {}
    t0 = time.perf_counter()

    if "radio_train" in cases:
        # validation (n // 5 maps) is predicted 64 maps per forward: below 64 maps that forward grows
        # with the split and was misread as per-sample cost (150/450 gave 1.86 MB per sample), so
        # both sizes saturate it
        sizes = (400, 800)
        for n in sizes:
            if not (args.work / f"radio_features_{n}" / "meta.json").exists():
                radio_features(args.work / f"radio_features_{n}", n, max(1, n // 5))
        entry = {"rule": "radio_train (phi)", "size_unit": "training samples (256 x 256)",
                 "real_size": RADIO_TRAIN_SAMPLES, "real_size_source": "RadioMapSeer: 501 train maps x 80 TX "
                 "(valid 100 x 80 scales with it)", "stand_in_model": "RadioWNet width 2, depth 2 (the data "
                 "path is the rule's own; the paper model's share is the GPU estimate below)"}
        entry.update(old_and_new(args, "radio_train", sizes, "sample", RADIO_TRAIN_SAMPLES))
        phi = RadioWNet(3, 32, 4)
        act = activation_bytes(phi, torch.zeros(1, 3, 256, 256))
        params = sum(p.numel() for p in phi.parameters()) * 4
        entry["gpu_estimate_gb"] = {"value": round((15 * act * 2 + 4 * params) / GB, 1), "estimate": True,
                                    "formula": "batch 15 x activations per map x 2 (gradients) + 4 x "
                                               "parameters (weights, grads, Adam's two moments)",
                                    "activation_mb_per_map": round(act / MB, 1)}
        results["radio_train"] = entry

    if "piano_train_inn" in cases:
        sizes = (150_000, 450_000)
        ensure_piano_features(args.work, sizes)
        entry = {"rule": "piano_train_inn (MAESTRO)", "size_unit": "frames (x 144 + y 185 float32)",
                 "real_size": MAESTRO_FRAMES, "real_size_source": "MAESTRO v3.0.0 train + test: 179.2 h at "
                 "25 fps (validation split unused)", "stand_in_model": "PianoINN hidden 16, 1 block, 20 batches "
                 "(the data path is the rule's own)"}
        entry.update(old_and_new(args, "piano_train_inn", sizes, "frame", MAESTRO_FRAMES))
        entry["new"]["note"] = ("x and y are memory-mapped: their pages count in RSS (RssFile) while "
                                "touched but are page cache the kernel reclaims; peak_anon is what "
                                "the rule itself holds")
        entry["gpu_estimate_gb"] = {"old": round(MAESTRO_FRAMES * MAESTRO_TRAIN_SHARE * 329 * 4 / GB, 1),
                                    "new": 0.1, "estimate": True,
                                    "formula": "old: the training frames' x and y moved to the GPU at once "
                                               "(frames x 329 x 4 B); new: one batch at a time"}
        results["piano_train_inn"] = entry

    if "piano_predict" in cases:
        sizes = (150_000, 450_000)
        ensure_piano_features(args.work, sizes)
        entry = {"rule": "piano_predict (MAESTRO)", "size_unit": "frames (INN outputs: 256 float32)",
                 "real_size": MAESTRO_FRAMES, "real_size_source": "MAESTRO v3.0.0 train + test: 179.2 h at 25 fps",
                 "model": "the paper's PianoINN (hidden 128, 5 blocks), untrained", "old_rev": PIANO_PREDICT_OLD_REV}
        entry.update(old_and_new(args, "piano_predict", sizes, "frame", MAESTRO_FRAMES))
        entry["note"] = "features memory-mapped (page cache, not counted in peak_anon); outputs held once (new) or twice (old)"
        results["piano_predict"] = entry

    if "radio_explain" in cases:
        phi = RadioWNet(3, 32, 4)
        act = activation_bytes(phi, torch.zeros(1, 3, 256, 256))
        budget = 16384
        chunk = rows_for_budget(act, budget)
        old = [run_child(args, "radio_explain", "old", n) for n in (2, 4)]
        new = run_child(args, "radio_explain", "new", 8)
        a, b_total = fit([(p["rows"], p["peak_anon"]) for p in old])
        # new: a + b_input * rows + b_act * chunk; b_total = b_input + b_act
        b_act = (line(a, b_total, new["rows"]) - new["peak_anon"]) / (new["rows"] - new["chunk"])
        b_input = b_total - b_act
        results["radio_explain"] = {
            "rule": "radio_explain (paper Φ: RadioWNet width 32, depth 4, 256 x 256, no grad)",
            "size_unit": "maps per forward (candidates x draws)", "real_size": RADIO_EXPLAIN_ROWS,
            "real_size_source": "paper.yaml radio.explain: batch_candidates 256 x mc_samples 8",
            "measured": [{"rows": p["rows"], "chunk": p["chunk"], "peak_rss_mb": round(p["peak_rss"] / MB),
                          "peak_anon_mb": round(p["peak_anon"] / MB)} for p in old + [new]],
            "measured_mb_per_map": {"forward_peak": round(b_total / MB, 1), "inputs_kept": round(b_input / MB, 1)},
            "activation_bytes_mb_per_map": round(act / MB, 1),
            "old": {"extrapolated_host_gb": round(line(a, b_total, RADIO_EXPLAIN_ROWS) / GB, 1),
                    "gpu_estimate_gb": round(RADIO_EXPLAIN_ROWS * b_total / GB, 1)},
            "new": {"max_batch_mb": budget, "maps_per_forward": chunk,
                    "extrapolated_host_gb": round((a + b_input * RADIO_EXPLAIN_ROWS + b_act * chunk) / GB, 1),
                    "gpu_estimate_gb": round((RADIO_EXPLAIN_ROWS * b_input + chunk * b_act) / GB, 1),
                    "gpu_bound_gb": round((RADIO_EXPLAIN_ROWS * b_input) / GB + budget * MB / GB, 1)},
            "estimate_note": "GPU figures are estimates: the CPU-measured per-map costs applied to the GPU "
                             "(no cuDNN workspace); the bound uses the full budget",
        }

    if "nsynth_explain_classes" in cases:
        model, gan = InstrumentCNN(n_classes=11, width=32, hidden=128), Inpainter(1024, width=1.0)
        x = torch.zeros(1, 2, 1024)
        act = activation_bytes(model, x) + activation_bytes(gan, x, x, torch.zeros(1, gan.noise_dim))
        budget = 8192
        chunk = rows_for_budget(act, budget)
        old = [run_child(args, "nsynth_explain_classes", "old", n) for n in (64, 192)]
        new = run_child(args, "nsynth_explain_classes", "new", 192)
        a, b_total = fit([(p["rows"], p["peak_anon"]) for p in old])
        b_act = (line(a, b_total, new["rows"]) - new["peak_anon"]) / (new["rows"] - new["chunk"])
        b_input = b_total - b_act
        results["nsynth_explain_classes"] = {
            "rule": "nsynth_explain_classes: the per-class concrete query, one step with gradients "
                    "(paper classifier width 32 / hidden 128, inpainter width 1.0)",
            "size_unit": "rows per graph (notes x draws)", "real_size": NSYNTH_CLASS_ROWS,
            "real_size_source": "paper.yaml nsynth.rde: class_notes_per_family 64 x 11 families x n_samples 8",
            "measured": [{"rows": p["rows"], "chunk": p["chunk"], "peak_rss_mb": round(p["peak_rss"] / MB),
                          "peak_anon_mb": round(p["peak_anon"] / MB)} for p in old + [new]],
            "measured_mb_per_row": {"graph": round(b_total / MB, 2), "kept_outside_slices": round(b_input / MB, 2)},
            "activation_bytes_mb_per_row": round(act / MB, 2),
            "old": {"extrapolated_host_gb": round(line(a, b_total, NSYNTH_CLASS_ROWS) / GB, 1),
                    "gpu_estimate_gb": round(NSYNTH_CLASS_ROWS * b_total / GB, 1)},
            "new": {"max_batch_mb": budget, "rows_per_forward": chunk,
                    "extrapolated_host_gb": round((a + b_input * NSYNTH_CLASS_ROWS + b_act * chunk) / GB, 1),
                    "gpu_estimate_gb": round((NSYNTH_CLASS_ROWS * b_input + chunk * b_act) / GB, 1)},
            "vertex_distortions_gpu_estimate_gb": {
                "old": round(NSYNTH_VERTEX_ROWS * act / GB, 1),
                "new": round(min(NSYNTH_VERTEX_ROWS, chunk) * act / GB + NSYNTH_VERTEX_ROWS * 3 * 2 * 1024 * 4 / GB, 1),
                "estimate": True, "formula": "64 notes x 256 draws x activation bytes per row (old); one "
                                             "slice + the batch's inputs, masks and fills (new); an upper "
                                             "bound: these forwards run without gradients and hold less "
                                             "than every layer's output at once"},
            "estimate_note": "GPU figures are estimates: CPU-measured per-row costs applied to the GPU",
        }

    record = {"benchmark": "bench_memory", "host": platform.node(), "machine": platform.machine(),
              "python": platform.python_version(), "torch": torch.__version__,
              "cpu_threads_per_child": 1, "old_rev": args.old_rev,
              "method": "peak VmRSS / RssAnon sampled every 2 ms in a fresh subprocess per point; "
                        "peak = a + b * size through the two measured sizes, extrapolated to the real size",
              "targets": {"host_gb": 64, "gpu_gb": 40}, "seconds": round(time.perf_counter() - t0, 1),
              "rules": results}
    if args.out.exists() and set(cases) != set(ALL_CASES):   # a partial rerun keeps the other rules
        record["rules"] = {**json.loads(args.out.read_text()).get("rules", {}), **results}
    tmp = args.out.with_suffix(".json.partial")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(tmp, args.out)   # atomic: a killed run leaves the old results
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
