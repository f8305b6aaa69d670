"""One contract across every genex.xai explainer (table-driven, as Captum's test_config).

For each explainer: ``attribute(x, target) -> [B, C]``; the model's train mode and its
parameters' ``requires_grad`` are as before; the same seed gives the same scores; a batch of
1 and of 64 work; a model without parameters works; CUDA where there is a device.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import genex.xai as xai

SHAPE = (2, 16)
C = 32


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(2 * 16, 8), nn.Tanh(), nn.Linear(8, 3))


class _Parameterless(nn.Module):
    """Score 0 is the energy of bins 4..7 of channel 0; no parameters at all."""

    def forward(self, x):
        return torch.stack([x[:, 0, 4:8].pow(2).sum(1), x.sum((1, 2)), x[:, 1].mean(1)], dim=1)


def _cmap():
    return xai.ComponentMap.identity(SHAPE)


# name -> factory(model, component_map, seed); small step counts: the contract, not quality
EXPLAINERS = {
    "rde_concrete": lambda m, c, s: xai.RDEConcrete(m, xai.NoiseInfiller(std=1.0, seed=s), c, steps=5,
                                                    seed=s, n_samples=2),
    "rde_l1": lambda m, c, s: xai.RDEL1(m, xai.NoiseInfiller(std=1.0, seed=s), c, steps=5, seed=s,
                                        n_samples=2),
    "matching_pursuit": lambda m, c, s: xai.MatchingPursuit(m, xai.ZeroInfiller(), c, k=3, seed=s),
    "saliency": lambda m, c, s: xai.Saliency(m, c),
    "integrated_gradients": lambda m, c, s: xai.IntegratedGradients(m, c, n_steps=4),
    "occlusion": lambda m, c, s: xai.Occlusion(m, c, perturbations_per_eval=8),
    "random": lambda m, c, s: xai.Random(m, c, seed=s),
    "captum_feature_ablation": lambda m, c, s: xai.CaptumPerturbation(
        m, xai.NoiseInfiller(std=1.0), c, method="feature_ablation", n_samples=2, seed=s,
        perturbations_per_eval=8),
    "captum_shapley": lambda m, c, s: xai.CaptumPerturbation(
        m, xai.NoiseInfiller(std=1.0), c, method="shapley", n_samples=2, n_evals=2, seed=s,
        perturbations_per_eval=8),
    "captum_kernel_shap": lambda m, c, s: xai.CaptumPerturbation(
        m, xai.NoiseInfiller(std=1.0), c, method="kernel_shap", n_samples=2, n_evals=10, seed=s,
        perturbations_per_eval=10),
    "captum_lime": lambda m, c, s: xai.CaptumPerturbation(
        m, xai.NoiseInfiller(std=1.0), c, method="lime", n_samples=2, n_evals=10, seed=s,
        perturbations_per_eval=10),
}


def test_every_public_explainer_is_in_the_table():
    public = {name for name in xai.__all__ if isinstance(getattr(xai, name), type)
              and issubclass(getattr(xai, name), xai.Explainer) and getattr(xai, name) is not xai.Explainer}
    tested = {type(f(_model(), _cmap(), 0)).__name__ for f in EXPLAINERS.values()} | {"ActivationMaximisation"}
    assert public == tested


@pytest.fixture(params=sorted(EXPLAINERS), ids=str)
def make(request):
    return EXPLAINERS[request.param]


@pytest.mark.parametrize("batch", [1, 64])
def test_shape_is_batch_by_components(make, batch):
    x = torch.randn(batch, *SHAPE, generator=torch.Generator().manual_seed(1))
    out = make(_model(), _cmap(), 0).attribute(x, target=0)
    assert out.shape == (batch, C) and out.dtype.is_floating_point
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("training", [True, False])
def test_model_state_is_restored(make, training):
    model = _model().train(training)
    model[1].weight.requires_grad_(False)  # a mix of frozen and trainable parameters
    flags = [p.requires_grad for p in model.parameters()]
    make(model, _cmap(), 0).attribute(torch.randn(3, *SHAPE), target=1)
    assert model.training is training
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())


def test_same_seed_same_scores(make):
    x = torch.randn(4, *SHAPE, generator=torch.Generator().manual_seed(2))
    a = make(_model(), _cmap(), 7).attribute(x, target=0)
    b = make(_model(), _cmap(), 7).attribute(x, target=0)
    assert torch.equal(a, b)


def test_a_model_without_parameters_works(make):
    x = torch.randn(2, *SHAPE, generator=torch.Generator().manual_seed(3))
    out = make(_Parameterless(), _cmap(), 0).attribute(x, target=0)
    assert out.shape == (2, C)


def test_a_plain_function_is_a_model(make):
    out = make(lambda x: x.flatten(1)[:, :3] * 2.0, _cmap(), 0).attribute(torch.randn(2, *SHAPE), target=0)
    assert out.shape == (2, C)


@pytest.mark.gpu
@pytest.mark.gpu
def test_cuda_matches_the_contract(make):
    model = _model().cuda()
    x = torch.randn(4, *SHAPE, device="cuda")
    out = make(model, _cmap(), 0).attribute(x, target=0)
    assert out.shape == (4, C) and out.device.type == "cuda"


def test_activation_maximisation_follows_the_contract():
    torch.manual_seed(0)
    generator = nn.Sequential(nn.Linear(4, 2 * 16), nn.Unflatten(1, SHAPE))
    model = _model().train()
    am = xai.ActivationMaximisation(model, generator, latent_dim=4, steps=30, lr=0.05)
    z0 = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    z = am.attribute(z0, target=0)
    assert z.shape == (5, 4) and model.training and generator.training
    assert torch.equal(z, am.attribute(z0, target=0))
    with torch.no_grad():
        before, after = model(generator(z0))[:, 0], model(generator(z))[:, 0]
    assert bool((after > before).all())
    down = xai.ActivationMaximisation(model, generator, 4, direction="minimise", steps=30, lr=0.05)
    with torch.no_grad():
        assert bool((model(generator(down.attribute(z0, target=0)))[:, 0] < before).all())


def test_explainers_refuse_what_is_not_a_model_or_a_map():
    with pytest.raises(TypeError, match="model must be callable"):
        xai.Saliency(42, _cmap())
    with pytest.raises(TypeError, match="must be a ComponentMap"):
        xai.Random(_model(), [0, 1])


def test_explainers_work_under_no_grad(make):
    """A user's evaluation loop often runs under torch.no_grad(); gradient methods still work."""
    x = torch.randn(2, *SHAPE, generator=torch.Generator().manual_seed(4))
    expected = make(_model(), _cmap(), 0).attribute(x, target=0)
    with torch.no_grad():
        assert torch.equal(make(_model(), _cmap(), 0).attribute(x, target=0), expected)
