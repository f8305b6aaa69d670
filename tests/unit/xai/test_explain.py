"""Explanation core: infillers keep what the mask keeps, component maps, the concrete
sampler, RDE optimisers and matching pursuit on planted models, Captum baselines."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from genex.xai import (
    RDEL1,
    BlurInfiller,
    ComponentMap,
    GenerativeInfiller,
    MatchingPursuit,
    MeanInfiller,
    NoiseInfiller,
    RDEConcrete,
    Target,
    ZeroInfiller,
    concrete_mask,
)
from genex.xai.baselines import (
    IntegratedGradients,
    Occlusion,
    Random,
    Saliency,
)
from genex.xai.infill import compose

SHAPE = (2, 64)
BAND = list(range(20, 28))  # planted: magnitude (channel 0) bins 20..27 -> components 20..27


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("GENEX_NO_PROGRESS", "1")


class PlantedLinear(nn.Module):
    """Two logits; logit 0 depends only on the planted band, logit 1 on nothing."""

    def __init__(self) -> None:
        super().__init__()
        w = torch.zeros(2, *SHAPE)
        w[0, 0, BAND] = 1.0
        self.weight = nn.Parameter(w)
        self.dropout = nn.Dropout(0.5)  # must be off while explaining

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.dropout(torch.einsum("ncl,kcl->nk", z, self.weight))


def planted_inputs(batch: int = 4, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 1.0 + torch.rand(batch, *SHAPE, generator=g)  # positive: every band entry matters


def band_overlap(scores: torch.Tensor, band: list[int] = BAND) -> list[float]:
    top = scores.topk(len(band), dim=1).indices
    return [len(set(row.tolist()) & set(band)) / len(band) for row in top]


def random_binary(shape, seed: int) -> torch.Tensor:
    return (torch.rand(shape, generator=torch.Generator().manual_seed(seed)) > 0.5).float()


class GarbageGenerator(nn.Module):
    """A 'generator' whose output is nonsense everywhere, NaN included."""

    def forward(self, x_masked, mask, noise):
        out = noise * 1e6 + 3.0
        out[..., 0] = float("nan")
        return out


INFILLERS = {
    "zero": lambda: ZeroInfiller(),
    "mean": lambda: MeanInfiller(torch.linspace(-1, 1, SHAPE[1]).expand(*SHAPE)),
    "noise": lambda: NoiseInfiller(0.5, 2.0, seed=1),
    "blur": lambda: BlurInfiller(3.0),
    "generative": lambda: GenerativeInfiller(GarbageGenerator(), seed=2),
}


# ---- infillers -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(INFILLERS))
@pytest.mark.parametrize("per_draw", [False, True])
def test_infiller_keeps_kept_entries_bit_exactly(name, per_draw):
    x = torch.randn(3, *SHAPE, generator=torch.Generator().manual_seed(5)) * 1e3
    n = 4
    keep = random_binary((n, 3, *SHAPE) if per_draw else (3, *SHAPE), seed=6)
    out = INFILLERS[name]()(x, keep, n)
    assert out.shape == (n, 3, *SHAPE)
    kept = keep.expand(n, 3, *SHAPE) == 1
    xs = x.expand(n, 3, *SHAPE)
    assert torch.equal(out[kept], xs[kept])  # bit-identical, not just close
    dropped = ~kept
    if name != "zero":  # the fill really replaces the dropped entries
        assert not torch.equal(out[dropped], xs[dropped])


def test_noise_infiller_draws_differ_and_are_reproducible():
    x = torch.zeros(2, *SHAPE)
    keep = torch.zeros(2, *SHAPE)
    a = NoiseInfiller(0.0, 1.0, seed=3)(x, keep, 3)
    b = NoiseInfiller(0.0, 1.0, seed=3)(x, keep, 3)
    assert torch.equal(a, b)
    assert not torch.equal(a[0], a[1])
    assert abs(float(a.std()) - 1.0) < 0.1


def test_blur_infiller_fills_with_blurred_input():
    x = torch.zeros(1, 1, 33)
    x[0, 0, 16] = 1.0
    out = BlurInfiller(2.0)(x, torch.zeros_like(x), 1)[0, 0, 0]
    assert math.isclose(float(out.sum()), 1.0, rel_tol=1e-5)  # mass preserved
    assert int(out.argmax()) == 16 and float(out.max()) < 0.5


def test_relaxed_mask_mixes_convexly_and_keeps_gradient():
    x = torch.randn(2, *SHAPE)
    keep = torch.rand(2, *SHAPE, requires_grad=True)
    out = MeanInfiller(0.25)(x, keep, 2)
    assert torch.allclose(out[1], keep * x + (1 - keep) * 0.25)
    out.sum().backward()
    assert torch.allclose(keep.grad, 2 * (x - 0.25))
    # a gradient-carrying mask that happens to be all ones still gives x exactly
    ones = torch.ones(2, *SHAPE, requires_grad=True)
    assert torch.equal(compose(x, ones, torch.full_like(x, 7.0)), x)


def test_generative_infiller_contract():
    seen = {}

    def gen(x_masked, mask, noise):
        seen.update(x_masked=x_masked, mask=mask, noise=noise)
        return torch.zeros_like(x_masked)

    x = torch.randn(3, *SHAPE)
    keep = random_binary((3, *SHAPE), seed=1)
    GenerativeInfiller(gen, noise_shape=(7,))(x, keep, 2)
    assert seen["x_masked"].shape == (6, *SHAPE) and seen["noise"].shape == (6, 7)
    assert torch.equal(seen["x_masked"][4], x[1] * keep[1])  # draw-major rows
    with pytest.raises(ValueError, match="keep_mask"):
        ZeroInfiller()(x, keep[:2], 2)


# ---- component maps ------------------------------------------------------------------------
def test_component_maps_expand_and_reduce():
    ident = ComponentMap.identity(SHAPE)
    m = torch.rand(3, 2 * 64)
    assert torch.equal(ident.expand(m), m.view(3, *SHAPE))
    assert torch.equal(ident.reduce(m.view(3, *SHAPE)), m)

    mag_phase = ComponentMap.along_axis(SHAPE, 0)
    full = mag_phase.expand(torch.tensor([[1.0, 0.0]]))
    assert full.shape == (1, *SHAPE) and bool((full[0, 0] == 1).all()) and bool((full[0, 1] == 0).all())
    assert torch.equal(mag_phase.reduce(torch.ones(1, *SHAPE)), torch.tensor([[64.0, 64.0]]))
    # draws in front: [n, B, C] -> [n, B, *S]
    assert mag_phase.expand(torch.rand(5, 3, 2)).shape == (5, 3, *SHAPE)


def test_component_map_from_sets_and_per_input():
    shape = (2, 4, 4)
    building = torch.zeros(shape, dtype=torch.bool)
    building[0, :2, :2] = True
    sets = [building, [16 + 15]]  # a building and one measurement pixel (flat index)
    cmap = ComponentMap.from_sets(shape, sets)
    out = cmap.expand(torch.tensor([[0.0, 0.0]]))[0]
    assert float(out[0, :2, :2].sum()) == 0 and float(out[1, 3, 3]) == 0
    assert float(out.sum()) == 32 - 5  # uncovered entries are kept
    assert cmap.sizes().tolist() == [[4, 1]]
    with pytest.raises(ValueError, match="overlaps"):
        ComponentMap.from_sets(shape, [building, building])

    other = ComponentMap.from_sets(shape, [[0]])
    stacked = ComponentMap.stack([cmap, other])
    assert stacked.sizes(2).tolist() == [[4, 1], [1, 0]]
    e = stacked.expand(torch.zeros(2, 2))
    assert float(e[1].sum()) == 31 and float(e[0].sum()) == 27


# ---- targets -------------------------------------------------------------------------------
def test_target_selection_and_weights():
    out = torch.arange(12.0).view(6, 2)  # 3 draws of a batch of 2
    assert Target([1, 0], 2).select(out).view(-1).tolist() == [1, 2, 5, 6, 9, 10]
    region = torch.tensor([[1.0, 0.0], [0.0, 2.0]])  # per-input weights
    assert Target(region, 2).score(out).tolist() == [0, 6, 4, 14, 8, 22]
    sub = Target(region, 2).for_input(1, 3)
    assert sub.score(out[:3]).tolist() == [2, 6, 10]


# ---- concrete sampler ----------------------------------------------------------------------
def test_concrete_mask_mean_matches_probabilities():
    p = torch.tensor([0.05, 0.2, 0.5, 0.8, 0.95])
    n, t = 20000, 0.1
    s = concrete_mask(torch.logit(p), t, n, torch.Generator().manual_seed(0))
    assert s.shape == (n, 5) and bool(((s >= 0) & (s <= 1)).all())
    sigma = (p * (1 - p) / n).sqrt()
    # thresholded samples are exactly Bernoulli(p); relaxed ones have an O(t²) bias
    assert bool(((s > 0.5).float().mean(0) - p).abs().le(5 * sigma).all())
    assert bool((s.mean(0) - p).abs().le(5 * sigma + t**2 / 2).all())
    hard = concrete_mask(torch.zeros(3, requires_grad=True), t, 64, torch.Generator().manual_seed(1),
                         straight_through=True)
    assert bool(((hard == 0) | (hard == 1)).all()) and hard.requires_grad


# ---- RDE optimisers ------------------------------------------------------------------------
def _concrete(**kw):
    args = dict(lam=10.0, temperature=0.1, lr=0.1, steps=100, n_samples=4, seed=0)
    args.update(kw)
    return lambda model, cmap: RDEConcrete(model, NoiseInfiller(0.0, 1.0), cmap, **args)


def _l1(**kw):
    args = dict(lam=10.0, lr=0.05, steps=100, n_samples=4, seed=0)
    args.update(kw)
    return lambda model, cmap: RDEL1(model, NoiseInfiller(0.0, 1.0), cmap, **args)


@pytest.mark.parametrize("make", [_concrete(), _l1(), _l1(param="sigmoid", lr=0.2)],
                         ids=["concrete", "l1-clamp", "l1-sigmoid"])
def test_rde_finds_planted_band(make):
    model = PlantedLinear().train()
    x = planted_inputs()
    explainer = make(model, ComponentMap.identity(SHAPE))
    mask = explainer.attribute(x, target=0)
    assert mask.shape == (4, 128)
    assert min(band_overlap(mask)) >= 0.8
    assert bool((mask >= 0).all() and (mask <= 1).all())
    off_band = torch.ones(128, dtype=torch.bool)
    off_band[BAND] = False
    assert float(mask[:, off_band].mean()) < 0.2
    # the caller's model is left as it was: training mode, trainable, no stray gradients
    assert model.training and model.weight.requires_grad and model.weight.grad is None
    hist = explainer.history_
    assert hist.loss[-1] < hist.loss[0]


def test_rde_is_deterministic_for_a_seed():
    model, x = PlantedLinear(), planted_inputs(2)
    a = _concrete(steps=30)(model, ComponentMap.identity(SHAPE)).attribute(x, target=0)
    b = _concrete(steps=30)(model, ComponentMap.identity(SHAPE)).attribute(x, target=0)
    c = _concrete(steps=30, seed=1)(model, ComponentMap.identity(SHAPE)).attribute(x, target=0)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_rde_shared_mask_magnitude_vs_phase():
    """The per-class query: one mask over (whole magnitude, whole phase) for a batch."""
    model, x = PlantedLinear(), planted_inputs(8)
    cmap = ComponentMap.along_axis(SHAPE, 0)
    mask = _concrete(lam=1.0, steps=150)(model, cmap).attribute(x, target=[0] * 8, shared=True)
    assert mask.shape == (1, 2)
    assert float(mask[0, 0]) > 0.9 and float(mask[0, 1]) < 0.1


# ---- matching pursuit ----------------------------------------------------------------------
class PlantedDense(nn.Module):
    """A dense [4, 4] output; a few planted components drive it, the rest barely."""

    def __init__(self, n_in: int, planted: list[int]) -> None:
        super().__init__()
        w = 0.01 * torch.randn(16, n_in, generator=torch.Generator().manual_seed(0))
        for rank, c in enumerate(planted):
            w[:, c] = 3.0 - rank  # distinct strengths: a known order
        self.weight = nn.Parameter(w)

    def forward(self, z):
        return (z.flatten(1) @ self.weight.T).view(-1, 4, 4)


def test_matching_pursuit_picks_planted_components_first():
    planted = [11, 3, 20]
    model = PlantedDense(24, planted)
    x = torch.ones(2, 24)
    mp = MatchingPursuit(model, ZeroInfiller(), ComponentMap.identity((24,)), k=5, batch_candidates=7)
    res = mp.pursue(x, target=torch.ones(4, 4, dtype=torch.bool))
    assert res.order[:, :3].tolist() == [planted, planted]
    curve = res.distortion
    assert bool((curve[:, 1:] <= curve[:, :-1] + 1e-6).all())  # greedy never gets worse
    assert float(curve[0, 3]) < 1e-2 * float(curve[0, 0])
    scores = mp.attribute(x, target=None)
    assert scores.shape == (2, 24) and float(scores[0, 11]) == 1.0


def test_matching_pursuit_per_input_components():
    shape = (2, 3, 3)
    model = PlantedDense(18, [4, 13])
    a = ComponentMap.from_sets(shape, [[4], [0, 1], [13]])
    b = ComponentMap.from_sets(shape, [[13], [7]])
    mp = MatchingPursuit(model, ZeroInfiller(), ComponentMap.stack([a, b]), k=3)
    res = mp.pursue(torch.ones(2, *shape))
    # input 0: component 0 (entry 4, strongest) then 2 (entry 13); input 1 has only 2 real ones
    assert res.order[0, :2].tolist() == [0, 2]
    assert res.order[1].tolist() == [0, 1, -1]


class Weighted(nn.Module):
    """One output: ``w · z`` (an exactly additive model, so ties are exact)."""

    def __init__(self, w: list[float]) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.tensor(w))

    def forward(self, z):
        return (z.flatten(1) * self.weight).sum(1, keepdim=True)


def test_matching_pursuit_stops_at_zero_distortion_and_reports_ties():
    w = [0.0] * 8
    w[3] = w[6] = 1.0  # two interchangeable components, the rest do nothing
    mp = MatchingPursuit(Weighted(w), ZeroInfiller(), ComponentMap.identity((8,)), k=5)
    res = mp.pursue(torch.ones(1, 8))
    # after 3 and 6 the distortion is 0: the pursuit stops, nothing is picked in index order
    assert res.order.tolist() == [[3, 6, -1, -1, -1]]
    assert res.distortion[0, :3].tolist() == [2.0, 0.5, 0.0]
    assert bool(res.distortion[0, 3:].isnan().all())
    assert res.ties.tolist() == [[False, True, False, False, False]]
    assert res.n_tied.tolist() == [[2, 1, 0, 0, 0]]
    scores = res.scores()
    assert scores[0, 3] == scores[0, 6] == 1.0
    assert float(scores[0].abs().sum()) == 2.0  # every other component scores 0
    assert res.mask[0].nonzero().squeeze(1).tolist() == [3, 6]


def test_matching_pursuit_tolerance_stops_early_and_widens_ties():
    w = [1.0, 0.0, 1.001, 0.02, 0.0, 3.0]
    cmap = ComponentMap.identity((6,))
    x = torch.ones(1, 6)
    exact = MatchingPursuit(Weighted(w), ZeroInfiller(), cmap, k=6).pursue(x)
    assert exact.order[0, :4].tolist() == [5, 2, 0, 3]  # 1 and 4 do nothing: 0 after 3
    assert not bool(exact.ties.any())
    loose = MatchingPursuit(Weighted(w), ZeroInfiller(), cmap, k=6, tol=0.01).pursue(x)
    # 2 and 0 are within tol of each other; after them the distortion 0.0002 <= tol: stop
    assert loose.order[0].tolist() == [5, 2, 0, -1, -1, -1]
    assert loose.ties[0].tolist() == [False, False, True, False, False, False]
    s = loose.scores()[0]
    assert s[5] > s[2] == s[0] > 0 and s[3] == 0
    with pytest.raises(ValueError, match="tol"):
        MatchingPursuit(Weighted(w), ZeroInfiller(), cmap, k=2, tol=-1.0)


class CountingModel(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model, self.rows = model, []

    def forward(self, z):
        self.rows.append(z.shape[0])
        return self.model(z)


def _per_input_case():
    """Three inputs with their own component maps (3, 2 and 4 components, padded to 4)."""
    shape = (2, 3, 3)
    maps = [ComponentMap.from_sets(shape, [[4], [0, 1], [13]]),
            ComponentMap.from_sets(shape, [[13], [7]]),
            ComponentMap.from_sets(shape, [[2], [9, 10], [4, 5], [17]])]
    x = 1.0 + torch.rand(3, *shape, generator=torch.Generator().manual_seed(3))
    return PlantedDense(18, [4, 13, 9]), maps, x


@pytest.mark.parametrize("target", [None, "weights", "per-input-weights"])
def test_matching_pursuit_batches_candidates_across_inputs(target):
    model, maps, x = _per_input_case()
    spec = {None: None, "weights": torch.rand(4, 4, generator=torch.Generator().manual_seed(1)),
            "per-input-weights": torch.rand(3, 4, 4, generator=torch.Generator().manual_seed(2))}[target]
    counted = CountingModel(model)
    mp = MatchingPursuit(counted, ZeroInfiller(), ComponentMap.stack(maps), k=4, batch_candidates=5)
    res = mp.pursue(x, spec)
    # reference, nothing kept, then all inputs' candidates together: 9 (5 + 4), 6, 3, 1
    assert counted.rows == [3, 3, 5, 4, 5, 1, 3, 1]
    assert res.order[1, 2:].tolist() == [-1, -1]  # padded components are never chosen
    for b in range(3):  # the same choices as each input alone
        one = spec if spec is None or spec.dim() == 2 else spec[b]
        alone = MatchingPursuit(model, ZeroInfiller(), maps[b], k=4).pursue(x[b: b + 1], one)
        n = maps[b].n_components
        assert res.order[b, :n].tolist() == alone.order[0, :n].tolist()
        assert torch.allclose(res.distortion[b, : n + 1], alone.distortion[0, : n + 1],
                              rtol=1e-3, atol=1e-6, equal_nan=True)


def test_matching_pursuit_per_input_class_targets_batched():
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    with torch.no_grad():
        model[1].weight.copy_(torch.randn(3, 12, generator=torch.Generator().manual_seed(0)))
    x = torch.randn(4, 12, generator=torch.Generator().manual_seed(1))
    cmap, classes = ComponentMap.identity((12,)), [0, 1, 2, 1]
    batched = MatchingPursuit(model, ZeroInfiller(), cmap, k=3, batch_candidates=7).pursue(x, classes)
    for b, t in enumerate(classes):
        alone = MatchingPursuit(model, ZeroInfiller(), cmap, k=3).pursue(x[b: b + 1], t)
        assert batched.order[b].tolist() == alone.order[0].tolist()


def test_radio_explanations_run_a_model_without_parameters():
    """``next(model.parameters())`` raised a bare StopIteration for a fixed-function Φ."""
    from genex.studies.radio.explain import explain_one, planted_rank
    from genex.studies.radio.features import planted_scene

    from helpers.radio_models import Shadow  # no parameters, no buffers

    scene = planted_scene(16, 2.0, 2)
    params = {"k": 2, "sample_fractions": [0.0], "mc_samples": 1, "batch_candidates": 64,
              "roi": 3, "random_orders": 2,
              "rde": {"fraction": 0.0, "lam": 1.0, "lr": 0.1, "steps": 2}}
    ranks = planted_rank(Shadow(), Shadow(), scene, params, seed=0)
    assert set(ranks["ranks"]) == {"zero"}
    out = explain_one(Shadow(), Shadow(), scene["x"], params, seed=0, keep_maps=True)
    assert out["components"] == ranks["components"] and "estimate" in out


# ---- baselines -----------------------------------------------------------------------------
@pytest.mark.parametrize("make", [
    lambda m, c: Saliency(m, c),
    lambda m, c: IntegratedGradients(m, c, n_steps=8),
    lambda m, c: Occlusion(m, c, perturbations_per_eval=16),
], ids=["saliency", "integrated-gradients", "occlusion"])
def test_baselines_rank_planted_band(make):
    model, x = PlantedLinear(), planted_inputs(3)
    scores = make(model, ComponentMap.identity(SHAPE)).attribute(x, target=[0, 0, 0])
    assert scores.shape == (3, 128)
    assert min(band_overlap(scores)) >= 0.8


def test_occlusion_over_grouped_components():
    model, x = PlantedLinear(), planted_inputs(2)
    scores = Occlusion(model, ComponentMap.along_axis(SHAPE, 0)).attribute(x, target=0)
    expected = x[:, 0, BAND].sum(1)  # occluding the magnitude removes the band's logit
    assert torch.allclose(scores[:, 0], expected) and bool((scores[:, 1] == 0).all())


def test_random_baseline_shape_and_seed():
    cmap = ComponentMap.identity(SHAPE)
    a = Random(nn.Identity(), cmap, seed=1).attribute(torch.zeros(3, *SHAPE))
    assert a.shape == (3, 128)
    assert torch.equal(a, Random(nn.Identity(), cmap, seed=1).attribute(torch.zeros(3, *SHAPE)))


# ---- batching and generative infill inside the optimisers ----------------------------------
class ShapeRecorder(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model, self.shapes = model, []

    def forward(self, z):
        self.shapes.append(tuple(z.shape))
        return self.model(z)


class TinyInpainter(nn.Module):
    """Fills with a learnable scale of the kept entries' mean (differentiable in the mask)."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(0.5))

    def forward(self, x_masked, mask, noise):
        mean = x_masked.sum(-1, keepdim=True) / mask.sum(-1, keepdim=True).clamp_min(1e-3)
        return self.scale * mean.expand_as(x_masked) + 0.1 * noise


def test_rde_batches_inputs_and_draws_in_one_forward_through_a_generator():
    model = ShapeRecorder(PlantedLinear())
    inpainter = TinyInpainter()
    explainer = RDEConcrete(model, GenerativeInfiller(inpainter), ComponentMap.identity(SHAPE),
                            lam=1.0, lr=0.1, steps=3, n_samples=5)
    mask = explainer.attribute(planted_inputs(4), target=0)
    # reference, n·B per step, then the relaxed and the binarised distortion of the result
    assert model.shapes == [(4, *SHAPE)] + [(20, *SHAPE)] * (3 + 2)
    assert mask.shape == (4, 128) and not torch.equal(mask, torch.full_like(mask, 0.5))
    assert inpainter.scale.grad is None and inpainter.scale.requires_grad
