"""Running the trained INN backwards: the interpretability figures of Kelz & Widmer (2019).

* Fig 1: a test excerpt x, the outputs ŷ and ẑ, the reconstruction x̂ = f⁻¹([ẑ; 0; ŷ])
  (yz-pad zeroed) and the residual x − x̂.
* Fig 4: ŷ denoised with ad-hoc rules (entries below a threshold zeroed), zero padding and
  z ~ N(0, I), run backwards.
* Fig 5: the ground-truth y run backwards with z ~ N(0, I) (the "oracle" denoising).
* Figs 6, 7 (concept understanding): for every key, ``n_samples`` samples
  f⁻¹([z ~ N(0, I); 0; y_ref]) from the label of the isolated reference note of an unseen
  instrument, framewise Euclidean distances to the reference spectrogram, and their
  0.05/0.25/0.5/0.75/0.95 quantiles.

Every backward sample is also made listenable: filterbank features -> NNLS magnitude ->
Griffin-Lim (:func:`genex.studies.piano.filterbank.filterbank_to_audio`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from genex.studies.piano.filterbank import FPS, SAMPLE_RATE, filterbank_to_audio
from genex.studies.piano.features import FrameSet
from genex.studies.piano.inn import DIM_Z
from genex.pipeline.report.figures import save_figure
from genex.pipeline import load_arrays, progress, write_json, write_wav

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
QUANTILE_NAMES = ("q05", "q25", "q50", "q75", "q95")


def _round(value: float) -> float:
    return float(round(float(value), 6))


@torch.no_grad()
def backward(model, z: np.ndarray, y: np.ndarray, pad: np.ndarray | None = None) -> np.ndarray:
    """x = f⁻¹([z; pad or 0; y]) of frames, [n, 144]."""
    x, _ = model.decode(torch.as_tensor(z, dtype=torch.float32), torch.as_tensor(y, dtype=torch.float32),
                        None if pad is None else torch.as_tensor(pad, dtype=torch.float32))
    return x.numpy()


def denoise_labels(y_hat: np.ndarray, threshold: float) -> np.ndarray:
    """Fig 4's ad-hoc rule: every output below ``threshold`` set to 0."""
    return np.where(y_hat >= threshold, y_hat, 0.0).astype(np.float32)


def sample_z(shape: tuple[int, ...], generator: torch.Generator) -> np.ndarray:
    """z ~ N(0, I) from a seeded generator."""
    return torch.randn(*shape, DIM_Z, generator=generator).numpy()


def excerpt(pieces: FrameSet, params: dict) -> tuple[int, slice]:
    """The test recording and frame range shown in Figs 1, 4 and 5."""
    test = pieces.select("test")
    if not len(test):
        raise ValueError("no test piece to inspect")
    i = int(test[min(int(params["excerpt_recording"]), len(test) - 1)])
    frames = pieces.frames(i)
    length = int(round(float(params["excerpt_seconds"]) * FPS))
    start = frames.start + min(int(round(float(params["excerpt_start"]) * FPS)),
                               max(0, frames.stop - frames.start - length))
    return i, slice(start, min(start + length, frames.stop))


def concept_distances(model, isolated: FrameSet, instrument: int, n_samples: int,
                      generator: torch.Generator) -> dict[int, np.ndarray]:
    """Key (MIDI pitch) -> framewise distances [n_samples, T] of samples to the reference."""
    out = {}
    rows = [i for i in range(len(isolated)) if isolated.instruments[i] == instrument]
    for i in progress(rows, desc="concept test", unit="key"):
        frames = isolated.frames(i)
        x_ref, y_ref = isolated.x[frames], isolated.y[frames]
        z = sample_z((n_samples, len(x_ref)), generator).reshape(-1, DIM_Z)
        x_s = backward(model, z, np.tile(y_ref, (n_samples, 1))).reshape(n_samples, len(x_ref), -1)
        out[int(isolated.pitches[i])] = np.linalg.norm(x_s - x_ref[None], axis=-1)
    return out


def quantile_table(distances: dict[int, np.ndarray]) -> dict[str, dict[str, float]]:
    """``{pitch: {q05: ..., q95: ...}}`` of the framewise distances."""
    return {str(p): dict(zip(QUANTILE_NAMES, map(_round, np.quantile(d, QUANTILES))))
            for p, d in sorted(distances.items())}


# ----------------------------------------------------------------------------- figures

def _image(ax, data: np.ndarray, title: str, cmap: str = "magma", symmetric: bool = False) -> None:
    kw = {}
    if symmetric:
        lim = float(np.max(np.abs(data))) or 1.0
        kw = {"vmin": -lim, "vmax": lim}
    im = ax.imshow(data.T, aspect="auto", origin="lower", cmap=cmap, interpolation="nearest", **kw)
    ax.set_title(title, fontsize=9)
    ax.figure.colorbar(im, ax=ax, fraction=0.03, pad=0.01)




def figure_1(path: Path, x, y_hat, z_hat, x_rec) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(5, 1, figsize=(10, 12), sharex=True)
    _image(axes[0], x, "x (input, 144 filterbank bins)")
    _image(axes[1], y_hat, "ŷ = [phase 88 | velocity 88 | instrument 9]", cmap="viridis")
    _image(axes[2], z_hat, "ẑ (9 latent dimensions)", cmap="coolwarm", symmetric=True)
    _image(axes[3], x_rec, "x̂ = f⁻¹([ẑ; 0; ŷ]) (yz-pad zeroed)")
    _image(axes[4], x - x_rec, "x − x̂", cmap="coolwarm", symmetric=True)
    axes[4].set_xlabel(f"frame ({FPS:.0f} fps)")
    save_figure(fig, path, dpi=90)


def figure_backward(path: Path, x, y_used, x_sam, title: str) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(10, 7.5), sharex=True)
    _image(axes[0], x, "x (input)")
    _image(axes[1], y_used, title, cmap="viridis")
    _image(axes[2], x_sam, "x_s = f⁻¹([z ~ N(0, I); 0; y]) (backward sample)")
    axes[2].set_xlabel(f"frame ({FPS:.0f} fps)")
    save_figure(fig, path, dpi=90)


def figure_6(path: Path, table: dict[str, dict[str, float]]) -> None:
    import matplotlib.pyplot as plt

    pitches = np.array([int(p) for p in table])
    q = {name: np.array([table[p][name] for p in table]) for name in QUANTILE_NAMES}
    fig, ax = plt.subplots(figsize=(10, 3.5))
    ax.fill_between(pitches, q["q05"], q["q95"], alpha=0.25, label="5–95 %", step="mid")
    ax.fill_between(pitches, q["q25"], q["q75"], alpha=0.5, label="25–75 %", step="mid")
    ax.plot(pitches, q["q50"], "k-", lw=1, label="median")
    ax.set_xlabel("MIDI pitch of the reference note")
    ax.set_ylabel("framewise Euclidean distance")
    ax.set_title("Concept test: samples f⁻¹([z; 0; y_ref]) vs the isolated reference note")
    ax.legend(fontsize=8)
    save_figure(fig, path, dpi=90)


def figure_7(path: Path, refs: list[tuple[int, np.ndarray, np.ndarray]]) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(refs), 4, figsize=(10, 2.2 * len(refs)), squeeze=False)
    for row, (pitch, x_ref, samples) in zip(axes, refs):
        _image(row[0], x_ref, f"reference M{pitch}")
        for ax, (k, s) in zip(row[1:], enumerate(samples[:3])):
            _image(ax, s, f"sample {k + 1}")
    save_figure(fig, path, dpi=90)


# ----------------------------------------------------------------------------- the step

def _listen(path: Path, x: np.ndarray, params: dict, seed: int) -> None:
    write_wav(path, filterbank_to_audio(x, n_iter=int(params["griffin_lim_iterations"]), seed=seed),
              SAMPLE_RATE)


def inspect(features_dir: Path, predictions_dir: Path, inn_path: Path, out_dir: Path,
            params: dict, seed: int) -> dict:
    """Write fig1/fig4/fig5/fig6/fig7 PNGs, WAVs and ``inspection.json``."""
    from genex.studies.piano.train import load_inn

    model = load_inn(inn_path)
    pieces = FrameSet.load(features_dir / "pieces.npz", mmap=True)   # an excerpt is read
    isolated = FrameSet.load(features_dir / "isolated.npz")
    pred = load_arrays(predictions_dir / "pieces.npz", ["y_hat", "z"], mmap=True)
    y_hat_all, z_all = pred["y_hat"], pred["z"]
    gen = torch.Generator().manual_seed(seed)
    rec, frames = excerpt(pieces, params)
    x, y, y_hat, z_hat = pieces.x[frames], pieces.y[frames], y_hat_all[frames], z_all[frames]

    x_rec = backward(model, z_hat, y_hat)  # Fig 1: yz-pad zeroed
    figure_1(out_dir / "fig1_forward_backward.png", x, y_hat, z_hat, x_rec)
    y_clean = denoise_labels(y_hat, float(params["denoise_threshold"]))
    x_denoised = backward(model, sample_z((len(x),), gen), y_clean)
    figure_backward(out_dir / "fig4_denoised_backward.png", x, y_clean,
                    x_denoised, f"ŷ denoised (entries < {params['denoise_threshold']} zeroed)")
    x_oracle = backward(model, sample_z((len(x),), gen), y)
    figure_backward(out_dir / "fig5_groundtruth_backward.png", x, y, x_oracle, "ground-truth y")

    # concept understanding: isolated notes of the first instrument of the concept split;
    # a dataset without them (MAESTRO) skips the test and says why (shown in the report)
    skipped = None if len(isolated) else (
        "no isolated notes in the dataset's concept split (MAESTRO has none; MAPS's ISOL/NO and "
        "piano-sf's single notes are the references): concept test (Figs 6, 7) skipped")
    instrument, table, shown = None, {}, []
    if skipped is None:
        instrument = int(np.min(isolated.instruments))
        distances = concept_distances(model, isolated, instrument, int(params["concept_samples"]), gen)
        table = quantile_table(distances)
        figure_6(out_dir / "fig6_concept_quantiles.png", table)
        shown = [p for p in params["concept_keys_shown"] if p in distances]
    refs = []
    for pitch in shown:
        i = next(j for j in range(len(isolated))
                 if isolated.instruments[j] == instrument and isolated.pitches[j] == pitch)
        fr = isolated.frames(i)
        z = sample_z((3 * (fr.stop - fr.start),), gen)
        samples = backward(model, z, np.tile(isolated.y[fr], (3, 1))).reshape(3, fr.stop - fr.start, -1)
        refs.append((pitch, isolated.x[fr], samples))
    if refs:
        figure_7(out_dir / "fig7_concept_samples.png", refs)

    audio = {"excerpt_input.wav": x, "excerpt_reconstruction.wav": x_rec,
             "fig4_denoised_sample.wav": x_denoised, "fig5_groundtruth_sample.wav": x_oracle}
    for pitch, x_ref, samples in refs[:1]:
        audio[f"concept_M{pitch}_reference.wav"] = x_ref
        audio[f"concept_M{pitch}_sample.wav"] = samples[0]
    for name, feats in progress(list(audio.items()), desc="listenable samples", unit="wav"):
        _listen(out_dir / name, feats, params, seed)

    result = {
        "excerpt": {"recording": str(pieces.names[rec]), "first_frame": frames.start - int(pieces.offsets[rec]),
                    "frames": frames.stop - frames.start},
        "excerpt_errors": {"fig1_rmse": _round(np.sqrt(np.mean((x - x_rec) ** 2))),
                           "fig4_rmse": _round(np.sqrt(np.mean((x - x_denoised) ** 2))),
                           "fig5_rmse": _round(np.sqrt(np.mean((x - x_oracle) ** 2)))},
        "concept_instrument": instrument,
        "concept": table,
        "concept_skipped": skipped,
        "audio": sorted(audio),
    }
    write_json(out_dir / "inspection.json", result)
    return result
