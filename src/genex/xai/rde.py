"""Rate-distortion explanations (RDE; MacDonald et al. 2019, Heiss et al. 2020).

Objective, for a component mask ``s`` in ``[0, 1]^C`` and obfuscations
``z = T(x, s, n)`` drawn by an :class:`~genex.xai.infill.Infiller`::

    L(s) = ½ E_z[ Σ_k w_k (Φ_k(x) − Φ_k(z))² ]  +  λ · ‖s‖₁ / C

* the distortion is on the outputs a :class:`~genex.xai.target.Target` selects
  (pre-softmax logits, or a weighted region of a dense output), averaged over ``n_samples``
  Monte-Carlo infill draws;
* the rate is normalised by the number of components ``C`` (a *mean*, as in the RDE
  reference code), so λ does not have to change with the resolution of the map;
* every input and draw goes through the model in one forward of ``[n · B, *S]``.

Optimisers share Captum's contract ``explainer.attribute(x, target=...) -> [B, C]``:
:class:`RDEConcrete` (relaxed Bernoulli masks, returns keep probabilities), :class:`RDEL1`
(continuous mask with the ℓ1 relaxation) and :class:`MatchingPursuit` (greedy selection;
:meth:`MatchingPursuit.pursue` also gives the order and the distortion curve).
"""

from __future__ import annotations

import contextlib
import math
import warnings
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import torch
from torch import Tensor, nn

from genex.progress import progress
from genex.xai.base import Explainer, Model
from genex.xai.components import ComponentMap
from genex.xai.infill import Infiller
from genex.xai.target import Target, TargetSpec

__all__ = [
    "RateDistortion", "concrete_mask", "RDEConcrete", "RDEL1", "MatchingPursuit",
    "PursuitResult", "frozen", "RelaxationWarning", "DEFAULTS",
]


@contextlib.contextmanager
def frozen(modules: Sequence[object]) -> Iterator[None]:
    """Eval mode and no parameter gradients for the networks in ``modules`` (restored after).

    Only the mask is optimised; computing gradients for the model's weights would waste
    time and leave ``.grad`` behind in the caller's model.
    """
    nets = [m for m in modules if isinstance(m, nn.Module)]
    saved = [(m.training, [(p, p.requires_grad) for p in m.parameters()]) for m in nets]
    try:
        for m in nets:
            m.eval()
            for p in m.parameters():
                p.requires_grad_(False)
        yield
    finally:
        for m, (training, params) in zip(nets, saved):
            m.train(training)
            for p, flag in params:
                p.requires_grad_(flag)


class RateDistortion:
    """The RDE objective for one model, infiller and component map.

    Args:
        model: ``Φ``, maps ``[N, *S]`` to ``[N, *O]``.
        infiller: draws obfuscations (zero, mean, noise, blur, generative, model-based).
        component_map: what each mask entry switches.
        lam: λ, weight of the rate ``‖s‖₁ / C``.
        n_samples: Monte-Carlo infill draws per input and step.
    """

    def __init__(self, model: Model, infiller: Infiller, component_map: ComponentMap,
                 lam: float = 1.0, n_samples: int = 8) -> None:
        self.model = model
        self.infiller = infiller
        self.component_map = component_map
        self.lam = float(lam)
        self.n_samples = int(n_samples)

    def modules(self) -> list[object]:
        """Networks to freeze while a mask is optimised."""
        return [self.model, *self.infiller.modules()]

    @torch.no_grad()
    def reference(self, x: Tensor, target: Target) -> Tensor:
        """``Φ(x)`` on the selected outputs, ``[B, K]``."""
        return target.select(self.model(x)).detach()

    def distortion(self, x: Tensor, keep: Tensor, reference: Tensor, target: Target,
                   generator: torch.Generator | None = None) -> Tensor:
        """Expected distortion per input ``[B]``.

        Args:
            x: ``[B, *S]``.
            keep: component mask ``[B, C]`` (one for all draws) or ``[n_samples, B, C]``.
            reference: ``[B, K]`` from :meth:`reference`.
        """
        n = self.n_samples
        mask = self.component_map.expand(keep)
        z = self.infiller(x, mask, n, generator=generator)
        out = self.model(z.reshape(n * x.shape[0], *x.shape[1:]))
        return target.sq_error(out, reference).view(n, x.shape[0]).mean(0)

    def rate(self, keep: Tensor) -> Tensor:
        """``‖s‖₁ / C`` per input ``[B]`` (averaged over draws for ``[n, B, C]``)."""
        r = keep.abs().mean(-1)
        return r.mean(0) if keep.dim() == 3 else r

    def loss(self, x: Tensor, keep: Tensor, reference: Tensor, target: Target,
             generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Per input ``(distortion [B], rate [B])``."""
        return self.distortion(x, keep, reference, target, generator), self.rate(keep)


def concrete_mask(logits: Tensor, temperature: float, n: int,
                  generator: torch.Generator | None = None,
                  straight_through: bool = False) -> Tensor:
    """``n`` relaxed Bernoulli (binary concrete) samples of keep-probabilities ``σ(logits)``.

    ``s = σ((logits + log u − log(1 − u)) / t)``, ``u ~ U(0, 1)``: ``P(s > ½) = σ(logits)``
    exactly and ``s`` tends to a Bernoulli sample as ``t → 0`` (Maddison et al.; Jang et
    al.). With ``straight_through`` the forward value is the hard sample ``1[s > ½]`` and the
    gradient the relaxed one (off by default, as in the paper).

    Returns ``[n, *logits.shape]``.
    """
    if temperature <= 0:
        raise ValueError(f"concrete_mask: temperature must be > 0, got {temperature}")
    tiny = torch.finfo(logits.dtype).tiny
    u = torch.rand((n, *logits.shape), generator=generator, device=logits.device,
                   dtype=logits.dtype).clamp(tiny, 1 - 1e-7)
    s = torch.sigmoid((logits + torch.log(u) - torch.log1p(-u)) / temperature)
    if straight_through:
        hard = (s > 0.5).to(s.dtype)
        s = hard + (s - s.detach())  # exactly `hard` forward, relaxed gradient
    return s


class RelaxationWarning(UserWarning):
    """A relaxed mask explains the model only through its fractional values.

    With a deterministic infiller (zero, mean, blur) a fractional mask ``s`` makes
    ``z = s·x + (1 − s)·fill``: a *scaled* input, not an obfuscation. ``RDEL1`` can then
    reproduce the model's output with a few fractional entries (input scaling) whose
    rounded, binary mask distorts far more. Use a random or generative infiller
    (``NoiseInfiller``, ``GenerativeInfiller``) or ``RDEConcrete``.
    """


@dataclass
class _History:
    """Every ``log_every`` steps: per-input *means* over the batch of the objective
    ``loss = distortion + λ·rate``, its ``distortion`` and ``rate``; after the last step the
    mean distortion of the optimiser's own (relaxed) masks and of the masks rounded at ½."""

    step: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    distortion: list[float] = field(default_factory=list)
    rate: list[float] = field(default_factory=list)
    relaxed_distortion: float = float("nan")
    binarised_distortion: float = float("nan")

    def as_dict(self) -> dict:
        return {"step": self.step, "loss": self.loss, "distortion": self.distortion,
                "rate": self.rate, "relaxed_distortion": self.relaxed_distortion,
                "binarised_distortion": self.binarised_distortion}


#: One set of defaults for both optimisers and the nsynth study's default profile
#: (config/config.yaml ``nsynth.rde``): converges in ``steps`` on planted models
#: (tests/unit/xai/test_xai_rde.py). The papers' values are in config/paper.yaml ("paper": λ 50 per
#: note / 30 per class, t 0.1, plain Adam at lr 1e-5 for 10⁶ steps / 1e-4 for 2·10⁵).
DEFAULTS = dict(lam=5.0, lr_concrete=2.0, lr_l1=0.05, steps=150, n_samples=2, warmup=0.1,
                schedule="cosine", temperature_start=1.0)

_SCHEDULES = ("cosine", "constant")


class _GradientRDE(Explainer):
    """Adam on a mask parametrisation; subclasses say how masks are drawn and returned.

    The step size follows ``schedule``: ``"cosine"`` (default) warms up linearly over the
    first ``warmup`` share of the steps and then decays to 0 on a cosine; ``"constant"`` is
    plain Adam at ``lr`` (the papers). Adam moves a component whose distortion gradient is
    zero by about ``lr`` per step whatever λ is (its update is the sign of the rate
    gradient), so ``lr·steps`` — not λ — decides how far unused components fall; the decay
    then lets the used ones settle instead of jittering at ``lr``.

    After :meth:`attribute`: ``relaxed_distortion_`` ``[B]`` (distortion of the optimiser's
    own masks, fresh draws) and ``binarised_distortion_`` ``[B]`` (the mask rounded at ½),
    also in ``history_``. With a deterministic infiller, a binarised distortion more than
    twice the relaxed one (and above 1 % of the distortion of the empty mask) raises a
    :class:`RelaxationWarning`.
    """

    desc = "rde"

    def __init__(self, model: Model, infiller: Infiller, component_map: ComponentMap,
                 lam: float, lr: float, steps: int, n_samples: int, init: float,
                 seed: int, log_every: int, schedule: str = "cosine",
                 warmup: float = 0.1) -> None:
        super().__init__(model, component_map)
        if steps < 0 or n_samples < 1 or lr <= 0:
            raise ValueError(f"{type(self).__name__}: need steps >= 0, n_samples >= 1, lr > 0")
        if schedule not in _SCHEDULES or not 0 <= warmup < 1:
            raise ValueError(f"{type(self).__name__}: schedule must be one of {_SCHEDULES} and "
                             f"warmup in [0, 1), got {schedule!r}, {warmup}")
        self.infiller = infiller
        self.objective = RateDistortion(model, infiller, component_map, lam, n_samples)
        self.lr, self.steps, self.init = float(lr), int(steps), float(init)
        self.schedule, self.warmup = schedule, float(warmup)
        self.seed, self.log_every = int(seed), int(log_every)
        self.history_ = _History()
        self.relaxed_distortion_: Tensor | None = None
        self.binarised_distortion_: Tensor | None = None

    # subclass hooks
    def _init_params(self, rows: int, c: int, device: torch.device, dtype: torch.dtype) -> Tensor:
        raise NotImplementedError

    def _sample(self, params: Tensor, generator: torch.Generator) -> Tensor:
        raise NotImplementedError

    def _project(self, params: Tensor) -> None:
        pass

    def _begin_step(self, step: int) -> None:
        """Called before each step (and with ``steps`` after the last one)."""

    def _result(self, params: Tensor) -> Tensor:
        raise NotImplementedError

    def lr_factor(self, step: int) -> float:
        """Multiplier of ``lr`` at ``step`` (0-based) under the schedule."""
        if self.schedule == "constant" or self.steps <= 1:
            return 1.0
        ramp = int(round(self.warmup * self.steps))
        if step < ramp:
            return (step + 1) / (ramp + 1)
        return 0.5 * (1 + math.cos(math.pi * (step - ramp) / max(1, self.steps - ramp)))

    def attribute(self, x: Tensor, target: TargetSpec = None, shared: bool = False,
                  groups: Tensor | None = None, n_groups: int | None = None) -> Tensor:
        """Optimise a mask per input (``[B, C]``), one for the whole batch (``shared``,
        ``[1, C]``, loss averaged over inputs), or one per group of inputs (``groups`` ``[B]``
        of group indices in ``[0, n_groups)``, ``[n_groups, C]``: each group's loss averaged
        over its inputs, the groups independent — the per-class query of the paper).

        Args:
            x: inputs ``[B, *S]``.
            target: which outputs the distortion is on (see :mod:`genex.xai.target`).
        """
        obj = self.objective
        x = x.detach()
        batch, device = x.shape[0], x.device
        tgt = Target(target, batch)
        cmap = obj.component_map = obj.component_map.to(device)
        rows, counts = (1 if shared else batch), None
        if groups is not None:
            if shared:
                raise ValueError(f"{type(self).__name__}: give shared or groups, not both")
            groups = torch.as_tensor(groups, dtype=torch.long, device=device)
            rows = int(n_groups) if n_groups is not None else int(groups.max()) + 1
            if groups.shape != (batch,) or int(groups.min()) < 0 or int(groups.max()) >= rows:
                raise ValueError(f"{type(self).__name__}: groups must be [B={batch}] indices in "
                                 f"[0, {rows}), got shape {tuple(groups.shape)}")
            counts = torch.bincount(groups, minlength=rows).to(x.dtype)
        self.history_ = _History()
        # enable_grad: the mask is optimised even when the caller is under no_grad
        with frozen(obj.modules()), torch.enable_grad():
            ref = obj.reference(x, tgt)
            params = self._init_params(rows, cmap.n_components, device, x.dtype)
            params.requires_grad_(True)
            opt = torch.optim.Adam([params], lr=self.lr)
            gen = torch.Generator(device=device).manual_seed(self.seed)

            def per_row(p: Tensor) -> Tensor:
                return p[groups] if groups is not None else p.expand(batch, -1)

            for step in progress(range(self.steps), desc=self.desc, unit="step"):
                for group in opt.param_groups:
                    group["lr"] = self.lr * self.lr_factor(step)
                self._begin_step(step)
                keep = self._sample(per_row(params), gen)
                dist, rate = obj.loss(x, keep, ref, tgt, gen)
                per_input = dist + obj.lam * rate
                if groups is not None:  # mean over each group's inputs, groups independent
                    per_group = torch.zeros(rows, device=device, dtype=x.dtype).index_add(0, groups, per_input)
                    loss = (per_group / counts.clamp_min(1)).sum()
                else:
                    # independent masks: sum, so each input's gradient ignores the batch size
                    loss = per_input.mean() if shared else per_input.sum()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                with torch.no_grad():
                    self._project(params)
                if self.log_every and (step % self.log_every == 0 or step == self.steps - 1):
                    self._log(step, per_input, dist, rate)
            self._begin_step(self.steps)  # the final state (e.g. the last temperature)
            self._check_relaxation(x, per_row(params.detach()), ref, tgt)
        return self._result(params).detach()

    @torch.no_grad()
    def _check_relaxation(self, x: Tensor, params: Tensor, ref: Tensor, tgt: Target) -> None:
        obj = self.objective
        gen = torch.Generator(device=x.device).manual_seed(self.seed + 1)
        relaxed = obj.distortion(x, self._sample(params, gen), ref, tgt, gen)
        binary = (self._result(params) >= 0.5).to(x.dtype)
        rounded = obj.distortion(x, binary, ref, tgt, gen)
        self.relaxed_distortion_, self.binarised_distortion_ = relaxed, rounded
        self.history_.relaxed_distortion = float(relaxed.mean())
        self.history_.binarised_distortion = float(rounded.mean())
        if not getattr(self.infiller, "deterministic", False):
            return
        empty = obj.distortion(x, torch.zeros_like(binary), ref, tgt, gen)
        bad = (rounded > 2 * relaxed) & (rounded - relaxed > 0.01 * empty)
        if bool(bad.any()):
            warnings.warn(
                f"{type(self).__name__}: with the deterministic {type(self.infiller).__name__} "
                f"the relaxed mask reaches distortion {float(relaxed.mean()):.4g} but rounded at "
                f"0.5 it gives {float(rounded.mean()):.4g} ({int(bad.sum())}/{bad.numel()} "
                "inputs): the fractional mask scales the input rather than selecting "
                "components. Use a random or generative infiller, or RDEConcrete.",
                RelaxationWarning, stacklevel=3)

    def _log(self, step: int, per_input: Tensor, dist: Tensor, rate: Tensor) -> None:
        h = self.history_
        h.step.append(step)
        h.loss.append(float(per_input.detach().mean()))
        h.distortion.append(float(dist.detach().mean()))
        h.rate.append(float(rate.detach().mean()))


class RDEConcrete(_GradientRDE):
    """RDE with concrete (relaxed Bernoulli) masks; returns keep probabilities ``σ(θ)``.

    Each step draws ``n_samples`` masks ``s ~ Concrete(σ(θ), t)`` per input, one infill
    draw per mask, and follows the gradient of the sampled objective (the rate is the ℓ1
    norm of the sampled ``s``, as in the paper).

    Defaults (one set, :data:`DEFAULTS`, the same as the nsynth default profile): λ 5,
    t annealed geometrically from 1 to 0.1, Adam on θ at lr 2 with 10 % warm-up and cosine
    decay, 150 steps, 2 draws, init ½. Why the annealing: at t 0.1 a sample's gradient
    ``∂s/∂θ = s(1 − s)/t`` is nearly always 0 and rarely large, so a large step can push a
    needed component far out where no sample ever reaches it again (its gradient vanishes
    for good); at lr 0.5 there is no such loss, but most keep probabilities end undecided
    between 0 and 1 in 150 steps. A warm start (t 1) gives every sample a gradient, so early
    mistakes are undone, and the masks end decided at t 0.1 (nsynth's 110 notes: 96 % of
    the keep probabilities within 0.05 of 0 or 1 against 48 % at lr 0.5, objective 2.91
    against 3.29, at the same cost; benchmarks/results/mask_bimodality.json). Paper: λ 50 per
    note (30 per class), t 0.1, plain Adam (``schedule="constant"``) at lr 1e-5 for 10⁶ steps
    (1e-4, 2·10⁵ per class), see config/paper.yaml.

    Args:
        model, infiller, component_map: see :class:`RateDistortion`.
        lam: λ (rate is ``‖s‖₁ / C``).
        temperature: ``t`` of the concrete distribution (at the last step when annealed).
        temperature_start: ``t`` at the first step, annealed geometrically to
            ``temperature`` over the steps (None: ``temperature`` throughout, the paper).
        lr: peak Adam step size on the logits θ.
        steps: Adam steps.
        n_samples: mask/infill draws per input and step.
        init: initial keep probability.
        straight_through: hard forward samples with relaxed gradients (off in the paper).
        seed: seeds the mask and infill draws.
        log_every: record loss, distortion and rate in ``history_`` every so many steps.
        schedule, warmup: the step-size schedule (see :class:`_GradientRDE`).
    """

    desc = "rde-concrete"

    def __init__(self, model: Model, infiller: Infiller, component_map: ComponentMap,
                 lam: float = DEFAULTS["lam"], temperature: float = 0.1,
                 lr: float = DEFAULTS["lr_concrete"], steps: int = DEFAULTS["steps"],
                 n_samples: int = DEFAULTS["n_samples"], init: float = 0.5,
                 straight_through: bool = False, seed: int = 0, log_every: int = 10,
                 schedule: str = DEFAULTS["schedule"], warmup: float = DEFAULTS["warmup"],
                 temperature_start: float | None = DEFAULTS["temperature_start"]) -> None:
        super().__init__(model, infiller, component_map, lam, lr, steps, n_samples, init,
                         seed, log_every, schedule, warmup)
        if not 0 < init < 1:
            raise ValueError(f"RDEConcrete: init must be a probability in (0, 1), got {init}")
        if temperature <= 0 or (temperature_start is not None and temperature_start <= 0):
            raise ValueError(f"RDEConcrete: temperatures must be > 0, got {temperature}, "
                             f"{temperature_start}")
        self.temperature = float(temperature)
        self.temperature_start = None if temperature_start is None else float(temperature_start)
        self.straight_through = straight_through
        self._temperature = self.temperature

    def temperature_at(self, step: int) -> float:
        """Concrete temperature at ``step``: geometric from ``temperature_start`` to
        ``temperature`` over the steps (``temperature`` throughout without a start)."""
        if self.temperature_start is None or self.steps <= 1:
            return self.temperature
        frac = min(1.0, step / (self.steps - 1))
        return self.temperature_start * (self.temperature / self.temperature_start) ** frac

    def _begin_step(self, step: int) -> None:
        self._temperature = self.temperature_at(step)

    def _init_params(self, rows: int, c: int, device: torch.device, dtype: torch.dtype) -> Tensor:
        return torch.full((rows, c), math.log(self.init / (1 - self.init)), device=device, dtype=dtype)

    def _sample(self, params: Tensor, generator: torch.Generator) -> Tensor:
        return concrete_mask(params, self._temperature, self.objective.n_samples, generator,
                             self.straight_through)

    def _result(self, params: Tensor) -> Tensor:
        return torch.sigmoid(params)


class RDEL1(_GradientRDE):
    """RDE with a continuous mask ``s ∈ [0, 1]^C`` and the ℓ1 relaxation (MacDonald et al.).

    The same mask is used for all ``n_samples`` infill draws of a step. Use it with a random
    or generative infiller: with a deterministic one (zero, mean, blur) a fractional mask is
    an input scaling and the optimum is degenerate (:class:`RelaxationWarning`).

    Defaults as :class:`RDEConcrete` but lr 0.05 (Adam on ``s`` itself, a range of 1).

    Args:
        param: ``"clamp"`` (Adam on ``s``, projected onto ``[0, 1]`` after each step) or
            ``"sigmoid"`` (Adam on ``w``, ``s = σ(w)``).
        init: initial mask value (in ``[0, 1]``; in ``(0, 1)`` for ``"sigmoid"``).
        Others as in :class:`RDEConcrete`.
    """

    desc = "rde-l1"

    def __init__(self, model: Model, infiller: Infiller, component_map: ComponentMap,
                 lam: float = DEFAULTS["lam"], lr: float = DEFAULTS["lr_l1"],
                 steps: int = DEFAULTS["steps"], n_samples: int = DEFAULTS["n_samples"],
                 init: float = 0.5, param: str = "clamp", seed: int = 0,
                 log_every: int = 10, schedule: str = DEFAULTS["schedule"],
                 warmup: float = DEFAULTS["warmup"]) -> None:
        super().__init__(model, infiller, component_map, lam, lr, steps, n_samples, init,
                         seed, log_every, schedule, warmup)
        if param not in ("clamp", "sigmoid"):
            raise ValueError(f"RDEL1: param must be 'clamp' or 'sigmoid', got {param!r}")
        if not 0 <= init <= 1 or (param == "sigmoid" and init in (0.0, 1.0)):
            raise ValueError(f"RDEL1: init {init} is outside the mask's range for {param!r}")
        self.param = param

    def _init_params(self, rows: int, c: int, device: torch.device, dtype: torch.dtype) -> Tensor:
        value = self.init if self.param == "clamp" else math.log(self.init / (1 - self.init))
        return torch.full((rows, c), value, device=device, dtype=dtype)

    def _sample(self, params: Tensor, generator: torch.Generator) -> Tensor:
        return params if self.param == "clamp" else torch.sigmoid(params)

    def _project(self, params: Tensor) -> None:
        if self.param == "clamp":
            params.clamp_(0.0, 1.0)

    def _result(self, params: Tensor) -> Tensor:
        return params.clone() if self.param == "clamp" else torch.sigmoid(params)


@dataclass
class PursuitResult:
    """Greedy selection per input.

    Attributes:
        order: ``[B, k]`` component indices in the order chosen; -1 once the pursuit of that
            input has stopped (distortion ≤ ``tol``, or no candidate left).
        distortion: ``[B, k + 1]`` distortion with nothing kept, then after each choice
            (NaN where no choice was made).
        mask: ``[B, C]`` binary mask of the chosen components.
        ties: ``[B, k]`` bool, True where choice ``t`` was tied (within ``tol``) with choice
            ``t − 1`` at step ``t − 1``: the two were interchangeable, so they score equally.
        n_tied: ``[B, k]`` how many candidates were within ``tol`` of the best at each step
            (1 = a clear choice, > 1 = the lowest-index tied one was taken; 0 = no step).
    """

    order: Tensor
    distortion: Tensor
    mask: Tensor
    ties: Tensor | None = None
    n_tied: Tensor | None = None

    def scores(self) -> Tensor:
        """``[B, C]``: ``(k − g) / k`` for chosen components, 0 otherwise, where ``g`` counts
        the untied choices before (first = 1; a choice tied with the previous one shares its
        score)."""
        b, k = self.order.shape
        c = self.mask.shape[1]
        device = self.order.device
        chosen = self.order >= 0
        fresh = torch.ones(b, k, dtype=torch.bool, device=device)
        if self.ties is not None:
            fresh[:, 1:] = ~self.ties[:, 1:].to(device)
        group = fresh.long().cumsum(1) - 1
        value = torch.where(chosen, (k - group).float() / k, torch.zeros((), device=device))
        out = torch.zeros(b, c + 1, dtype=torch.float32, device=device)
        out.scatter_(1, torch.where(chosen, self.order, c), value)
        return out[:, :c]


class MatchingPursuit(Explainer):
    """Greedy matching pursuit over components (the radio-map explanations of §3.2).

    Starting from the empty set, each step evaluates the distortion of the current set plus
    each remaining component, for every input at once (candidate masks of all inputs in
    batches of ``batch_candidates``, each with ``n_samples`` infill draws, one forward per
    batch), and keeps, per input, the component that lowers it most (the lowest index among
    exact ties). An input's pursuit stops once its distortion is ``≤ tol`` (or no candidate
    is left); its remaining components get score 0 and order -1. Candidates within ``tol``
    of the best are reported as ties (:class:`PursuitResult`). Components that cover no
    entry (the padding of :meth:`ComponentMap.stack`) are never candidates.

    Args:
        model, infiller, component_map: see :class:`RateDistortion`.
        k: number of components to choose (at most).
        batch_candidates: candidate masks per forward pass (over all inputs).
        n_samples: infill draws per candidate (1 for deterministic infillers).
        tol: absolute tolerance on the distortion: the stopping level and the tie width
            (0: stop only at exactly zero distortion, ties only when exactly equal).
        seed: seeds the infill draws.
    """

    def __init__(self, model: Model, infiller: Infiller, component_map: ComponentMap,
                 k: int, batch_candidates: int = 64, n_samples: int = 1, tol: float = 0.0,
                 seed: int = 0) -> None:
        super().__init__(model, component_map)
        if k < 1 or batch_candidates < 1:
            raise ValueError("MatchingPursuit: k and batch_candidates must be >= 1")
        if not tol >= 0:
            raise ValueError(f"MatchingPursuit: tol must be >= 0, got {tol}")
        self.infiller = infiller
        self.objective = RateDistortion(model, infiller, component_map, 0.0, n_samples)
        self.k, self.batch_candidates, self.seed = int(k), int(batch_candidates), int(seed)
        self.tol = float(tol)

    @torch.no_grad()
    def pursue(self, x: Tensor, target: TargetSpec = None) -> PursuitResult:
        """Choose up to ``k`` components per input; see :class:`PursuitResult`."""
        x = x.detach()
        batch, device = x.shape[0], x.device
        tgt = Target(target, batch)
        cmap = self.objective.component_map.to(device)
        c, k, tol = cmap.n_components, self.k, self.tol
        real = cmap.sizes(batch, device) > 0
        chosen = torch.zeros(batch, c, dtype=torch.bool, device=device)
        order = torch.full((batch, k), -1, dtype=torch.long, device=device)
        curve = torch.full((batch, k + 1), float("nan"), device=device)
        ties = torch.zeros(batch, k, dtype=torch.bool, device=device)
        n_tied = torch.zeros(batch, k, dtype=torch.long, device=device)
        tied_before = torch.zeros(batch, c, dtype=torch.bool, device=device)
        gen = torch.Generator(device=device).manual_seed(self.seed)
        everyone = torch.arange(batch, device=device)
        with frozen(self.objective.modules()):
            ref = self.objective.reference(x, tgt)
            empty = torch.zeros(batch, c, dtype=x.dtype, device=device)
            d0 = self._distortion(x, empty, ref, tgt, cmap, everyone, gen)
            curve[:, 0] = d0.to(curve.dtype)
            active = d0 > tol
            for step in progress(range(k), desc="matching pursuit"):
                rows, cols = (active[:, None] & ~chosen & real).nonzero(as_tuple=True)
                if rows.numel() == 0:
                    break
                d = self._candidates(x, ref, tgt, cmap, chosen, rows, cols, gen)
                best = torch.full((batch,), math.inf, dtype=d.dtype, device=device)
                best = best.scatter_reduce(0, rows, d, "amin")
                at_best = d == best[rows]
                pick = torch.full((batch,), c, dtype=torch.long, device=device)
                pick = pick.scatter_reduce(0, rows[at_best], cols[at_best], "amin")
                tied_now = torch.zeros(batch, c, dtype=torch.bool, device=device)
                tied_now[rows, cols] = d <= best[rows] + tol
                stepped = pick < c  # inputs with a candidate that is not NaN
                b_idx, p_idx = stepped.nonzero().squeeze(1), pick[stepped]
                order[b_idx, step] = p_idx
                chosen[b_idx, p_idx] = True
                curve[b_idx, step + 1] = best[b_idx].to(curve.dtype)
                n_tied[b_idx, step] = tied_now[b_idx].sum(1)
                if step > 0:
                    ties[b_idx, step] = tied_before[b_idx, p_idx]
                tied_before = tied_now
                active = stepped & (best > tol)
        mask = chosen.to(torch.float32)
        return PursuitResult(order, curve, mask, ties, n_tied)

    def _candidates(self, x: Tensor, ref: Tensor, tgt: Target, cmap: ComponentMap,
                    chosen: Tensor, rows: Tensor, cols: Tensor, gen: torch.Generator) -> Tensor:
        """Distortion ``[P]`` of each input's chosen set plus one candidate, for the pairs
        ``(rows[i], cols[i])``, ``batch_candidates`` pairs per forward."""
        dists = []
        for start in range(0, rows.numel(), self.batch_candidates):
            r = rows[start: start + self.batch_candidates]
            cand = cols[start: start + self.batch_candidates]
            masks = chosen[r].to(x.dtype)
            masks[torch.arange(r.numel(), device=x.device), cand] = 1.0
            dists.append(self._distortion(x[r], masks, ref[r], tgt, cmap, r, gen))
        return torch.cat(dists)

    def _distortion(self, x: Tensor, keep: Tensor, ref: Tensor, tgt: Target, cmap: ComponentMap,
                    rows: Tensor, gen: torch.Generator) -> Tensor:
        """The objective's distortion for rows ``x`` that are inputs ``rows`` of the batch."""
        obj = self.objective
        saved = obj.component_map
        obj.component_map = _rows_map(cmap, rows)
        try:
            return obj.distortion(x, keep, ref, tgt.for_rows(rows), gen)
        finally:
            obj.component_map = saved

    def attribute(self, x: Tensor, target: TargetSpec = None) -> Tensor:
        """``[B, C]`` scores: earlier choices score higher, ties equally, components never
        chosen 0 (see :meth:`PursuitResult.scores`)."""
        return self.pursue(x, target).scores()


def _rows_map(cmap: ComponentMap, rows: Tensor) -> ComponentMap:
    """The map of inputs ``rows`` (a shared map is everyone's)."""
    if not cmap.per_input:
        return cmap
    out = cmap.to(cmap.labels.device)
    out.labels = cmap.labels[rows.to(cmap.labels.device)]
    return out
