"""radio-sim: the procedural cities, the propagation simulator and the RadioMapSeer reader."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from genex.studies.radio import render as radio_sim
from genex.studies.radio.data import (
    GAIN_DB_MAX,
    GAIN_DB_MIN,
    RadioMapSeer,
    gain_db_to_png,
    gain_db_to_scaled,
    png_to_gain,
)
from genex.studies.radio.render import simulate_gain

TINY = {"maps": 6, "transmitters": 3, "size": 64, "buildings_missing_levels": 4,
        "buildings_missing_versions": 2, "simulator": "DPM", "workers": 1}


def _png(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        assert img.mode == "L", f"{path}: mode {img.mode}"
        return np.asarray(img)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("radio-sim")
    summary = radio_sim.render(out, TINY, seed=7)
    assert summary["radio_maps"] == 18
    return out


# --- layout -----------------------------------------------------------------------------------

def test_layout_is_radiomapseer(tiny):
    for m in range(6):
        assert _png(tiny / "png" / "buildings_complete" / f"{m}.png").shape == (64, 64)
        for k in range(1, 5):
            for v in (1, 2):
                assert (tiny / "png" / f"buildings_missing{k}" / str(v) / f"{m}.png").is_file()
        positions = json.loads((tiny / "antenna" / f"{m}.json").read_text())
        assert len(positions) == 3
        for tx, (x, y) in enumerate(positions):
            antenna = _png(tiny / "png" / "antennas" / f"{m}_{tx}.png")
            assert antenna.dtype == np.uint8 and antenna.shape == (64, 64)
            assert antenna.sum() == 255 and antenna[y, x] == 255     # one white pixel at [x, y]
            gain = _png(tiny / "gain" / "DPM" / f"{m}_{tx}.png")
            assert gain.dtype == np.uint8 and gain.shape == (64, 64)
    assert not (tiny / "png" / "buildings_missing5").exists()


def test_buildings_are_binary_and_tx_in_the_street(tiny):
    for m in range(6):
        b = _png(tiny / "png" / "buildings_complete" / f"{m}.png")
        assert set(np.unique(b)) <= {0, 255}
        for x, y in json.loads((tiny / "antenna" / f"{m}.json").read_text()):
            assert b[max(y - 2, 0):y + 3, max(x - 2, 0):x + 3].max() == 0   # >= 2 m from walls


def test_gain_is_zero_inside_buildings_and_brightest_at_the_tx(tiny):
    for m in range(6):
        b = _png(tiny / "png" / "buildings_complete" / f"{m}.png") > 0
        for tx, (x, y) in enumerate(json.loads((tiny / "antenna" / f"{m}.json").read_text())):
            gain = _png(tiny / "gain" / "DPM" / f"{m}_{tx}.png")
            assert gain[b].max(initial=0) == 0
            assert gain[y, x] == 255 and gain[~b].min() < gain[y, x]


def test_missing_levels_are_subsets_removing_k_buildings(tiny):
    from scipy.ndimage import label

    for m in range(6):
        complete = _png(tiny / "png" / "buildings_complete" / f"{m}.png") > 0
        n_complete = label(complete)[1]
        for k in range(1, 5):
            for v in (1, 2):
                partial = _png(tiny / "png" / f"buildings_missing{k}" / str(v) / f"{m}.png") > 0
                assert not (partial & ~complete).any()
                assert label(partial)[1] == max(n_complete - k, 0)


def test_same_seed_same_pngs_other_seed_differs(tmp_path, tiny):
    small = {**TINY, "maps": 2, "workers": 2}
    radio_sim.render(tmp_path / "a", small, seed=7)
    radio_sim.render(tmp_path / "b", {**small, "workers": 1}, seed=8)
    for name in ["png/buildings_complete/0.png", "gain/DPM/1_2.png", "antenna/1.json"]:
        assert (tmp_path / "a" / name).read_bytes() == (tiny / name).read_bytes()  # 2 workers == 1
        assert (tmp_path / "b" / name).read_bytes() != (tiny / name).read_bytes()


def test_unknown_parameter_is_named(tmp_path):
    with pytest.raises(ValueError, match="transmiters"):
        radio_sim.render(tmp_path, {**TINY, "transmiters": 3}, seed=0)
    with pytest.raises(ValueError, match="wall_dB"):
        simulate_gain(np.zeros((32, 32)), (5, 5), {"wall_dB": 3})


# --- physics ----------------------------------------------------------------------------------

def test_empty_city_gain_falls_with_distance():
    gain = simulate_gain(np.zeros((64, 64)), (32, 32))
    yy, xx = np.mgrid[:64, :64]
    dist = np.hypot(yy - 32, xx - 32)
    order = np.argsort(dist.ravel(), kind="stable")
    g = gain.ravel()[order]
    assert gain[32, 32] == GAIN_DB_MAX
    assert np.all(np.diff(g) <= 1e-4)                                   # monotone in distance
    assert np.isclose(gain[32, 32 + 20], -47 - 20 * np.log10(20), atol=0.01)  # free space


def test_gain_decreases_along_a_los_ray_in_a_city(tiny):
    m, tx = 0, 0
    b = _png(tiny / "png" / "buildings_complete" / f"{m}.png") > 0
    x, y = json.loads((tiny / "antenna" / f"{m}.json").read_text())[tx]
    gain = _png(tiny / "gain" / "DPM" / f"{m}_{tx}.png").astype(int)
    checked = 0
    for dy, dx in [(0, 1), (0, -1), (1, 0), (-1, 0), (1, 1), (-1, -1), (1, -1), (-1, 1)]:
        ray = []
        r, c = y, x
        while 0 <= r < 64 and 0 <= c < 64 and not b[r, c]:
            ray.append(gain[r, c])
            r, c = r + dy, c + dx
        checked += len(ray) > 3
        assert np.all(np.diff(ray) <= 0), f"gain rises along the LOS ray {dy, dx}: {ray}"
    assert checked >= 2


def test_shadow_behind_a_building_is_darker_than_line_of_sight():
    city = np.zeros((96, 96), dtype=bool)
    city[40:57, 44:53] = True                      # a building east of the TX
    gain = simulate_gain(city, (48, 30))
    shadow, lit = gain[48, 80], gain[18, 70]       # both 50 m from the TX
    assert shadow < lit - 10
    assert np.isclose(lit, -47 - 20 * np.log10(50), atol=0.01)
    assert (gain[city] == GAIN_DB_MIN).all()
    assert gain[30, 80] > gain[48, 80]             # diffraction: lighter near the shadow's edge


def test_diffraction_lights_a_side_street():
    city = np.ones((80, 80), dtype=bool)
    city[30:40, :] = False                         # the TX's street, east-west
    city[:30, 60:70] = False                       # a side street going north
    gain = simulate_gain(city, (35, 10))
    blocked = simulate_gain(city, (35, 10), {"max_corners": 0, "second_order_corners": 0})
    assert gain[5, 65] > blocked[5, 65] + 20       # round the corner instead of through walls
    assert gain[5, 65] < gain[35, 65] - 10         # but darker than the street in sight
    assert (gain >= blocked - 1e-4).all()          # relays only add paths
    assert np.array_equal(gain[34:37, :], blocked[34:37, :])  # line of sight: direct path wins


def _block_grid(size: int = 256, block: int = 24, street: int = 12) -> np.ndarray:
    """Labels of a hand-built city: square blocks on a regular grid, one building each."""
    labels = np.zeros((size, size), dtype=np.int32)
    starts = range(4, size - block, block + street)
    for i, (r, c) in enumerate((r, c) for r in starts for c in starts):
        labels[r:r + block, c:c + block] = i + 1
    return labels


def test_far_buildings_do_not_change_the_shadow_of_a_near_one():
    # The hand-built city: a TX 6 m west of a building, the shadow box behind it. The
    # old city-wide relay budget read 0.012 here and 0.238 once any of 20 buildings up to
    # 150 m away was removed (they pushed the near building's corners out of the budget).
    labels = _block_grid()
    tx = (124, 70)
    near = labels[tx[0], tx[1] + 6]
    box = (slice(tx[0] - 4, tx[0] + 4), slice(tx[1] + 32, tx[1] + 40))

    def shadow(mask: np.ndarray) -> float:
        return float(gain_db_to_scaled(simulate_gain(mask, tx))[box].mean())

    base = shadow(labels > 0)
    assert 0.1 < base < 0.4                        # diffraction round the near building's corners
    ys, xs = np.indices(labels.shape)
    far = [i for i in np.unique(labels[labels > 0])
           if np.hypot(ys - tx[0], xs - tx[1])[labels == i].min() >= 60]
    assert len(far) >= 20
    for i in far[::3]:
        assert abs(shadow((labels > 0) & (labels != i)) - base) < 1e-6, f"building {i}"
    assert shadow((labels > 0) & (labels != near)) > base + 0.3   # the near building makes it


def test_removing_a_building_far_outside_the_fresnel_zones_leaves_the_gain():
    # Stated tolerance: 1e-6 on the dataset's scale (grey / 255, floor 0.2). Receivers within
    # 40 m of the TX, buildings all >= 130 m away: any path that reaches such a building and
    # comes back is >= 180 m long and turns >= 180 degrees (>= 36 dB at the corners), so it
    # stays below the noise floor (47 + 45 + 36 > 127 dB), and removing the building cannot
    # open a better one. (The first Fresnel zone at 5.9 GHz is ~1 m wide: 130 m is far outside.)
    labels = radio_sim.generate_city(256, np.random.default_rng([3, 1, 0]))
    mask = labels > 0
    tx = tuple(radio_sim.place_transmitters(mask, 1, np.random.default_rng(7))[0])
    ys, xs = np.indices(mask.shape)
    dist = np.hypot(ys - tx[0], xs - tx[1])
    near_rx = (dist <= 40) & ~mask
    far = [i for i in np.unique(labels[labels > 0]) if dist[labels == i].min() >= 130]
    assert len(far) >= 5
    base = gain_db_to_scaled(simulate_gain(mask, tx))
    assert base[near_rx].min() < 0.3                # some receivers are in a shadow
    for i in far[:: max(len(far) // 5, 1)][:5]:
        gain = gain_db_to_scaled(simulate_gain(mask & (labels != i), tx))
        assert np.abs(gain - base)[near_rx].max() < 1e-6, f"building {i}"


def test_relay_caps_keep_the_nearest_corners_and_reject_bad_values():
    city = np.zeros((96, 96), dtype=bool)
    city[40:57, 44:53] = True
    capped = simulate_gain(city, (48, 30), {"max_corners": 2, "second_order_corners": 0})
    full = simulate_gain(city, (48, 30))
    assert (capped <= full + 1e-4).all() and (capped < full - 1).any()   # fewer paths
    with pytest.raises(ValueError, match="max_corners"):
        simulate_gain(city, (48, 30), {"max_corners": -1})


# --- scaling and reader -----------------------------------------------------------------------

def test_gain_scaling_matches_radiounet():
    png = np.array([0, 51, 52, 153, 255], dtype=np.uint8)
    g = png_to_gain(png)
    assert g.dtype == np.float32
    np.testing.assert_allclose(g, [0, 0, (52 / 255 - 0.2) / 0.8, (0.6 - 0.2) / 0.8, 1.0], atol=1e-6)
    np.testing.assert_allclose(png_to_gain(png, floor=0), png / 255, atol=1e-6)
    assert gain_db_to_png(np.array([GAIN_DB_MAX, -127.0, GAIN_DB_MIN, -300.0])).tolist() == [255, 51, 0, 0]


def test_reader_loads_a_sample(tiny):
    ds = RadioMapSeer(tiny)
    assert ds.maps == list(range(6))
    assert ds.transmitters(2) == [0, 1, 2]
    sample = ds.load(2, 1, missing=3, version=2)
    assert set(sample) == {"buildings", "buildings_missing", "tx", "gain"}
    for array in sample.values():
        assert array.dtype == np.float32 and array.shape == (64, 64)
    assert sample["tx"].sum() == 1
    assert set(np.unique(sample["buildings"])) <= {0.0, 1.0}
    assert (sample["buildings_missing"] <= sample["buildings"]).all()
    raw = _png(tiny / "gain" / "DPM" / "2_1.png")
    np.testing.assert_allclose(sample["gain"], (np.maximum(raw / 255, 0.2) - 0.2) / 0.8, atol=1e-6)
    assert (sample["gain"][sample["buildings"] > 0] == 0).all()
    row, col = ds.tx_position(2, 1)
    assert sample["tx"][row, col] == 1
    assert ds.load(2, 1)["buildings_missing"].tolist() == sample["buildings"].tolist()


def test_reader_error_names_the_missing_file(tiny, tmp_path):
    ds = RadioMapSeer(tiny, simulator="IRT2")
    with pytest.raises(FileNotFoundError, match=r"gain/IRT2/0_0\.png"):
        ds.load(0, 0)
    with pytest.raises(FileNotFoundError, match="buildings_complete"):
        RadioMapSeer(tmp_path)


def test_split_is_radiounets_for_700_maps(tmp_path):
    folder = tmp_path / "png" / "buildings_complete"
    folder.mkdir(parents=True)
    for m in range(1, 701):  # RadioMapSeer numbers its maps 1..700
        (folder / f"{m}.png").touch()
    parts = RadioMapSeer(tmp_path).split()
    assert [len(parts[k]) for k in ("train", "valid", "test")] == [501, 100, 99]
    order = np.arange(700)
    np.random.RandomState(42).shuffle(order)     # RadioUNet: np.random.seed(42); shuffle; map = index + 1
    assert parts["train"] == (order[:501] + 1).tolist() and parts["test"] == (order[601:] + 1).tolist()
    small = RadioMapSeer(tmp_path).split(fractions=(0.716, 0.143, 0.141))
    assert sorted(sum(small.values(), [])) == list(range(1, 701))


def test_reader_split_of_the_tiny_set(tiny):
    parts = RadioMapSeer(tiny).split(seed=42, fractions=(0.716, 0.143, 0.141))
    assert sorted(parts["train"] + parts["valid"] + parts["test"]) == list(range(6))
    assert len(parts["valid"]) == 1 and len(parts["test"]) == 1
