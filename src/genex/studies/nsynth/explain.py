"""RDE queries of the nsynth study (paper §3.1): per-note masks over (magnitude, phase) ×
1024 frequencies, the per-class magnitude-vs-phase query (Table 1), and "listenable"
explanations resynthesised from the spectra.

The distortion is ½·E‖Φ(x) − Φ(z)‖² over all 11 pre-softmax scores (the paper's choice),
the rate ‖s‖₁ / C; the obfuscation z fills the dropped components with the inpainting GAN.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from genex.xai.components import ComponentMap
from genex.xai.evaluate import keep_top  # re-exported: the study's masks use the library's
from genex.xai.infill import GenerativeInfiller, Infiller
from genex.xai.rde import DEFAULTS, RDEL1, RDEConcrete

__all__ = ["explain_notes", "class_query", "keep_top", "select_notes"]


def select_notes(labels: np.ndarray, per_family: int, n_classes: int) -> np.ndarray:
    """Indices of up to ``per_family`` notes of every family, evenly spread over each
    family's notes (so several instruments and pitches), sorted."""
    chosen = []
    for family in range(n_classes):
        idx = np.flatnonzero(labels == family)
        if idx.size == 0:
            continue
        take = min(per_family, idx.size)
        chosen.extend(idx[np.linspace(0, idx.size - 1, take).round().astype(int)])
    return np.unique(np.asarray(chosen, dtype=np.int64))


def explain_notes(model, infiller: Infiller, x: Tensor, params: dict, seed: int,
                  batch_size: int | None = None,
                  methods: tuple[str, ...] = ("rde_concrete", "rde_l1")) -> dict[str, Tensor]:
    """Per-note masks ``[B, 2·L]`` from both optimisers (concrete keep-probabilities σ(θ) and
    the ℓ1-relaxed continuous mask), all notes and Monte-Carlo draws in one graph per step
    (in batches of ``batch_size`` notes when given)."""
    cmap = ComponentMap.identity(tuple(x.shape[1:]))
    common = dict(lam=params["lam"], steps=params["steps"], n_samples=params["n_samples"],
                  seed=seed, log_every=max(1, params["steps"] // 20),
                  schedule=params.get("schedule", DEFAULTS["schedule"]),
                  warmup=params.get("warmup", DEFAULTS["warmup"]))
    makers = {
        "rde_concrete": lambda: RDEConcrete(model, infiller, cmap, temperature=params["temperature"],
                                            lr=params["lr_concrete"], init=params["init"], **common),
        "rde_l1": lambda: RDEL1(model, infiller, cmap, lr=params["lr_l1"], init=params["init"],
                                **common),
    }
    out: dict[str, Tensor] = {}
    histories: dict[str, dict] = {}
    step = batch_size or x.shape[0]
    for name in methods:
        make = makers[name]
        parts = []
        for start in range(0, x.shape[0], step):
            explainer = make()
            parts.append(explainer.attribute(x[start: start + step], target=None).cpu())
            if start == 0:
                histories[name] = explainer.history_.as_dict()
        out[name] = torch.cat(parts)
    out["history"] = histories
    return out


def class_query(model, infiller: Infiller, x: Tensor, families: Tensor, n_families: int,
                params: dict, seed: int) -> tuple[Tensor, dict]:
    """Table 1: one concrete mask over (whole magnitude, whole phase) per family, optimised
    over that family's notes (distortion meaned over its notes), all families in one graph
    (:meth:`genex.xai.RDEConcrete.attribute` with ``groups``), at a constant lr as in the paper.

    Returns keep probabilities ``[n_families, 2]`` (NaN for a family without notes) and the
    loss history.
    """
    cmap = ComponentMap.along_axis(tuple(x.shape[1:]), 0)
    rde = RDEConcrete(model, infiller, cmap, lam=params["class_lam"], temperature=params["temperature"],
                      lr=params["class_lr"], steps=params["class_steps"], n_samples=params["n_samples"],
                      init=params["init"], seed=seed, log_every=max(1, params["class_steps"] // 20),
                      schedule="constant", warmup=0.0)
    rde.desc = "rde-class"
    families = families.to(x.device)
    probs = rde.attribute(x, None, groups=families, n_groups=n_families).cpu()
    probs[torch.bincount(families.cpu(), minlength=n_families) == 0] = float("nan")
    return probs, {"step": rde.history_.step, "loss": rde.history_.loss}


def generative_infiller(inpainter, seed: int) -> GenerativeInfiller:
    """The GAN behind the infiller interface (flat noise of ``inpainter.noise_dim``)."""
    return GenerativeInfiller(inpainter, noise_shape=(inpainter.noise_dim,), seed=seed)
