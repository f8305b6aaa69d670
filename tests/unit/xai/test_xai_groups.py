"""RDE with one mask per group of inputs (the nsynth per-class query, Table 1) is the
library's RDEConcrete(groups=...), equal to the study's former hand-written loop."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from genex.studies.nsynth.explain import class_query
from genex.xai import ComponentMap, NoiseInfiller, RateDistortion, RDEConcrete, Target, concrete_mask
from genex.xai.rde import frozen

PARAMS = {"class_lam": 3.0, "temperature": 0.1, "class_lr": 0.05, "class_steps": 12, "n_samples": 3, "init": 0.5}


def _former_class_query(model, infiller, x, families, n_families, params, seed):
    """The study's loop before it moved into the library (kept verbatim as the oracle)."""
    device = x.device
    cmap = ComponentMap.along_axis(tuple(x.shape[1:]), 0).to(device)
    obj = RateDistortion(model, infiller, cmap, params["class_lam"], params["n_samples"])
    tgt = Target(None, x.shape[0])
    counts = torch.bincount(families, minlength=n_families).to(x.dtype)
    init = math.log(params["init"] / (1 - params["init"]))
    theta = torch.full((n_families, 2), init, device=device, dtype=x.dtype, requires_grad=True)
    opt = torch.optim.Adam([theta], lr=params["class_lr"])
    gen = torch.Generator(device=device).manual_seed(seed)
    with frozen(obj.modules()):
        ref = obj.reference(x, tgt)
        for _ in range(params["class_steps"]):
            keep = concrete_mask(theta[families], params["temperature"], obj.n_samples, gen)
            dist, rate = obj.loss(x, keep, ref, tgt, gen)
            per_family = torch.zeros(n_families, device=device, dtype=x.dtype)
            per_family = per_family.index_add(0, families, dist + obj.lam * rate)
            loss = (per_family / counts.clamp_min(1)).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    probs = torch.sigmoid(theta.detach())
    probs[counts == 0] = float("nan")
    return probs


def _setup():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(2 * 16, 4))
    x = torch.randn(9, 2, 16)
    families = torch.tensor([0, 0, 1, 1, 1, 3, 3, 0, 1])  # family 2 has no notes
    return model, x, families


def test_class_query_equals_the_former_study_loop():
    model, x, families = _setup()
    new, history = class_query(model, NoiseInfiller(seed=1), x, families, 4, PARAMS, seed=5)
    old = _former_class_query(model, NoiseInfiller(seed=1), x, families, 4, PARAMS, seed=5)
    assert torch.equal(torch.isnan(new), torch.isnan(old)) and bool(torch.isnan(new[2]).all())
    assert torch.equal(new.nan_to_num(), old.nan_to_num())
    assert history["step"][0] == 0 and history["step"][-1] == PARAMS["class_steps"] - 1


def test_groups_are_independent_and_shared_is_one_group():
    model, x, families = _setup()
    cmap = ComponentMap.along_axis((2, 16), 0)
    make = lambda: RDEConcrete(model, NoiseInfiller(seed=0), cmap, steps=10, seed=3)  # noqa: E731
    grouped = make().attribute(x, 0, groups=torch.zeros(9, dtype=torch.long), n_groups=1)
    shared = make().attribute(x, 0, shared=True)
    assert grouped.shape == shared.shape == (1, 2)
    assert torch.allclose(grouped, shared, atol=1e-6)
    with pytest.raises(ValueError, match="groups must be"):
        make().attribute(x, 0, groups=torch.tensor([0, 5]), n_groups=2)
