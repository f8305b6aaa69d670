"""Do the radio models learn shadows? One training variant per call (issue 15, item 7).

Trains Φ_gt (and Φ, with ``--models phi_gt,phi``) with the default radio.train config of
``config/config.yaml`` plus ``--train`` overrides (JSON), on existing radio features (the default
run's, ``--features``), or reuses trained model files (``--phi``/``--phi-gt``: the default run's
models for the baseline, or a model this call does not train). Then, with the study's own steps:

* test RMSE of Φ, Φ_gt and free space (every pixel, as ``genex radio evaluate``), and on street
  pixels only (where the map means something);
* building sensitivity (``genex radio sensitivity``, radio.sensitivity config; ``--maps``):
  model change / simulator change (median), Spearman, matching pursuit's top-k share and first
  share, for Φ_gt and for Φ without measurements;
* the planted-building sanity (``genex radio sanity``): the planted building's rank for Φ (zero
  infill), Φ without measurements and Φ_gt;
* training seconds per model (wall clock, on this machine under its load at the time).

Each attempt is written under ``attempts[<name>]`` of ``--out`` (merged, atomic).

Usage: python benchmarks/bench_radio_shadows.py --name shadow8 --train '{"loss": {"shadow_weight": 8}}'
       [--models phi_gt] [--phi results/radio/models/phi.pt] [--features results/radio/features]
       [--root resources/radio-sim] [--maps 4] [--work /tmp/radio_shadows]
       [--out benchmarks/results/radio_shadows.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from genex.pipeline import read_json, write_json
from genex.studies.radio.explain import planted_rank
from genex.studies.radio.features import free_space_gain, load_meta, load_split, planted_scene
from genex.studies.radio.sensitivity import building_sensitivity
from genex.studies.radio.train import MODELS, load_model, predict_split, rmse, train_model

ROOT = Path(__file__).resolve().parents[1]


def deep_merge(base: dict, overlay: dict) -> dict:
    out = dict(base)
    for key, value in overlay.items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def street_rmse(pred: np.ndarray, gain: np.ndarray, buildings: np.ndarray) -> float:
    street = buildings == 0
    return float(np.sqrt(np.mean((pred[street].astype(np.float64) - gain[street]) ** 2)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--name", required=True, help="attempt name (key in the results file)")
    ap.add_argument("--train", default="{}", help="JSON overrides of radio.train")
    ap.add_argument("--models", default="phi_gt", help="models to train, comma-separated (phi_gt, phi)")
    ap.add_argument("--phi", type=Path, help="Φ model file to use instead of training one")
    ap.add_argument("--phi-gt", type=Path, help="Φ_gt model file to use instead of training one")
    ap.add_argument("--features", type=Path, default=Path("results/radio/features"))
    ap.add_argument("--root", type=Path, default=Path("resources/radio-sim"))
    ap.add_argument("--maps", type=int, help="sensitivity test samples (default: radio.sensitivity.maps)")
    ap.add_argument("--seed", type=int, default=None, help="default: the config's seed")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", type=Path, default=Path("/tmp/radio_shadows"))
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/radio_shadows.json")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    radio = config["radio"]
    seed = config["seed"] if args.seed is None else args.seed
    params = deep_merge(radio["train"], json.loads(args.train))
    device = torch.device("cpu")
    work = args.work / args.name
    paths = {"phi": args.phi, "phi_gt": args.phi_gt}
    trained = [m for m in args.models.split(",") if m]
    record = {"train": params, "trained": trained, "seed": seed, "threads": args.threads,
              "reused": {m: str(p) for m, p in paths.items() if p and m not in trained},
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                          "load_avg_at_start": os.getloadavg()[0]},
              "training_seconds": {}, "models": {}}
    for model in trained:
        if model not in MODELS:
            raise SystemExit(f"--models: unknown model {model!r}; known: {MODELS}")
        start = time.perf_counter()
        summary = train_model(model, args.features, params, seed, device, work / f"ckpt_{model}",
                              work / f"{model}.pt")
        record["training_seconds"][model] = round(time.perf_counter() - start, 1)
        record["models"][model] = {"best_epoch": summary["best_epoch"],
                                   "valid_rmse": summary["best_valid_rmse"]}
        paths[model] = work / f"{model}.pt"
    missing = [m for m in MODELS if paths[m] is None]
    if missing:
        raise SystemExit(f"no model for {missing}: train it (--models) or give its file (--phi/--phi-gt)")
    nets = {m: load_model(paths[m], device) for m in MODELS}

    test, meta = load_split(args.features, "test"), load_meta(args.features)
    for m in MODELS:
        pred = predict_split(nets[m], m, test, device)
        record["models"].setdefault(m, {}).update(
            test_rmse=rmse(pred, test["gain"]), test_rmse_street=street_rmse(pred, test["gain"], test["complete"]))
    free = np.stack([free_space_gain(t, b, meta["metres_per_pixel"]) for t, b in zip(test["tx"], test["missing"])])
    record["models"]["free_space"] = {"test_rmse": rmse(free, test["gain"]),
                                      "test_rmse_street": street_rmse(free, test["gain"], test["complete"])}

    sens_params = dict(radio["sensitivity"], **({"maps": args.maps} if args.maps else {}))
    start = time.perf_counter()
    sens = building_sensitivity(args.root, radio["features"]["simulator"], test["ids"], int(meta["resolution"]),
                                nets["phi"], nets["phi_gt"], sens_params, seed)
    record["sensitivity_seconds"] = round(time.perf_counter() - start, 1)
    summary = sens["summary"]
    record["sensitivity"] = {"maps": sens_params["maps"], "buildings": summary["buildings"],
                             **{m: summary.get(m) for m in ("phi_gt", "phi_no_measurements")}}
    scene = planted_scene(meta["resolution"], meta["metres_per_pixel"], int(radio["explain"]["roi"]))
    sanity = planted_rank(nets["phi"], nets["phi_gt"], scene, radio["explain"], seed)
    record["planted_rank"] = {"phi": sanity["ranks_by_model"]["phi"]["zero"],
                              "phi_no_measurements": sanity["ranks_by_model"]["phi_no_measurements"]["zero"],
                              "phi_gt": sanity["ranks_by_model"]["phi_gt"]["zero"],
                              "phi_model_infill": sanity["ranks_by_model"]["phi"].get("model")}

    results = read_json(args.out) if args.out.exists() else {"attempts": {}}
    results["description"] = __doc__.split("\n\n")[0]
    results["attempts"][args.name] = record
    write_json(args.out, results)
    print(json.dumps(record, indent=1, default=float))


if __name__ == "__main__":
    main()
