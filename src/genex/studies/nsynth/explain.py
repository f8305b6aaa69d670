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

from genex.xai.batching import chunked_for_budget
from genex.xai.components import ComponentMap
from genex.xai.evaluate import keep_top  # re-exported: the study's masks use the library's
from genex.xai.infill import GenerativeInfiller, Infiller
from genex.xai.rde import DEFAULTS, RDEL1, RDEConcrete, RateDistortion
from genex.xai.target import Target

__all__ = ["within_budget", "explain_notes", "class_query", "keep_top", "select_notes", "VERTICES",
           "vertex_distortions", "exact_vertex", "bimodal_share"]

#: The four binary (magnitude kept, phase kept) configurations of the per-class query.
VERTICES: tuple[tuple[int, int], ...] = ((0, 0), (1, 0), (0, 1), (1, 1))


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


def within_budget(model, inpainter, x: Tensor, budget_mb: float | None):
    """The classifier and the inpainting GAN running at most as many rows per forward as
    fit ``budget_mb`` (MiB of activations, measured on one note; 0/None: no limit). The
    per-class query puts every note x draw of the 11 families through one graph (~23 GB on
    a GPU at the paper's sizes); the infill draws are made for the whole batch first, so the
    results equal the unbatched ones. Returns ``(model, inpainter)``."""
    if not budget_mb:
        return model, inpainter
    row = x[:1]
    noise = torch.zeros(1, inpainter.noise_dim, device=row.device, dtype=row.dtype)
    return (chunked_for_budget(model, (row,), budget_mb),
            chunked_for_budget(inpainter, (row, torch.ones_like(row), noise), budget_mb))


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
        "rde_concrete": lambda: RDEConcrete(
            model, infiller, cmap, temperature=params["temperature"], lr=params["lr_concrete"],
            init=params["init"],
            temperature_start=params.get("temperature_start", DEFAULTS["temperature_start"]),
            **common),
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


@torch.no_grad()
def vertex_distortions(model, infiller: Infiller, x: Tensor, draws: int, seed: int,
                       batch_size: int = 64) -> Tensor:
    """Per note, the expected distortion ``E[D]`` (over ``draws`` infill draws) at each of
    the four binary (magnitude, phase) configurations of :data:`VERTICES`: ``[4, B]``.

    Every vertex reuses the same random stream (common random numbers), so differences
    between vertices are not blurred by independent draw noise. Keeping both channels
    keeps every entry, which every infiller returns bit-exactly: its distortion is 0 and is
    not computed.
    """
    cmap = ComponentMap.along_axis(tuple(x.shape[1:]), 0).to(x.device)
    objective = RateDistortion(model, infiller, cmap, lam=0.0, n_samples=draws)
    out = torch.zeros(len(VERTICES), x.shape[0])
    for v, vertex in enumerate(VERTICES):
        if all(vertex):
            continue
        gen = torch.Generator(device=x.device).manual_seed(seed)
        for start in range(0, x.shape[0], batch_size):
            xb = x[start: start + batch_size]
            target = Target(None, xb.shape[0])
            keep = torch.tensor(vertex, dtype=xb.dtype, device=xb.device).expand(xb.shape[0], 2)
            ref = objective.reference(xb, target)
            out[v, start: start + xb.shape[0]] = objective.distortion(xb, keep, ref, target, gen).cpu()
    return out


def exact_vertex(per_note: Tensor, families: Tensor, n_families: int, lam: float) -> dict:
    """Table 1 without an optimiser: with two components the per-class objective
    ``E_s[D(s)] + λ·(s_mag + s_phase)/2`` is multilinear in the two keep probabilities, so
    its minimum over ``[0, 1]²`` is attained at a vertex; this evaluates all four.

    Args:
        per_note: ``[4, B]`` from :func:`vertex_distortions`.
        families: ``[B]`` family of every note.

    Returns ``distortion`` and ``sem`` (standard error over the family's notes) ``[F, 4]``,
    ``objective`` ``[F, 4]``, ``optimum`` ``[F, 2]`` (kept magnitude, kept phase; NaN for a
    family without notes), ``margin`` ``[F]`` (second-best objective minus the best) and
    ``notes`` ``[F]``.
    """
    families = families.cpu()
    rate = torch.tensor([sum(v) / 2 for v in VERTICES], dtype=per_note.dtype)
    dist = torch.full((n_families, len(VERTICES)), float("nan"), dtype=per_note.dtype)
    sem = torch.full_like(dist, float("nan"))
    counts = torch.bincount(families, minlength=n_families)
    for f in range(n_families):
        notes = per_note[:, families == f]
        if notes.shape[1]:
            dist[f] = notes.mean(1)
            sem[f] = notes.std(1) / notes.shape[1] ** 0.5 if notes.shape[1] > 1 else 0.0
    objective = dist + lam * rate
    optimum = torch.full((n_families, 2), float("nan"))
    margin = torch.full((n_families,), float("nan"))
    for f in range(n_families):
        if counts[f]:
            order = torch.argsort(objective[f])
            optimum[f] = torch.tensor(VERTICES[int(order[0])], dtype=torch.float32)
            margin[f] = objective[f, order[1]] - objective[f, order[0]]
    return {"distortion": dist, "sem": sem, "objective": objective, "optimum": optimum,
            "margin": margin, "notes": counts}


def bimodal_share(keep: Tensor, tolerance: float = 0.05) -> float:
    """Share of keep probabilities within ``tolerance`` of 0 or 1 (a converged concrete mask
    is bimodal; values in between mean the optimiser did not decide)."""
    keep = keep.flatten().float()
    if keep.numel() == 0:
        return float("nan")
    return float(((keep <= tolerance) | (keep >= 1 - tolerance)).float().mean())


def class_query(model, infiller: Infiller, x: Tensor, families: Tensor, n_families: int,
                params: dict, seed: int) -> tuple[Tensor, dict]:
    """Table 1 by optimisation (the cross-check of :func:`exact_vertex`): one concrete mask
    over (whole magnitude, whole phase) per family, optimised over that family's notes
    (distortion meaned over its notes), all families in one graph
    (:meth:`genex.xai.RDEConcrete.attribute` with ``groups``), under ``class_schedule``
    (the paper: constant).

    Returns keep probabilities ``[n_families, 2]`` (NaN for a family without notes) and the
    loss history.
    """
    cmap = ComponentMap.along_axis(tuple(x.shape[1:]), 0)
    rde = RDEConcrete(model, infiller, cmap, lam=params["class_lam"], temperature=params["temperature"],
                      lr=params["class_lr"], steps=params["class_steps"], n_samples=params["n_samples"],
                      init=params["init"], seed=seed, log_every=max(1, params["class_steps"] // 20),
                      schedule=params.get("class_schedule", "constant"),
                      warmup=params.get("class_warmup", 0.0),
                      # its own schedule (class_*): the per-note temperature annealing is not
                      # measured against the exact vertices, so the class query keeps t fixed
                      temperature_start=None)
    rde.desc = "rde-class"
    families = families.to(x.device)
    probs = rde.attribute(x, None, groups=families, n_groups=n_families).cpu()
    probs[torch.bincount(families.cpu(), minlength=n_families) == 0] = float("nan")
    return probs, {"step": rde.history_.step, "loss": rde.history_.loss}


def generative_infiller(inpainter, seed: int) -> GenerativeInfiller:
    """The GAN behind the infiller interface (flat noise of ``inpainter.noise_dim``)."""
    return GenerativeInfiller(inpainter, noise_shape=(inpainter.noise_dim,), seed=seed)
