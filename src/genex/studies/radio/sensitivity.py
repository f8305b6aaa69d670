"""Building sensitivity: does a model's shadow of a building move as the simulator's does?

On ``maps`` test samples (spread over the test split), every building of the complete city
that the simulator says *alone* shadows a street region is removed in turn, at the source
resolution (1 px = 1 m) with :class:`~genex.studies.radio.render.CityPropagator`: its region
is the street pixels of the working resolution that brighten by at least ``threshold`` (on the
dataset's [0, 1] gain scale), and it counts when the region has at least ``min_pixels``
pixels. For each such building, on its region:

* the simulator's change (mean brightening) and each model's change when the building is
  dropped from its input (Φ_gt: complete buildings and TX; Φ without measurements: the same
  buildings, an empty measurement channel, so nothing but the buildings can tell it the
  shadow), as a ratio (model / simulator) and, over all buildings, a Spearman rank correlation;
* zero-infill matching pursuit's rank of that building (1 = first, ``k + 1`` = not chosen) on
  the ``roi`` box (at least 75 % street) where the simulator's change is largest, beside the
  simulator's own rank of it there (buildings ordered by how much their removal changes the
  box).

Per sample, the ``buildings_per_map`` largest such shadows (total brightening) are kept: the
models and matching pursuit are the costly part. Candidates are the buildings next to a pixel
the TX sees: a building out of its sight shadows
nothing the first-order paths reach.

Only maps whose gain this simulator reproduces are measured: on a RadioMapSeer folder (another
simulator's gain) the result says it was skipped and why, and the report repeats it; on a
radio-sim folder a mismatch is an error (code drift).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from genex.studies.radio.data import RadioMapSeer, gain_db_to_scaled
from genex.studies.radio.features import (
    building_components,
    downsample_buildings,
    downsample_gain,
    phi_gt_inputs,
    phi_inputs,
)
from genex.studies.radio.explain import _device, pursue
from genex.studies.radio.models import BuildingsOnly
from genex.studies.radio.query import best_box, radio_components
from genex.studies.radio.render import CityPropagator, Propagation
from genex.pipeline import progress
from genex.xai.infill import ZeroInfiller

DEFAULTS = {"maps": 4, "buildings_per_map": 3, "threshold": 0.1, "min_pixels": 4, "roi": 6, "k": 5,
            "batch_candidates": 128}


SKIPPED_REAL = ("skipped: the stored gain is not this simulator's (RadioMapSeer's comes from another one), "
                "and the shadow of each building is known only for the simulator that rendered the maps")
GAIN_TOLERANCE = 0.02  # PNG quantisation is 1/204 per pixel


def _simulator_gap(reader: RadioMapSeer, m: int, tx_id: int, resolution: int) -> float:
    """Largest difference between the stored gain and this simulator's, at the working resolution."""
    sample = reader.load(m, tx_id)
    city = sample["buildings"] > 0
    factor = city.shape[0] // resolution
    simulated = _simulated(city, reader.tx_position(m, tx_id), factor, dataset_propagation(reader.root))
    return float(np.abs(simulated - downsample_gain(sample["gain"], factor)).max())


def dataset_propagation(root: Path) -> Propagation:
    """The physics a radio-sim folder was rendered with (its genex.json), else the defaults."""
    from genex.pipeline import read_json

    info = Path(root) / "genex.json"
    params = read_json(info).get("provenance", {}).get("params", {}) if info.exists() else {}
    return Propagation.from_params(params.get("propagation"))


def _simulated(city: np.ndarray, tx: tuple[int, int], factor: int, prop: Propagation) -> np.ndarray:
    """The simulator's gain on the dataset scale, block-averaged to the working resolution."""
    gain = gain_db_to_scaled(CityPropagator(city, prop).gain_db(tx), city)
    return downsample_gain(gain, factor)


def _candidates(labels: np.ndarray, tx: tuple[int, int]) -> list[int]:
    """Buildings next to a pixel the TX sees (ids of ``labels``)."""
    from scipy.ndimage import binary_dilation

    seen = binary_dilation(CityPropagator(labels > 0).visible(tx) & (labels == 0), np.ones((3, 3), bool))
    return [int(i) for i in np.unique(labels[seen & (labels > 0)])]


@torch.no_grad()
def _estimate(model: nn.Module, x: np.ndarray) -> np.ndarray:
    out = model(torch.from_numpy(x)[None].to(_device(model)))[0, 0].clamp(0, 1)
    return out.cpu().numpy()


def _rank(model: nn.Module, x: np.ndarray, component: int, box: tuple, params: dict, seed: int) -> int:
    comps = radio_components(x)
    k = min(int(params["k"]), comps.cmap.n_components)
    xt = torch.from_numpy(x)[None].to(_device(model))
    order = pursue(model, ZeroInfiller(), comps, xt, box, k, int(params["batch_candidates"]), 1, seed)
    return order.index(component) + 1 if component in order else int(params["k"]) + 1


def sample_sensitivity(reader: RadioMapSeer, m: int, tx_id: int, resolution: int, phi: nn.Module,
                       phi_gt: nn.Module, params: dict, seed: int) -> list[dict]:
    """Every building that alone shadows a street region of map ``m`` lit by TX ``tx_id``."""
    sample = reader.load(m, tx_id)
    city = sample["buildings"] > 0
    labels, _ = building_components(city)
    tx = reader.tx_position(m, tx_id)
    factor = city.shape[0] // resolution
    prop = dataset_propagation(reader.root)
    base = _simulated(city, tx, factor, prop)
    gap = float(np.abs(base - downsample_gain(sample["gain"], factor)).max())
    if gap > GAIN_TOLERANCE:
        raise ValueError(f"{reader.root}: map {m} TX {tx_id}: the stored gain differs from this "
                         f"simulator's by up to {gap:.3f} (rendered by other code?)")
    complete = downsample_buildings(city, factor)
    street = complete == 0
    tx_w = np.array([tx[0] // factor, tx[1] // factor])
    roi = int(params["roi"])
    empty = np.zeros((1, *complete.shape), dtype=np.float32)
    x_phi = phi_inputs(complete[None], tx_w[None], empty, empty)[0]
    x_gt = phi_gt_inputs(complete[None], tx_w[None])[0]
    gt_as_phi = BuildingsOnly(phi_gt)
    models = {"phi_gt": (phi_gt, x_gt), "phi_no_measurements": (phi, x_phi)}
    before = {name: _estimate(model, x) for name, (model, x) in models.items()}
    changes, removed = {}, {}
    for b in _candidates(labels, tx):
        changes[b] = _simulated(city & (labels != b), tx, factor, prop) - base
        removed[b] = downsample_buildings(city & (labels != b), factor)
    shadows = {}
    for b, change in changes.items():
        region = street & (change >= float(params["threshold"]))
        if region.sum() >= int(params["min_pixels"]):
            shadows[b] = region
    # the largest shadows (total brightening) first: the model and MP work is the costly part
    ranked = sorted(shadows, key=lambda b: -float(changes[b][shadows[b]].sum()))
    comp_labels = radio_components(x_phi).building_labels
    found = []
    for b in ranked[:int(params["buildings_per_map"])]:
        change, region = changes[b], shadows[b]
        rec = {"map": int(m), "tx": int(tx_id), "building": b, "pixels": int(region.sum()),
               "simulator": float(change[region].mean())}
        for name, (model, x) in models.items():
            x_without = x.copy()
            x_without[0] = removed[b]
            rec[name] = float((_estimate(model, x_without) - before[name])[region].mean())
        box = best_box(np.where(region, change, 0.0), roi, street)
        r0, c0, r1, c1 = box
        in_box = {o: float(c[r0:r1, c0:c1][street[r0:r1, c0:c1]].mean()) for o, c in changes.items()}
        rec["box"] = list(box)
        rec["simulator_rank"] = 1 + sum(v > in_box[b] for v in in_box.values())
        # the building's component at the working resolution (it may merge with a neighbour
        # closer than a working pixel, or vanish when it is smaller than one)
        gone = (complete > 0) & (removed[b] == 0)
        hit = comp_labels[gone]
        hit = hit[hit > 0]
        rec["visible_at_resolution"] = bool(len(hit))
        if len(hit):
            component = int(np.bincount(hit).argmax()) - 1
            rec["mp_rank"] = {"phi_gt": _rank(gt_as_phi, x_phi, component, box, params, seed),
                              "phi_no_measurements": _rank(phi, x_phi, component, box, params, seed)}
        found.append(rec)
    return found


def _ratio_stats(records: list[dict], model: str, k: int) -> dict:
    from scipy.stats import spearmanr

    sim = np.array([r["simulator"] for r in records])
    mod = np.array([r[model] for r in records])
    ratio = mod / sim
    rho = float(spearmanr(mod, sim).statistic) if len(records) >= 3 and np.ptp(mod) > 0 else None
    ranks = [r["mp_rank"][model] for r in records if "mp_rank" in r]
    return {"ratio_median": float(np.median(ratio)), "ratio_mean": float(np.mean(ratio)),
            "change_mean": float(np.mean(mod)), "spearman": rho,
            "mp_rank_median": float(np.median(ranks)) if ranks else None,
            "mp_first": float(np.mean([r == 1 for r in ranks])) if ranks else None,
            "mp_in_top_k": float(np.mean([r <= k for r in ranks])) if ranks else None}


def building_sensitivity(root: Path, simulator: str, test_ids: np.ndarray, resolution: int,
                         phi: nn.Module, phi_gt: nn.Module, params: dict, seed: int) -> dict:
    """The metric over ``params['maps']`` test samples spread over ``test_ids`` (rows of
    (map, tx, level, version)); per-building records and a summary per model."""
    params = {**DEFAULTS, **params}
    reader = RadioMapSeer(root, simulator=simulator)
    n = len(test_ids)
    picks = sorted({int(i) for i in np.linspace(0, n - 1, min(int(params["maps"]), n)).round()})
    if picks and not reader.embedded:
        # the shadows come from genex's simulator, so they are only the truth where it rendered
        # the gain; RadioMapSeer's comes from another simulator (issue 16's paper run)
        m, tx_id = int(test_ids[picks[0]][0]), int(test_ids[picks[0]][1])
        gap = _simulator_gap(reader, m, tx_id, resolution)
        if gap > GAIN_TOLERANCE:
            reason = f"{SKIPPED_REAL} (map {m} TX {tx_id}: up to {gap:.3f} apart)"
            return {"params": params, "summary": {"buildings": 0, "samples": 0, "skipped": reason}, "buildings": []}
    records = []
    for i in progress(picks, desc="radio building sensitivity", unit="map"):
        m, tx_id = int(test_ids[i][0]), int(test_ids[i][1])
        records += sample_sensitivity(reader, m, tx_id, resolution, phi, phi_gt, params, seed)
    summary = {"buildings": len(records), "samples": len(picks),
               "simulator_change_mean": float(np.mean([r["simulator"] for r in records])) if records else None,
               "simulator_first": float(np.mean([r["simulator_rank"] == 1 for r in records])) if records else None}
    if records:
        for model in ("phi_gt", "phi_no_measurements"):
            summary[model] = _ratio_stats(records, model, int(params["k"]))
    return {"params": params, "summary": summary, "buildings": records}
