"""metrics.json and the report section of the vocal study.

Every number the section quotes comes from ``metrics.json`` (built here first, then read
back for the tables). Figures: mel images of the selected configurations' examples
(C1/C2/C3 = best/median/worst by Fréchet distance) beside the dataset's most (least)
vocal excerpts and plain G(z) samples; audio: mel → audio by Griffin-Lim.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

from genex.pipeline.report.figures import pyplot

log = logging.getLogger("genex.vocal")

DEFAULTS: dict = {"examples_shown": 4, "audio_examples": 1, "griffin_lim_iters": 32}
# What the paper (Mishra et al., poster) gives: the grid and N, no numeric results; the
# detector paper's Jamendo numbers are not in SPECS.md either, so they are not quoted.
PAPER = {"lrs": [0.1, 0.01, 0.001], "lambdas": [0.1, 0.01, 0.001], "iterations": [100, 500, 1000],
         "examples": 50, "z_dim": 128}
AUDIO_CLIP = 6.0  # standard deviations: generated mels are clipped to this before mel → audio
LABELS = {"best": "C1 (best)", "median": "C2 (median)", "worst": "C3 (worst)"}


def _round(x, digits: int = 6):
    """Floats to ``digits`` significant digits, recursively (stable, readable metrics)."""
    if isinstance(x, float):
        return x if not math.isfinite(x) or x == 0 else float(f"{x:.{digits}g}")
    if isinstance(x, dict):
        return {k: _round(v, digits) for k, v in x.items()}
    if isinstance(x, list):
        return [_round(v, digits) for v in x]
    return x


def build_metrics(evaluation: dict, detector_train: dict, gan_train: dict, am: dict) -> dict:
    """The study's metrics from the step outputs (no timings, dates or paths)."""
    det = {k: evaluation[k] for k in ("accuracy", "auc", "f1", "precision", "recall", "frames",
                                      "test_songs", "sing_share", "median_frames", "threshold")}
    det["raw"] = evaluation["raw"]
    det["best_epoch"] = detector_train.get("best_epoch")
    metrics = {
        "detector": det,
        "gan": {"frechet": am["gan_frechet"], "samples": am["gan_frechet_samples"],
                "best_epoch": gan_train.get("best_epoch")},
        "am": {"grid": am["grid"], "trajectories": am["trajectories"]},
        "paper": PAPER,
    }
    for direction, d in am["directions"].items():
        best = d["configs"][d["selected"]["best"]]
        sign = 1.0 if direction == "maximise" else -1.0
        metrics["am"][direction] = {
            **d["configs"], "selected": d["selected"], "random_z": d["random_z"],
            "reference": d["reference"],
            "checks": {
                "best_more_extreme_than_random_z":
                    bool(sign * best["mean_response"] > sign * d["random_z"]["mean_response"]),
                "best_frechet_below_random_z": bool(best["frechet"] < d["random_z"]["frechet"]),
            },
        }
    return _round(metrics)


# --------------------------------------------------------------------------------- figures

def full_grid(coarse: np.ndarray, pool: tuple[int, int], frames: int) -> np.ndarray:
    """Coarse excerpts [..., H, W] → [..., H·pf, frames] by repetition (as Generator.full)."""
    pf, pt = pool
    x = np.repeat(np.repeat(coarse, pf, axis=-2), pt, axis=-1)
    if x.shape[-1] < frames:
        x = np.concatenate([x, np.repeat(x[..., -1:], frames - x.shape[-1], axis=-1)], axis=-1)
    return x[..., :frames]


def mel_figure(path: Path, rows: list[tuple[str, np.ndarray]], fps: float) -> None:
    """A grid of mel images: one row per set, ``k`` examples per row ([k, mels, frames])."""
    plt = pyplot()

    k = max(len(x) for _, x in rows)
    fig, axes = plt.subplots(len(rows), k, figsize=(2.2 * k, 1.9 * len(rows)), squeeze=False)
    for r, (label, mels) in enumerate(rows):
        for c in range(k):
            ax = axes[r][c]
            ax.set_xticks([]), ax.set_yticks([])
            if c < len(mels):
                ax.imshow(mels[c], origin="lower", aspect="auto", cmap="magma", vmin=-3, vmax=3,
                          extent=(0, mels[c].shape[1] / fps, 0, mels[c].shape[0]))
            if c == 0:
                ax.set_ylabel(label, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def curve_figure(path: Path, history: list[dict], keys: list[str], title: str) -> None:
    """Training curves (one line per key) over epochs."""
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(5, 3))
    epochs = [h["epoch"] for h in history]
    for key in keys:
        ax.plot(epochs, [h[key] for h in history], label=key)
    ax.set_xlabel("epoch"), ax.set_title(title, fontsize=9), ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


# --------------------------------------------------------------------------------- section

def _fmt(x) -> str | float | int | None:
    """Numbers go to the report as they are: its one formatter gives a column one precision."""
    return x


def _tables(m: dict) -> list[dict]:
    det, gan = m["detector"], m["gan"]
    blocks = [{"type": "table", "caption": "Detector, frame level on unseen test songs (accuracy and F1 "
                                           "after median filtering; AUC on raw probabilities). The "
                                           "paper quotes no detector numbers.",
               "columns": ["metric", "ours", "paper"],
               "rows": [["accuracy", _fmt(det["accuracy"]), "not reported"],
                        ["AUC", _fmt(det["auc"]), "not reported"],
                        ["F1", _fmt(det["f1"]), "not reported"],
                        ["accuracy (unfiltered)", _fmt(det["raw"]["accuracy"]), "not reported"],
                        ["test songs / frames", f"{det['test_songs']} / {det['frames']}", None]]},
              {"type": "table", "caption": "DCGAN quality: Fréchet distance² between detector "
                                           "penultimate features of real and generated excerpts.",
               "columns": ["metric", "ours", "paper"],
               "rows": [["Fréchet distance", _fmt(gan["frechet"]), "not reported"],
                        ["samples per side", gan["samples"], None]]}]
    for direction, what in (("maximise", "vocal"), ("minimise", "non-vocal")):
        d = m["am"][direction]
        chosen = {v: LABELS[k] for k, v in d["selected"].items()}
        configs = [k for k in d if isinstance(d[k], dict) and "lr" in d[k]]
        rows = [[chosen.get(k, ""), d[k]["lr"], d[k]["lambda"], d[k]["iterations"], _fmt(d[k]["frechet"]),
                 _fmt(d[k]["mean_response"]), _fmt(d[k]["mean_probability"])]
                for k in sorted(configs, key=lambda k: (d[k]["frechet"], k))]
        rows.append(["random z (control)", None, None, 0, _fmt(d["random_z"]["frechet"]),
                     _fmt(d["random_z"]["mean_response"]), _fmt(d["random_z"]["mean_probability"])])
        rows.append([f"{'most' if direction == 'maximise' else 'least'} vocal "
                     f"{d['reference']['excerpts']} dataset excerpts", None, None, None, 0.0,
                     _fmt(d["reference"]["mean_response"]), None])
        blocks.append({"type": "table",
                       "caption": f"AM, {direction} ({what}): every configuration sorted by the Fréchet "
                                  f"distance of its responses (detector logits) to those of the dataset's "
                                  f"{'most' if direction == 'maximise' else 'least'} vocal excerpts. "
                                  f"Paper grid: lr {PAPER['lrs']}, λ {PAPER['lambdas']}, iterations "
                                  f"{PAPER['iterations']}, N = {PAPER['examples']}; the paper gives "
                                  f"figures, not distances.",
                       "columns": ["selected", "lr", "λ", "iterations", "Fréchet", "mean response",
                                   "mean P(vocal)"],
                       "rows": rows})
    return blocks


NEPER_DB = 20 * math.log10(math.e)  # the features are natural-log magnitudes


def audio_stats(mel: np.ndarray, std: np.ndarray) -> dict:
    """How far a standardised mel excerpt [mels, frames] lies from the data, as heard.

    ``mel_min``/``mel_max`` in standard deviations (the dataset spans about ±3),
    ``share_clipped``: the share of bins beyond ±AUDIO_CLIP (clipped before Griffin-Lim),
    ``median_level_db``: the median bin's level after clipping, in dB against the dataset's
    mean level of its band. AM with a large lr and a weak prior drives G(z) hundreds of
    standard deviations away: minimising the detector then ends in silence (every band at
    -6 σ, about -150 dB), maximising it in a clipped roar.
    """
    clipped = np.clip(mel, -AUDIO_CLIP, AUDIO_CLIP)
    level = NEPER_DB * clipped * np.asarray(std)[:, None]
    return {"mel_min": float(mel.min()), "mel_max": float(mel.max()),
            "share_clipped": float(np.mean(np.abs(mel) > AUDIO_CLIP)),
            "median_level_db": float(np.median(level))}


def audio_note(name: str, stats: dict, z_norm: float | None, z_dim: int,
               ranked_last: bool = False) -> str | None:
    """A sentence for an example a listener would find silent or clipped, else None."""
    silent = stats["median_level_db"] < -60
    if not silent and stats["share_clipped"] < 0.05:
        return None
    z = (f" Its latent codes have mean norm {z_norm:.4g}, where z ~ N(0, I) gives about "
         f"{math.sqrt(z_dim):.3g}: gradient ascent with a weak prior left the latent "
         f"distribution, and G(z) followed." if z_norm is not None else "")
    what = ("is silent: that is its content, not a fault of the rendering" if silent
            else "is partly clipped")
    return (f"`{name}.wav` {what}: its mel excerpt spans {stats['mel_min']:.4g} to "
            f"{stats['mel_max']:.4g} standard deviations of the data (the dataset's excerpts "
            f"stay within about ±3), so {100 * stats['share_clipped']:.0f} % of its bins are "
            f"clipped to ±{AUDIO_CLIP:g} before Griffin-Lim and its median bin sits "
            f"{abs(stats['median_level_db']):.0f} dB "
            f"{'below' if stats['median_level_db'] < 0 else 'above'} the dataset's mean level."
            f"{z}" + (" Such examples are far from every dataset excerpt, which is why the "
                      "Fréchet distance ranks this configuration last (C3)." if ranked_last else ""))


def write_report(features: Path, evaluation: Path, detector: Path, gan: Path, am_dir: Path,
                 params: dict, seed: int, metrics_path: Path, section: Path) -> dict:
    """Write ``metrics_path`` and the section folder (atomically); returns the metrics."""
    from genex.studies.vocal.features import load_stats, mel_to_audio
    from genex.pipeline import atomic_dir, load_arrays, read_json, write_json, write_wav

    p = {**DEFAULTS, **params}
    fp = read_json(features / "features.json")["params"]
    pool, frames, fps = tuple(fp["pool"]), int(fp["excerpt_frames"]), float(fp["fps"])
    det_train, gan_train = read_json(detector / "train.json"), read_json(gan / "train.json")
    am = read_json(am_dir / "am.json")
    metrics = build_metrics(read_json(evaluation), det_train, gan_train, am)
    mean, std = load_stats(features)
    k = int(p["examples_shown"])
    arrays = load_arrays(am_dir / "examples.npz")
    am_order = {k: v["order"] for k, v in am["directions"].items()}
    audio = {direction: _audio_sets(arrays, direction, ref_key, am["directions"][direction],
                                    am_order[direction], pool, frames, p)
             for direction, ref_key in (("maximise", "top"), ("minimise", "bottom"))}
    metrics["audio"] = _round({f"{direction}_{label}": audio_stats(mel, std)
                               for direction, sets in audio.items() for label, mel in sets})
    write_json(metrics_path, metrics)
    m = read_json(metrics_path)  # the section quotes metrics.json, nothing else
    with atomic_dir(section) as tmp:
        blocks = [{"type": "text", "text": _intro(m, pool)}, *_tables(m)]
        curve_figure(tmp / "detector_training.png", det_train["history"], ["train_loss", "valid_loss"],
                     "detector: loss per epoch")
        curve_figure(tmp / "gan_training.png", gan_train["history"], ["d_loss", "g_loss", "valid_band_frechet"],
                     "DCGAN: losses and validation band Fréchet distance")
        blocks += [{"type": "figure", "path": "detector_training.png", "caption": "Detector training."},
                   {"type": "figure", "path": "gan_training.png", "caption": "DCGAN training."}]
        for direction, ref_key, what in (("maximise", "top", "most"), ("minimise", "bottom", "least")):
            d = m["am"][direction]
            rows = [(f"dataset ({what} vocal)", arrays[ref_key][:k])]
            for which in ("best", "median", "worst"):
                idx = am_order[direction].index(d["selected"][which])
                rows.append((LABELS[which], full_grid(arrays[direction][idx, :k], pool, frames)))
            rows.append(("random z", full_grid(arrays["random_z"][:k], pool, frames)))
            mel_figure(tmp / f"am_{direction}.png", rows, fps)
            blocks.append({"type": "figure", "path": f"am_{direction}.png",
                           "caption": f"{direction} ({'vocal' if direction == 'maximise' else 'non-vocal'}): "
                                      f"mel excerpts (80 bands, {frames} frames) of the dataset's {what} vocal "
                                      f"excerpts, of C1/C2/C3 ({', '.join(d['selected'][w] for w in LABELS)}) "
                                      f"and of plain G(z)."})
            notes = []
            for label, mel in audio[direction]:
                name = f"{direction}_{label}"
                # AM with a large lr and a weak prior drives G(z) far outside the data
                # range; clip before undoing the log so Griffin-Lim stays finite
                mel = np.clip(mel, -AUDIO_CLIP, AUDIO_CLIP)
                write_wav(tmp / f"{name}.wav", mel_to_audio(mel, mean, std, fp, p["griffin_lim_iters"]),
                          fp["sample_rate"])
                blocks.append({"type": "audio", "path": f"{name}.wav",
                               "caption": f"{direction}: {label} (Griffin-Lim)"})
                which = _WHICH.get(label.split("_")[0])
                config = d["selected"][which] if which else None
                note = audio_note(name, m["audio"][name], d[config]["mean_z_norm"] if config else None,
                                  int(m["paper"]["z_dim"]), ranked_last=which == "worst")
                if note:
                    notes.append(note)
            if notes:
                blocks.append({"type": "text", "text": "\n\n".join(notes)})
        write_json(tmp / "metrics.json", m)
        blocks.append({"type": "metrics", "path": "metrics.json", "caption": "results/vocal/metrics.json"})
        write_json(tmp / "section.json", {"id": "vocal", "title": "Vocal: GAN activation maximisation",
                                          "group": "Studies", "order": 30, "blocks": blocks})
    return metrics


_WHICH = {label.split()[0]: which for which, label in LABELS.items()}  # "C1" -> "best"


def _audio_sets(arrays: dict, direction: str, ref_key: str, d: dict, order: list[str],
                pool: tuple[int, int], frames: int, p: dict) -> list[tuple[str, np.ndarray]]:
    """(label, standardised mel [mels, frames]) pairs to render as audio."""
    out = []
    for i in range(int(p["audio_examples"])):
        out.append((f"dataset_{i}", arrays[ref_key][i]))
        for which in ("best", "worst"):
            idx = order.index(d["selected"][which])
            out.append((f"{LABELS[which].split()[0]}_{i}", full_grid(arrays[direction][idx, i], pool, frames)))
    return out


def _intro(m: dict, pool: tuple[int, int]) -> str:
    det, sel_max, sel_min = m["detector"], m["am"]["maximise"]["selected"], m["am"]["minimise"]["selected"]
    grid = m["am"]["grid"]
    coarse = (f"The models see the excerpt average-pooled {pool[0]}×{pool[1]} (a CPU budget; "
              f"the generator's output is repeated back to the full grid, so pooling it is "
              f"exact). " if tuple(pool) != (1, 1) else "")
    return (f"A singing-voice detector (Schlüter & Grill's 8-layer VGG-like network, sigmoid output) "
            f"is explained by activation maximisation through a DCGAN (Mishra et al.): Adam on "
            f"z ∈ R^128 for s·f(G(z)) + λ log p(z), N = {grid['examples']} examples per "
            f"configuration, lr {grid['lrs']} × λ {grid['lambdas']} × iterations {grid['iterations']} "
            f"(iteration counts are snapshots of one trajectory per (lr, λ); all trajectories of both "
            f"directions run in one batch). Configurations are ranked by the Fréchet distance between "
            f"their detector responses and those of the dataset's N most (least) vocal excerpts. "
            f"{coarse}\n\n"
            f"- detector on unseen songs: accuracy {det['accuracy']:.3f}, AUC {det['auc']:.3f}, "
            f"F1 {det['f1']:.3f}\n"
            f"- DCGAN Fréchet distance (detector features): {m['gan']['frechet']:.4g}\n"
            f"- maximise (vocal): C1 {sel_max['best']}, C2 {sel_max['median']}, C3 {sel_max['worst']}\n"
            f"- minimise (non-vocal): C1 {sel_min['best']}, C2 {sel_min['median']}, C3 {sel_min['worst']}")
