"""Radio training that learns shadows: the shadow-weighted loss and the free-space residual
model (issue 15, item 7; measured in benchmarks/bench_radio_shadows.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from helpers.radio_models import tiny_radio_features

from genex.studies.radio.features import free_space_gain, phi_gt_inputs, phi_inputs
from genex.studies.radio.models import FreeSpaceResidual, RadioWNet, build_model, free_space_prior
from genex.studies.radio.train import load_model, loss_weights, train_model, weighted_mse

MPP = 4.0  # metres per pixel


def _city() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One 16 x 16 city: a building between the TX and the right half, whose gain is shadowed."""
    buildings = np.zeros((1, 16, 16), dtype=np.uint8)
    buildings[0, 5:11, 6:8] = 1
    tx = np.array([[8, 2]])
    gain = free_space_gain(tx[0], buildings[0], MPP)[None].copy()
    gain[0, 4:12, 8:] *= 0.3   # the shadow: far below free space
    return gain, buildings, tx


def test_loss_weights_are_zero_on_buildings_and_grow_in_the_shadow():
    gain, buildings, tx = _city()
    w = loss_weights(gain, buildings, tx, MPP, shadow=8.0, building=0.0)
    inside = buildings > 0
    assert np.all(w[inside] == 0)
    lit = (~inside) & (gain >= free_space_gain(tx[0], buildings[0], MPP)[None])
    assert lit.any() and np.allclose(w[lit], 1.0)   # at free space: plain weight
    shadow = np.zeros_like(inside)
    shadow[0, 4:12, 8:] = True
    assert w[shadow & ~inside].min() > 1.0          # below free space: more
    deficit = np.maximum(free_space_gain(tx[0], buildings[0], MPP)[None] - gain, 0)
    assert np.allclose(w[~inside], 1 + 8.0 * deficit[~inside])


def test_plain_weights_are_ones_and_weighted_mse_is_mse_then():
    gain, buildings, tx = _city()
    assert np.all(loss_weights(gain, buildings, tx, MPP) == 1.0)
    pred, target = torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8)
    plain = torch.nn.functional.mse_loss(pred, target)
    assert torch.allclose(weighted_mse(pred, target, torch.ones_like(pred)), plain)
    assert torch.allclose(weighted_mse(pred, target, None), plain)
    # a zero-weight pixel does not count, whatever its error
    w = torch.ones_like(pred)
    w[0, 0, 0, 0] = 0
    worse = pred.clone()
    worse[0, 0, 0, 0] += 100
    assert torch.allclose(weighted_mse(worse, target, w), weighted_mse(pred, target, w))


def test_free_space_prior_is_the_free_space_baseline_of_the_inputs():
    gain, buildings, tx = _city()
    x = torch.from_numpy(phi_gt_inputs(buildings, tx))
    prior = free_space_prior(x, MPP)[0, 0].numpy()
    # the baseline is read through 8-bit grey: within one grey level (1/204 on this scale)
    assert np.abs(prior - free_space_gain(tx[0], buildings[0], MPP)).max() < 1 / 204 + 1e-6
    # Φ's inputs carry buildings and TX in the same channels: the same prior
    xp = torch.from_numpy(phi_inputs(buildings, tx, gain, np.zeros_like(buildings)))
    assert torch.allclose(free_space_prior(xp, MPP), free_space_prior(x, MPP))
    # removing the building lights its pixels in the prior
    x_removed = x.clone()
    x_removed[:, 0] = 0
    assert (free_space_prior(x_removed, MPP)[0, 0].numpy()[buildings[0] > 0] > 0.2).all()


def test_residual_model_adds_the_network_to_the_prior():
    net = build_model(2, {"width": 2, "depth": 2, "target": "free_space_residual", "metres_per_pixel": MPP})
    assert isinstance(net, FreeSpaceResidual) and isinstance(net.net, RadioWNet)
    gain, buildings, tx = _city()
    x = torch.from_numpy(phi_gt_inputs(buildings, tx))
    with torch.no_grad():
        assert torch.allclose(net(x), free_space_prior(x, MPP) + net.net(x))
    with pytest.raises(ValueError, match="metres_per_pixel"):
        build_model(2, {"width": 2, "depth": 2, "target": "free_space_residual"})
    with pytest.raises(ValueError, match="unknown target"):
        build_model(2, {"width": 2, "depth": 2, "target": "shadows"})


@pytest.fixture(scope="module")
def features(tmp_path_factory) -> Path:
    return tiny_radio_features(tmp_path_factory.mktemp("radio_shadows"))


TRAIN = {"width": 2, "depth": 2, "chained": True, "epochs": 1, "batch_size": 4, "lr": 0.01,
         "lr_step": 1, "lr_gamma": 0.5}


def test_weighted_residual_training_saves_a_model_that_reloads_the_same(features, tmp_path):
    from genex.studies.radio.features import load_split
    from genex.studies.radio.train import predict_split, rmse

    params = {**TRAIN, "target": "free_space_residual",
              "loss": {"shadow_weight": 4.0, "building_weight": 0.1}}
    out = train_model("phi_gt", features, params, 0, torch.device("cpu"), tmp_path / "ck", tmp_path / "m.pt")
    assert out["params"]["metres_per_pixel"] == 4.0   # 64 px source at 16 px
    assert np.isfinite(out["best_valid_rmse"])
    valid = load_split(features, "valid")
    net = load_model(tmp_path / "m.pt")
    assert isinstance(net, FreeSpaceResidual)
    pred = predict_split(net, "phi_gt", valid, torch.device("cpu"))
    assert rmse(pred, valid["gain"]) == pytest.approx(out["best_valid_rmse"], rel=1e-6)
    # the weighting changes what is learned: not the plain-MSE model
    plain = train_model("phi_gt", features, {**TRAIN, "target": "free_space_residual"}, 0,
                        torch.device("cpu"), tmp_path / "ck2", tmp_path / "p.pt")
    assert plain["history"] != out["history"]
