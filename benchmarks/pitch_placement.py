"""Where explanations of a pitch decision sit: for CREPE (tiny) and PESTO on FluidSynth notes
(piano A3, flute E4; 0.15 s each), with saliency, integrated gradients, and RDE concrete with
the zero, noise and a fitted infiller (60 steps, 2 draws, seed 0), three views of each
explanation over the 513 STFT rows, beside chance (the share of all rows near a harmonic):
the share of the top-10 rows within one row of f0 or a harmonic, the share of the rows RDE
keeps (keep probability >= 0.5), and the share of the score mass on harmonic rows
(`genex.audio.harmonics.harmonic_placement`). The table of docs/explain.md ("Where the mask sits").

The fitted infiller (`--infiller-dir`): when the folder holds no `infiller.pt`, FluidSynth
renders 71 training notes (tests/helpers/pitch_notes.py: 8 GM programs x 9 pitches, 0.5 s,
without the two explained notes) and `genex.audio.infiller.fit_infiller` trains the inpainting
GAN on them in the representation the explanations use (STFT, n_fft 1024, hop 160, 16 kHz),
on 16-frame crops (the explained clips' length); its validation error against the noise, mean
and zero infillers is copied into the output, and the fitted column's rows carry the
in-distribution table of each explanation (Fréchet distance of the model's outputs, clean vs
obfuscated, and agreement of the predicted pitch, for noise, zero, mean, blur and fitted).

`--span START:END` (seconds) restricts every explanation (saliency, IG and RDE alike) to the
output frames whose centre lies in the span: the target and RDE's distortion then cover those
frames only (`genex explain --span`). E.g. 0.04:0.145 keeps frames 4-14 of the 16, leaving out
the onset frames 0-3 and the last, half-empty frame.

`--score` picks what of PESTO's target bin RDE preserves, frame by frame (CREPE, whose bins
are independent sigmoids, always keeps its pre-sigmoid logit): `output` (the zoo model's
output as is, for PESTO already the log-probability: log_softmax over its 384 bins),
`log-probability` (log_softmax on top of it: the same values, a check), `semitone-log-mass`
(the log of the probability within +-1 semitone = +-3 bins), `probability` (softmax, in
[0, 1]) or `floored-log-probability` (log(p + floor), `--floor`, default 1e-3: the
log-probability where the bin is likely, bounded below by log(floor)). A score other than
`output` explains the bin PESTO's own output picks (the highest mean over the span).
`--steps`, `--lam` and `--draws` set RDE's steps, lambda and infill draws per step; `--prune`
prunes RDE's masks (`genex explain --prune`: kept rows the binary objective does not need are
dropped, one forward each).

Usage: python benchmarks/pitch_placement.py [--infiller-dir DIR] [--fit-steps 300]
           [--span START:END] [--score SCORE] [--floor 1e-3] [--steps 60] [--lam 5] [--prune]
           [--out benchmarks/results/pitch_placement.json]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from helpers.pitch_notes import SR, midi_hz, render_notes, render_training_notes  # noqa: E402

from genex.audio import explain  # noqa: E402
from genex.audio.harmonics import harmonic_placement  # noqa: E402
from genex.audio.models import load_model  # noqa: E402
from genex.pipeline.io import atomic_dir, atomic_file  # noqa: E402

# column -> (method, infiller); the fitted column's infiller is --infiller-dir
COLUMNS = {"saliency": ("saliency", "zero"), "ig": ("ig", "zero"), "zero": ("rde-concrete", "zero"),
           "noise": ("rde-concrete", "noise"), "fitted": ("rde-concrete", None)}
CLIP_SECONDS = 0.15
CROP_FRAMES = 16  # frames of a 0.15 s clip at hop 160
TOP_K = 10
KEPT_AT = 0.5


def parse_span(text: str) -> tuple[float, float]:
    """``START:END`` in seconds -> (start, end), start < end."""
    try:
        start, end = (float(v) for v in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"span {text!r}: expected START:END in seconds, "
                                         f"e.g. 0.04:0.145") from None
    if not 0 <= start < end:
        raise argparse.ArgumentTypeError(f"span {text!r}: need 0 <= START < END")
    return start, end


def fitted_infiller(folder: Path, steps: int, seed: int) -> dict:
    """Fit the note infiller into ``folder`` unless it is there; return its infiller.json."""
    from genex.audio.infiller import fit_infiller
    from genex.audio.representations import make_representation

    if not (folder / "infiller.pt").is_file():
        audio = folder.parent / f"{folder.name}_notes"
        if not audio.is_dir():
            with atomic_dir(audio) as tmp:
                render_training_notes(tmp)
        files = sorted(audio.glob("*.wav"))
        representation = make_representation("waveform", SR, n_fft=1024, hop=160)
        fit_infiller(files, representation, folder, steps=steps, batch_size=16,
                     crop_frames=CROP_FRAMES, seed=seed, checkpoint_every=100)
    return json.loads((folder / "infiller.json").read_text())


SCORES = ("output", "log-probability", "semitone-log-mass", "probability", "floored-log-probability")
SOFTMAX_MODELS = ("pesto_pitch",)  # CREPE's bins are independent sigmoids: a softmax is no score of it


class PitchScore(nn.Module):
    """The pitch model's framewise outputs ``[B, frames, bins]`` turned into ``score``."""

    def __init__(self, model: nn.Module, score: str, half_width: int = 3, floor: float = 1e-3) -> None:
        super().__init__()
        self.model, self.score, self.half_width, self.floor = model, score, half_width, floor

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        out = self.model(wave)
        if self.score == "output":
            return out
        log_p = torch.log_softmax(out, -1)
        if self.score == "log-probability":
            return log_p
        if self.score == "probability":
            return log_p.exp()
        if self.score == "floored-log-probability":
            # log(p + floor): log p where the bin is likely, bounded by log(floor) below, so
            # that rare draws which lose the pitch cost at most ~log(floor)^2 / 2
            return torch.logaddexp(log_p, torch.full_like(log_p, math.log(self.floor)))
        # log of the probability within +-half_width bins: logsumexp over shifted copies,
        # padded with -inf so that the ends sum fewer bins
        w = self.half_width
        padded = nn.functional.pad(log_p, (w, w), value=float("-inf"))
        return torch.logsumexp(padded.unfold(-1, 2 * w + 1, 1), -1)


def plain_target(loaded, wave, span) -> str:
    """The bin ``auto`` picks from the model's own outputs (the highest mean over the span):
    a smoothed score such as the semitone log-mass is flat on top, and its argmax would sit at
    the window's lower edge, up to 3 bins below the pitch."""
    from genex.audio.explain import _span_frames

    model = loaded.module.model if isinstance(loaded.module, PitchScore) else loaded.module
    with torch.no_grad():
        out = model(torch.as_tensor(wave)[None])
    frames = _span_frames(out.shape[1], len(wave) / SR, span)
    return str(int(out[0, frames].mean(0).argmax()))


def scored_model(name: str, score: str, floor: float = 1e-3):
    """The zoo model ``name`` with its outputs replaced by ``score`` (softmax models only)."""
    loaded = load_model(f"genex.audio.zoo:{name}")
    if score != "output" and name in SOFTMAX_MODELS:
        loaded.module = PitchScore(loaded.module, score, floor=floor).eval()
    return loaded


NOTE_NAMES = {(0, 57): "piano A3", (73, 64): "flute E4"}
MODEL_NAMES = {"torchcrepe_pitch": "CREPE tiny", "pesto_pitch": "PESTO"}


def markdown(rows: list[dict]) -> str:
    """docs/explain.md's three tables (top-10 share, kept share, mass share) from the rows."""
    cells: dict[tuple, dict] = {}
    model_order = list(MODEL_NAMES)
    for r in sorted(rows, key=lambda r: (model_order.index(r["model"]) if r["model"] in model_order
                                         else len(model_order), r["program"])):
        cells.setdefault((r["model"], r["program"], r["midi"]), {})[r["column"]] = r
    names = {"saliency": "saliency", "ig": "IG", "zero": "RDE + zero", "noise": "RDE + noise",
             "fitted": "RDE + fitted"}
    present = [c for c in COLUMNS if any(c in v for v in cells.values())]
    rde = [c for c in present if COLUMNS[c][0].startswith("rde")]

    def table(title: str, columns: list[str], cell) -> str:
        lines = [title, "", "| model | note | chance | " + " | ".join(names[c] for c in columns) + " |",
                 "|---|---|---|" + "---|" * len(columns)]
        for (model, program, midi), by_column in cells.items():
            chance = next(iter(by_column.values()))["chance"]
            lines.append(f"| {MODEL_NAMES.get(model, model)} | {NOTE_NAMES.get((program, midi), midi)} | "
                         f"{chance:.2f} | " + " | ".join(cell(by_column[c]) if c in by_column else "–"
                                                         for c in columns) + " |")
        return "\n".join(lines)

    def kept(r: dict) -> str:
        return "–" if r["kept_share"] is None else f"{r['kept_share']:.2f} ({r['n_kept']})"

    indist = [(key, r["in_distribution"]) for key, v in cells.items() for r in v.values()
              if r.get("in_distribution")]
    infillers = [row["infiller"] for row in indist[0][1]] if indist else []
    indist_lines = ["In-distribution check at keep rate 0.5 (Fréchet distance of the model's outputs, "
                    "clean vs obfuscated / agreement of the predicted pitch):", "",
                    "| model | note | " + " | ".join(infillers) + " |", "|---|---|" + "---|" * len(infillers)]
    for (model, program, midi), table_rows in indist:
        by = {row["infiller"]: row for row in table_rows}
        indist_lines.append(f"| {MODEL_NAMES.get(model, model)} | {NOTE_NAMES.get((program, midi), midi)} | "
                            + " | ".join(f"{by[i]['frechet']:.4g} / {by[i]['agreement']:.2f}"
                                         for i in infillers) + " |")
    return "\n\n".join([
        table(f"Share of the top-{TOP_K} rows on a harmonic:", present, lambda r: f"{r['share']:.1f}"),
        table("Share of the kept rows (keep probability >= 0.5) on a harmonic (rows kept):", rde, kept),
        table("Share of the score mass on harmonic rows:", present,
              lambda r: "–" if r["mass_share"] is None else f"{r['mass_share']:.2f}")]
        + ([] if not indist else ["\n".join(indist_lines)]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--models", default="torchcrepe_pitch,pesto_pitch")
    ap.add_argument("--steps", type=int, default=60, help="RDE steps (default 60)")
    ap.add_argument("--lam", type=float, default=5.0, help="RDE's lambda (default 5)")
    ap.add_argument("--draws", type=int, default=2, help="RDE's infill draws per step (default 2)")
    ap.add_argument("--infiller-dir", type=Path, default=None,
                    help="a fitted infiller folder for the RDE + fitted column (fitted here on "
                         "rendered notes when it holds no infiller.pt); none: no such column")
    ap.add_argument("--fit-steps", type=int, default=300, help="GAN steps when fitting (default 300)")
    ap.add_argument("--columns", default=",".join(COLUMNS),
                    help=f"which columns to compute (default: all of {', '.join(COLUMNS)}; "
                         f"fitted needs --infiller-dir)")
    ap.add_argument("--update", action="store_true",
                    help="keep the rows of --out's other columns (same settings) and replace "
                         "only the columns computed now")
    ap.add_argument("--markdown", nargs="+", type=Path, metavar="JSON",
                    help="print docs/explain.md's tables from these outputs (their rows together; "
                         "e.g. the fitted column run on its own) and stop")
    ap.add_argument("--span", type=parse_span, default=None, metavar="START:END",
                    help="explain only the output frames whose centre lies in START:END seconds "
                         "(target and distortion alike; e.g. 0.04:0.145 = frames 4-14 of 16); "
                         "default: every frame")
    ap.add_argument("--score", choices=SCORES, default="output",
                    help="what of PESTO's target bin RDE preserves (default: output, its "
                         "log-probability); CREPE keeps its logit")
    ap.add_argument("--floor", type=float, default=1e-3,
                    help="floored-log-probability's floor (default 1e-3)")
    ap.add_argument("--prune", action="store_true",
                    help="RDE columns: genex explain --prune (drop kept rows the binary objective does not need)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/pitch_placement.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.markdown:
        print(markdown([r for f in args.markdown for r in json.loads(f.read_text())["rows"]]))
        return
    columns = [c for c in args.columns.split(",") if c]
    unknown = sorted(set(columns) - set(COLUMNS))
    if unknown:
        ap.error(f"unknown column(s) {', '.join(unknown)}; choose from {', '.join(COLUMNS)}")
    if "fitted" in columns and args.infiller_dir is None:
        columns.remove("fitted")  # no folder, no fitted column
    settings = {"top_k": TOP_K, "width_bins": 1, "kept_at": KEPT_AT, "clip_seconds": CLIP_SECONDS,
                "rde_steps": args.steps, "lam": args.lam, "n_samples": args.draws,
                "span": list(args.span) if args.span else None, "score": args.score,
                "floor": args.floor if args.score == "floored-log-probability" else None}
    kept_rows, infiller_report = [], None
    if args.update and args.out.is_file():
        previous = json.loads(args.out.read_text())
        # outputs written before --lam / --score existed ran with these
        older = {"lam": 5.0, "score": "output", "floor": None}
        if {k: previous.get(k, older.get(k)) for k in settings} != settings:
            sys.exit(f"{args.out}: other settings than this run's {settings}; rerun every column")
        kept_rows = [r for r in previous["rows"] if r.get("column") not in columns]
        infiller_report = previous.get("fitted_infiller")
    if "fitted" in columns:
        start = time.perf_counter()
        report = fitted_infiller(args.infiller_dir, args.fit_steps, seed=0)
        infiller_report = {"folder": str(args.infiller_dir), "steps": report["settings"]["steps"],
                           "training_files": sum(a["use"] == "training" for a in report["audio"]),
                           "validation_files": sum(a["use"] == "validation" for a in report["audio"]),
                           "validation": report["validation"],
                           "valid_mae_history": [{"step": h["step"], **h["valid_mae"]}
                                                 for h in report["history"]],
                           "fit_seconds_this_call": report["seconds_this_call"],
                           "seconds_incl_rendering": round(time.perf_counter() - start, 1)}
        print(json.dumps(infiller_report), flush=True)
    notes = render_notes(CLIP_SECONDS)
    rows = []
    for name in args.models.split(","):
        model = scored_model(name, args.score, args.floor)
        score_applies = args.score != "output" and name in SOFTMAX_MODELS
        for (program, midi), wave in notes.items():
            for column in columns:
                method, infiller = COLUMNS[column]
                infiller = infiller or str(args.infiller_dir)
                start = time.perf_counter()
                target = plain_target(model, wave, args.span) if score_applies else "auto"
                e = explain(model, wave, SR, components="bands:513", method=method, target=target,
                            infiller=infiller, n_samples=args.draws, steps=args.steps, lam=args.lam,
                            seed=0, span=args.span, prune=args.prune and method.startswith("rde"),
                            # the fitted column also reports the in-distribution table
                            in_distribution=column == "fitted")
                rde = method.startswith("rde")
                placed = harmonic_placement(e.scores, e.representation.frequencies, midi_hz(midi),
                                            top_k=TOP_K, kept_at=KEPT_AT if rde else None)
                rows.append({"column": column, "model": name, "program": program, "midi": midi,
                             "target": e.target["label"],
                             "score": args.score if name in SOFTMAX_MODELS else "output",
                             "method": method, "infiller": (column if rde else None),
                             "prune": bool(args.prune and rde),
                             "share": placed["share"], "kept_share": placed.get("kept_share"),
                             "n_kept": placed.get("n_kept"), "mass_share": placed["mass_share"],
                             "chance": round(placed["chance"], 3),
                             "harmonic_of_top": placed["harmonic_of_top"],
                             "span_frames": e.target.get("span_frames"),
                             "seconds": round(time.perf_counter() - start, 1)})
                if e.in_distribution is not None:
                    rows[-1]["in_distribution"] = e.in_distribution
                print(json.dumps(rows[-1]), flush=True)
    with atomic_file(args.out) as tmp:
        order = {c: i for i, c in enumerate(COLUMNS)}
        models = args.models.split(",")
        rows = sorted(kept_rows + rows, key=lambda r: (models.index(r["model"]) if r["model"] in models
                                                       else len(models), r["program"], order[r["column"]]))
        Path(tmp).write_text(json.dumps({**settings, "fitted_infiller": infiller_report,
                                         "rows": rows}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
