"""Radio training that learns shadows: the line-of-sight maps, the shadow-weighted loss and the
free-space residual model (issue 15, item 7; measured in benchmarks/bench_radio_shadows.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from helpers.radio_models import tiny_radio_features

from genex.studies.radio.features import free_space_gain, phi_gt_inputs, phi_inputs
from genex.studies.radio.models import (
    FreeSpaceResidual,
    LineOfSight,
    RadioWNet,
    build_model,
    free_space_prior,
    walls_crossed,
)
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


def test_walls_crossed_counts_the_buildings_between_the_tx_and_each_pixel():
    buildings = np.zeros((1, 32, 32), dtype=np.uint8)
    buildings[0, 10:22, 8:12] = 1              # east of the TX
    buildings[0, 26:30, 4:8] = 1               # south of it
    tx = np.array([[16, 2]])
    x = torch.from_numpy(phi_gt_inputs(buildings, tx))
    walls = walls_crossed(x)[0, 0]
    assert walls[16, 20].item() == pytest.approx(1.0)  # behind the east building: one wall
    assert walls[16, 5].item() == pytest.approx(0.0)   # in front of it: none
    assert walls[0, 2].item() == pytest.approx(0.0)    # straight north: a clear ray
    assert walls[31, 6].item() == pytest.approx(1.0)   # behind the south one only
    # a soft (half-removed) building counts half, and the count is differentiable in it
    soft = (x * torch.tensor([0.5, 1.0]).view(1, 2, 1, 1)).requires_grad_(True)
    walls_soft = walls_crossed(soft)[0, 0, 16, 20]
    assert walls_soft.item() == pytest.approx(0.5)
    walls_soft.backward()
    assert soft.grad[0, 0, 10:22, 8:12].abs().sum() > 0
    assert soft.grad[0, 0, 26:30, 4:8].abs().sum() == 0   # not on that ray
    # removing the building clears the rays it blocked
    x_removed = x.clone()
    x_removed[0, 0, 10:22, 8:12] = 0
    assert walls_crossed(x_removed)[0, 0, 16, 20].item() == pytest.approx(0.0)


def test_line_of_sight_model_reads_the_inputs_and_the_two_maps():
    net = build_model(2, {"width": 2, "depth": 2, "line_of_sight": True, "metres_per_pixel": MPP})
    assert isinstance(net, LineOfSight) and net.net.in_channels == 4
    gain, buildings, tx = _city()
    x = torch.from_numpy(phi_gt_inputs(buildings, tx))
    maps = torch.cat([x, free_space_prior(x, MPP), torch.exp(-walls_crossed(x))], dim=1)
    with torch.no_grad():
        assert torch.allclose(net(x), net.net(maps))
    # Φ's three channels: buildings and TX where Φ_gt has them, so the same maps
    phi = build_model(3, {"width": 2, "depth": 2, "line_of_sight": True, "metres_per_pixel": MPP})
    assert phi.net.in_channels == 5
    both = build_model(2, {"width": 2, "depth": 2, "line_of_sight": True, "target": "free_space_residual",
                           "metres_per_pixel": MPP})
    assert isinstance(both, FreeSpaceResidual) and isinstance(both.net, LineOfSight)
    with pytest.raises(ValueError, match="metres_per_pixel"):
        build_model(2, {"width": 2, "depth": 2, "line_of_sight": True})


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


def test_line_of_sight_training_stores_the_scale_and_reloads_the_same(features, tmp_path):
    from genex.studies.radio.features import load_split
    from genex.studies.radio.train import predict_split, rmse

    out = train_model("phi", features, {**TRAIN, "line_of_sight": True}, 0, torch.device("cpu"),
                      tmp_path / "ck", tmp_path / "m.pt")
    assert out["params"]["metres_per_pixel"] == 4.0 and out["in_channels"] == 3
    valid = load_split(features, "valid")
    net = load_model(tmp_path / "m.pt")
    assert isinstance(net, LineOfSight)
    assert rmse(predict_split(net, "phi", valid, torch.device("cpu")), valid["gain"]) == pytest.approx(
        out["best_valid_rmse"], rel=1e-6)


@pytest.mark.parametrize("share", [0.0, 0.5, 1.0])
def test_unmeasured_share_gives_that_share_of_training_maps_no_measurements(features, tmp_path,
                                                                            monkeypatch, share):
    import genex.studies.radio.train as tr

    seen = []
    real = tr.batch_inputs

    def spy(model, split, idx, measured=None):
        x = real(model, split, idx, measured)
        if measured is not None:   # a training batch (validation keeps the split's own)
            seen.append(x[:, 2].reshape(len(x), -1).any(axis=1))
        return x

    monkeypatch.setattr(tr, "batch_inputs", spy)
    train_model("phi", features, {**TRAIN, "epochs": 2, "unmeasured_share": share}, 0,
                torch.device("cpu"), tmp_path / "ck", tmp_path / "m.pt")
    measured = np.concatenate(seen)
    assert len(measured) >= 8
    if share == 0.0:
        assert measured.all()
    elif share == 1.0:
        assert not measured.any()
    else:
        assert 0 < measured.mean() < 1
