"""`genex radio <step>`: the radio study (paper §3.2, Figs 3-4).

Steps, in workflow order: ``features`` (working-resolution tensors from a RadioMapSeer-layout
folder), ``train`` (Φ or Φ_gt, checkpointed), ``evaluate`` (test RMSE of Φ, Φ_gt and the
free-space baseline), ``explain`` (matching pursuit per query and infill, baseline orders,
RDE optimisers), ``sanity`` (the planted-building scene), ``sensitivity`` (does each model's
shadow of a building move as the simulator's does when it is removed), ``metrics`` (everything
the report quotes) and ``section`` (figures and the report section). Heavy imports live inside the
steps so that ``genex --help`` stays fast.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from genex.pipeline.steps import step_arguments, torch_step
from genex.pipeline.io import parse_params

log = logging.getLogger("genex.radio")




def cmd_features(args: argparse.Namespace) -> None:
    from genex.studies.radio.features import build_features
    from genex.pipeline import atomic_dir, provenance, write_json

    params = parse_params(args.params)
    torch_step(args)
    with atomic_dir(args.out) as tmp:
        meta = build_features(Path(args.root), tmp, params, args.seed)
        write_json(tmp / "genex.json", {"meta": meta, "provenance": provenance(params, args.seed)})
    log.info("radio features written to %s: %s", args.out, meta["samples"])


def cmd_train(args: argparse.Namespace) -> None:
    from genex.pipeline.checkpoint import resolve_device
    from genex.studies.radio.train import train_model

    params = parse_params(args.params)
    torch_step(args)
    device = resolve_device(args.device)
    summary = train_model(args.model, Path(args.features), params, args.seed, device,
                          Path(args.checkpoints), Path(args.out))
    log.info("%s: best valid RMSE %.5f at epoch %s", args.model, summary["best_valid_rmse"],
             summary["best_epoch"])


def cmd_evaluate(args: argparse.Namespace) -> None:
    import numpy as np

    from genex.studies.radio.features import free_space_gain, load_meta, load_split
    from genex.pipeline.checkpoint import resolve_device
    from genex.studies.radio.train import load_model, predict_split, rmse
    from genex.pipeline import atomic_file, write_json

    torch_step(args)
    device = resolve_device(args.device)
    test, meta = load_split(Path(args.features), "test"), load_meta(Path(args.features))
    result = {"test_samples": int(len(test["gain"]))}
    for name, path in (("phi", args.phi), ("phi_gt", args.phi_gt)):
        pred = predict_split(load_model(Path(path), device), name, test, device)
        result[name] = {"rmse": rmse(pred, test["gain"])}
    free = np.stack([free_space_gain(t, b, meta["metres_per_pixel"])
                     for t, b in zip(test["tx"], test["missing"])])
    result["free_space"] = {"rmse": rmse(free, test["gain"])}
    with atomic_file(args.out) as tmp:
        write_json(tmp, result)
    log.info("test RMSE: %s", {k: v["rmse"] for k, v in result.items() if isinstance(v, dict)})


def _models(args: argparse.Namespace):
    from genex.pipeline.checkpoint import resolve_device
    from genex.studies.radio.train import load_model

    device = resolve_device(args.device)
    return load_model(Path(args.phi), device), load_model(Path(args.phi_gt), device)


def cmd_explain(args: argparse.Namespace) -> None:
    import numpy as np

    from genex.studies.radio.explain import explain_examples, summarize, summarize_by_model
    from genex.studies.radio.features import load_split
    from genex.studies.radio.train import model_inputs
    from genex.pipeline import atomic_dir, write_json

    params = parse_params(args.params)
    torch_step(args)
    phi, phi_gt = _models(args)
    test = load_split(Path(args.features), "test")
    picks = _examples(len(test["gain"]), int(params["examples"]))
    xs = model_inputs("phi", {key: value[picks] for key, value in test.items()})  # the picks only
    results = explain_examples(phi, phi_gt, xs, params, args.seed)
    with atomic_dir(args.out) as tmp:
        arrays = {}
        for i, r in enumerate(results):
            for key in ("estimate", "building_labels"):
                if key in r:
                    arrays[f"{i}/{key}"] = r.pop(key)
            for q, rec in r["queries"].items():
                for name, item in rec["infills"].items():
                    if "explained" in item:
                        arrays[f"{i}/{q}/{name}"] = item.pop("explained")
        np.savez_compressed(tmp / "maps.npz", inputs=xs[: int(params["figures"])],
                            gain=test["gain"][picks][: int(params["figures"])], **arrays)
        write_json(tmp / "explanations.json", {"examples": [int(i) for i in picks],
                                               "results": results,
                                               "summary": summarize(results, params),
                                               "summary_by_model": summarize_by_model(results)})


def _examples(n: int, count: int) -> list[int]:
    """``count`` test samples spread evenly over the split (different maps and TX)."""
    import numpy as np

    return sorted({int(i) for i in np.linspace(0, n - 1, min(count, n)).round()})


def cmd_sanity(args: argparse.Namespace) -> None:
    from genex.studies.radio.explain import planted_rank
    from genex.studies.radio.features import load_meta, planted_scene
    from genex.pipeline import atomic_file, write_json

    params = parse_params(args.params)
    torch_step(args)
    phi, phi_gt = _models(args)
    meta = load_meta(Path(args.features))
    scene = planted_scene(meta["resolution"], meta["metres_per_pixel"], int(params["roi"]))
    result = planted_rank(phi, phi_gt, scene, params, args.seed)
    result["box"] = list(scene["box"])
    with atomic_file(args.out) as tmp:
        write_json(tmp, result)
    log.info("planted building ranks: %s", result["ranks"])


def cmd_sensitivity(args: argparse.Namespace) -> None:
    from genex.studies.radio.features import load_meta, load_split
    from genex.studies.radio.sensitivity import building_sensitivity
    from genex.pipeline import atomic_file, write_json

    params = parse_params(args.params)
    torch_step(args)
    phi, phi_gt = _models(args)
    meta = load_meta(Path(args.features))
    test = load_split(Path(args.features), "test")
    result = building_sensitivity(Path(args.root), args.simulator, test["ids"], int(meta["resolution"]),
                                  phi, phi_gt, params, args.seed)
    with atomic_file(args.out) as tmp:
        write_json(tmp, result)
    log.info("building sensitivity: %s", result["summary"])


def cmd_metrics(args: argparse.Namespace) -> None:
    from genex.studies.radio.report import collect_metrics, write_curves_csv
    from genex.pipeline import atomic_file, write_json

    metrics = collect_metrics(Path(args.features), Path(args.evaluation), Path(args.explain),
                              Path(args.sanity), Path(args.phi), Path(args.phi_gt),
                              sensitivity=Path(args.sensitivity),
                              locality=Path(args.locality) if args.locality else None)
    with atomic_file(args.curves) as tmp:
        write_curves_csv(tmp, metrics["mp"])
    with atomic_file(args.out) as tmp:
        write_json(tmp, metrics)


def cmd_section(args: argparse.Namespace) -> None:
    from genex.studies.radio.report import write_section
    from genex.pipeline import atomic_dir

    params = parse_params(args.params)
    torch_step(args)
    phi, phi_gt = _models(args)
    with atomic_dir(args.out) as tmp:
        write_section(tmp, Path(args.metrics), Path(args.features), Path(args.explain),
                      Path(args.sanity), phi, phi_gt, params)


def _common(p: argparse.ArgumentParser, seed: bool = True, threads: bool = False,
            models: bool = False) -> None:
    step_arguments(p, params=False, seed=seed, torch=threads)
    if models:
        p.add_argument("--phi", required=True, help="Φ's model file (genex radio train)")
        p.add_argument("--phi-gt", required=True, help="Φ_gt's model file")


def register(subparsers) -> None:
    """Add ``genex radio <step>``."""
    radio = subparsers.add_parser("radio", help="the radio study: matching pursuit on a radio-map UNet",
                                  description=__doc__.split("\n\n")[0])
    steps = radio.add_subparsers(dest="step", required=True, metavar="STEP")

    p = steps.add_parser("features", help="working-resolution tensors from a RadioMapSeer folder")
    p.add_argument("--root", required=True, help="RadioMapSeer-layout folder (radio-sim or the real set)")
    p.add_argument("--params", required=True, help="radio.features as JSON")
    _common(p)
    p.set_defaults(func=cmd_features)

    p = steps.add_parser("train", help="train Φ or Φ_gt (checkpointed, best on validation)")
    p.add_argument("--model", required=True, choices=("phi", "phi_gt"))
    p.add_argument("--features", required=True, help="folder written by `genex radio features`")
    p.add_argument("--params", required=True, help="radio.train as JSON")
    p.add_argument("--checkpoints", required=True, help="checkpoint folder (not an output)")
    _common(p, threads=True)
    p.set_defaults(func=cmd_train)

    p = steps.add_parser("evaluate", help="test RMSE of Φ, Φ_gt and the free-space baseline")
    p.add_argument("--features", required=True)
    _common(p, threads=True, models=True)
    p.set_defaults(func=cmd_evaluate)

    descriptions = {
        "explain": "For `examples` test maps and each query (darken, brighten): matching pursuit's "
                   "order of buildings and measurements for Φ under every infill of `sample_fractions`, "
                   "with random, nearest and RDE orders beside it; then, with zero infill, Φ without its "
                   "measurements and Φ_gt against random orders. Writes explanations.json and maps.npz.",
        "sanity": "The planted scene (one building on the line of sight to the region): the rank "
                  "matching pursuit gives that building, for Φ under every infill and, with zero "
                  "infill, for Φ without measurements and Φ_gt. Writes the JSON file --out."}
    for name, func, text in (("explain", cmd_explain, "matching pursuit, baselines and RDE on test maps"),
                             ("sanity", cmd_sanity, "matching pursuit on the planted-building scene")):
        p = steps.add_parser(name, help=text, description=descriptions[name])
        p.add_argument("--features", required=True)
        p.add_argument("--params", required=True, help="radio.explain as JSON")
        _common(p, threads=True, models=True)
        p.set_defaults(func=func)

    p = steps.add_parser(
        "sensitivity", help="model vs simulator change when a shadowing building is removed",
        description="For test maps, every building that alone shadows a street region (the "
                    "simulator, rerun without it, brightens >= min_pixels street pixels by >= "
                    "threshold): Φ_gt's and Φ's (no measurements) change there against the "
                    "simulator's, as a ratio and a Spearman correlation, and zero-infill matching "
                    "pursuit's rank of the building. Needs the dataset folder (the simulator "
                    "reruns on its cities).")
    p.add_argument("--root", required=True, help="the radio-sim folder the features were read from")
    p.add_argument("--simulator", default="DPM", help="gain folder of the dataset (default DPM)")
    p.add_argument("--features", required=True)
    p.add_argument("--params", required=True,
                   help="radio.sensitivity as JSON: maps, buildings_per_map, threshold, min_pixels, roi, k, batch_candidates")
    _common(p, threads=True, models=True)
    p.set_defaults(func=cmd_sensitivity)

    p = steps.add_parser("metrics", help="collect every number the report quotes")
    for opt in ("--features", "--evaluation", "--explain", "--sanity", "--sensitivity"):
        p.add_argument(opt, required=True)
    p.add_argument("--locality", default=None,
                   help="benchmarks/results/radio_locality.json: the simulator's measured locality, "
                        "quoted in the report (optional)")
    p.add_argument("--curves", required=True, help="CSV of the distortion curves (DVC plots)")
    _common(p, seed=False, models=True)
    p.set_defaults(func=cmd_metrics)

    p = steps.add_parser("section", help="figures and the report section")
    for opt in ("--metrics", "--features", "--explain", "--sanity"):
        p.add_argument(opt, required=True)
    p.add_argument("--params", required=True, help="radio.report as JSON")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default: auto)")
    _common(p, models=True)
    p.set_defaults(func=cmd_section)
