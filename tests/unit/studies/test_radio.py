"""The radio study: components, infills, the planted scene, matching pursuit, training resume
and building sensitivity (the tiny DAG: tests/pipeline/test_radio_run.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from helpers.radio_models import Flat, Shadow, tiny_radio_features

from genex.studies.radio.explain import planted_rank, pursue
from genex.studies.radio.infill import PhiGtSampler, make_infiller
from genex.studies.radio.query import (
    MIN_STREET_SHARE,
    box_weights,
    distortion_curve,
    query_box,
    nearest_order,
    radio_components,
    random_orders,
)
from genex.studies.radio.features import (
    block_mean,
    building_components,
    free_space_gain,
    planted_scene,
)
from genex.studies.radio.models import RadioWNet

# --- helpers ----------------------------------------------------------------------------------

def _scene_input() -> np.ndarray:
    """A 16 x 16 Φ input: two buildings (one L-shaped), a TX, three measurements."""
    x = np.zeros((3, 16, 16), dtype=np.float32)
    x[0, 2:5, 2:6] = 1
    x[0, 5:8, 2:4] = 1          # joins the first (L-shape): one building
    x[0, 10:13, 10:14] = 1
    x[0, 8, 8] = 0
    x[1, 14, 1] = 1
    for r, c, g in ((1, 12, 0.5), (7, 7, 0.25), (14, 14, 0.75)):
        x[2, r, c] = g
    return x


class SimulatorModel(nn.Module):
    """A Φ stand-in that runs the radio-sim physics on its buildings channel (no learning):
    the planted building truly casts the shadow, so matching pursuit must find it."""

    def __init__(self, scale: int, tx: tuple[int, int]) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))  # gives the model a device
        self.scale, self.tx = scale, tx

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from genex.studies.radio.data import gain_db_to_scaled
        from genex.studies.radio.render import CityPropagator

        f, out = self.scale, []
        for b in x[:, 0].detach().cpu().numpy():
            fine = np.kron((b > 0.5).astype(np.uint8), np.ones((f, f), dtype=np.uint8))
            gain = CityPropagator(fine).gain_db((self.tx[0] * f + f // 2, self.tx[1] * f + f // 2))
            out.append(block_mean(gain_db_to_scaled(gain, fine), f))
        return torch.as_tensor(np.stack(out), dtype=x.dtype)[:, None]


# --- components -------------------------------------------------------------------------------

def test_buildings_are_4_connected_components():
    b = np.zeros((6, 6), dtype=np.uint8)
    b[0:2, 0:2] = 1
    b[2, 2] = 1          # touches the first only diagonally: a building of its own
    b[4:6, 3:6] = 1
    labels, n = building_components(b)
    assert n == 3
    assert len({labels[0, 0], labels[2, 2], labels[5, 5]}) == 3


def test_every_building_and_measurement_is_one_component():
    x = _scene_input()
    comps = radio_components(x)
    assert comps.kinds == ["building"] * 2 + ["measurement"] * 3
    sizes = comps.cmap.sizes()[0].tolist()
    assert sizes == [int((comps.building_labels == 1).sum()), int((comps.building_labels == 2).sum()), 1, 1, 1]
    # buildings switch channel 0 only, measurements channel 2 only, the TX nothing
    keep = torch.zeros(1, 5)
    mask = comps.cmap.expand(keep)[0]
    assert bool((mask[0][torch.from_numpy(x[0]) > 0] == 0).all())
    assert bool((mask[1] == 1).all())
    assert int((mask[2] == 0).sum()) == 3
    assert mask[2, 7, 7] == 0 and mask[2, 0, 0] == 1


# --- infills ----------------------------------------------------------------------------------

@pytest.mark.parametrize("p", [0.0, 1.0, 0.025, 0.5])
def test_each_infill_keeps_chosen_components_exactly(p):
    torch.manual_seed(0)
    phi_gt = RadioWNet(2, width=2, depth=2).eval().requires_grad_(False)
    x = torch.from_numpy(_scene_input())[None]
    comps = radio_components(x[0].numpy())
    infiller = make_infiller(p, phi_gt, seed=3)
    keep = torch.tensor([[1.0, 0.0, 1.0, 0.0, 0.0]])   # building 0 and measurement 0 chosen
    mask = comps.cmap.expand(keep)
    z = infiller(x, mask, 4)
    kept = mask.expand_as(z) == 1
    assert torch.equal(z[kept], x.expand_as(z)[kept])
    # unchosen buildings are dropped in every infill
    other_building = torch.from_numpy(comps.building_labels == 2)
    assert float(z[:, 0, 0][:, other_building].abs().sum()) == 0.0
    unchosen = [(7, 7), (14, 14)]
    values = torch.stack([z[:, 0, 2, r, c] for r, c in unchosen])
    if p == 0.0:
        assert float(values.abs().sum()) == 0.0
    if p == 1.0:  # Φ_gt's map given the chosen building, at each unchosen measurement
        chosen_b = x[:, 0] * torch.from_numpy(comps.building_labels == 1)
        gt = phi_gt(torch.stack([chosen_b, x[:, 1]], 1)).clamp(0, 1)[0, 0]
        expected = torch.stack([gt[r, c] for r, c in unchosen])
        assert torch.allclose(values, expected[:, None].expand_as(values), atol=1e-6)


def test_partial_infill_samples_a_fraction_p():
    sampler = PhiGtSampler(lambda inp: torch.ones(inp.shape[0], 1, *inp.shape[2:]), p=0.25)
    noise = torch.randn(200, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    out = sampler(torch.zeros(200, 3, 32, 32), torch.zeros(200, 3, 32, 32), noise)
    share = float((out[:, 2] > 0).float().mean())
    assert abs(share - 0.25) < 0.01
    assert float(out[:, 0].abs().sum()) == 0.0


# --- baselines --------------------------------------------------------------------------------

def test_free_space_baseline_falls_with_distance_and_is_zero_in_buildings():
    b = np.zeros((32, 32), dtype=np.uint8)
    b[20:24, 20:24] = 1
    g = free_space_gain(np.array([2, 2]), b, metres_per_pixel=4.0)
    assert g[2, 3] > g[2, 10] > g[2, 30] >= 0
    assert float(g[b > 0].sum()) == 0.0


def test_orders_nearest_and_random():
    comps = radio_components(_scene_input())
    order = nearest_order(comps, (6, 6, 9, 9), 5)
    assert order[0] == 3  # the measurement at (7, 7) is inside the box
    rnd = random_orders(5, 3, 4, np.random.default_rng(0))
    assert all(len(set(o)) == 3 for o in rnd)


# --- the planted scene ------------------------------------------------------------------------

class _DarkFootprint(nn.Module):
    """A fixed 'model' that darkens the street next to each building, fading with distance:
    the darkest boxes by their street pixels alone are mostly building (a footprint)."""

    def forward(self, x):
        from scipy.ndimage import distance_transform_edt

        dist = np.stack([distance_transform_edt(b == 0) for b in x[:, 0].numpy()])
        return 1.0 - 0.9 * x[:, :1] - 0.5 * torch.from_numpy(np.exp(1.0 - dist)).float()[:, None].clamp(max=1)


def test_darken_box_is_mostly_street_and_weights_only_street_pixels():
    x = _scene_input()
    comps = radio_components(x)
    xt = torch.from_numpy(x)[None]
    for size in (3, 4):
        box = query_box(_DarkFootprint(), xt, comps, "darken", size)
        r0, c0, r1, c1 = box
        assert comps.street[r0:r1, c0:c1].mean() >= MIN_STREET_SHARE, box
        weights = box_weights(box, (16, 16), street=comps.street)[0].numpy()
        assert np.isclose(weights.sum(), 1.0)
        assert (weights[~comps.street] == 0).all()            # buildings carry no weight
        assert (weights[r0:r1, c0:c1][comps.street[r0:r1, c0:c1]] > 0).all()
    with pytest.raises(ValueError, match="no street pixel"):
        box_weights((2, 2, 4, 4), (16, 16), street=comps.street)


def test_planted_building_stands_on_the_line_of_sight():
    from genex.studies.radio.render import CityPropagator

    scene = planted_scene(32, 2.0, 4)
    r0, c0, r1, c1 = scene["box"]
    tx = tuple(int(v) for v in scene["tx"])
    comps = radio_components(scene["x"])
    planted = comps.building_labels[scene["planted"]]
    assert planted > 0
    without = (comps.building_labels > 0) & (comps.building_labels != planted)
    visible_without = CityPropagator(without).visible(tx)[r0:r1, c0:c1]
    visible_with = CityPropagator(comps.building_labels > 0).visible(tx)[r0:r1, c0:c1]
    assert visible_without.all() and not visible_with.any()
    assert scene["x"][2, r0:r1, c0:c1].sum() == 0  # no measurement in the shadow


def test_matching_pursuit_picks_the_planted_building_first():
    scene = planted_scene(32, 2.0, 4)
    model = SimulatorModel(2, tuple(int(v) for v in scene["tx"]))
    params = {"k": 3, "sample_fractions": [0.0], "mc_samples": 1, "batch_candidates": 64}
    result = planted_rank(model, model, scene, params, seed=0)
    assert result["ranks"]["zero"] == 1, result
    # without measurements, and on Φ_gt: the buildings alone explain the shadow
    assert result["ranks_by_model"]["phi_no_measurements"] == {"zero": 1}, result
    assert result["ranks_by_model"]["phi_gt"] == {"zero": 1}, result


def test_batched_candidates_choose_as_one_at_a_time_and_beat_random():
    scene = planted_scene(32, 2.0, 4)
    model = SimulatorModel(2, tuple(int(v) for v in scene["tx"]))
    x = torch.from_numpy(scene["x"])[None]
    comps = radio_components(scene["x"])
    infiller = make_infiller(0.0, None)
    batched = pursue(model, infiller, comps, x, scene["box"], 3, 64, 1, 0)
    single = pursue(model, infiller, comps, x, scene["box"], 3, 1, 1, 0)
    assert batched == single
    mp = distortion_curve(model, infiller, comps, x, scene["box"], batched, 3, 1, 0)
    rnd = np.mean([distortion_curve(model, infiller, comps, x, scene["box"], o, 3, 1, 0)
                   for o in random_orders(comps.cmap.n_components, 3, 4, np.random.default_rng(1))], 0)
    assert all(a <= b for a, b in zip(mp[1:], rnd[1:]))
    assert mp[1] < mp[0]


# --- training: checkpoints and resume ---------------------------------------------------------

@pytest.fixture(scope="module")
def features(tmp_path_factory) -> Path:
    return tiny_radio_features(tmp_path_factory.mktemp("radio"))


TRAIN = {"width": 2, "depth": 2, "chained": True, "epochs": 2, "batch_size": 4, "lr": 0.01,
         "lr_step": 1, "lr_gamma": 0.5}


def test_training_resumes_after_a_kill_as_if_never_stopped(features, tmp_path, monkeypatch):
    import genex.studies.radio.train as tr

    full = tr.train_model("phi", features, TRAIN, 0, torch.device("cpu"), tmp_path / "a", tmp_path / "a.pt")
    calls = {"n": 0}
    real_rmse = tr.rmse

    def killed_in_epoch_2(pred, gain):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("killed")
        return real_rmse(pred, gain)

    monkeypatch.setattr(tr, "rmse", killed_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        tr.train_model("phi", features, TRAIN, 0, torch.device("cpu"), tmp_path / "b", tmp_path / "b.pt")
    assert not (tmp_path / "b.pt").exists()  # nothing half-written
    monkeypatch.setattr(tr, "rmse", real_rmse)
    resumed = tr.train_model("phi", features, TRAIN, 0, torch.device("cpu"), tmp_path / "b", tmp_path / "b.pt")
    assert resumed["history"] == full["history"]
    for key, value in full["state_dict"].items():
        assert torch.equal(value, resumed["state_dict"][key]), key


def test_batch_inputs_are_the_split_inputs_of_those_rows(features):
    """Training streams Φ's inputs batch by batch: the same arrays as the whole split's."""
    from genex.studies.radio.features import draw_measurements, load_split
    from genex.studies.radio.train import batch_inputs, model_inputs, predict, predict_split

    train, valid = load_split(features, "train"), load_split(features, "valid")
    measured = draw_measurements(train["complete"], train["tx"], (3, 6), np.random.default_rng(0))
    idx = np.random.default_rng(1).permutation(len(train["tx"]))[:5]
    for model in ("phi", "phi_gt"):
        whole = model_inputs(model, train, measured if model == "phi" else None)
        assert np.array_equal(batch_inputs(model, train, idx, measured if model == "phi" else None), whole[idx])
        rows = np.arange(2, len(valid["tx"]))
        assert np.array_equal(batch_inputs(model, valid, rows), model_inputs(model, valid)[rows])
    rng = np.random.default_rng(2)
    pred, gain = rng.random((7, 16, 16), dtype=np.float32), rng.random((7, 16, 16), dtype=np.float32)
    from genex.studies.radio.train import rmse
    assert rmse(pred, gain, chunk=3) == float(np.sqrt(np.mean((np.asarray(pred, np.float64) - gain) ** 2)))
    net, cpu = RadioWNet(3, 2, 2).eval(), torch.device("cpu")
    assert np.array_equal(predict_split(net, "phi", valid, cpu, batch=3),
                          predict(net, model_inputs("phi", valid), cpu, batch=3))


# --- building sensitivity ---------------------------------------------------------------------

class TxSimulatorModel(nn.Module):
    """Φ or Φ_gt stand-in: radio-sim's physics on the buildings channel, the TX read from its
    channel (upsampled by ``scale``, block-averaged back): it learned shadows perfectly."""

    def __init__(self, scale: int) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = []
        for sample in x.detach().cpu().numpy():
            r, c = np.unravel_index(int(sample[1].argmax()), sample[1].shape)
            out.append(SimulatorModel(self.scale, (int(r), int(c)))(torch.from_numpy(sample[None]))[0])
        return torch.stack(out).to(x.dtype)


def test_building_sensitivity_tells_a_shadow_model_from_a_flat_one(features):
    from genex.studies.radio.features import load_meta, load_split
    from genex.studies.radio.sensitivity import building_sensitivity

    meta, test = load_meta(features), load_split(features, "test")
    params = {"maps": 2, "buildings_per_map": 100, "threshold": 0.1, "min_pixels": 2, "roi": 3, "k": 3,
              "batch_candidates": 64}
    physics = TxSimulatorModel(int(meta["metres_per_pixel"]))
    good = building_sensitivity(features.parent / "data", "DPM", test["ids"], meta["resolution"],
                                physics, physics, params, seed=0)
    flat = building_sensitivity(features.parent / "data", "DPM", test["ids"], meta["resolution"],
                                Flat(), Flat(), params, seed=0)
    s = good["summary"]
    assert s["buildings"] >= 1 and s["buildings"] == flat["summary"]["buildings"]
    for rec in good["buildings"]:
        assert rec["simulator"] >= 0.1 and rec["pixels"] >= 2
    for model in ("phi_gt", "phi_no_measurements"):
        assert 0.3 < s[model]["ratio_median"] < 3.0, s[model]   # coarse buildings: not exact
        assert s[model]["mp_in_top_k"] >= 0.5, s[model]
        assert flat["summary"][model]["ratio_median"] == 0.0
        assert flat["summary"][model]["change_mean"] == 0.0


# --- memory budget: chunked forwards give the same explanations --------------------------------

def test_explanations_under_a_memory_budget_equal_unchunked():
    """max_batch_mb splits matching pursuit's candidates x draws (and RDE's draws) into
    several forwards of Φ and Φ_gt; the infill draws are made before, so nothing changes."""
    from genex.studies.radio.explain import _rde_order, within_budget
    from genex.xai.rde import RDEConcrete

    torch.manual_seed(0)
    phi, phi_gt = RadioWNet(3, 2, 2).eval(), RadioWNet(2, 2, 2).eval()
    x = _scene_input()
    xt, comps, box = torch.from_numpy(x)[None], radio_components(x), (5, 5, 11, 11)
    budget = {"max_batch_mb": 0.9}   # ~10 of the 16 x 16 maps per forward
    small_phi, small_gt = within_budget(phi, 3, (16, 16), budget), within_budget(phi_gt, 2, (16, 16), budget)
    assert 1 <= small_phi.rows < 30 and 1 <= small_gt.rows < 30, (small_phi.rows, small_gt.rows)
    assert within_budget(phi, 3, (16, 16), {}) is phi   # no budget: the model itself

    def explain(model, gt):
        infiller = make_infiller(0.5, gt, seed=3)   # Φ_gt inside the infill, 3 draws per candidate
        order = pursue(model, infiller, comps, xt, box, 2, 64, 3, 3)
        curve = distortion_curve(model, infiller, comps, xt, box, order, 2, 3, 4)
        rde = _rde_order(RDEConcrete, model, infiller, comps, xt, box, 2,
                         {"lam": 0.01, "lr": 0.05, "steps": 2}, 3, 3)
        return order, curve, rde

    plain, chunked = explain(phi, phi_gt), explain(small_phi, small_gt)
    assert chunked[0] == plain[0] and chunked[2] == plain[2]
    # equal up to float32 rounding (a conv may order its sums differently per batch size)
    np.testing.assert_allclose(chunked[1], plain[1], rtol=1e-5, atol=1e-6)


def test_matching_pursuit_by_model_beats_random_only_for_a_model_that_learned_shadows():
    """Φ without measurements and Φ_gt are explained on the buildings alone (zero infill): a
    model whose map darkens around buildings is explained better than by random orders, a
    model that learned no shadow is not."""
    from genex.studies.radio.explain import explain_one, summarize_by_model
    from genex.studies.radio.features import planted_scene

    scene = planted_scene(16, 2.0, 2)
    params = {"k": 2, "sample_fractions": [0.0], "mc_samples": 1, "batch_candidates": 64,
              "roi": 3, "random_orders": 4, "rde": {"fraction": 0.0, "lam": 1.0, "lr": 0.1, "steps": 2}}
    learned = explain_one(Shadow(), Shadow(), scene["x"], params, seed=0, keep_maps=False)
    assert set(learned["by_model"]) == {"phi_no_measurements", "phi_gt"}
    for query in learned["by_model"]["phi_gt"].values():   # no measurement is a component there
        assert set(query["kinds"]) == {"building"}
    summary = summarize_by_model([learned])
    assert summary["phi_gt"]["below_random_at_every_k"] and summary["phi_no_measurements"]["below_random_at_every_k"]
    flat = summarize_by_model([explain_one(Flat(), Flat(), scene["x"], params, seed=0, keep_maps=False)])
    assert not flat["phi_gt"]["below_random_at_every_k"]
