"""The radio study's explanations: matching pursuit per query and infill, the baseline orders,
the RDE optimisers on the same components, and the planted-building sanity check.

Results are plain JSON-able dicts (orders, boxes, curves) plus the arrays the figures need.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
from torch import nn

from genex.studies.radio.infill import draws_for, infill_name, make_infiller
from genex.studies.radio.models import BuildingsOnly
from genex.studies.radio.query import (
    QUERIES,
    box_weights,
    distortion_curve,
    nearest_order,
    query_box,
    radio_components,
    random_orders,
    ranking_order,
)
from genex.xai.batching import chunked_for_budget
from genex.xai.rde import RDEL1, MatchingPursuit, RDEConcrete
from genex.pipeline import progress


def pursue(phi: nn.Module, infiller, comps, x: torch.Tensor, box: tuple, k: int,
           batch_candidates: int, n_samples: int, seed: int) -> list[int]:
    """Matching pursuit's order (up to ``k`` components) for one input and region."""
    mp = MatchingPursuit(phi, infiller, comps.cmap, k=k, batch_candidates=batch_candidates,
                         n_samples=n_samples, seed=seed)
    order = mp.pursue(x, box_weights(box, tuple(x.shape[-2:]), x.device, comps.street)).order[0]
    return [int(c) for c in order if c >= 0]


def _pad(curve: list[float], k: int) -> list[float]:
    """Curves of maps with fewer than ``k`` components keep their last value."""
    return curve + [curve[-1]] * (k + 1 - len(curve))


def _rde_order(cls, phi, infiller, comps, x, box, k, params, n_samples, seed) -> list[int]:
    kw = dict(lam=float(params["lam"]), lr=float(params["lr"]), steps=int(params["steps"]),
              n_samples=n_samples, seed=seed, log_every=0)
    explainer = cls(phi, infiller, comps.cmap, **kw)
    scores = explainer.attribute(x, box_weights(box, tuple(x.shape[-2:]), x.device, comps.street))
    return ranking_order(scores[0], k)


def _device(net) -> torch.device:
    """Where ``net`` runs: its first parameter's or buffer's device; CPU for a model without
    either (a fixed function), which ``next(net.parameters())`` would not survive."""
    if isinstance(net, nn.Module):
        for t in itertools.chain(net.parameters(), net.buffers()):
            return t.device
    return torch.device("cpu")


def within_budget(net: nn.Module, channels: int, shape: tuple[int, int], params: dict) -> nn.Module:
    """``net`` running at most as many maps per forward as fit ``params["max_batch_mb"]``
    (MiB of activations, measured on one map; 0 or absent: every candidate x draw at once).
    At 256 x 256 with the paper's UNets one map's activations take tens of MB, so matching
    pursuit's 256 candidates x 8 draws in one forward would not fit a GPU; the draws are
    made for the whole batch before the forward, so the results do not depend on it."""
    budget = params.get("max_batch_mb")
    if not budget:
        return net
    return chunked_for_budget(net, (torch.zeros(1, channels, *shape, device=_device(net)),), budget)


def explain_one(phi: nn.Module, phi_gt: nn.Module, x: np.ndarray, params: dict, seed: int,
                keep_maps: bool) -> dict:
    """Every query x infill for one Φ input ``[3, H, W]``; curves for k = 0..K (wrap the
    models with :func:`within_budget` first to bound the memory of a forward)."""
    k_max = int(params["k"])
    xt = torch.from_numpy(x)[None].to(_device(phi))
    comps = radio_components(x)
    c = comps.cmap.n_components
    k = min(k_max, c)
    rng = np.random.default_rng(seed)
    out = {"components": c, "buildings": comps.n_buildings, "queries": {}}
    if keep_maps:
        with torch.no_grad():
            out["estimate"] = phi(xt)[0, 0].clamp(0, 1).cpu().numpy()
        out["building_labels"] = comps.building_labels
    for query in QUERIES:
        box = query_box(phi, xt, comps, query, int(params["roi"]))
        rec = {"box": list(box), "infills": {}}
        randoms = random_orders(c, k, int(params["random_orders"]), rng)
        nearest = nearest_order(comps, box, k)
        for p in params["sample_fractions"]:
            name, n = infill_name(p), draws_for(p, int(params["mc_samples"]))
            infiller = make_infiller(p, phi_gt, seed)
            order = pursue(phi, infiller, comps, xt, box, k, int(params["batch_candidates"]), n, seed)

            def curve(o: list[int]) -> list[float]:
                return _pad(distortion_curve(phi, infiller, comps, xt, box, o, k, n, seed + 1), k_max)

            item = {"order": order, "kinds": [comps.kinds[i] for i in order], "mp": curve(order),
                    "nearest": curve(nearest),
                    "random": np.mean([curve(o) for o in randoms], axis=0).tolist()}
            if p == params["rde"]["fraction"]:
                for opt, cls in (("concrete", RDEConcrete), ("l1", RDEL1)):
                    o = _rde_order(cls, phi, infiller, comps, xt, box, k, params["rde"], n, seed)
                    item[f"rde_{opt}"] = curve(o)
            if keep_maps:
                item["explained"] = _explained_map(phi, infiller, comps, xt, order, n, seed)
            rec["infills"][name] = item
        out["queries"][query] = rec
    out["by_model"] = _pursue_by_model(phi, phi_gt, x, params, seed, k_max, rng)
    return out


#: Models explained with zero infill beside Φ: there the buildings alone must explain the map.
BY_MODEL = ("phi_no_measurements", "phi_gt")


def _pursue_by_model(phi: nn.Module, phi_gt: nn.Module, x: np.ndarray, params: dict, seed: int,
                     k_max: int, rng: np.random.Generator) -> dict:
    """Matching pursuit against random orders, zero infill, for Φ without its measurements and
    for Φ_gt (buildings and TX), each on the region its own estimate picks per query."""
    no_meas = x.copy()
    no_meas[2] = 0.0
    xt = torch.from_numpy(no_meas)[None].to(_device(phi))
    comps = radio_components(no_meas)
    k = min(k_max, comps.cmap.n_components)
    infiller = make_infiller(0.0, phi_gt, seed)
    out = {}
    for name, model in (("phi_no_measurements", phi), ("phi_gt", BuildingsOnly(phi_gt))):
        out[name] = {}
        for query in QUERIES:
            box = query_box(model, xt, comps, query, int(params["roi"]))
            order = pursue(model, infiller, comps, xt, box, k, int(params["batch_candidates"]), 1, seed)
            randoms = random_orders(comps.cmap.n_components, k, int(params["random_orders"]), rng)

            def curve(o: list[int]) -> list[float]:
                return _pad(distortion_curve(model, infiller, comps, xt, box, o, k, 1, seed + 1), k_max)

            out[name][query] = {"box": list(box), "order": order, "kinds": [comps.kinds[i] for i in order],
                                "mp": curve(order), "random": np.mean([curve(o) for o in randoms], axis=0).tolist()}
    return out


@torch.no_grad()
def _explained_map(phi, infiller, comps, x, order, n_samples, seed) -> np.ndarray:
    """Φ's estimate from the chosen components and the infill (mean over draws) ``[H, W]``."""
    keep = torch.zeros(1, comps.cmap.n_components, device=x.device)
    keep[0, order] = 1.0
    gen = torch.Generator(device=x.device).manual_seed(seed + 2)
    z = infiller(x, comps.cmap.expand(keep), n_samples, generator=gen)
    return phi(z.reshape(-1, *x.shape[1:])).clamp(0, 1).mean(0)[0].cpu().numpy()


def explain_examples(phi: nn.Module, phi_gt: nn.Module, xs: np.ndarray, params: dict,
                     seed: int) -> list[dict]:
    """:func:`explain_one` for every example; the first ``figures`` keep their maps."""
    shape = tuple(xs.shape[-2:])
    phi, phi_gt = within_budget(phi, 3, shape, params), within_budget(phi_gt, 2, shape, params)
    results = []
    for i in progress(range(len(xs)), desc="radio explanations", unit="map"):
        results.append(explain_one(phi, phi_gt, xs[i], params, seed + i,
                                   keep_maps=i < int(params["figures"])))
    return results


def summarize(results: list[dict], params: dict) -> dict:
    """Mean curves per infill (over examples and queries) and per query; choice statistics."""
    names = [infill_name(p) for p in params["sample_fractions"]]
    summary = {}
    for name in names:
        items = {q: [r["queries"][q]["infills"][name] for r in results] for q in QUERIES}
        every = [it for q in QUERIES for it in items[q]]
        curves = {key: np.mean([it[key] for it in every], axis=0)
                  for key in every[0] if key in ("mp", "random", "nearest") or key.startswith("rde_")}
        entry = {"distortion_at_0": float(curves["mp"][0]),
                 "distortion_at_k": curves["mp"][1:].tolist(),
                 "random_at_k": curves["random"][1:].tolist(),
                 "nearest_at_k": curves["nearest"][1:].tolist(),
                 "below_random_at_every_k": bool(np.all(curves["mp"][1:] < curves["random"][1:])),
                 "below_nearest_at_every_k": bool(np.all(curves["mp"][1:] < curves["nearest"][1:]))}
        for key in curves:
            if key.startswith("rde_"):
                entry[f"{key}_at_k"] = curves[key][1:].tolist()
        entry["building_share"] = _share(every, "building")
        entry["first_is_building"] = float(np.mean([it["kinds"][:1] == ["building"] for it in every]))
        entry["by_query"] = {}
        for q in QUERIES:
            qc = {key: np.mean([it[key] for it in items[q]], axis=0) for key in ("mp", "random", "nearest")}
            entry["by_query"][q] = {"distortion_at_k": qc["mp"][1:].tolist(),
                                    "random_at_k": qc["random"][1:].tolist(),
                                    "nearest_at_k": qc["nearest"][1:].tolist(),
                                    "building_share": _share(items[q], "building")}
        summary[name] = entry
    return summary


def summarize_by_model(results: list[dict]) -> dict:
    """Per model of :data:`BY_MODEL`: mean matching-pursuit and random curves (zero infill,
    over examples and queries), whether MP is below random at every k, and what it chose."""
    summary = {}
    for name in BY_MODEL:
        every = [r["by_model"][name][q] for r in results for q in QUERIES]
        mp, rand = (np.mean([it[key] for it in every], axis=0) for key in ("mp", "random"))
        summary[name] = {"distortion_at_0": float(mp[0]), "distortion_at_k": mp[1:].tolist(),
                         "random_at_k": rand[1:].tolist(),
                         "below_random_at_every_k": bool(np.all(mp[1:] < rand[1:])),
                         "building_share": _share(every, "building"),
                         "first_is_building": float(np.mean([it["kinds"][:1] == ["building"] for it in every]))}
    return summary


def _share(items: list[dict], kind: str) -> float:
    kinds = [k for it in items for k in it["kinds"]]
    return float(np.mean([k == kind for k in kinds])) if kinds else 0.0


def planted_rank(phi: nn.Module, phi_gt: nn.Module, scene: dict, params: dict, seed: int) -> dict:
    """Matching pursuit on the planted scene (darken query on its box): the rank (1 = first)
    of the planted building per infill; ``k + 1`` when it is not chosen within k.

    ``ranks`` is Φ on the scene with its measurements (every infill); ``ranks_by_model`` adds,
    with zero infill, Φ without measurements and Φ_gt (buildings and TX only): there the
    buildings alone must explain the shadow.
    """
    x = scene["x"]
    shape = tuple(x.shape[-2:])
    phi, phi_gt = within_budget(phi, 3, shape, params), within_budget(phi_gt, 2, shape, params)
    comps = radio_components(x)
    label = int(comps.building_labels[scene["planted"]])
    if label == 0:
        raise ValueError("planted scene: the planted building was lost at this resolution")
    planted = label - 1
    out = {"components": comps.cmap.n_components, "buildings": comps.n_buildings, "ranks": {},
           "orders": {}, "ranks_by_model": {}}

    def rank(model, x_in, p) -> tuple[int, list[str]]:
        cm = radio_components(x_in)
        k = min(int(params["k"]), cm.cmap.n_components)
        xt = torch.from_numpy(x_in)[None].to(_device(phi))
        order = pursue(model, make_infiller(p, phi_gt, seed), cm, xt, tuple(scene["box"]), k,
                       int(params["batch_candidates"]), draws_for(p, int(params["mc_samples"])), seed)
        return (order.index(planted) + 1 if planted in order else int(params["k"]) + 1,
                [cm.kinds[i] + (" (planted)" if i == planted else "") for i in order])

    for p in params["sample_fractions"]:
        name = infill_name(p)
        out["ranks"][name], out["orders"][name] = rank(phi, x, p)
    out["ranks_by_model"]["phi"] = dict(out["ranks"])
    no_meas = x.copy()
    no_meas[2] = 0.0   # buildings come first among the components, so `planted` keeps its index
    out["ranks_by_model"]["phi_no_measurements"] = {"zero": rank(phi, no_meas, 0.0)[0]}
    out["ranks_by_model"]["phi_gt"] = {"zero": rank(BuildingsOnly(phi_gt), no_meas, 0.0)[0]}
    return out
