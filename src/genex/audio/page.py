"""What `genex explain` writes: one atomic folder per run.

For one clip, ``OUT/`` holds:

* ``masks.npz``: ``scores [C]``, ``mask [F, Tf]``, ``spectrogram [F, Tf]`` (the explained
  ``x``), ``components [F, Tf]`` (component of each entry), ``frequencies [F]`` (Hz),
  ``times [Tf]`` (s), ``kept [C]`` (the 0/1 cut used for listening); plain arrays, no pickle;
* ``explanation.json``: model SPEC, input, method, infiller, target (index and label),
  scores, the binarised distortion at a few keep fractions, the in-distribution table when
  available, provenance (versions, seed, the file's sha256);
* ``mask.png``: the spectrogram and the mask over it;
* ``original.wav``, ``kept.wav``, ``removed.wav``: the clip as the model got it, only the
  kept components, and everything but them (the rest silenced; infilled instead when the
  infiller is a fitted one), resynthesised with the original phase;
* ``index.html``: the figure, the audio players and the numbers.

For several clips, each gets such a folder ``OUT/<file stem>/`` and ``OUT/index.html`` shows
them all. The folder is written beside ``OUT`` and renamed onto it at the end: after a
failure nothing of the run is in ``OUT``.
"""

from __future__ import annotations

import html
import json
import platform
import re
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from genex.pipeline.io import atomic_dir, write_wav

__all__ = ["write_outputs", "write_explanation", "plot_explanation", "provenance", "check_out_dir"]


def provenance(seed: int | None = None) -> dict:
    """Versions and time of the run (no git: the CLI runs from an installed wheel too)."""
    import torch

    import genex

    versions = {"genex": genex.__version__, "torch": torch.__version__, "numpy": np.__version__,
                "python": platform.python_version()}
    for name in ("librosa", "soundfile", "matplotlib", "captum"):
        module = sys.modules.get(name)
        if module is not None:
            versions[name] = getattr(module, "__version__", "?")
    return {"versions": versions, "seed": seed, "platform": platform.platform(),
            "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def plot_explanation(e, path: str | Path | None = None):
    """Two panels: the spectrogram (dB or log-mel), and the mask (normalised to [0, 1]) over it."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    spec = e.x if e.representation.kind == "mel" else 20 * np.log10(np.maximum(e.x, 1e-6))
    freqs, times = e.frequencies(), e.times()
    mask = e.mask.astype(float)
    span = mask.max() - mask.min()
    mask = (mask - mask.min()) / span if span > 0 else np.zeros_like(mask)
    fig, axes = plt.subplots(2, 1, figsize=(8, 6), sharex=True, constrained_layout=True)
    floor = np.percentile(spec, 5)
    axes[0].pcolormesh(times, freqs, spec, shading="nearest", cmap="magma", vmin=floor)
    axes[0].set_title("input" + (f": {Path(e.source).name}" if e.source else ""))
    axes[1].pcolormesh(times, freqs, spec, shading="nearest", cmap="gray", vmin=floor)
    overlay = axes[1].pcolormesh(times, freqs, np.ma.masked_less_equal(mask, 0.0), shading="nearest",
                                 cmap="viridis", alpha=0.6, vmin=0, vmax=1)
    label = e.target.get("label") or f"class {e.target['index']}"
    axes[1].set_title(f"{e.method} mask for {label} ({e.infiller_name} infiller, {e.components})")
    fig.colorbar(overlay, ax=axes[1], label="score (normalised)")
    for ax in axes:
        ax.set_ylabel("frequency (Hz)")
    axes[1].set_xlabel("time (s)")
    if path is not None:
        fig.savefig(path, dpi=100)
        plt.close(fig)
    return fig


_LOAD_CHECK = """
<script>
// records whether every image and audio element loaded (read by tests in headless Chromium)
window.addEventListener("load", function () {
  var media = Array.prototype.slice.call(document.querySelectorAll("img, audio"));
  var result = {images: 0, audio: 0, failed: []}, pending = media.length;
  function done() {
    if (--pending <= 0) document.body.setAttribute("data-load-check", JSON.stringify(result));
  }
  if (!media.length) { pending = 1; done(); }
  media.forEach(function (el) {
    var name = el.getAttribute("src");
    if (el.tagName === "IMG") {
      if (el.complete && el.naturalWidth > 0) result.images++; else result.failed.push(name);
      done();
    } else if (el.readyState >= 1) { result.audio++; done(); }
    else {
      el.addEventListener("loadedmetadata", function () { result.audio++; done(); }, {once: true});
      el.addEventListener("error", function () { result.failed.push(name); done(); }, {once: true});
      el.load();
    }
  });
});
</script>
"""

_STYLE = ("body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}"
          "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .6em;"
          "text-align:right}img{max-width:100%}")


def _table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row) + "</tr>"
                   for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v)


def _extent(e, component: int) -> tuple[str, str]:
    """The frequency and time range a component covers, as text."""
    where = e.component_map.labels.numpy() == component
    rows, frames = np.nonzero(where.any(1))[0], np.nonzero(where.any(0))[0]
    if rows.size == 0:
        return "-", "-"
    freqs, times = e.frequencies(), e.times()
    return (f"{freqs[rows[0]]:.0f}–{freqs[rows[-1]]:.0f}",
            f"{times[frames[0]]:.2f}–{times[frames[-1]]:.2f}")


def _section(e, prefix: str = "") -> str:
    """The HTML of one clip; ``prefix`` = the folder of its files relative to the page."""
    t = e.target
    label = t.get("label") or "-"
    order = np.argsort(-e.scores, kind="stable")[:10]
    players = "".join(
        f"<p>{name}<br><audio controls preload=\"auto\" src=\"{html.escape(prefix + name)}.wav\"></audio></p>"
        for name in ("original", "kept", "removed"))
    dist = _table(["kept fraction", "distortion"], [[k, v] for k, v in e.distortion.items()])
    parts = [
        f"<h2>{html.escape(Path(e.source).name if e.source else 'clip')}</h2>",
        f"<img src=\"{html.escape(prefix)}mask.png\" alt=\"mask over the spectrogram\">",
        players,
        _table(["model", "input", "method", "infiller", "components", "target", "label",
                "probability"],
               [[e.model_spec, e.representation.kind, e.method, e.infiller_name, e.components,
                 t["index"], label, t.get("probability")]]),
        "<h3>Top components</h3>",
        _table(["component", "score", "frequencies (Hz)", "time (s)"],
               [[int(c), float(e.scores[c]), *_extent(e, int(c))] for c in order]),
        "<h3>Binarised distortion</h3><p>Distortion of the target when only the top fraction "
        "of components is kept and the rest infilled (lower = the kept part suffices).</p>", dist,
    ]
    if e.in_distribution:
        keys = list(e.in_distribution[0])
        parts += ["<h3>In-distribution check</h3><p>Fréchet distance of the model's outputs "
                  "and prediction agreement, clean vs obfuscated (lower Fréchet, higher "
                  "agreement = more in distribution).</p>",
                  _table(keys, [[row.get(k) for k in keys] for row in e.in_distribution])]
    return "\n".join(parts)


def _page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>\n{body}\n"
            f"{_LOAD_CHECK}</body></html>\n")


def write_explanation(folder: Path, e) -> None:
    """Every output of one clip into ``folder`` (which exists; not atomic by itself)."""
    keep = e.binary_scores()
    labels = e.component_map.labels.numpy()
    np.savez(folder / "masks.npz", scores=e.scores, mask=e.mask, spectrogram=e.x,
             components=labels, frequencies=e.frequencies(), times=e.times(), kept=keep)
    info = e.to_dict()
    info["provenance"] = provenance(e.settings.get("seed"))
    info["listening"] = {"kept_components": int(keep.sum()),
                         "rest": "infilled" if _fitted(e) else "silenced"}
    (folder / "explanation.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    plot_explanation(e, folder / "mask.png")
    write_wav(folder / "original.wav", e.wave, e.sample_rate)
    write_wav(folder / "kept.wav", e.kept_audio(infill=_fitted(e)), e.sample_rate)
    write_wav(folder / "removed.wav", e.removed_audio(infill=_fitted(e)), e.sample_rate)
    (folder / "index.html").write_text(_page("genex explain", _section(e)))


def _fitted(e) -> bool:
    return bool(e.infiller.modules())


def _folder_names(explanations) -> list[str]:
    names, seen = [], set()
    for i, e in enumerate(explanations):
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(e.source).stem) if e.source else f"clip{i}"
        name, n = stem or f"clip{i}", 2
        while name in seen:
            name, n = f"{stem}-{n}", n + 1
        seen.add(name)
        names.append(name)
    return names


#: files that mark a folder as written by genex explain (one clip / several clips)
_MARKERS = ("explanation.json", "explanations.json")


def check_out_dir(out_dir: str | Path) -> Path:
    """``out_dir`` if it may be (re)written: absent, empty, or an earlier genex explain output.

    The output replaces the whole folder, so anything else (``--out .``, a folder of your
    own) is refused rather than deleted.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"{out_dir}: exists and is not a folder; choose another --out")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not any((out_dir / m).is_file() for m in _MARKERS):
        raise ValueError(f"{out_dir}: not empty and not an earlier genex explain output; refusing "
                         f"to replace it (choose a new folder or remove this one)")
    return out_dir


def write_outputs(out_dir: str | Path, explanations: Sequence) -> Path:
    """Write the run into ``out_dir`` atomically (replacing an earlier output there, see
    :func:`check_out_dir`); returns ``out_dir``."""
    from genex.progress import progress

    out_dir = check_out_dir(out_dir)
    with atomic_dir(out_dir) as tmp:
        if len(explanations) == 1:
            write_explanation(tmp, explanations[0])
        else:
            names = _folder_names(explanations)
            for name, e in progress(list(zip(names, explanations)), desc="writing", unit="clip"):
                (tmp / name).mkdir()
                write_explanation(tmp / name, e)
            body = "\n".join(f"<p><a href=\"{html.escape(n)}/index.html\">{html.escape(n)}</a></p>"
                             + _section(e, prefix=f"{n}/") for n, e in zip(names, explanations))
            (tmp / "index.html").write_text(_page(f"genex explain: {len(names)} clips", body))
            summary = [{"folder": n, "source": e.source, "target": e.target}
                       for n, e in zip(names, explanations)]
            (tmp / "explanations.json").write_text(json.dumps(summary, indent=2) + "\n")
    return out_dir
