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

Each attempt is written under ``attempts[<name>]`` of ``--out`` (merged, atomic). Attempts record
their whole ``train`` config: those before ``line_of_sight`` ran on the plain defaults of the time
(target gain, no line-of-sight maps); ``plain_8maps_today`` is that setup on the same features as
the line-of-sight attempts.

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


def relative_step_cost(params: dict, base: dict, model: str, resolution: int, rounds: int = 2,
                       steps: int = 3) -> float:
    """Seconds of a training step (forward, backward, Adam; batch_size maps) under ``params``
    over those under ``base``, timed interleaved in one process: the ratio holds on a loaded
    machine where the wall clock of a whole training does not. Epochs count too: the ratio is of
    whole trainings (steps x epochs)."""
    from genex.studies.radio.models import build_model
    from genex.studies.radio.train import in_channels, weighted_mse

    def one(p: dict) -> float:
        p = {**p, "metres_per_pixel": 4.0}
        net = build_model(in_channels(model), p)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        x = torch.rand(int(p["batch_size"]), in_channels(model), resolution, resolution)
        x[:, 1] = 0
        x[:, 1, resolution // 2, resolution // 2] = 1
        y, w = torch.rand(len(x), 1, resolution, resolution), torch.rand(len(x), 1, resolution, resolution)
        start = time.perf_counter()
        for _ in range(steps):
            opt.zero_grad()
            weighted_mse(net(x), y, w).backward()
            opt.step()
        return (time.perf_counter() - start) / steps

    times = {"new": [], "base": []}
    for _ in range(rounds):
        times["new"].append(one(params))
        times["base"].append(one(base))
    per_step = min(times["new"]) / min(times["base"])
    return per_step * int(params["epochs"]) / int(base["epochs"])


def table(results: dict) -> str:
    """The attempts as a Markdown table (``--table``)."""
    head = ("| attempt | Φ_gt ratio | Φ_gt ρ | Φ_gt MP top-k / first | Φ-nm ratio | Φ-nm ρ | Φ-nm MP top-k / first "
            "| planted Φ / Φ-nm / Φ_gt | RMSE Φ_gt / Φ | cost |")
    rows = [head, "|" + "---|" * (head.count("|") - 1)]

    def f(v, d=2):
        return "–" if v is None else f"{v:.{d}f}"

    for name, r in results["attempts"].items():
        s = r["sensitivity"]
        g, n = s["phi_gt"], s["phi_no_measurements"]
        pr = r["planted_rank"]
        rows.append(f"| {name} ({'+'.join(r['trained']) or 'no training'}) | {f(g['ratio_median'])} | {f(g['spearman'])} | {f(g['mp_in_top_k'])} / {f(g['mp_first'])} "
                    f"| {f(n['ratio_median'])} | {f(n['spearman'])} | {f(n['mp_in_top_k'])} / {f(n['mp_first'])} "
                    f"| {pr['phi']} / {pr['phi_no_measurements']} / {pr['phi_gt']} "
                    f"| {f(r['models']['phi_gt']['test_rmse'], 4)} / {f(r['models']['phi']['test_rmse'], 4)} "
                    f"| {f(r.get('relative_training_cost'))} |")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--name", help="attempt name (key in the results file)")
    ap.add_argument("--table", action="store_true", help="print the results file's attempts as a table and stop")
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
    if args.table:
        print(table(read_json(args.out)))
        return
    if not args.name:
        ap.error("--name is required to run an attempt")

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
    record["relative_training_cost"] = round(relative_step_cost(params, radio["train"], "phi_gt", 64), 3)
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
