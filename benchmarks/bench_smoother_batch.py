"""Piano smoothers at the paper's settings: one key sequence per step (the paper) against 88 per
step (config/paper.yaml), on a finished default run's features and INN predictions.

The question is whether 88 sequences per step, which the paper profile uses to stay within the
12 h GPU aim, reach the F1 that one sequence per step reaches. Each run trains with the paper's
hidden size, optimiser and learning rate (crop 250 frames, 4 epochs, CPU), and records the
validation F1 per epoch: at equal sequences seen, and with batch 88 given as many updates as
batch 1 had.

Usage: PYTHONPATH=src python benchmarks/bench_smoother_batch.py [--results results/piano]
       [--out benchmarks/results/smoother_batch.json]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

PAPER = {"gru": {"hidden": 4, "layers": 1, "optimizer": "adam", "lr": 0.001},
         "lstm": {"hidden": 4, "layers": 1, "optimizer": "sgd", "lr": 0.05, "momentum": 0.9}}
#: (kind, sequences per step, updates): batch 1 and batch 88 at equal sequences, batch 88 at equal updates
RUNS = [("lstm", 1, 7040), ("lstm", 88, 80), ("lstm", 88, 3520),
        ("gru", 1, 3520), ("gru", 88, 40), ("gru", 88, 3520)]
EPOCHS = 4


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", type=Path, default=Path("results/piano"),
                    help="a finished piano study (features/pieces.npz, predictions/pieces.npz)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/smoother_batch.json"))
    args = ap.parse_args()
    os.environ.setdefault("GENEX_NO_PROGRESS", "1")
    torch.set_num_threads(1)
    from genex.pipeline.io import load_arrays, load_tensors, write_json
    from genex.studies.piano.features import FrameSet
    from genex.studies.piano.train import train_smoother

    features = FrameSet.load(args.results / "features" / "pieces.npz", mmap=True)
    y_hat = load_arrays(args.results / "predictions" / "pieces.npz", ["y_hat"], mmap=True)["y_hat"]
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind, batch, updates in RUNS:
            params = {**PAPER[kind], "dropout": 0.0, "epochs": EPOCHS, "batch_size": batch,
                      "batches_per_epoch": updates // EPOCHS, "crop": 250}
            out = Path(tmp) / f"{kind}_{batch}_{updates}"
            t0 = time.perf_counter()
            train_smoother(kind, features, y_hat, params, 0, torch.device("cpu"), out / "ck", out / "model.pt")
            f1 = [round(h["valid_f1"], 4) for h in load_tensors(out / "model.pt")["history"]]
            runs.append({"kind": kind, "sequences_per_step": batch, "updates": updates,
                         "sequences_seen": batch * updates, "valid_f1_per_epoch": f1,
                         "best_valid_f1": max(f1), "cpu_seconds": round(time.perf_counter() - t0, 1)})
            print(runs[-1], flush=True)
    write_json(args.out, {"benchmark": "bench_smoother_batch", "results": str(args.results),
                          "settings": {"crop": 250, "epochs": EPOCHS, "threads": 1, "paper": PAPER},
                          "paper_profile": {"sequences_per_step": 88, "updates": 100 * 139},
                          "runs": runs})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
