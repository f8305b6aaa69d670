"""The radio study's metrics file and report section (figures drawn as in the paper's Figs 3-4:
radio map grey, buildings blue, measurements red, region of interest green)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from genex.pipeline.report.figures import pyplot, save_figure
from genex.pipeline import load_arrays, read_json, write_json

# What the paper states (Heiss et al. 2020, §3.2; RadioMapSeer as in SPECS.md). It quotes no
# RMSE or distortion numbers for the radio maps: those cells stay empty (None).
PAPER = {
    "dataset": "RadioMapSeer", "maps": 700, "transmitters": 80, "resolution": 256,
    "measurements": [10, 299], "partial_fraction": 0.025, "optimiser": "matching pursuit",
    "rmse": {"phi": None, "phi_gt": None, "free_space": None},
    "finding_darken": "measurements in the shadow of the missing building are chosen first",
    "finding_brighten": "shadow measurements and bright measurements before the building",
}


def _round(obj, digits: int = 6):
    """Floats to ``digits`` significant digits (stable JSON across platforms' last bits)."""
    if isinstance(obj, float):
        return obj if not math.isfinite(obj) or obj == 0 else float(f"{obj:.{digits}g}")
    if isinstance(obj, dict):
        return {k: _round(v, digits) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_round(v, digits) for v in obj]
    return obj


def collect_metrics(features: Path, evaluation: Path, explain: Path, sanity: Path,
                    phi: Path, phi_gt: Path, sensitivity: Path | None = None,
                    locality: Path | None = None) -> dict:
    """Every number the report quotes (no timings, dates or paths: byte-stable)."""
    from genex.studies.radio.features import load_meta
    from genex.studies.radio.train import load_summary

    meta = load_meta(features)
    ev = read_json(evaluation)
    ex = read_json(explain / "explanations.json")
    sa = read_json(sanity)
    models = {}
    for name, path in (("phi", phi), ("phi_gt", phi_gt)):
        s = load_summary(path)
        models[name] = {"rmse": ev[name]["rmse"], "best_epoch": s["best_epoch"],
                        "valid_rmse": s["best_valid_rmse"], "epochs": len(s["history"]),
                        "line_of_sight": bool(s["params"].get("line_of_sight", False)),
                        "target": s["params"].get("target", "gain")}
        if name == "phi":   # Φ_gt has no measurements to leave out
            models[name]["unmeasured_share"] = float(s["params"].get("unmeasured_share", 0.0))
    models["free_space"] = {"rmse": ev["free_space"]["rmse"]}
    metrics = {
        "setup": {"resolution": meta["resolution"], "metres_per_pixel": meta["metres_per_pixel"],
                  "samples": meta["samples"], "measurements": meta["measurements"],
                  "explained_maps": len(ex["examples"]),
                  "components_mean": float(np.mean([r["components"] for r in ex["results"]])),
                  "buildings_mean": float(np.mean([r["buildings"] for r in ex["results"]]))},
        "models": models,
        "phi_below_free_space": bool(models["phi"]["rmse"] < models["free_space"]["rmse"]),
        "mp": ex["summary"],
        "mp_by_model": ex["summary_by_model"],
        "sanity": {"planted_building_rank": sa["ranks"].get("zero", next(iter(sa["ranks"].values()))),
                   "ranks_by_infill": sa["ranks"], "orders": sa["orders"],
                   "components": sa["components"],
                   "ranks_by_model": sa.get("ranks_by_model", {"phi": sa["ranks"]})},
        "paper": PAPER,
    }
    if sensitivity is not None:
        se = read_json(sensitivity)
        metrics["building_sensitivity"] = {
            **se["summary"], "threshold": se["params"]["threshold"], "min_pixels": se["params"]["min_pixels"],
            "k": se["params"]["k"],
            "per_building": [{key: r.get(key) for key in ("map", "tx", "building", "pixels", "simulator",
                                                          "phi_gt", "phi_no_measurements", "simulator_rank",
                                                          "mp_rank")} for r in se["buildings"]]}
    if locality is not None:
        lo = read_json(locality)["summary"]
        metrics["simulator"] = {"locality_benchmark": lo}
    return _round(metrics)


# --- figures ----------------------------------------------------------------------------------



def _draw_map(ax, gain: np.ndarray, buildings: np.ndarray | None = None,
              measured: np.ndarray | None = None, box=None, title: str = "") -> None:
    """A radio map in grey, buildings blue, measurements red, the region green."""
    ax.imshow(gain, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    if buildings is not None and buildings.any():
        rgba = np.zeros((*buildings.shape, 4))
        rgba[buildings > 0] = (0.15, 0.35, 0.95, 0.85)
        ax.imshow(rgba, interpolation="nearest")
    if measured is not None and measured.any():
        rows, cols = np.nonzero(measured)
        ax.scatter(cols, rows, s=9, c="red", marker="s", linewidths=0)
    if box is not None:
        r0, c0, r1, c1 = box
        ax.add_patch(pyplot().Rectangle((c0 - 0.5, r0 - 0.5), c1 - c0, r1 - r0, fill=False,
                                         edgecolor="lime", linewidth=1.5))
    ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])


def fig3(path: Path, x: np.ndarray, complete: np.ndarray, gain: np.ndarray,
         est_phi: np.ndarray, est_gt: np.ndarray) -> None:
    """Fig 3: ground truth, Φ's estimate (its inputs drawn), Φ_gt's estimate; one row per map."""
    plt = pyplot()
    n = len(x)
    fig, axes = plt.subplots(n, 3, figsize=(7.5, 2.5 * n), squeeze=False)
    for i in range(n):
        _draw_map(axes[i, 0], gain[i], complete[i], None, None, "(a) ground truth")
        _draw_map(axes[i, 1], est_phi[i], x[i, 0], x[i, 2] != 0, None, "(b) Φ estimate")
        _draw_map(axes[i, 2], est_gt[i], complete[i], None, None, "(c) Φ_gt estimate")
    save_figure(fig, path)


def _chosen(x: np.ndarray, labels: np.ndarray, order: list[int], n_buildings: int) -> tuple:
    """Chosen buildings (mask) and chosen measurements (mask) of an order."""
    buildings = np.isin(labels, [c + 1 for c in order if c < n_buildings]) & (labels > 0)
    meas_pos = np.argwhere(x[2] != 0)
    measured = np.zeros(x.shape[1:], dtype=bool)
    for c in order:
        if c >= n_buildings:
            measured[tuple(meas_pos[c - n_buildings])] = True
    return buildings, measured


def fig4(path: Path, query: str, maps: dict, results: list[dict], infills: list[str]) -> None:
    """Fig 4: Φ's estimate with the region, then the explanation (chosen buildings and
    measurements over Φ's estimate from them and the infill) for each infill shown."""
    plt = pyplot()
    n = len(maps["inputs"])
    fig, axes = plt.subplots(n, 1 + len(infills), figsize=(2.5 * (1 + len(infills)), 2.5 * n),
                             squeeze=False)
    for i in range(n):
        x, res = maps["inputs"][i], results[i]
        rec = res["queries"][query]
        box = rec["box"]
        labels = maps[f"{i}/building_labels"]
        _draw_map(axes[i, 0], maps[f"{i}/estimate"], x[0], x[2] != 0, box, f"(a) Φ estimate, {query}")
        for j, name in enumerate(infills):
            item = rec["infills"][name]
            b, m = _chosen(x, labels, item["order"], res["buildings"])
            _draw_map(axes[i, j + 1], maps[f"{i}/{query}/{name}"], b, m, box,
                      f"({chr(98 + j)}) {len(item['order'])} chosen, infill {name}")
    save_figure(fig, path)


def fig_curves(path: Path, mp: dict) -> None:
    """Distortion after k components: matching pursuit, random, nearest, RDE rankings."""
    plt = pyplot()
    names = list(mp)
    fig, axes = plt.subplots(1, len(names), figsize=(3.6 * len(names), 3.0), squeeze=False)
    for ax, name in zip(axes[0], names):
        e = mp[name]
        ks = np.arange(1, len(e["distortion_at_k"]) + 1)
        ax.plot(ks, e["distortion_at_k"], "o-", label="matching pursuit")
        ax.plot(ks, e["random_at_k"], "s--", label="random order")
        ax.plot(ks, e["nearest_at_k"], "^--", label="nearest to region")
        for key in sorted(e):
            if key.startswith("rde_"):
                ax.plot(ks, e[key], ":", label=key[:-5].replace("_", " "))
        ax.set_title(f"infill: {name}", fontsize=9)
        ax.set_xlabel("k (components kept)")
        ax.set_ylabel("distortion in the region")
        ax.legend(fontsize=7)
    save_figure(fig, path)


def write_curves_csv(path: Path, mp: dict) -> None:
    """One row per k: every curve (for DVC plots)."""
    cols = [(f"{kind}_{name}", mp[name][f"{kind}_at_k" if kind != "mp" else "distortion_at_k"])
            for name in mp for kind in ("mp", "random", "nearest")]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["k"] + [c for c, _ in cols])
        for k in range(len(cols[0][1])):
            w.writerow([k + 1] + [f"{v[k]:.6g}" for _, v in cols])


# --- the section ------------------------------------------------------------------------------

def _f(v):
    """Numbers go to the report as they are: its one formatter gives a column one precision."""
    return v


_MODEL_NAMES = {"phi": "Φ", "phi_no_measurements": "Φ, no measurements", "phi_gt": "Φ_gt"}


def _physics_blocks(m: dict) -> list[dict]:
    """The simulator's locality and the building-sensitivity metric (when measured)."""
    blocks = []
    lo = m.get("simulator", {}).get("locality_benchmark")
    if lo:
        lv, cv = lo["legacy_vs_reference"], lo["capped_vs_reference"]
        blocks.append({"type": "table",
                       "caption": (f"radio-sim's locality on {lo['maps']} maps x {lo['transmitters_per_map']} TX "
                                   "(benchmarks/bench_radio_locality.py): error against every corner relaying "
                                   "(the current simulator), and the largest change near the TX (<= 40 m) when a "
                                   "building >= 130 m away is removed"),
                       "columns": ["simulator", "mean |error|", "p99 |error|", "share > 0.05",
                                   "far removals changing the TX's street", "s per TX"],
                       "rows": [["old: city-wide budget 24 + 16, ranked by shadow lit", _f(lv["mean_abs"]),
                                 _f(lv["p99_abs"]), _f(lv["share_over_0.05"]),
                                 f"{lo['locality_maps_changed']['legacy']} of {lo['maps']} maps "
                                 f"(max {_f(lo['locality_max_change_near_tx']['legacy'])})",
                                 _f(lo["seconds_per_tx"]["legacy"])],
                                ["capped 24 + 16, nearest first (option)", _f(cv["mean_abs"]), _f(cv["p99_abs"]),
                                 _f(cv["share_over_0.05"]), None, _f(lo["seconds_per_tx"]["capped"])],
                                ["current: every corner relays (used)", 0, 0, 0,
                                 f"{lo['locality_maps_changed']['reference']} of {lo['maps']} maps "
                                 f"(max {_f(lo['locality_max_change_near_tx']['reference'])})",
                                 _f(lo["seconds_per_tx"]["reference"])]]})
    se = m.get("building_sensitivity")
    if se and se.get("skipped"):
        blocks.append({"type": "text", "text": f"**Building sensitivity** {se['skipped']}."})
    if se and se.get("buildings"):
        rows = []
        for model in ("phi_gt", "phi_no_measurements"):
            e = se[model]
            rows.append([_MODEL_NAMES[model], _f(e["change_mean"]), _f(e["ratio_median"]),
                         _f(e["spearman"]) if e["spearman"] is not None else None,
                         _f(e["mp_rank_median"]), _f(e["mp_first"]), _f(e["mp_in_top_k"])])
        rows.append(["simulator", _f(se["simulator_change_mean"]), 1, 1, None,
                     _f(se["simulator_first"]), None])
        blocks.append({"type": "table",
                       "caption": (f"Building sensitivity on {se['samples']} test maps: {se['buildings']} buildings "
                                   f"that alone shadow a street region (removing one brightens >= "
                                   f"{se['min_pixels']} street pixels by >= {se['threshold']:g}); each model's mean "
                                   "change there when the building is dropped from its input, the median ratio to "
                                   "the simulator's change, the Spearman correlation with it, and zero-infill "
                                   f"matching pursuit's rank of the building on the box it shadows most (k = "
                                   f"{se['k']}; simulator: the building's rank by the change its removal makes in "
                                   "the box). Paper: none quoted."),
                       "columns": ["model", "mean change", "ratio to simulator (median)", "Spearman",
                                   "MP rank (median)", "ranked first", f"in top {se['k']}"],
                       "rows": rows})
    return blocks


def _reading(m: dict) -> str:
    """A short reading of what Φ relies on, from the metrics."""
    mp = m["mp"]
    parts = []
    for name, e in mp.items():
        q = e["by_query"]
        parts.append(f"- infill **{name}**: buildings are {100 * q['darken']['building_share']:.0f} % "
                     f"of the components chosen for *darken* and "
                     f"{100 * q['brighten']['building_share']:.0f} % for *brighten*; matching "
                     f"pursuit is below the random order at every k: "
                     f"{'yes' if e['below_random_at_every_k'] else 'no'}.")
    s = m["sanity"]
    return ("**Reading.** " + (
        "Φ's test RMSE is below the free-space baseline's, so it uses the buildings and "
        "measurements rather than distance alone. " if m["phi_below_free_space"] else
        "Φ does not beat the free-space baseline here (too little training). ") +
        "With zero infill a dropped measurement simply disappears, so darkening a region is "
        "explained by the buildings that cast its shadow and by dark measurements; with "
        "model-based infill every dropped measurement is replaced by Φ_gt's (too bright, "
        "buildings missing) estimate, so the dark measurements in the shadow become decisive, "
        "as in the paper's Fig 4b. "
        f"On the planted scene the building on the line of sight is chosen at rank "
        f"{s['planted_building_rank']} (zero infill) for the darken query"
        + "".join(f"; {_MODEL_NAMES[name]}: rank {ranks.get('zero')}"
                  for name, ranks in s["ranks_by_model"].items() if name != "phi")
        + ". " + "".join(f"With zero infill on its own regions, matching pursuit for {_MODEL_NAMES[name]} is "
                         f"{'below' if e['below_random_at_every_k'] else 'not below'} the random order at "
                         f"every k. " for name, e in m["mp_by_model"].items())
        + _sensitivity_reading(m.get("building_sensitivity")) + "\n\n" + "\n".join(parts))


def _sensitivity_reading(se: dict | None) -> str:
    """What the building-sensitivity metric says, in words (empty when not measured)."""
    if not se or not se.get("buildings"):
        return ""
    gt, phi = se["phi_gt"], se["phi_no_measurements"]
    return (f"Where one building alone shadows a street region, removing it brightens the "
            f"simulator's map there by {se['simulator_change_mean']:.2f} on average; Φ_gt's estimate "
            f"moves by {gt['change_mean']:.2f} (median {gt['ratio_median']:.2f} of the simulator's "
            f"change) and Φ's without measurements by {phi['change_mean']:.2f} (median "
            f"{phi['ratio_median']:.2f}): the further below 1, the less the model has learned that "
            f"building's shadow, and the less an explanation of it can name the building.")


def write_section(out: Path, metrics_path: Path, features: Path, explain: Path, sanity: Path,
                  phi, phi_gt, params: dict) -> None:
    """Figures, curves CSV, and section.json (every number from metrics.json)."""
    from genex.studies.radio.features import load_split
    from genex.studies.radio.train import batch_inputs, predict

    m = read_json(metrics_path)
    ex = read_json(explain / "explanations.json")
    maps = load_arrays(explain / "maps.npz")
    n_fig = min(int(params["figures"]), len(maps["inputs"]))
    picks = ex["examples"][:n_fig]
    test = load_split(features, "test")
    device = next(phi.parameters()).device
    x = maps["inputs"][:n_fig]
    est_phi = predict(phi, x, device)
    est_gt = predict(phi_gt, batch_inputs("phi_gt", test, np.asarray(picks)), device)
    fig3(out / "fig3_estimates.png", x, test["complete"][picks], test["gain"][picks], est_phi, est_gt)
    maps["inputs"] = x
    infills = [n for n in m["mp"] if n != "zero"]
    for query in ("darken", "brighten"):
        fig4(out / f"fig4_{query}.png", query, maps, ex["results"][:n_fig], infills)
    fig_curves(out / "distortion_curves.png", m["mp"])
    write_json(out / "metrics.json", m)
    mod = m["models"]
    k_last = len(next(iter(m["mp"].values()))["distortion_at_k"])
    blocks = [
        {"type": "text", "text": (
            "Matching-pursuit explanations of a radio-map UNet (Heiss et al. 2020, §3.2). "
            f"Φ reads [city with buildings missing, TX, {m['setup']['measurements'][0]}-"
            f"{m['setup']['measurements'][1]} measurements] and Φ_gt [complete city, TX]; both "
            f"are RadioWNet-style UNets trained at {m['setup']['resolution']} x "
            f"{m['setup']['resolution']} px ({m['setup']['metres_per_pixel']:g} m per pixel)"
            + (". Unlike RadioUNet, each also reads two maps it computes from the buildings and TX it "
               "is given: free-space gain and line-of-sight visibility (exp(-walls crossed by the ray "
               "from the TX)). Without them a small UNet on this CPU budget barely learned that a "
               "building shadows the street behind it (benchmarks/results/radio_shadows.json); as "
               "they are recomputed from the input, removing a building removes its shadow from them"
               if mod["phi"].get("line_of_sight") else "")
            + ("; they predict the gain's departure from free space, not the gain"
               if mod["phi"].get("target") == "free_space_residual" else "")
            + (f". Φ saw no measurements on {mod['phi']['unmeasured_share']:.0%} of its training "
               "maps: matching pursuit shows it maps with few or none, which RadioUNet's training "
               "never does" if mod["phi"].get("unmeasured_share") else "") + ". "
            "Every building (connected component) and every measurement is one component; "
            "matching pursuit keeps, step by step, the component that most lowers the distortion "
            "of Φ's estimate in a region of interest (green), for two queries: *darken* (the "
            "region where Φ draws its strongest shadow) and *brighten* (where the measurements "
            "brighten Φ's estimate most).")},
        {"type": "table", "caption": "Test RMSE on the scaled gain (paper: none quoted)",
         "columns": ["model", "ours", "paper"],
         "rows": [["Φ (buildings missing + measurements)", _f(mod["phi"]["rmse"]), None],
                  ["Φ_gt (complete city)", _f(mod["phi_gt"]["rmse"]), None],
                  ["free-space path loss", _f(mod["free_space"]["rmse"]), None]]},
        {"type": "figure", "path": "fig3_estimates.png",
         "caption": "Fig 3: ground truth, Φ's and Φ_gt's estimates (buildings blue, measurements red)."},
        {"type": "figure", "path": "fig4_darken.png",
         "caption": "Fig 4, darken query: Φ's estimate, then the chosen components over Φ's "
                    "estimate from them with full model-based infill and with p = 2.5 %."},
        {"type": "figure", "path": "fig4_brighten.png", "caption": "Fig 4, brighten query."},
        {"type": "figure", "path": "distortion_curves.png",
         "caption": "Mean distortion in the region after keeping k components, per infill."},
        {"type": "table", "caption": f"Distortion at k = 1 and k = {k_last} (mean over maps and queries)",
         "columns": ["infill", "at k=0", "MP k=1", "random k=1", "nearest k=1",
                     f"MP k={k_last}", f"random k={k_last}", f"nearest k={k_last}", "MP < random at every k"],
         "rows": [[name, _f(e["distortion_at_0"]), _f(e["distortion_at_k"][0]), _f(e["random_at_k"][0]),
                   _f(e["nearest_at_k"][0]), _f(e["distortion_at_k"][-1]), _f(e["random_at_k"][-1]),
                   _f(e["nearest_at_k"][-1]), "yes" if e["below_random_at_every_k"] else "no"]
                  for name, e in m["mp"].items()]},
        {"type": "table", "caption": "Matching pursuit against random orders by model, zero infill "
                                     "(mean over maps and queries; each model's own regions): without "
                                     "measurements the buildings alone must explain the map",
         "columns": ["model", "at k=0", "MP k=1", "random k=1", f"MP k={k_last}", f"random k={k_last}",
                     "buildings chosen", "MP < random at every k"],
         "rows": [[_MODEL_NAMES.get(name, name), _f(e["distortion_at_0"]), _f(e["distortion_at_k"][0]),
                   _f(e["random_at_k"][0]), _f(e["distortion_at_k"][-1]), _f(e["random_at_k"][-1]),
                   f"{100 * e['building_share']:.0f} %", "yes" if e["below_random_at_every_k"] else "no"]
                  for name, e in [("phi", m["mp"]["zero"]), *m["mp_by_model"].items()]]},
        {"type": "table", "caption": "Sanity: rank of the planted building (darken query; paper: 1)",
         "columns": ["model", "infill", "ours", "paper"],
         "rows": [[_MODEL_NAMES.get(model, model), name, r, 1]
                  for model, ranks in m["sanity"]["ranks_by_model"].items() for name, r in ranks.items()]},
        *_physics_blocks(m),
        {"type": "text", "text": _reading(m)},
        {"type": "metrics", "path": "metrics.json", "caption": "results/radio/metrics.json"},
    ]
    write_json(out / "section.json", {"id": "radio", "title": "Radio maps: matching pursuit on a UNet",
                                      "group": "Studies", "order": 40, "blocks": blocks})
