"""Do the per-note concrete masks of `genex nsynth explain-notes` converge to a decision?

Issue 15, item 4: a converged concrete mask is bimodal (each keep probability near 0 or 1);
today's default (lr 0.5 on the logits, cosine, t 0.1, 150 steps, 2 draws, λ 5) leaves most of
them in between. This runs candidate schedules of :class:`genex.xai.RDEConcrete` on a
finished default-profile run (its features, classifier Φ and inpainting GAN; ``--run``, read
only), on the notes explain-notes explains (``--notes-per-family``), all at explain-notes'
cost (the same steps and draws, so the same time budget), and records for each:

* ``bimodal_share``: share of keep probabilities within 0.05 of 0 or 1 (the study's
  :func:`bimodal_share`, the number metrics.json reports as ``masks.bimodal_share``);
* ``objective``: the RDE objective ``E[D] + λ·‖s‖₁/C`` of the final keep probabilities,
  scored for every candidate on the same fixed draws (16 concrete masks at t 0.1 + GAN
  fills, seed 123), so candidates compare; lower = better optimised; also its distortion and
  rate, and the distortion of the masks rounded at ½ (``binarised_distortion``);
* ``faithfulness``: the deletion-curve points the evaluate step writes
  (``faithfulness.rde_concrete.keep_<k>``: mean distortion when the top k % of the mask is
  kept and the rest GAN-infilled, 8 draws), lower = more faithful;
* ``seconds`` of the optimisation (wall clock on this machine, which is shared: compare
  within one run of the script).

``--masks`` scores finished ``genex nsynth explain-notes`` outputs the same way (the
pipeline's own masks, e.g. the run's and one made with a new default), under
``explain_notes`` in the JSON, with the seconds explain-notes logged for both optimisers.

Usage: python benchmarks/bench_mask_bimodality.py [--run /work/vI] [--notes-per-family 10]
       [--candidates baseline lr2 ...] [--masks DIR ...] [--seed 1234]
       [--out benchmarks/results/mask_bimodality.json]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from genex.pipeline.io import write_json
from genex.studies.nsynth.explain import bimodal_share, generative_infiller, select_notes
from genex.studies.nsynth.metrics import deletion_curve
from genex.studies.nsynth.outputs import load_classifier, load_features, load_inpainter, load_masks
from genex.xai import ComponentMap, RDEConcrete
from genex.xai.rde import DEFAULTS
from genex.xai.target import Target

#: explain-notes' settings that every candidate shares (config/config.yaml nsynth.rde).
COMMON = dict(lam=5.0, steps=150, n_samples=2, init=0.5, temperature=0.1)

#: Candidate schedules: keyword arguments of RDEConcrete on top of COMMON.
CANDIDATES = {
    # the default before this benchmark (lr 0.5, cosine with 10 % warm-up, t 0.1 throughout)
    "baseline": dict(lr=0.5, schedule="cosine", warmup=0.1),
    # plain Adam at the same peak lr: does the cosine decay stop undecided logits too early?
    "constant_lr0.5": dict(lr=0.5, schedule="constant"),
    # the reverted nsynth setting (0.965, but kills planted components for good)
    "lr2": dict(lr=2.0, schedule="cosine", warmup=0.1),
    # temperature annealed geometrically from t_start to 0.1
    "lr0.5_t1": dict(lr=0.5, schedule="cosine", warmup=0.1, temperature_start=1.0),
    "lr1_t1": dict(lr=1.0, schedule="cosine", warmup=0.1, temperature_start=1.0),
    "lr2_t1": dict(lr=2.0, schedule="cosine", warmup=0.1, temperature_start=1.0),
    "lr2_t0.5": dict(lr=2.0, schedule="cosine", warmup=0.1, temperature_start=0.5),
    "lr4_t1": dict(lr=4.0, schedule="cosine", warmup=0.1, temperature_start=1.0),
}
KEEPS = (5, 10, 20)


def objective(model, infill, cmap, x, keep_prob, lam: float, draws: int = 16) -> dict:
    """The RDE objective of ``keep_prob`` on fixed draws (t 0.1, seed 123), per-note means."""
    judge = RDEConcrete(model, infill, cmap, lam=lam, temperature=0.1, n_samples=draws, steps=0)
    obj = judge.objective
    tgt = Target(None, x.shape[0])
    gen = torch.Generator().manual_seed(123)
    logits = torch.logit(keep_prob.clamp(1e-6, 1 - 1e-6))
    with torch.no_grad():
        ref = obj.reference(x, tgt)
        d, r = obj.loss(x, judge._sample(logits, gen), ref, tgt, gen)
    return {"objective": float((d + lam * r).mean()), "distortion": float(d.mean()),
            "rate": float(r.mean())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, default=Path("/work/vI"),
                    help="a finished default-profile run (read only)")
    ap.add_argument("--notes-per-family", type=int, default=10,
                    help="test notes per family (explain-notes' default: 10)")
    ap.add_argument("--candidates", nargs="*", default=list(CANDIDATES), choices=list(CANDIDATES))
    ap.add_argument("--masks", nargs="*", type=Path, default=[],
                    help="explain-notes output folders (masks.pt) to score the same way instead "
                         "of optimising: the pipeline's own masks")
    ap.add_argument("--draws", type=int, default=8, help="GAN draws of the deletion curve")
    ap.add_argument("--seed", type=int, default=1234,
                    help="seeds the mask and GAN draws (config/config.yaml seed: 1234)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/mask_bimodality.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    res = args.run / "results" / "nsynth"
    feats = load_features(res / "features")
    model = load_classifier(res / "classifier", torch.device("cpu"))
    inpainter = load_inpainter(res / "inpainter", torch.device("cpu"))
    test = [i for i, s in enumerate(feats["split"]) if s == "test"]
    local = select_notes(feats["family"][torch.tensor(test)].numpy(), args.notes_per_family,
                         len(feats["families"]))
    index = torch.tensor([test[i] for i in local])
    x = feats["x"][index]
    cmap = ComponentMap.identity(tuple(x.shape[1:]))
    infill = generative_infiller(inpainter, args.seed)

    out = {"run": str(args.run), "notes": int(len(index)), "common": COMMON,
           "library_defaults": {k: v for k, v in DEFAULTS.items()},
           "threads": args.threads, "cpu_count": os.cpu_count(), "candidates": {}}
    if args.out.exists():  # keep earlier candidates measured on the same notes
        old = json.loads(args.out.read_text())
        if old.get("notes") == out["notes"] and old.get("run") == out["run"]:
            out["candidates"] = old.get("candidates", {})
            out["explain_notes"] = old.get("explain_notes", {})
    for folder in args.masks:
        saved = load_masks(folder)
        if not torch.equal(saved["index"], index):
            raise SystemExit(f"{folder}: masks of other notes than --notes-per-family selects")
        keep = saved["rde_concrete"]
        notes = json.loads((folder / "notes.json").read_text())
        curve = deletion_curve(model, infill, x, {"m": keep}, [k / 100 for k in KEEPS],
                               args.draws, args.seed)["m"]
        row = {"folder": str(folder), "seed": args.seed, "seconds": notes.get("seconds"),
               "bimodal_share": round(bimodal_share(keep), 4),
               "kept_share": round(float((keep >= 0.5).float().mean()), 4),
               **{k: round(v, 4) for k, v in objective(model, infill, cmap, x, keep,
                                                        COMMON["lam"]).items()},
               "faithfulness": {f"keep_{k}": round(v, 4) for k, v in zip(KEEPS, curve)}}
        out.setdefault("explain_notes", {})[str(folder)] = row
        print(folder, json.dumps(row), flush=True)
        write_json(args.out, out)
    for name in args.candidates:
        kw = {**COMMON, **CANDIDATES[name]}
        explainer = RDEConcrete(model, infill, cmap, seed=args.seed, log_every=0, **kw)
        t0 = time.perf_counter()
        keep = explainer.attribute(x, None)
        seconds = time.perf_counter() - t0
        curve = deletion_curve(model, infill, x, {"m": keep}, [k / 100 for k in KEEPS],
                               args.draws, args.seed)["m"]
        row = {"settings": kw, "seed": args.seed, "seconds": round(seconds, 2),
               "bimodal_share": round(bimodal_share(keep), 4),
               "kept_share": round(float((keep >= 0.5).float().mean()), 4),
               **{k: round(v, 4) for k, v in objective(model, infill, cmap, x, keep,
                                                        COMMON["lam"]).items()},
               "binarised_distortion": round(float(explainer.binarised_distortion_.mean()), 4),
               "faithfulness": {f"keep_{k}": round(v, 4) for k, v in zip(KEEPS, curve)}}
        # keyed by seed too: the draws alone move the deletion curve by more than some
        # differences between candidates, so a second seed shows the spread
        out["candidates"][f"{name} seed {args.seed}"] = row
        print(name, json.dumps({k: v for k, v in row.items() if k != "settings"}), flush=True)
        write_json(args.out, out)


if __name__ == "__main__":
    main()
