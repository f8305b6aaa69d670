"""Does RDE's objective prefer the rows it keeps over the harmonic rows? A check for PESTO's
off-harmonic masks (docs/explain.md, "Where the mask sits").

Setting of `benchmarks/pitch_placement.py --span 0.04:0.145` (FluidSynth piano A3 and flute
E4, 0.15 s, `bands:513`, RDE concrete 60 steps, 2 draws, lambda 5, seed 0). For each model x
note x infiller, RDE's mask is computed as there, then several row sets are scored by the
objective RDE minimises with a binary mask: distortion (the span's frames, target bin,
`genex.xai.evaluate.mask_distortion`, --draws draws for random infillers) + lambda * rows / 513:

* `rde`: the rows RDE keeps (keep probability >= 0.5);
* `harmonics`, `harmonics_w2`: every row within 1 / 2 rows of h*f0 below Nyquist;
* `f0`: the fundamental's 3 rows;
* `rde_on_harmonics`, `rde_off_harmonics`: RDE's rows split by that test;
* `rde_plus_harmonics`: RDE's rows and the harmonic rows;
* `empty`: no row, for scale;
* `rde_pruned`: RDE's rows after one greedy backward pass on the binary objective: in order
  of rising keep probability, a row is dropped when that lowers distortion + lambda * rate
  (the same draws for every evaluation). Knows nothing of harmonics.

Each set also reports `agreement`: the share of draws whose predicted pitch (the bin of the
highest mean output over the span, of the model's own output) stays within half a semitone
of the clean one.

If `rde`'s objective is below `harmonics`', the objective itself prefers the off-harmonic
rows (the optimiser found what it was asked for); if above, the optimiser stopped short.
Also per case: the kept rows' distance (in rows) to the nearest harmonic centre.

Usage: python benchmarks/pitch_objective.py [--models pesto_pitch] [--infillers zero,noise,DIR]
           [--score output] [--out benchmarks/results/pitch_objective.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from helpers.pitch_notes import SR, midi_hz, render_notes  # noqa: E402
from pitch_placement import (CLIP_SECONDS, KEPT_AT, SCORES, SOFTMAX_MODELS, parse_span,  # noqa: E402
                             plain_target, scored_model)

from genex.audio import explain  # noqa: E402
from genex.audio.explain import SpectrogramModel, _resolve_target  # noqa: E402
from genex.audio.harmonics import harmonic_rows  # noqa: E402
from genex.xai.evaluate import mask_distortion, prune  # noqa: E402

LAM = 5.0


@torch.no_grad()
def agreement(plain_forward, e, x, mask, draws: int, span, midi_of_bin: torch.Tensor,
              index: int) -> float:
    """Share of infilled draws whose predicted pitch (the model's own outputs, highest mean
    over the span) is within half a semitone of bin ``index``'s."""
    from genex.audio.explain import _span_frames

    gen = torch.Generator().manual_seed(0)
    z = e.infiller(x, e.component_map.expand(mask), draws, generator=gen)
    out = plain_forward(z.reshape(draws, *x.shape[1:]))
    frames = _span_frames(out.shape[1], len(e.wave) / SR, span)
    predicted = midi_of_bin[out[:, frames].mean(1).argmax(-1)]
    return float(((predicted - midi_of_bin[index]).abs() <= 0.5).float().mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--models", default="pesto_pitch")
    ap.add_argument("--infillers", default="zero,noise")
    ap.add_argument("--span", type=parse_span, default=(0.04, 0.145))
    ap.add_argument("--score", choices=SCORES, default="output")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--draws", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/pitch_objective.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    notes = render_notes(CLIP_SECONDS)
    cases = []
    for name in args.models.split(","):
        loaded = scored_model(name, args.score)
        applies = args.score != "output" and name in SOFTMAX_MODELS
        plain = dataclasses.replace(loaded, module=getattr(loaded.module, "model", loaded.module))
        midi_of_bin = torch.as_tensor(plain.module.midi, dtype=torch.float32)
        for (program, midi), wave in notes.items():
            for infiller in args.infillers.split(","):
                start = time.perf_counter()
                target = plain_target(loaded, wave, args.span) if applies else "auto"
                e = explain(loaded, wave, SR, components="bands:513", method="rde-concrete",
                            infiller=infiller, target=target, n_samples=2, steps=args.steps,
                            seed=0, span=args.span, in_distribution=False)
                waves = torch.as_tensor(wave)[None]
                forward = SpectrogramModel(loaded, e.representation, waves).eval()
                plain_forward = SpectrogramModel(plain, e.representation, waves).eval()
                x = torch.as_tensor(e.x)[None]
                with torch.no_grad():
                    outputs = forward(x)
                _, weights, _ = _resolve_target(e.target["index"], outputs, "framewise", loaded,
                                                len(wave) / SR, args.span)
                freqs = e.representation.frequencies
                f0 = midi_hz(midi)
                n_harm = int((freqs[-1] + (freqs[1] - freqs[0]) / 2) // f0)
                owner = harmonic_rows(freqs, f0, n_harm, 1)
                owner2 = harmonic_rows(freqs, f0, n_harm, 2)
                kept = e.scores >= KEPT_AT
                on = owner > 0
                sets = {"rde": kept, "harmonics": on, "harmonics_w2": owner2 > 0,
                        "f0": owner == 1, "rde_on_harmonics": kept & on,
                        "rde_off_harmonics": kept & ~on, "rde_plus_harmonics": kept | on,
                        "empty": np.zeros_like(kept)}
                draws = 1 if e.infiller.deterministic else args.draws

                def objective_of(rows: np.ndarray) -> tuple[float, float]:
                    mask = torch.as_tensor(rows, dtype=torch.float32)[None]
                    d = float(mask_distortion(forward, e.infiller, e.component_map, x, mask, weights,
                                              n_samples=draws, seed=0)[0])
                    return d, d + LAM * rows.sum() / len(rows)

                # one backward pass, as when this benchmark was written (genex explain --prune
                # repeats the passes until one drops nothing)
                pruned = prune(forward, e.infiller, e.component_map, x, torch.as_tensor(kept)[None],
                               weights, lam=LAM, scores=torch.as_tensor(e.scores)[None],
                               n_samples=draws, seed=0, passes=1)[0].numpy().astype(bool)
                sets["rde_pruned"] = pruned
                scored = {}
                for set_name, rows in sets.items():
                    mask = torch.as_tensor(rows, dtype=torch.float32)[None]
                    d = objective_of(rows)[0]
                    n = int(rows.sum())
                    scored[set_name] = {"rows": n, "distortion": d,
                                        "objective": d + LAM * n / len(rows),
                                        "agreement": agreement(plain_forward, e, x, mask, draws, args.span,
                                                               midi_of_bin, int(e.target["index"]))}
                centres = np.array([int(np.argmin(np.abs(freqs - h * f0))) for h in range(1, n_harm + 1)])
                kept_rows = np.nonzero(kept)[0]
                distance = [int(np.abs(centres - r).min()) for r in kept_rows]
                case = {"model": name, "program": program, "midi": midi, "infiller": infiller,
                        "score": args.score if name in SOFTMAX_MODELS else "output",
                        "target": e.target["label"], "draws": draws, "sets": scored,
                        "kept_rows": kept_rows.tolist(),
                        "pruned_kept_share": float(on[pruned].mean()) if pruned.any() else None,
                        "pruned_rows": np.nonzero(pruned)[0].tolist(),
                        "kept_distance_to_harmonic": distance,
                        "kept_hz": [round(float(freqs[r]), 1) for r in kept_rows],
                        "kept_scores": [round(float(e.scores[r]), 3) for r in kept_rows],
                        "score_histogram": np.histogram(e.scores, bins=10, range=(0, 1))[0].tolist(),
                        "seconds": round(time.perf_counter() - start, 1)}
                cases.append(case)
                print(json.dumps({k: v for k, v in case.items() if k not in ("kept_rows", "kept_hz")}),
                      flush=True)
    args.out.write_text(json.dumps({"lam": LAM, "steps": args.steps, "span": list(args.span),
                                    "kept_at": KEPT_AT, "cases": cases}, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
