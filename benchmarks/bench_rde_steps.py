"""How many RDE steps the converging (cosine) schedule needs on real nsynth data.

Picks the paper profile's step counts (config/paper.yaml ``nsynth.rde.steps`` and
``class_steps``) from measurements on a finished default-profile run (its features,
classifier Φ and inpainting GAN; ``--run``, read only):

* **per note** (explain-notes): one test note per family, RDEConcrete with the paper's λ,
  temperature and draws. For each budget N the cosine schedule is run from scratch (its decay
  depends on N) and its objective is evaluated with fixed draws (64 masks + GAN fills, the
  same for every run, so runs compare). Converged = within 1 % of a run 20× longer than the
  largest budget (``--reference-steps``). Beside it, the paper's plain Adam at lr 1e-5: measured for
  ``--paper-steps`` steps, and a *proxy* of its 10⁶ steps: constant Adam with the same
  ``lr·steps`` (so the same largest possible move of every logit) at lr 1e-2 for 1,000
  steps — a proxy, marked as such: 10⁶ steps do not fit a CPU.
* **per class** (explain-classes' concrete cross-check): with two components (whole
  magnitude, whole phase) the objective under Bernoulli masks is multilinear in the keep
  probabilities, so it is evaluated *exactly* from the four vertex distortions (the
  study's :func:`vertex_distortions`); converged = within 1 % of the best vertex's
  objective. Budgets of the cosine schedule at the default ``class_lr`` and the paper's
  constant lr 1e-4 for ``--paper-steps`` (no proxy needed: the optimum is exact).

Usage: python benchmarks/bench_rde_steps.py [--run /work/vF] [--out benchmarks/results/rde_steps.json]
       [--budgets 50 100 200] [--reference-steps 4000] [--class-budgets 50 100 200 400]
       [--part notes|classes|both] [--quick]
       python benchmarks/bench_rde_steps.py --merge A.json B.json --out merged.json   (parallel parts)
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from genex.pipeline.io import write_json
from genex.studies.nsynth.explain import VERTICES, generative_infiller, select_notes, vertex_distortions
from genex.studies.nsynth.outputs import load_classifier, load_features, load_inpainter
from genex.xai import ComponentMap, RDEConcrete
from genex.xai.target import Target

#: The paper's values (config/paper.yaml nsynth.rde).
PAPER = dict(lam=50.0, temperature=0.1, n_samples=8, init=0.5, lr=1e-5, steps=1_000_000,
             class_lam=30.0, class_lr=1e-4, class_steps=200_000)


def note_objective(explainer: RDEConcrete, x, keep_prob, draws: int = 64) -> float:
    """Mean over notes of the RDE objective of keep probabilities ``keep_prob`` under fixed
    draws (seed 123 for masks and fills: every run is scored on the same noise)."""
    obj = explainer.objective
    gen = torch.Generator().manual_seed(123)
    logits = torch.logit(keep_prob.clamp(1e-6, 1 - 1e-6))
    tgt = Target(None, x.shape[0])
    saved, obj.n_samples = obj.n_samples, draws
    try:
        with torch.no_grad():
            ref = obj.reference(x, tgt)
            keep = explainer._sample(logits, gen)
            d, r = obj.loss(x, keep, ref, tgt, gen)
    finally:
        obj.n_samples = saved
    return float((d + obj.lam * r).mean())


def per_note(model, inpainter, x, budgets, reference_steps: int, paper_steps: int, seed: int) -> dict:
    cmap = ComponentMap.identity(tuple(x.shape[1:]))
    infill = generative_infiller(inpainter, seed)

    def run(steps, lr, schedule, warmup=0.1):
        e = RDEConcrete(model, infill, cmap, lam=PAPER["lam"], temperature=PAPER["temperature"],
                        lr=lr, steps=steps, n_samples=PAPER["n_samples"], init=PAPER["init"],
                        seed=seed, log_every=0, schedule=schedule, warmup=warmup)
        t0 = time.perf_counter()
        keep = e.attribute(x, None)
        seconds = time.perf_counter() - t0
        return {"objective": note_objective(e, x, keep), "seconds": seconds,
                "bimodal_share": float(((keep <= 0.05) | (keep >= 0.95)).float().mean()),
                "kept_share": float((keep >= 0.5).float().mean())}

    out = {"notes": int(x.shape[0]), "lam": PAPER["lam"], "n_samples": PAPER["n_samples"],
           "temperature": PAPER["temperature"], "lr_cosine": 0.5, "warmup": 0.1}
    out["initial_objective"] = run(0, 0.5, "cosine")["objective"]
    if reference_steps:
        out["reference"] = {"steps": reference_steps, **run(reference_steps, 0.5, "cosine")}
    out["cosine"] = {str(n): run(n, 0.5, "cosine") for n in budgets}
    if paper_steps:
        out["paper_constant_lr_1e-5"] = {"steps": paper_steps, **run(paper_steps, PAPER["lr"], "constant")}
        proxy_steps = 1000
        proxy_lr = PAPER["lr"] * PAPER["steps"] / proxy_steps
        out["paper_proxy_same_lr_x_steps"] = {"steps": proxy_steps, "lr": proxy_lr,
                                              "note": "PROXY of 10^6 steps at lr 1e-5 (same lr*steps)",
                                              **run(proxy_steps, proxy_lr, "constant")}
    return criteria(out)


def criteria(out: dict) -> dict:
    """The first cosine budget within 1 % of the long reference run (and of the proxy of
    the paper's constant schedule), where those were run."""
    budgets = sorted(int(n) for n in out.get("cosine", {}))
    for key, name in (("reference", "cosine_steps_to_1pct"),
                      ("paper_proxy_same_lr_x_steps", "cosine_steps_to_paper_proxy")):
        if key in out:
            ref = out[key]["objective"]
            within = [n for n in budgets if out["cosine"][str(n)]["objective"] <= ref + 0.01 * abs(ref)]
            out[name] = within[0] if within else None
    return out


def exact_class_objective(keep_prob, vertex_dist, lam: float):
    """``Σ_families E_{s ~ Bernoulli(p)}[D(s)] + λ·(p_mag + p_phase)/2`` from the four vertex
    distortions ``[F, 4]`` (exact: the objective is multilinear in ``p``)."""
    pm, pp = keep_prob[:, 0], keep_prob[:, 1]
    weight = {(0, 0): (1 - pm) * (1 - pp), (1, 0): pm * (1 - pp), (0, 1): (1 - pm) * pp, (1, 1): pm * pp}
    dist = sum(weight[v] * vertex_dist[:, i] for i, v in enumerate(VERTICES))
    return float((dist + lam * (pm + pp) / 2).sum())


def per_class(model, inpainter, x, y, n_families, budgets, class_lr, paper_steps, seed) -> dict:
    infill = generative_infiller(inpainter, seed)
    per_note_dist = vertex_distortions(model, infill, x, 64, seed)  # [4, B]
    vdist = torch.stack([per_note_dist[:, y == f].mean(1) for f in range(n_families)])  # [F, 4]
    lam = PAPER["class_lam"]
    best = float(sum(min(float(vdist[f, i]) + lam * sum(v) / 2 for i, v in enumerate(VERTICES))
                     for f in range(n_families)))
    cmap = ComponentMap.along_axis(tuple(x.shape[1:]), 0)

    def run(steps, lr, schedule):
        e = RDEConcrete(model, infill, cmap, lam=lam, temperature=PAPER["temperature"], lr=lr,
                        steps=steps, n_samples=PAPER["n_samples"], init=PAPER["init"], seed=seed,
                        log_every=0, schedule=schedule, warmup=0.1)
        t0 = time.perf_counter()
        probs = e.attribute(x, None, groups=y, n_groups=n_families)
        return {"objective": exact_class_objective(probs, vdist, lam),
                "seconds": time.perf_counter() - t0,
                "max_distance_from_vertex": float(torch.minimum(probs, 1 - probs).max())}

    out = {"notes": int(x.shape[0]), "lam": lam, "optimum_objective": best,
           "initial_objective": exact_class_objective(torch.full((n_families, 2), 0.5), vdist, lam),
           "lr_cosine": class_lr}
    out["cosine"] = {str(n): run(n, class_lr, "cosine") for n in budgets}
    within = [n for n in budgets if out["cosine"][str(n)]["objective"] <= best + 0.01 * abs(best)]
    out["cosine_steps_to_1pct"] = within[0] if within else None
    if paper_steps:
        out["paper_constant_lr_1e-4"] = {"steps": paper_steps, **run(paper_steps, PAPER["class_lr"], "constant")}
    return out


def merge(paths: list[Path]) -> dict:
    """One result from several ``--part``/budget runs on the same notes (parallel processes)."""
    parts = [json.loads(Path(p).read_text()) for p in paths]
    merged = {k: v for k, v in parts[0].items() if k not in ("per_note", "per_class")}
    merged["merged_from"] = [str(p) for p in paths]
    merged["seconds"] = max(p.get("seconds", 0) for p in parts)
    for key in ("per_note", "per_class"):
        found = [p[key] for p in parts if key in p]
        if found:
            combined = {}
            for one in found:
                cos = {**combined.get("cosine", {}), **one.get("cosine", {})}
                combined.update(one)
                combined["cosine"] = cos
            if key == "per_class":
                best, cos = combined["optimum_objective"], combined["cosine"]
                within = sorted(int(n) for n in cos if cos[n]["objective"] <= best + 0.01 * abs(best))
                combined["cosine_steps_to_1pct"] = within[0] if within else None
            merged[key] = criteria(combined) if key == "per_note" else combined
    return merged


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="/work/vF", help="a finished default-profile run (read only)")
    ap.add_argument("--out", default="benchmarks/results/rde_steps.json")
    ap.add_argument("--budgets", type=int, nargs="*", default=[50, 100, 200])
    ap.add_argument("--class-budgets", type=int, nargs="+", default=[50, 100, 200, 400])
    ap.add_argument("--class-lr", type=float, default=0.2, help="cosine peak lr (default profile's)")
    ap.add_argument("--class-notes", type=int, default=2, help="notes per family, per-class query")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: a shared, loaded machine)")
    ap.add_argument("--reference-steps", type=int, default=4000,
                    help="the long cosine run (20x the largest budget; 0: not run)")
    ap.add_argument("--notes", type=int, default=11, help="per-note test notes (spread over the families)")
    ap.add_argument("--paper-steps", type=int, default=1000,
                    help="steps of the paper's constant lr actually run (10^6 do not fit a CPU; 0: neither it nor the proxy)")
    ap.add_argument("--class-paper-steps", type=int, default=200,
                    help="steps of the paper's constant lr 1e-4 run for the per-class query")
    ap.add_argument("--part", choices=("notes", "classes", "both"), default="both",
                    help="measure the per-note or the per-class query only (e.g. in two processes)")
    ap.add_argument("--merge", type=Path, nargs="+", help="merge these outputs into --out and stop")
    ap.add_argument("--quick", action="store_true", help="tiny budgets: checks the script runs")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.merge:
        write_json(args.out, merge(args.merge))
        return
    if args.quick:
        args.budgets, args.class_budgets, args.reference_steps, args.paper_steps = [2, 4], [2, 4], 8, 3
        args.class_paper_steps = 3
        args.notes, args.class_notes = 2, 1
    os.environ.setdefault("GENEX_NO_PROGRESS", "1")
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    nsynth = Path(args.run) / "results" / "nsynth"
    feats = load_features(nsynth / "features")
    model = load_classifier(nsynth / "classifier")
    inpainter = load_inpainter(nsynth / "inpainter")
    test = torch.tensor([i for i, s in enumerate(feats["split"]) if s == "test"])
    fam = feats["family"][test]
    n_families = len(feats["families"])
    t0 = time.perf_counter()
    results = {"run": str(args.run), "device": "cpu", "threads": torch.get_num_threads(),
               "paper": PAPER, "criterion": "objective within 1 % of the reference"}
    if args.part in ("notes", "both"):
        idx = test[torch.as_tensor(select_notes(fam.numpy(), 1, n_families))]
        idx = idx[torch.linspace(0, len(idx) - 1, min(args.notes, len(idx))).round().long()]
        results["per_note"] = per_note(model, inpainter, feats["x"][idx], args.budgets,
                                       args.reference_steps, args.paper_steps, args.seed)
        print(json.dumps(results["per_note"], indent=1), flush=True)
    if args.part in ("classes", "both"):
        idx = test[torch.as_tensor(select_notes(fam.numpy(), args.class_notes, n_families))]
        results["per_class"] = per_class(model, inpainter, feats["x"][idx], feats["family"][idx], n_families,
                                         args.class_budgets, args.class_lr, args.class_paper_steps, args.seed)
        print(json.dumps(results["per_class"], indent=1), flush=True)
    results["seconds"] = time.perf_counter() - t0
    results["loadavg"] = os.getloadavg()
    write_json(args.out, results)


if __name__ == "__main__":
    main()
