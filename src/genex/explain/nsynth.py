"""RDE queries of the nsynth study (paper §3.1): per-note masks over (magnitude, phase) ×
1024 frequencies, the per-class magnitude-vs-phase query (Table 1), and "listenable"
explanations resynthesised from the spectra.

The distortion is ½·E‖Φ(x) − Φ(z)‖² over all 11 pre-softmax scores (the paper's choice),
the rate ‖s‖₁ / C; the obfuscation z fills the dropped components with the inpainting GAN.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from genex.xai.components import ComponentMap
from genex.xai.evaluate import keep_top  # re-exported: the study's masks use the library's
from genex.xai.infill import GenerativeInfiller, Infiller
from genex.xai.rde import DEFAULTS, RDEL1, RateDistortion, RDEConcrete, concrete_mask, frozen
from genex.xai.target import Target
from genex.utils import progress

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
    over that family's notes (distortion meaned over its notes), all families in one graph.

    Returns keep probabilities ``[n_families, 2]`` (NaN for a family without notes) and the
    loss history.
    """
    device = x.device
    cmap = ComponentMap.along_axis(tuple(x.shape[1:]), 0).to(device)
    obj = RateDistortion(model, infiller, cmap, params["class_lam"], params["n_samples"])
    tgt = Target(None, x.shape[0])
    families = families.to(device)
    counts = torch.bincount(families, minlength=n_families).to(x.dtype)
    init = math.log(params["init"] / (1 - params["init"]))
    theta = torch.full((n_families, 2), init, device=device, dtype=x.dtype, requires_grad=True)
    opt = torch.optim.Adam([theta], lr=params["class_lr"])
    gen = torch.Generator(device=device).manual_seed(seed)
    history = {"step": [], "loss": []}
    every = max(1, params["class_steps"] // 20)
    with frozen(obj.modules()):
        ref = obj.reference(x, tgt)
        for step in progress(range(params["class_steps"]), desc="rde-class", unit="step"):
            keep = concrete_mask(theta[families], params["temperature"], obj.n_samples, gen)
            dist, rate = obj.loss(x, keep, ref, tgt, gen)
            # mean over each family's notes, then summed over families (independent masks)
            per_family = torch.zeros(n_families, device=device, dtype=x.dtype)
            per_family = per_family.index_add(0, families, dist + obj.lam * rate)
            loss = (per_family / counts.clamp_min(1)).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if step % every == 0 or step == params["class_steps"] - 1:
                history["step"].append(step)
                history["loss"].append(float(loss.detach()))
    probs = torch.sigmoid(theta.detach())
    probs[counts == 0] = float("nan")
    return probs.cpu(), history


def generative_infiller(inpainter, seed: int) -> GenerativeInfiller:
    """The GAN behind the infiller interface (flat noise of ``inpainter.noise_dim``)."""
    return GenerativeInfiller(inpainter, noise_shape=(inpainter.noise_dim,), seed=seed)
