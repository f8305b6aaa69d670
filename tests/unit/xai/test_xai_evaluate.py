"""genex.xai.evaluate: curves, AUC, in-distribution check, sanity, binarised distortion, on
planted models with known answers; and the studies' evaluation equals what it was before it
moved into the library (the former study code is kept below, verbatim, as the oracle)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from torch import nn

from genex.xai import (
    ComponentMap,
    Curve,
    GenerativeInfiller,
    Infiller,
    NoiseInfiller,
    ZeroInfiller,
    auc,
    binarised_distortion,
    deletion_curve,
    evaluate_masks,
    in_distribution,
    insertion_curve,
    keep_curve,
    order_curve,
    prefix_masks,
    prune,
    randomisation_sanity,
    top_order,
)
from genex.xai.frechet import frechet_distance
from genex.xai.rde import RateDistortion, frozen
from genex.xai.target import Target

W = torch.tensor([4.0, 3.0, 2.0, 1.0])


def linear(w=W):
    """Φ(x) = w·x, one output."""
    return lambda x: (x.reshape(x.shape[0], -1) * w).sum(1, keepdim=True)


class Identity(Infiller):
    """Fills with x itself: every obfuscation is the clean input."""

    def fill(self, x, keep, n_samples, generator):
        return x


X1 = torch.ones(1, 4)
CMAP = ComponentMap.identity((4,))


# --- curves on a linear model ---------------------------------------------------------------

def test_keep_curve_of_a_linear_model_is_half_the_squared_dropped_sum():
    c = keep_curve(linear(), ZeroInfiller(), CMAP, X1, W[None], None, [0, 0.25, 0.5, 1.0])
    # dropped sums 10, 6, 3, 0 -> ½ d²
    assert c.mean.tolist() == [50.0, 18.0, 4.5, 0.0]
    assert c.per_input.shape == (1, 4) and math.isnan(float(c.sem[0]))


def test_deletion_and_insertion_curves_report_the_target_score():
    fr = [0, 0.25, 0.5, 0.75, 1.0]
    dele = deletion_curve(linear(), ZeroInfiller(), CMAP, X1, W[None], None, fr)
    ins = insertion_curve(linear(), ZeroInfiller(), CMAP, X1, W[None], None, fr)
    assert dele.mean.tolist() == [10.0, 6.0, 3.0, 1.0, 0.0]  # deleting the top one drops 4
    assert ins.mean.tolist() == [0.0, 4.0, 7.0, 9.0, 10.0]
    worst = deletion_curve(linear(), ZeroInfiller(), CMAP, X1, -W[None], None, fr)
    assert auc(dele) < auc(worst)  # the true ranking deletes faster than the reversed one


def test_auc_and_standard_error_of_a_known_curve():
    c = Curve(torch.tensor([0.0, 0.5, 1.0]), torch.tensor([0.0, 1.0, 0.0]), torch.zeros(3),
              torch.tensor([[0.0, 1.0, 0.0], [0.0, 2.0, 2.0]]))
    assert auc(c) == pytest.approx(0.5) and c.auc() == pytest.approx(0.5)
    assert auc(c, per_input=True).tolist() == pytest.approx([0.5, 1.5])
    two = keep_curve(linear(), ZeroInfiller(), CMAP, torch.stack([X1[0], 2 * X1[0]]),
                     W.expand(2, 4), None, [0.0])
    assert two.per_input[:, 0].tolist() == [50.0, 200.0]
    assert float(two.sem[0]) == pytest.approx(np.std([50, 200], ddof=1) / math.sqrt(2))


def test_order_curve_with_padding_and_per_input_maps():
    maps = ComponentMap.stack([ComponentMap.from_sets((4,), [[0, 1], [2], [3]]),
                               ComponentMap.from_sets((4,), [[3], [0]])])  # padded to 3
    x = torch.ones(2, 4)
    orders = torch.tensor([[0, 2, 1], [1, 0, -1]])
    masks = prefix_masks(orders, 3, 3)
    assert masks.shape == (4, 2, 3)
    assert masks[:, 0].tolist() == [[0, 0, 0], [1, 0, 0], [1, 0, 1], [1, 1, 1]]
    assert masks[:, 1].tolist() == [[0, 0, 0], [0, 1, 0], [1, 1, 0], [1, 1, 0]]
    c = order_curve(linear(), ZeroInfiller(), maps, x, orders, 3, metric="score", batch_size=3)
    # input 0 keeps {0,1}, then 3, then 2; input 1 keeps entry 0, then 3; entries 1, 2 uncovered
    assert c.per_input.tolist() == [[0.0, 7.0, 8.0, 10.0], [5.0, 9.0, 10.0, 10.0]]
    assert c.steps.tolist() == [0, 1, 2, 3]


def test_per_input_targets_and_chunking_give_the_same_values():
    model = nn.Linear(6, 3)
    x = torch.randn(5, 6, generator=torch.Generator().manual_seed(0))
    cmap = ComponentMap.identity((6,))
    masks = (torch.rand(2, 5, 6, generator=torch.Generator().manual_seed(1)) < 0.5).float()
    target = [0, 2, 1, 1, 0]
    one = evaluate_masks(model, ZeroInfiller(), cmap, x, masks, target, batch_size=1)
    many = evaluate_masks(model, ZeroInfiller(), cmap, x, masks, target, batch_size=64)
    with torch.no_grad():
        keep = masks * x
        want = 0.5 * (model(keep) - model(x)).gather(2, torch.tensor(target).view(1, 5, 1).expand(2, 5, 1)).square()
    assert torch.allclose(one, want[..., 0]) and torch.allclose(many, want[..., 0])


def test_every_draw_of_a_step_goes_through_the_model_in_one_forward():
    calls = []

    def model(x):
        calls.append(x.shape[0])
        return linear()(x)

    x = torch.ones(3, 4)
    keep_curve(model, NoiseInfiller(), CMAP, x, W.expand(3, 4), None, [0.25, 0.5], n_samples=5,
               batch_size=2)
    # reference: chunks of 2 and 1 inputs; then per step 2 and 1 inputs x 5 draws
    assert calls == [2, 1, 10, 5, 10, 5]


def test_per_step_draws_repeat_per_curve_draws_do_not():
    x = torch.zeros(1, 4)
    masks = torch.zeros(3, 1, 4)
    same = evaluate_masks(linear(), NoiseInfiller(), CMAP, x, masks, n_samples=4, seed=3)
    own = evaluate_masks(linear(), NoiseInfiller(), CMAP, x, masks, n_samples=4, seed=3,
                         draws="per_curve")
    assert same[0] == same[1] == same[2] and len(set(own[:, 0].tolist())) == 3
    assert torch.equal(evaluate_masks(linear(), NoiseInfiller(), CMAP, x, masks, n_samples=4, seed=3), same)


def test_prune_drops_kept_components_the_objective_does_not_need():
    """Components 1 and 3 do not move the output: pruning drops them (lowest score first),
    keeps those whose removal costs more distortion than the rate saves, works per input,
    and a rate weight above every component's worth empties the mask."""
    model = linear(torch.tensor([4.0, 0.0, 2.0, 0.0]))
    x = torch.ones(2, 4)
    mask = torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.0, 1.0, 1.0, 0.0]])
    scores = torch.tensor([[0.9, 0.95, 0.6, 0.99], [0.1, 0.95, 0.6, 0.2]])
    pruned = prune(model, ZeroInfiller(), CMAP, x, mask, lam=0.1, scores=scores)
    assert pruned.tolist() == [[1, 0, 1, 0], [0, 0, 1, 0]]
    assert prune(model, ZeroInfiller(), CMAP, x[:1], mask[:1], lam=100.0, scores=scores[:1]).sum() == 0
    # the binary objective never rises, with random draws too (the same draws for every trial)
    noise = NoiseInfiller(0.0, 1.0)
    before = binarised_distortion(model, noise, CMAP, x, mask, threshold=0.5, n_samples=4)["distortion"]
    pruned = prune(model, noise, CMAP, x, mask, lam=0.1, scores=scores, n_samples=4)
    after = binarised_distortion(model, noise, CMAP, x, pruned, threshold=0.5, n_samples=4)["distortion"]
    assert ((pruned <= mask).all() and
            (after + 0.1 * pruned.sum(1) / 4 <= before + 0.1 * mask.sum(1) / 4 + 1e-9).all())


def test_binarised_distortion_thresholds_or_keeps_top_k():
    probs = torch.tensor([[0.9, 0.2, 0.6, 0.1]])
    out = binarised_distortion(linear(), ZeroInfiller(), CMAP, X1, probs, threshold=0.5)
    assert out["mask"].tolist() == [[1, 0, 1, 0]] and out["kept"].tolist() == [2]
    assert out["distortion"].tolist() == [0.5 * 4.0 ** 2]  # dropped 3 + 1
    top1 = binarised_distortion(linear(), ZeroInfiller(), CMAP, X1, probs, k=1)
    assert top1["distortion"].tolist() == [0.5 * 6.0 ** 2]
    with pytest.raises(ValueError, match="exactly one"):
        binarised_distortion(linear(), ZeroInfiller(), CMAP, X1, probs, k=1, threshold=0.5)


def test_top_order_breaks_ties_by_index():
    assert top_order(torch.tensor([[1.0, 3.0, 3.0, 0.0]]), 3).tolist() == [[1, 2, 0]]


# --- in distribution ------------------------------------------------------------------------

def _classifier():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU()), nn.Linear(8, 3)


def test_in_distribution_of_an_identity_infiller_keeping_everything():
    body, head = _classifier()
    model = nn.Sequential(body, head)
    x = torch.randn(20, 4, generator=torch.Generator().manual_seed(0))
    out = in_distribution(model, body, Identity(), x, CMAP, [0.0, 1.0], batch_size=7)
    for rate in (0.0, 1.0):
        assert out[rate]["agreement"] == 1.0
        assert out[rate]["frechet"] == pytest.approx(0.0, abs=1e-9)
    draws = in_distribution(model, body, Identity(), x, CMAP, [0.5], n_samples=3, batch_size=7)
    assert draws[0.5]["agreement"] == 1.0  # 60 obfuscated inputs, all as clean
    kept = in_distribution(model, body, ZeroInfiller(), x, CMAP, [1.0])[1.0]
    assert kept == {"agreement": 1.0, "frechet": pytest.approx(0.0, abs=1e-9)}


def test_in_distribution_agreement_and_frechet_of_a_zero_infiller():
    # Φ: class 1 if the sum is positive, else class 0; half the inputs are positive
    model = lambda x: torch.stack([torch.zeros(len(x)), x.sum(1)], 1)  # noqa: E731
    x = torch.cat([torch.ones(5, 4), -torch.ones(5, 4)])
    out = in_distribution(model, lambda z: z, ZeroInfiller(), x, CMAP, [0.0], classify=None)[0.0]
    assert out["agreement"] == 0.5  # all-zero inputs: class 0, right for the negative half
    want = frechet_distance(x.double().numpy(), np.zeros((10, 4)))
    assert out["frechet"] == pytest.approx(want)
    with_head = in_distribution(model, lambda z: z, ZeroInfiller(), x, CMAP, [0.0],
                                classify=lambda f: model(f))[0.0]
    assert with_head == out


# --- randomisation sanity -------------------------------------------------------------------

def test_randomisation_sanity():
    x = torch.randn(3, 4, generator=torch.Generator().manual_seed(0))
    ignores = lambda m, xs, t: xs.abs()  # noqa: E731 - an "explainer" that ignores the model
    gradient = lambda m, xs, t: (m.weight[0] * xs).abs() + 0 * xs  # noqa: E731

    def randomise(m):
        out = nn.Linear(4, 1, bias=False)
        out.weight.data = 1.0 / m.weight.data  # reverses the ranking of |w|
        return out

    model = nn.Linear(4, 1, bias=False)
    model.weight.data = torch.tensor([[4.0, 3.0, 2.0, 1.0]])
    assert randomisation_sanity(ignores, model, randomise, x) == pytest.approx(1.0)
    xs = torch.ones(3, 4)
    assert randomisation_sanity(gradient, model, randomise, xs) == pytest.approx(-1.0)
    given = torch.tensor([[1.0, 2.0, 3.0, 4.0]] * 3)
    assert randomisation_sanity(gradient, model, randomise, xs, scores=given) == pytest.approx(1.0)


# --- the studies' evaluation is unchanged (former study code, verbatim, as oracle) ---------

def _old_distortion_at(model, infiller, x, mask, draws, seed, batch_size=64):
    cmap = ComponentMap.identity(tuple(x.shape[1:]))
    out = []
    gen = torch.Generator(device=x.device).manual_seed(seed)
    for s in [slice(i, i + batch_size) for i in range(0, len(x), batch_size)]:
        xb = x[s]
        ref = model(xb)
        z = infiller(xb, cmap.expand(mask[s].to(x.device)), draws, generator=gen)
        scores = model(z.reshape(-1, *xb.shape[1:])).view(draws, len(xb), -1)
        out.append(0.5 * (scores - ref).square().sum(-1).mean(0))
    return torch.cat(out).cpu()


def _old_keep_top(scores, fraction):
    b, c = scores.shape
    k = int(round(fraction * c))
    mask = torch.zeros(b, c, dtype=scores.dtype, device=scores.device)
    if k > 0:
        order = torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :k]
        mask.scatter_(1, order, 1.0)
    return mask


def _old_in_distribution(model, infillers, x, keep, seed, batch_size=256):
    chunks = [slice(i, i + batch_size) for i in range(0, len(x), batch_size)]
    gen = torch.Generator().manual_seed(seed)
    masks = (torch.rand(x.shape, generator=gen) < keep).to(x.dtype)
    real = torch.cat([model.embed(x[s]) for s in chunks])
    pred = model.head(real).argmax(1)
    out = {}
    for name, infiller in infillers.items():
        feats = []
        g = torch.Generator(device=x.device).manual_seed(seed + 1)
        for s in chunks:
            z = infiller(x[s], masks[s].to(x.device), 1, generator=g)[0]
            feats.append(model.embed(z))
        fake = torch.cat(feats)
        agree = float((model.head(fake).argmax(1) == pred).float().mean())
        out[name] = {"agreement": agree,
                     "frechet": frechet_distance(real.cpu().double().numpy(), fake.cpu().double().numpy())}
    return out


def _old_mean_spearman(a, b):
    values = []
    for u, v in zip(a.double().numpy(), b.double().numpy()):
        if np.ptp(u) == 0 or np.ptp(v) == 0:
            values.append(0.0)
            continue
        values.append(float(spearmanr(u, v).statistic))
    return float(np.mean(values)) if values else float("nan")


def _nsynth_setup():
    from genex.studies.nsynth.explain import generative_infiller
    from genex.studies.nsynth.models import Inpainter, InstrumentCNN

    torch.manual_seed(0)
    model = InstrumentCNN(11, 2, 8).eval()
    gan = generative_infiller(Inpainter(1024, width=0.0625).eval(), seed=0)
    x = torch.rand(66, 2, 1024, generator=torch.Generator().manual_seed(1))  # > one chunk of 64
    return model, gan, x


def test_nsynth_evaluation_equals_the_former_study_code():
    from genex.studies.nsynth.metrics import deletion_curve as study_curve
    from genex.studies.nsynth.metrics import in_distribution as study_indist
    from genex.studies.nsynth.metrics import sanity

    model, gan, x = _nsynth_setup()
    scores = {"a": torch.rand(66, 2048, generator=torch.Generator().manual_seed(2))}
    fractions = [0.1, 0.5]
    with torch.no_grad():
        old = {m: [float(_old_distortion_at(model, gan, x, _old_keep_top(s, f), 2, 7).mean())
                   for f in fractions] for m, s in scores.items()}
    assert study_curve(model, gan, x, scores, fractions, 2, 7) == old

    infillers = {"gan": gan, "noise": NoiseInfiller(0.5, 0.2, seed=7)}
    with torch.no_grad():
        old = _old_in_distribution(model, infillers, x, 0.3, 7, batch_size=32)
    assert study_indist(model, infillers, x, 0.3, 7, batch_size=32) == old

    masks = torch.rand(4, 2048, generator=torch.Generator().manual_seed(4))
    other = torch.rand(4, 2048, generator=torch.Generator().manual_seed(5))
    got = sanity(lambda m, xs: other, model, lambda m: m, x[:4], masks)
    assert got == _old_mean_spearman(masks, other)


def _old_prefix_masks(order, n_components, k):
    masks = torch.zeros(k + 1, n_components)
    for j, c in enumerate(order[:k]):
        masks[j + 1:, c] = 1.0
    return masks


@torch.no_grad()
def _old_distortion_curve(model, infiller, comps, x, box, order, k, n_samples, seed):
    from genex.studies.radio.query import box_weights

    obj = RateDistortion(model, infiller, comps.cmap, 0.0, n_samples)
    weights = box_weights(box, tuple(x.shape[-2:]), x.device)
    with frozen(obj.modules()):
        ref = obj.reference(x, Target(weights, 1))
        masks = _old_prefix_masks(order, comps.cmap.n_components, k).to(x.device)
        tgt = Target(weights, 1).for_input(0, k + 1)
        gen = torch.Generator(device=x.device).manual_seed(seed)
        d = obj.distortion(x.expand(k + 1, *x.shape[1:]), masks, ref.expand(k + 1, -1), tgt, gen)
    return [float(v) for v in d]


def test_radio_curves_and_orders_equal_the_former_study_code():
    from genex.studies.radio.query import distortion_curve, radio_components, random_orders, ranking_order
    from genex.studies.radio.features import planted_scene

    scene = planted_scene(32, 2.0, 4)
    comps = radio_components(scene["x"])
    x = torch.from_numpy(scene["x"])[None]
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 1, 3, padding=1))
    gen = GenerativeInfiller(lambda xm, m, n: xm + n.view(-1, 1, 1, 1), noise_shape=(1,), seed=0)
    c = comps.cmap.n_components
    old_rng, new_rng = np.random.default_rng(5), np.random.default_rng(5)
    old_orders = [[int(i) for i in old_rng.permutation(c)[:3]] for _ in range(3)]
    assert random_orders(c, 3, 3, new_rng) == old_orders
    for infiller in (NoiseInfiller(0.3, 0.1), gen, ZeroInfiller()):
        for order in (*old_orders, [1], []):
            assert (distortion_curve(model, infiller, comps, x, scene["box"], order, 3, 2, 11)
                    == _old_distortion_curve(model, infiller, comps, x, scene["box"], order, 3, 2, 11))
    s = torch.tensor([0.2, 0.9, 0.9, -0.0, 0.0, 0.5])
    old = [int(i) for i in np.lexsort((np.arange(6), -s.double().numpy()))[:4]]
    assert ranking_order(s, 4) == old
