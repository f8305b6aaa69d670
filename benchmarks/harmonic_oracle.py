"""Can a mask on the harmonics alone keep a pitch model's decision? An oracle test of the
hypothesis behind docs/explain.md's "Where the mask sits": forward passes only, no optimisation.

Setting (that of benchmarks/pitch_placement.py): CREPE tiny (`genex.audio.zoo:torchcrepe_pitch`)
and PESTO (`genex.audio.zoo:pesto_pitch`) on the FluidSynth piano A3 (program 0, MIDI 57) and
flute E4 (program 73, MIDI 64), 0.15 s each (tests/helpers/pitch_notes.py), explained in the
STFT the models declare (n_fft 1024, hop 160, 16 kHz) with `bands:513` (one component per
frequency row), the target `genex explain` picks (`auto`: the pitch bin with the highest mean
output over the clip) and the library's zero and noise infillers (`make_infiller`, seed 0).
The model, representation, target, component map and infiller are built by the same functions
`genex.audio.explain` uses, and each row set is scored by the distortion RDE minimises
(`Target.sq_error` on infilled draws, as `genex.xai.rde.RateDistortion.distortion`:
½ Σ_frames w (Φ(x) − Φ(z))² on the target bin, w = 1/frames), also checked against
`genex.xai.evaluate.mask_distortion` for the harmonic set.

For every model × note × infiller, the rows kept (all others infilled):

* `all`: every row (the reference; 0 with zero fill, the noise-free input);
* `harmonics`: the rows within one row of h·f0 for every harmonic h below Nyquist, f0 the
  note's MIDI pitch (`genex.audio.harmonics.harmonic_rows`, as `harmonic_placement` counts
  "on a harmonic");
* `f0`: the fundamental's rows only;
* `random`: 20 random row sets of the harmonic set's size (seeds 0..19): mean and best;
* `harmonics_w2`, `harmonics_w3`: the same within two / three rows of a harmonic (a Hann
  window's main lobe spreads a partial over about ±2 rows of this STFT);
* `top_energy`: as many rows as the harmonic set, those of highest clean-spectrum energy;
* `harmonics+K`: the harmonic rows plus the K off-harmonic rows of highest clean energy
  (K = 10, 40, 160): does non-harmonic energy restore the decision?
* `all_but_harmonics`: every row except the harmonic ones (is the decision still there
  without them?);
* `empty`: no row (everything infilled), for scale.

(The rows RDE kept in benchmarks/results/pitch_placement_annealed.json are not recorded there
— only shares and counts — so that comparison is left out.)

Each set reports the distortion (mean over draws; noise: --draws draws, the same draws for
every set), split into the part from the frames whose clean prediction is the clip's pitch and
the part from the other frames (the onset or the last, half-empty frame, where the model hears
another pitch) and frame by frame, the target's score (the mean output on the target bin: CREPE a logit, PESTO a
log-probability), the predicted pitch in MIDI of each draw (the bin of highest mean output
over the clip) and the share of draws whose prediction stays within 0.5 semitone of the clean
prediction.

Usage: nice -n 19 python benchmarks/harmonic_oracle.py [--draws 8] [--random-sets 20]
           [--out benchmarks/results/harmonic_oracle.json] [--markdown JSON]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from helpers.pitch_notes import SR, midi_hz, render_notes  # noqa: E402

from genex.audio.components import parse_components  # noqa: E402
from genex.audio.explain import SpectrogramModel, _resolve_target, make_infiller  # noqa: E402
from genex.audio.harmonics import harmonic_rows  # noqa: E402
from genex.audio.models import load_model  # noqa: E402
from genex.audio.representations import make_representation  # noqa: E402
from genex.pipeline.io import atomic_file  # noqa: E402
from genex.xai.evaluate import mask_distortion  # noqa: E402
from genex.xai.rde import RateDistortion  # noqa: E402
from genex.xai.target import Target  # noqa: E402

CLIP_SECONDS = 0.15
WIDTH_BINS = 1
EXTRA_K = (10, 40, 160)
WIDER = (2, 3)  # wider harmonic sets: Hann leakage spreads a partial over about ±2 rows
NOTE_NAMES = {(0, 57): "piano A3", (73, 64): "flute E4"}
MODEL_NAMES = {"torchcrepe_pitch": "CREPE tiny", "pesto_pitch": "PESTO"}
CHUNK = 32  # rows per forward


def setting(name: str, wave: np.ndarray):
    """Model, representation, x, forward, target weights, component map: as explain_many builds them."""
    loaded = load_model(f"genex.audio.zoo:{name}", "cpu")
    kind = loaded.input_kind or "waveform"
    rep_kw = {"n_fft": 512, "hop": 128, **loaded.options}
    rep_kw.pop("n_mels", None)
    representation = make_representation(kind, loaded.sample_rate or SR, **rep_kw)
    waves = torch.as_tensor(wave)[None]
    x = representation.analyse(waves)
    forward = SpectrogramModel(loaded, representation, waves).eval()
    with torch.no_grad():
        outputs = forward(x)
    _, weights, described = _resolve_target("auto", outputs, loaded.output or "framewise", loaded,
                                            waves.shape[-1] / SR, None)
    cmap = parse_components("bands:513", representation, None, n_frames=x.shape[-1],
                            waves=[wave])
    return loaded, representation, x, forward, weights, described[0], cmap


@torch.no_grad()
def score_sets(forward, infiller, cmap, x, weights, midi_of_bin, clean_midi, sets, n_draws, seed):
    """Per row set: distortion, target score, predicted MIDI per draw, agreement; the same
    draws for every set (the generator restarts at ``seed`` for each)."""
    target = Target(weights, 1)
    clean = forward(x)
    reference = target.select(clean)
    # frames whose own clean prediction is the clip's pitch: the distortion splits into their
    # part and the rest's (onset / edge frames where the model hears another pitch)
    index = int(weights[0].sum(0).argmax())
    agreeing = torch.as_tensor(np.abs(midi_of_bin[clean[0].argmax(-1).numpy()] - clean_midi) <= 0.5)
    results = []
    for rows in sets:
        keep = torch.zeros(1, cmap.n_components)
        keep[0, torch.as_tensor(rows, dtype=torch.long)] = 1.0
        gen = torch.Generator().manual_seed(seed)
        z = infiller(x, cmap.expand(keep), n_draws, generator=gen).reshape(n_draws, *x.shape[1:])
        out = torch.cat([forward(z[s: s + CHUNK]) for s in range(0, n_draws, CHUNK)])
        distortion = target.sq_error(out, reference)
        score = target.score(out)
        predicted = midi_of_bin[out.mean(1).argmax(-1).numpy()]
        per_frame = 0.5 * weights[0, :, index] * (out[:, :, index] - clean[:, :, index]).square()
        results.append({"n_rows": len(rows),
                        "distortion": float(distortion.mean()),
                        "distortion_agreeing_frames": float(per_frame[:, agreeing].sum(1).mean()),
                        "distortion_other_frames": float(per_frame[:, ~agreeing].sum(1).mean()),
                        "distortion_per_frame": [round(float(v), 6) for v in per_frame.mean(0)],
                        "target_score": float(score.mean()),
                        "predicted_midi": [round(float(m), 2) for m in predicted],
                        "agreement": float(np.mean(np.abs(predicted - clean_midi) <= 0.5))})
    return results


def summary_of_random(results: list[dict], sets: list[np.ndarray], owner: np.ndarray) -> dict:
    d = np.array([r["distortion"] for r in results])
    best = int(np.argmin(d))
    f0_centre = int(np.nonzero(owner == 1)[0].mean().round())  # the middle of f0's rows
    return {"sets": [{"distortion": r["distortion"], "agreement": r["agreement"],
                      "holds_f0_centre_row": bool(f0_centre in rows),
                      "on_harmonic": int((owner[rows] > 0).sum())}
                     for r, rows in zip(results, sets)],
            "n_sets": len(results), "n_rows": results[0]["n_rows"],
            "distortion_mean": float(d.mean()), "distortion_median": float(np.median(d)),
            "distortion_best": float(d[best]), "distortion_worst": float(d.max()),
            "agreement_mean": float(np.mean([r["agreement"] for r in results])),
            "agreement_best_set": results[best]["agreement"],
            "predicted_midi_best_set": results[best]["predicted_midi"],
            "sets_with_full_agreement": int(sum(r["agreement"] == 1.0 for r in results))}


def markdown(data: dict) -> str:
    # the wider harmonic sets and all-but-harmonics stay in the JSON (the text quotes them)
    cols = ["empty", "harmonics", "f0", "random", "top_energy"] + [f"harmonics+{k}" for k in EXTRA_K]
    lines = ["| model | note | infiller | harmonic rows | " + " | ".join(
                 "random (mean / median / best)" if c == "random" else c for c in cols) + " |",
             "|---|---|---|---|" + "---|" * len(cols)]
    # distortion (share of draws whose predicted pitch stays within 0.5 semitone); all rows: 0

    def cell(r):
        return f"{r['distortion']:.3g} ({r['agreement']:.2g})"

    for case in data["cases"]:
        s = case["sets"]
        cells = []
        for c in cols:
            if c == "random":
                r = s["random"]
                cells.append(f"{r['distortion_mean']:.3g} / {r['distortion_median']:.3g} / "
                             f"{r['distortion_best']:.3g} "
                             f"({r['agreement_mean']:.2g})")
            else:
                cells.append(cell(s[c]))
        lines.append(f"| {MODEL_NAMES[case['model']]} | {NOTE_NAMES[(case['program'], case['midi'])]} | "
                     f"{case['infiller']} | {s['harmonics']['n_rows']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--models", default="torchcrepe_pitch,pesto_pitch")
    ap.add_argument("--infillers", default="zero,noise")
    ap.add_argument("--draws", type=int, default=8, help="noise draws per row set (default 8)")
    ap.add_argument("--random-sets", type=int, default=20, help="random row sets (default 20)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--markdown", type=Path, metavar="JSON",
                    help="print docs/explain.md's table from this output and stop")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/harmonic_oracle.json"))
    args = ap.parse_args()
    if args.markdown:
        print(markdown(json.loads(args.markdown.read_text())))
        return
    torch.set_num_threads(args.threads)
    start_all = time.perf_counter()
    notes = render_notes(CLIP_SECONDS)
    cases = []
    for name in args.models.split(","):
        for (program, midi), wave in notes.items():
            loaded, representation, x, forward, weights, described, cmap = setting(name, wave)
            midi_of_bin = np.asarray(loaded.module.midi, dtype=np.float64)
            clean_midi = float(midi_of_bin[described["index"]])
            freqs = representation.frequencies
            top = freqs[-1] + (freqs[-1] - freqs[-2]) / 2
            owner = harmonic_rows(freqs, midi_hz(midi), max(1, int(top // midi_hz(midi))), WIDTH_BINS)
            # rows from the nearest harmonic's centre row (for where the added rows lie)
            centres = np.array([int(np.argmin(np.abs(freqs - h * midi_hz(midi))))
                                for h in range(1, int(top // midi_hz(midi)) + 1)])
            distance = np.abs(np.arange(len(freqs))[:, None] - centres[None]).min(1)
            harmonic = np.nonzero(owner > 0)[0]
            energy = x[0].square().sum(-1).numpy()  # clean-spectrum energy of each row
            off = np.array([r for r in np.argsort(-energy, kind="stable") if owner[r] == 0])
            n_rows = len(freqs)
            n_harm = max(1, int(top // midi_hz(midi)))
            wider = {f"harmonics_w{w}": np.nonzero(harmonic_rows(freqs, midi_hz(midi), n_harm, w) > 0)[0]
                     for w in WIDER}
            named = {"all": np.arange(n_rows), "harmonics": harmonic,
                     "f0": np.nonzero(owner == 1)[0], **wider,
                     "top_energy": np.argsort(-energy, kind="stable")[: len(harmonic)],
                     **{f"harmonics+{k}": np.concatenate([harmonic, off[:k]]) for k in EXTRA_K},
                     "all_but_harmonics": np.nonzero(owner == 0)[0],
                     "empty": np.array([], dtype=np.int64)}
            randoms = [np.random.default_rng(s).choice(n_rows, len(harmonic), replace=False)
                       for s in range(args.random_sets)]
            for infiller_name in args.infillers.split(","):
                t0 = time.perf_counter()
                infiller = make_infiller(infiller_name, x, representation, args.seed)
                n_draws = 1 if infiller.deterministic else args.draws
                scored = score_sets(forward, infiller, cmap, x, weights, midi_of_bin, clean_midi,
                                    list(named.values()) + randoms, n_draws, args.seed)
                sets = dict(zip(named, scored[: len(named)]))
                for key in named:
                    if key not in ("all", "all_but_harmonics", "empty"):
                        sets[key]["rows"] = [int(r) for r in named[key]]
                for k in EXTRA_K:  # how far (in rows) the added off-harmonic rows lie from a harmonic
                    sets[f"harmonics+{k}"]["added_rows_from_harmonic"] = [int(distance[r]) for r in off[:k]]
                sets["random"] = summary_of_random(scored[len(named):], randoms, owner)
                # the library's own evaluation of the harmonic set, as a check of the above
                keep = torch.zeros(1, cmap.n_components)
                keep[0, torch.as_tensor(harmonic)] = 1.0
                check = float(mask_distortion(forward, infiller, cmap, x, keep, weights,
                                              n_samples=n_draws, seed=args.seed)[0])
                rd = RateDistortion(forward, infiller, cmap, n_samples=n_draws)
                target = Target(weights, 1)
                check_rd = float(rd.distortion(x, keep, rd.reference(x, target), target,
                                               torch.Generator().manual_seed(args.seed))[0])
                cases.append({"model": name, "program": program, "midi": midi,
                              "infiller": infiller_name, "draws": n_draws,
                              "target": described["label"], "clean_midi": clean_midi,
                              "clean_target_score": float(Target(weights, 1).score(forward(x).detach())[0]),
                              "f0_hz": round(midi_hz(midi), 3),
                              "clean_midi_per_frame": [round(float(m), 2) for m in midi_of_bin[
                                  forward(x)[0].detach().argmax(-1).numpy()]],
                              "chance": float((owner > 0).mean()),
                              "harmonics_present": int(owner.max()),
                              "sets": sets,
                              "check_harmonics_distortion": {"mask_distortion": check,
                                                             "rate_distortion": check_rd},
                              "seconds": round(time.perf_counter() - t0, 1)})
                s = sets
                print(json.dumps({k: cases[-1][k] for k in ("model", "program", "infiller", "target",
                                                           "seconds")}
                                 | {k: (s[k]["distortion"], s[k]["agreement"]) for k in named}
                                 | {"random": (s["random"]["distortion_mean"],
                                               s["random"]["distortion_best"],
                                               s["random"]["agreement_mean"])}), flush=True)
    data = {"setting": {"clip_seconds": CLIP_SECONDS, "sample_rate": SR, "n_fft": 1024, "hop": 160,
                        "components": "bands:513", "target": "auto", "width_bins": WIDTH_BINS,
                        "extra_k": list(EXTRA_K), "noise_draws": args.draws,
                        "random_sets": args.random_sets, "seed": args.seed, "threads": args.threads,
                        "distortion": "RateDistortion.distortion: mean over draws of "
                                      "0.5 * sum_frames w (out - clean)^2 on the target bin, w = 1/frames",
                        "rde_kept_rows": "not compared: pitch_placement_annealed.json records "
                                         "shares and counts, not the kept rows"},
            "seconds": round(time.perf_counter() - start_all, 1), "cases": cases}
    with atomic_file(args.out) as tmp:
        Path(tmp).write_text(json.dumps(data, indent=2) + "\n")
    print(f"wrote {args.out} in {data['seconds']} s")


if __name__ == "__main__":
    main()
