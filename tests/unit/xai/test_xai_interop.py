"""Captum's perturbation methods with genex infillers (captum#1125), and the Quantus adapter.

(a) With a constant infiller the wrapper is exactly Captum's method with that constant
    baseline and the components as feature mask; (b) on a model whose zero-filled inputs
    land in a spurious response, a constant baseline ranks the distractors on top and an
    in-distribution fill ranks the planted band; (c) seeding and per-input maps. The
    contract (shape, train mode, seeds, no_grad, CUDA) is in test_xai_contract.py.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

import genex.xai as xai

captum_attr = pytest.importorskip("captum.attr")

METHODS = {  # method -> (Captum class, Captum's own n_samples)
    "feature_ablation": ("FeatureAblation", None),
    "shapley": ("ShapleyValueSampling", 6),
    "kernel_shap": ("KernelShap", 40),
    "lime": ("Lime", 40),
}
SHAPE = (2, 16)


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(32, 8), nn.Tanh(), nn.Linear(8, 3))


def _cmap() -> xai.ComponentMap:
    return xai.ComponentMap(torch.arange(32).view(*SHAPE) // 4, 8)  # 8 tiles of 4 entries


def _kernel(original, perturbed, interpretable, **kwargs):
    """A Lime kernel on the coalition itself, so both runs weigh samples alike."""
    return torch.exp(-(1 - interpretable.float()).sum() / 4.0)


@pytest.mark.parametrize("fill", ["zero", "mean"])
@pytest.mark.parametrize("method", sorted(METHODS))
def test_a_constant_infiller_is_captum_with_that_constant_baseline(method, fill):
    x = torch.randn(3, *SHAPE, generator=torch.Generator().manual_seed(1))
    mean = torch.linspace(-1.0, 1.0, 32).view(*SHAPE)
    infiller = xai.ZeroInfiller() if fill == "zero" else xai.MeanInfiller(mean)
    baseline = 0.0 if fill == "zero" else mean.unsqueeze(0).expand_as(x).contiguous()
    cls_name, n_evals = METHODS[method]
    extra = {"similarity_func": _kernel} if method == "lime" else {}
    target = [0, 2, 1]  # one class per input: Lime / KernelShap see one input at a time

    ours = xai.CaptumPerturbation(_model(), infiller, _cmap(), method=method, n_samples=1,
                                  n_evals=n_evals, seed=5, **extra).attribute(x, target)

    model = _model().eval()
    torch.manual_seed(5)
    captum_method = getattr(captum_attr, cls_name)(model, **extra)
    kwargs = {} if n_evals is None else {"n_samples": n_evals}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        theirs = captum_method.attribute(x, baselines=baseline, target=target,
                                         feature_mask=_cmap().labels.unsqueeze(0), **kwargs)
    theirs = _cmap().reduce(theirs, "mean")  # every entry of a tile carries its value
    assert ours.shape == (3, 8)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
    assert ours.abs().sum() > 0


def test_infilled_forward_lets_users_call_captum_themselves():
    x = torch.randn(4, *SHAPE, generator=torch.Generator().manual_seed(2))
    infiller = xai.NoiseInfiller(std=0.5)
    fwd = xai.infilled_forward(_model(), infiller, _cmap(), x, target=1, n_samples=3, seed=4)
    assert fwd.inputs.shape == (4, 8) and bool((fwd.inputs == 1).all())
    # all components present: the forward is the model's score, whatever the infiller
    with torch.no_grad():
        torch.testing.assert_close(fwd(fwd.inputs, torch.arange(4)), _model()(x)[:, 1])
    ours = xai.CaptumPerturbation(_model(), infiller, _cmap(), method="shapley", n_samples=3,
                                  n_evals=4, seed=4).attribute(x, target=1)
    torch.manual_seed(4)  # the explainer seeds Captum's sampler with its own seed
    direct = captum_attr.ShapleyValueSampling(fwd).attribute(fwd.inputs, n_samples=4,
                                                             **fwd.attribute_kwargs)
    torch.testing.assert_close(ours, direct)


class _Trap(nn.Module):
    """Score: the planted band (bins 0..9) above the noise floor 3, minus 10 per bin of the
    distractor band (16..25) that falls below 1 — a response no input of the data (floor
    3 ± 0.5) ever triggers, but a zero fill does."""

    def forward(self, x):
        x = x.flatten(1)
        return ((x[:, :10] - 3).sum(1) - 10 * torch.relu(1 - x[:, 16:26]).sum(1)).unsqueeze(1)


def _trap_data(batch: int) -> torch.Tensor:
    x = 3 + 0.5 * torch.randn(batch, 1, 32, generator=torch.Generator().manual_seed(0))
    x[:, :, :10] += 3
    return x


PLANTED = set(range(5))       # components = pairs of bins: 0..4 cover bins 0..9
DISTRACTORS = set(range(8, 13))


def _overlap(scores: torch.Tensor, planted: set[int]) -> list[float]:
    return [len(planted & set(row.tolist())) / len(planted)
            for row in scores.topk(len(planted), dim=1).indices]


@pytest.mark.parametrize("method,n_evals", [("feature_ablation", None), ("shapley", 10),
                                            ("kernel_shap", 150), ("lime", 150)])
def test_an_in_distribution_fill_recovers_the_band_a_zero_baseline_misses(method, n_evals):
    x = _trap_data(4)
    cmap = xai.ComponentMap(torch.arange(32).view(1, 32) // 2, 16)

    def run(infiller, n):
        return xai.CaptumPerturbation(_Trap(), infiller, cmap, method=method, n_samples=n,
                                      n_evals=n_evals, perturbations_per_eval=16).attribute(x, 0)

    zero = run(xai.ZeroInfiller(), 1)
    noise = run(xai.NoiseInfiller(mean=3.0, std=0.5), 4)  # the data's floor statistics
    assert min(_overlap(noise, PLANTED)) >= 0.8
    assert max(_overlap(zero, PLANTED)) <= 0.2
    assert min(_overlap(zero, DISTRACTORS)) >= 0.8  # the zero fill's spurious response wins
    assert not torch.allclose(zero, noise, atol=1.0)


def test_seeds_fix_the_result_and_leave_the_global_generator_alone():
    x = torch.randn(2, *SHAPE, generator=torch.Generator().manual_seed(3))

    def explainer(seed):
        return xai.CaptumPerturbation(_model(), xai.NoiseInfiller(std=1.0), _cmap(), method="kernel_shap",
                                      n_samples=2, n_evals=30, seed=seed)

    one, two = explainer(1), explainer(2)
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    a = one.attribute(x, target=0)
    assert torch.equal(torch.random.get_rng_state(), state)
    torch.manual_seed(77)  # the caller's generator state does not matter
    assert torch.equal(a, explainer(1).attribute(x, target=0))
    assert not torch.equal(a, two.attribute(x, target=0))


def test_every_forward_call_draws_the_same_fills_for_a_seed():
    x = torch.randn(2, *SHAPE, generator=torch.Generator().manual_seed(4))
    fwd = xai.infilled_forward(_model(), xai.NoiseInfiller(std=1.0), _cmap(), x, target=0,
                               n_samples=4, seed=8)
    coalition = torch.tensor([[1, 0, 1, 0, 1, 0, 1, 0], [0, 0, 1, 1, 0, 0, 1, 1]], dtype=x.dtype)
    first = fwd(coalition, torch.arange(2))
    fwd(1 - coalition, torch.arange(2))  # other calls in between do not shift the draws
    assert torch.equal(fwd(coalition, torch.arange(2)), first)
    other = xai.infilled_forward(_model(), xai.NoiseInfiller(std=1.0), _cmap(), x, 0, 4, seed=9)
    assert not torch.equal(other(coalition, torch.arange(2)), first)


def test_per_input_component_maps_explain_each_input_with_its_own_map():
    x = torch.randn(2, *SHAPE, generator=torch.Generator().manual_seed(5))
    maps = [_cmap(), xai.ComponentMap.along_axis(SHAPE, axis=0)]  # 8 tiles; 2 channels
    stacked = xai.ComponentMap.stack(maps)
    both = xai.CaptumPerturbation(_model(), xai.ZeroInfiller(), stacked, method="feature_ablation",
                                  n_samples=1).attribute(x, target=[0, 1])
    for b, cmap in enumerate(maps):
        alone = xai.CaptumPerturbation(_model(), xai.ZeroInfiller(), cmap, method="feature_ablation",
                                       n_samples=1).attribute(x[b: b + 1], target=[b])
        torch.testing.assert_close(both[b, : cmap.n_components], alone[0])
    assert torch.equal(both[1, 2:], torch.zeros(6))  # padded components cover nothing
    with pytest.raises(ValueError, match="per input for 2 inputs, got 3"):
        xai.infilled_forward(_model(), xai.ZeroInfiller(), stacked, torch.randn(3, *SHAPE))


def test_bad_arguments_are_refused_in_one_line():
    with pytest.raises(ValueError, match="unknown method 'occlusion'"):
        xai.CaptumPerturbation(_model(), xai.ZeroInfiller(), _cmap(), method="occlusion")
    with pytest.raises(TypeError, match="infiller must be an Infiller"):
        xai.CaptumPerturbation(_model(), 0.0, _cmap())
    with pytest.raises(ValueError, match="similarity_func is for lime"):
        xai.CaptumPerturbation(_model(), xai.ZeroInfiller(), _cmap(), method="shapley", similarity_func=_kernel)
    with pytest.raises(ValueError, match="feature_mask are set by the explainer"):
        xai.CaptumPerturbation(_model(), xai.ZeroInfiller(), _cmap(), feature_mask=None)
    with pytest.raises(ValueError, match="inputs have shape"):
        xai.infilled_forward(_model(), xai.ZeroInfiller(), _cmap(), torch.randn(2, 3, 16))


# ---- Quantus ---------------------------------------------------------------------------

def test_the_quantus_perturb_func_fills_exactly_the_indexed_entries():
    arr = np.random.default_rng(0).standard_normal((3, 32)).astype(np.float32)
    idx = np.array([[0, 5, 9], [1, 2, 3], [31, 30, 0]])
    zero = xai.quantus_perturb_func(xai.ZeroInfiller(), SHAPE)(arr=arr, indices=idx, perturb_baseline="black")
    expected = arr.copy()
    expected[np.arange(3)[:, None], idx] = 0.0
    np.testing.assert_array_equal(zero, expected)
    noisy = xai.quantus_perturb_func(xai.NoiseInfiller(mean=5.0, std=0.1), SHAPE, n_samples=2)(arr=arr, indices=idx)
    changed = noisy != arr
    assert noisy.dtype == arr.dtype and changed.sum() == idx.size
    assert bool(changed[np.arange(3)[:, None], idx].all())
    assert abs(float(noisy[changed].mean()) - 5.0) < 0.2
    with pytest.raises(ValueError, match="do not fit input_shape"):
        xai.quantus_perturb_func(xai.ZeroInfiller(), (3, 16))(arr=arr, indices=idx)


def test_quantus_faithfulness_with_an_infiller_credits_the_true_explanation():
    """FaithfulnessCorrelation of the true attribution (the planted band) on the trap model:
    with a zero baseline the distractors' spurious drops swamp it; infilled from the data's
    floor, removing entries changes the score exactly as the attribution says."""
    quantus = pytest.importorskip("quantus")
    x = _trap_data(6).numpy()
    truth = np.zeros_like(x)
    truth[:, :, :10] = 1.0
    truth += 0.01 * np.random.default_rng(0).standard_normal(x.shape).astype(np.float32)
    y = np.zeros(6, dtype=int)

    def score(**kwargs):
        np.random.seed(0)  # Quantus draws its subsets from numpy's global generator
        metric = quantus.FaithfulnessCorrelation(nr_runs=40, subset_size=4, disable_warnings=True,
                                                 return_aggregate=False, **kwargs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.asarray(metric(model=_Trap().eval(), x_batch=x, y_batch=y, a_batch=truth, device="cpu"))

    zero = score(perturb_baseline=0.0)
    infilled = score(perturb_func=xai.quantus_perturb_func(xai.NoiseInfiller(mean=3.0, std=0.5), (1, 32)))
    assert infilled.min() > 0.9
    assert zero.mean() < 0.5
