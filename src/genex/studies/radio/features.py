"""Radio-map features: the working-resolution tensors the radio study trains and explains on.

Read through :class:`genex.studies.radio.data.RadioMapSeer` (the real set or ``radio-sim``), each
sample (map, transmitter) becomes, at ``resolution`` x ``resolution`` pixels:

* ``complete`` / ``missing``: buildings (0/1) of the complete city and of the city with
  ``k`` buildings missing (level and version drawn per sample);
* ``tx``: the transmitter's (row, column);
* ``gain``: the scaled gain in [0, 1] (block mean of the 256 x 256 map);
* ``measured``: for valid/test, the fixed measurement pixels (street pixels); training
  draws fresh ones every epoch.

Downsampling: a pixel is a building when at least half its block is (block majority), so
the 1-3 m gaps between buildings partly close at coarse resolutions; a *building* of the
study is a 4-connected component at the working resolution.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from genex.studies.radio.data import GAIN_DB_MAX, RadioMapSeer, gain_db_to_scaled
from genex.pipeline import load_arrays, progress

SPLITS = ("train", "valid", "test")
PHI_CHANNELS = ("buildings_missing", "tx", "measurements")
PHI_GT_CHANNELS = ("buildings_complete", "tx")


# --- resolution -------------------------------------------------------------------------------

def block_mean(image: np.ndarray, factor: int) -> np.ndarray:
    """Mean over ``factor`` x ``factor`` blocks (the map size must be divisible by it)."""
    h, w = image.shape
    if h % factor or w % factor:
        raise ValueError(f"map of {h}x{w} pixels is not divisible by the downsampling factor {factor}")
    return image.reshape(h // factor, factor, w // factor, factor).mean(axis=(1, 3))


def downsample_buildings(buildings: np.ndarray, factor: int) -> np.ndarray:
    """Block majority: uint8 0/1 at the working resolution."""
    return (block_mean(np.asarray(buildings, dtype=np.float32), factor) >= 0.5).astype(np.uint8)


def downsample_gain(gain: np.ndarray, factor: int) -> np.ndarray:
    """Block mean of the scaled gain (float32)."""
    return block_mean(np.asarray(gain, dtype=np.float32), factor).astype(np.float32)


# --- components -------------------------------------------------------------------------------

def building_components(buildings: np.ndarray) -> tuple[np.ndarray, int]:
    """4-connected components of a 0/1 buildings map: (labels 0 = free, 1..n, n)."""
    from scipy.ndimage import label

    labels, n = label(np.asarray(buildings) > 0)
    return labels.astype(np.int32), int(n)


def sample_measurements(buildings: np.ndarray, count: int, rng: np.random.Generator,
                        exclude: np.ndarray | None = None) -> np.ndarray:
    """``count`` distinct free pixels (not buildings, not ``exclude``) as a 0/1 uint8 map."""
    free = np.asarray(buildings) == 0
    if exclude is not None:
        free &= ~np.asarray(exclude, dtype=bool)
    candidates = np.flatnonzero(free)
    count = min(int(count), len(candidates))
    out = np.zeros(free.size, dtype=np.uint8)
    out[rng.choice(candidates, size=count, replace=False)] = 1
    return out.reshape(free.shape)


def draw_measurements(buildings: np.ndarray, txs: np.ndarray, counts: tuple[int, int],
                      rng: np.random.Generator) -> np.ndarray:
    """Measurement maps ``[N, H, W]`` for a batch (count uniform in ``counts``, TX excluded)."""
    out = np.zeros(buildings.shape, dtype=np.uint8)
    for i in range(len(buildings)):
        tx_mask = np.zeros(buildings.shape[1:], dtype=bool)
        tx_mask[tuple(txs[i])] = True
        n = int(rng.integers(counts[0], counts[1] + 1))
        out[i] = sample_measurements(buildings[i], n, rng, exclude=tx_mask)
    return out


# --- inputs -----------------------------------------------------------------------------------

def tx_map(tx: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """One-hot transmitter map (float32)."""
    out = np.zeros(shape, dtype=np.float32)
    out[int(tx[0]), int(tx[1])] = 1.0
    return out


def phi_inputs(missing: np.ndarray, txs: np.ndarray, gain: np.ndarray, measured: np.ndarray) -> np.ndarray:
    """Φ's inputs ``[N, 3, H, W]``: buildings (some missing), TX, measured gain (0 elsewhere)."""
    n, h, w = missing.shape
    x = np.zeros((n, 3, h, w), dtype=np.float32)
    x[:, 0] = missing
    x[np.arange(n), 1, txs[:, 0], txs[:, 1]] = 1.0
    x[:, 2] = gain * (measured > 0)
    return x


def phi_gt_inputs(complete: np.ndarray, txs: np.ndarray) -> np.ndarray:
    """Φ_gt's inputs ``[N, 2, H, W]``: complete buildings and TX."""
    n, h, w = complete.shape
    x = np.zeros((n, 2, h, w), dtype=np.float32)
    x[:, 0] = complete
    x[np.arange(n), 1, txs[:, 0], txs[:, 1]] = 1.0
    return x


def free_space_gain(tx: np.ndarray, buildings: np.ndarray, metres_per_pixel: float,
                    loss_1m_db: float = -GAIN_DB_MAX, exponent: float = 2.0) -> np.ndarray:
    """The free-space path-loss baseline on the reader's scale: ``-(L0 + 10 n log10 d)`` dB,
    0 inside the known buildings (the map Φ sees)."""
    h, w = buildings.shape
    rows, cols = np.mgrid[0:h, 0:w]
    dist = np.hypot(rows - tx[0], cols - tx[1]) * metres_per_pixel
    gain_db = -(loss_1m_db + 10 * exponent * np.log10(np.maximum(dist, 1.0)))
    out = gain_db_to_scaled(gain_db)
    out[np.asarray(buildings) > 0] = 0.0
    return out.astype(np.float32)


# --- the features step ------------------------------------------------------------------------

def _sample_record(reader: RadioMapSeer, m: int, tx: int, level: int, version: int,
                   factor: int) -> dict:
    sample = reader.load(m, tx, missing=level, version=version)
    row, col = reader.tx_position(m, tx)
    return {"complete": downsample_buildings(sample["buildings"], factor),
            "missing": downsample_buildings(sample["buildings_missing"], factor),
            "tx": np.array([row // factor, col // factor], dtype=np.int64),
            "gain": downsample_gain(sample["gain"], factor)}


def _available_levels(reader: RadioMapSeer, m: int, levels: list[int]) -> list[tuple[int, int]]:
    """(level, version) pairs present on disk for map ``m`` among the configured levels."""
    found = []
    for level in levels:
        version = 1
        while reader.buildings_path(m, level, version).exists():
            found.append((level, version))
            version += 1
    return found


def build_split(reader: RadioMapSeer, maps: list[int], params: dict, rng: np.random.Generator,
                desc: str) -> dict[str, np.ndarray]:
    """All samples of ``maps`` at the working resolution (arrays stacked over samples)."""
    size = _map_size(reader, maps[0])
    factor = size // int(params["resolution"])
    if factor < 1 or size % int(params["resolution"]):
        raise ValueError(f"{reader.root}: maps of {size} px cannot be downsampled to "
                         f"resolution {params['resolution']} (need a divisor)")
    per_map = params.get("transmitters_per_map")
    records, ids = [], []
    for m in progress(maps, desc=desc, unit="map"):
        txs = reader.transmitters(m)
        if per_map:
            txs = txs[: int(per_map)]
        choices = _available_levels(reader, m, list(params["missing_levels"]))
        for tx in txs:
            level, version = choices[int(rng.integers(len(choices)))] if choices else (0, 1)
            records.append(_sample_record(reader, m, tx, level, version, factor))
            ids.append((m, tx, level, version))
    out = {key: np.stack([r[key] for r in records]) for key in records[0]}
    out["ids"] = np.asarray(ids, dtype=np.int64)
    return out


def _map_size(reader: RadioMapSeer, m: int) -> int:
    from genex.studies.radio.data import read_png

    return int(read_png(reader.buildings_path(m), reader.size).shape[0])


def build_features(root: Path, out: Path, params: dict, seed: int) -> dict:
    """Write ``{train,valid,test}.npz`` and ``meta.json`` into ``out``; return the meta."""
    reader = RadioMapSeer(root, simulator=params["simulator"])
    splits = reader.split(seed=42)
    if params.get("max_maps"):
        splits = {k: v[: max(1, int(round(int(params["max_maps"]) * len(v) / len(reader.maps))))]
                  for k, v in splits.items()}
    size = _map_size(reader, reader.maps[0])
    meta = {"resolution": int(params["resolution"]), "source_size": size,
            "metres_per_pixel": size / int(params["resolution"]), "channels_phi": PHI_CHANNELS,
            "channels_phi_gt": PHI_GT_CHANNELS,
            "measurements": list(params["measurements"]), "samples": {}}
    for i, split in enumerate(SPLITS):
        if not splits[split]:
            raise ValueError(f"{root}: the {split} split is empty ({len(reader.maps)} maps)")
        rng = np.random.default_rng([seed, i])
        data = build_split(reader, splits[split], params, rng, f"radio features {split}")
        if split != "train":  # fixed measurements for validation and test
            data["measured"] = draw_measurements(data["complete"], data["tx"],
                                                 tuple(params["measurements"]), rng)
        np.savez_compressed(out / f"{split}.npz", **data)
        meta["samples"][split] = int(len(data["tx"]))
    (out / "meta.json").write_text(json.dumps(meta, indent=2))
    return meta


def load_split(folder: Path, split: str) -> dict[str, np.ndarray]:
    """One split written by :func:`build_features`."""
    path = Path(folder) / f"{split}.npz"
    if not path.exists():
        raise FileNotFoundError(f"{path}: radio features not found (run the radio features step)")
    return load_arrays(path)


def load_meta(folder: Path) -> dict:
    path = Path(folder) / "meta.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: radio features meta not found")
    return json.loads(path.read_text())


# --- the planted scene (sanity check) ---------------------------------------------------------

def planted_scene(resolution: int, metres_per_pixel: float, roi: int,
                  propagation: dict | None = None) -> dict:
    """A constructed city where one building stands on the line of sight between the TX and
    the region of interest (in its shadow), four distractor buildings stand off that line,
    and a few measurements lie outside the shadow.

    Simulated at the source resolution (``resolution * metres_per_pixel`` px, 1 px = 1 m,
    as the dataset) with :class:`genex.studies.radio.render.CityPropagator`, then downsampled like
    the features. Returns ``x`` (Φ's input ``[3, H, W]``, no building missing), ``gain``,
    ``box`` (r0, c0, r1, c1) and ``planted`` (the planted building's (row, column) centre).
    """
    from genex.studies.radio.data import gain_db_to_scaled
    from genex.studies.radio.render import CityPropagator, Propagation

    s, f = int(resolution), int(round(metres_per_pixel))
    mid = s // 2
    rects = {"planted": (mid - s // 8, mid + s // 8, int(0.42 * s), int(0.52 * s))}
    for name, (r, c) in {"nw": (0.12, 0.3), "sw": (0.8, 0.3), "ne": (0.12, 0.68),
                         "se": (0.8, 0.68)}.items():
        r0, c0 = int(r * s), int(c * s)
        rects[name] = (r0, r0 + max(2, s // 10), c0, c0 + max(2, s // 10))
    coarse = np.zeros((s, s), dtype=np.uint8)
    for r0, r1, c0, c1 in rects.values():
        coarse[r0:r1, c0:c1] = 1
    tx = np.array([mid, int(0.12 * s)])
    fine = np.kron(coarse, np.ones((f, f), dtype=np.uint8))
    city = CityPropagator(fine, Propagation.from_params(propagation))
    gain_db = city.gain_db((int(tx[0] * f + f // 2), int(tx[1] * f + f // 2)))
    gain = downsample_gain(gain_db_to_scaled(gain_db, fine), f)
    c_roi = int(0.62 * s)  # right behind the building: its shadow, not yet filled by diffraction
    box = (mid - roi // 2, c_roi - roi // 2, mid - roi // 2 + roi, c_roi - roi // 2 + roi)
    measured = np.zeros((s, s), dtype=np.uint8)
    for r, c in ((0.3, 0.2), (0.7, 0.2), (0.5, 0.3), (0.3, 0.9), (0.7, 0.9), (0.05, 0.5)):
        measured[int(r * s), int(c * s)] = 1
    measured[coarse > 0] = 0
    x = phi_inputs(coarse[None], tx[None], gain[None], measured[None])[0]
    r0, r1, c0, c1 = rects["planted"]
    return {"x": x, "gain": gain, "box": box, "tx": tx,
            "planted": ((r0 + r1) // 2, (c0 + c1) // 2)}
