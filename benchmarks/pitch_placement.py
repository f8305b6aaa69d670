"""Where explanations of a pitch decision sit: the share of the top-10 STFT rows within one row
of f0 or a harmonic, for CREPE (tiny) and PESTO on FluidSynth-rendered notes (piano A3, flute
E4; 0.15 s each), with saliency, integrated gradients, and RDE concrete with the zero and noise
infillers (60 steps, 2 draws, seed 0), beside chance (the share of all rows near a harmonic).
The table of docs/explain.md ("Where the mask sits").

Usage: python benchmarks/pitch_placement.py [--out benchmarks/results/pitch_placement.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from helpers.pitch_notes import SR, midi_hz, render_notes  # noqa: E402

from genex.audio import explain  # noqa: E402
from genex.audio.harmonics import harmonic_placement  # noqa: E402
from genex.pipeline.io import atomic_file  # noqa: E402

METHODS = (("saliency", "zero"), ("ig", "zero"), ("rde-concrete", "zero"), ("rde-concrete", "noise"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="torchcrepe_pitch,pesto_pitch")
    ap.add_argument("--steps", type=int, default=60, help="RDE steps")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/pitch_placement.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    notes = render_notes(0.15)
    rows = []
    for name in args.models.split(","):
        for (program, midi), wave in notes.items():
            for method, infiller in METHODS:
                start = time.perf_counter()
                e = explain(f"genex.audio.zoo:{name}", wave, SR, components="bands:513", method=method,
                            infiller=infiller, n_samples=2, steps=args.steps, seed=0, in_distribution=False)
                placed = harmonic_placement(e.scores, e.representation.frequencies, midi_hz(midi), top_k=10)
                rows.append({"model": name, "program": program, "midi": midi, "target": e.target["label"],
                             "method": method, "infiller": infiller if method.startswith("rde") else None,
                             "share": placed["share"], "chance": round(placed["chance"], 3),
                             "harmonic_of_top": placed["harmonic_of_top"],
                             "seconds": round(time.perf_counter() - start, 1)})
                print(json.dumps(rows[-1]), flush=True)
    with atomic_file(args.out) as tmp:
        Path(tmp).write_text(json.dumps({"top_k": 10, "width_bins": 1, "clip_seconds": 0.15,
                                         "rde_steps": args.steps, "n_samples": 2, "rows": rows},
                                        indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
