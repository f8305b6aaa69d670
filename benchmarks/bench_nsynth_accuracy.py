"""nsynth Φ's accuracy on unseen instruments: datasets × classifier settings × seeds (issue 15,
item 3). Each dataset is a ``genex nsynth features`` folder (render nsynth-sf with other
``datasets.nsynth_sf`` settings first); each setting is the default profile's
``nsynth.classifier`` section plus overrides. Φ is trained with the study's own
``train_classifier`` (best epoch on the validation loss) and scored on the test split, whose
instruments (program × soundfont) are never heard in training.

Usage: python benchmarks/bench_nsynth_accuracy.py --data default=results/nsynth/features \
         --data all_programs=/tmp/nx/features --setting base='{}' --setting wide='{"width": 16}' \
         [--seeds 1234,1,2] [--out benchmarks/results/nsynth_accuracy.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

from genex.pipeline import read_json, write_json  # noqa: E402
from genex.studies.nsynth.outputs import load_features, split_data  # noqa: E402
from genex.studies.nsynth.train import evaluate_classifier, train_classifier  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def pairs(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        name, _, value = item.partition("=")
        if not value:
            raise SystemExit(f"expected NAME=VALUE, got {item!r}")
        out[name] = value
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", action="append", required=True, help="NAME=features folder")
    ap.add_argument("--setting", action="append", required=True, help="NAME=JSON overrides of nsynth.classifier")
    ap.add_argument("--seeds", default="1234,1,2")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/nsynth_accuracy.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    base = yaml.safe_load((ROOT / "config/config.yaml").read_text())["nsynth"]["classifier"]
    seeds = [int(s) for s in args.seeds.split(",")]
    out_path = Path(args.out)
    result = read_json(out_path) if out_path.exists() else {"runs": {}}
    result.update({"machine": platform.machine(), "threads": args.threads, "torch": torch.__version__,
                   "cpu_count": os.cpu_count()})
    device = torch.device("cpu")
    for data_name, folder in pairs(args.data).items():
        feats = load_features(folder)
        data = {s: split_data(feats, s) for s in ("train", "valid")}
        x_te, y_te = split_data(feats, "test")
        instruments = {s: len({i for i, sp in zip(feats["instrument"], feats["split"]) if sp == s})
                       for s in ("train", "valid", "test")}
        for name, overrides in pairs(args.setting).items():
            params = {**base, **json.loads(overrides), "n_classes": 11}
            accs, valid, secs = [], [], []
            for seed in seeds:
                with tempfile.TemporaryDirectory() as ckpt:
                    t0 = time.perf_counter()
                    model, state = train_classifier(data, params, seed, device, Path(ckpt))
                    secs.append(time.perf_counter() - t0)
                accs.append(evaluate_classifier(model, x_te, y_te, device)[1])
                valid.append(max(h["valid_accuracy"] for h in state.history))
            key = f"{data_name}/{name}"
            result["runs"][key] = {
                "data": data_name, "features": str(folder), "notes": len(feats["split"]),
                "instruments": instruments, "overrides": json.loads(overrides), "seeds": seeds,
                "test_accuracy": [round(a, 4) for a in accs],
                "test_accuracy_mean": round(float(np.mean(accs)), 4),
                "test_accuracy_std": round(float(np.std(accs)), 4),
                "best_valid_accuracy_mean": round(float(np.mean(valid)), 4),
                "train_seconds_mean": round(float(np.mean(secs)), 1)}
            print(key, result["runs"][key]["test_accuracy"], "mean", result["runs"][key]["test_accuracy_mean"],
                  f"{np.mean(secs):.1f}s", flush=True)
            write_json(out_path, result)


if __name__ == "__main__":
    main()
