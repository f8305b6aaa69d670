"""radio-sim: procedural cities and a fast propagation simulator in RadioMapSeer's layout.

The embedded twin of RadioMapSeer (see :mod:`genex.studies.radio.data` for the layout and the gain
scale). Every map is a crop of a procedurally generated city (1 px = 1 m): a street grid with
blocks of varied size, blocks split into lots, one building per lot (rectangles and L-shapes,
set back 1-3 m from the lot's edges so that buildings never touch: a building is exactly one
connected component of the buildings image), empty lots and open squares. Transmitters stand
in the streets, at least 2 m from any building.

The simulator is a "dominant path" approximation of RadioMapSeer's DPM, vectorised in numpy:

* direct path: log-distance loss ``L0 + 10 n log10(d)`` (free space, n = 2, L0 = 47 dB at 1 m
  for 5.9 GHz), plus penetration loss for the buildings crossed (per wall and per metre
  inside, capped). Line of sight and the walls crossed come from ray marching on a polar grid
  around the origin (8 x size rays, 1 px steps: one gather of the building mask per origin);
  each pixel reads the ray nearest to it in angle (sub-pixel error at the map's far corner).
* diffracted paths: every convex building corner that the transmitter sees relays the signal
  with ``L0 + 10 n log10(d1 + d2) + corner_db + turn_db (1 - cos turn)`` to every pixel it
  sees, where ``turn`` is the angle the path bends at the corner (a knife-edge-like penalty: 0
  straight on, ``corner_db + turn_db`` = 20 dB round a right angle, so shadows have soft
  edges). Then every corner that these paths reach relays once more (path length and losses
  carried on). Corner visibility (4 x size rays) is cached per city: transmitters of one map
  share it.

The simulator is *local*: a pixel's loss is the minimum over paths, and a path depends only on
the buildings it passes, so removing a building changes only the pixels whose best path
crossed or bent round it. (An earlier version kept a city-wide budget of 24 + 16 relays ranked
by how much shadow each lit, so far buildings pushed out the relays of near ones: see
``benchmarks/results/radio_locality.json``.) ``max_corners`` / ``second_order_corners`` can still cap
the relays for speed; the cap keeps the corners nearest the transmitter (first order) and those
reached with the least loss (second order), so a far building can drop out of the budget but
never push a near one out.

The loss is the minimum over those paths; the gain -loss is clipped to [-147, -47] dB and
stored as RadioMapSeer's grey scale (``gain_db_to_png``): 255 at the antenna, about 133 at
256 m in line of sight, about 100 round one right-angle corner 100 m away, and below the 0.2
noise floor (grey 51, -127 dB) behind a few buildings or after two bends far away. Buildings
are grey 0, as in RadioMapSeer.

Differences from RadioMapSeer: synthetic street-grid cities instead of OpenStreetMap crops;
no reflections or waveguiding, at most two diffractions per path; ``buildings_missing{k}``
removes exactly k buildings (k = 1..levels), drawn at random per version, as RadioMapSeer's
levels do.
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from genex.studies.radio.data import GAIN_DB_MAX, GAIN_DB_MIN, GAIN_FLOOR, gain_db_to_png
from genex.pipeline import progress, write_json

# noise floor in dB (-127): pixels below it read as 0
GAIN_NOISE_DB = GAIN_DB_MIN + GAIN_FLOOR * (GAIN_DB_MAX - GAIN_DB_MIN)

# --- propagation ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Propagation:
    """Parameters of the propagation model (dB, metres)."""

    loss_1m_db: float = 47.0          # free-space loss at 1 m for 5.9 GHz: grey 255 at the antenna
    los_exponent: float = 2.0         # log-distance exponent (free space)
    wall_db: float = 12.0             # per wall crossed (a building crossed = 2 walls)
    metre_db: float = 1.0             # per metre inside buildings
    penetration_cap_db: float = 60.0  # cap on the penetration loss
    corner_db: float = 4.0            # diffraction loss at a corner, going straight on
    turn_db: float = 16.0             # extra loss x (1 - cos turn angle): right angle = +16 dB
    max_corners: int | None = None    # cap on first-order relays (nearest the TX first); None = all
    second_order_corners: int | None = None   # cap on second-order relays (least loss first); None = all

    @classmethod
    def from_params(cls, params: dict | None) -> "Propagation":
        """Defaults overridden by ``params``; an unknown key raises ValueError naming it."""
        params = dict(params or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise ValueError(f"unknown propagation parameter(s) {unknown}; known: {sorted(known)}")
        for cap in ("max_corners", "second_order_corners"):
            value = params.get(cap)
            if value is not None and (not isinstance(value, int) or value < 0):
                raise ValueError(f"propagation parameter {cap} must be null (no cap) or an integer >= 0, "
                                 f"got {value!r}")
        return cls(**params)


@dataclass(frozen=True)
class _PolarTables:
    """Ray offsets and pixel->ray lookups for a size x size map, shared by every origin."""

    rays: int
    steps: int
    dy: np.ndarray         # (rays, steps) row offset of each ray sample
    dx: np.ndarray         # (rays, steps) column offset
    ray_of: np.ndarray     # (2S-1, 2S-1) ray nearest in angle to each offset
    step_of: np.ndarray    # (2S-1, 2S-1) ray step nearest in distance


@dataclass(frozen=True)
class _OffsetTables:
    """Distance and direction of every offset in a (2S-1) x (2S-1) window."""

    dist: np.ndarray       # distance in metres, at least 1
    uy: np.ndarray         # unit vector of the offset (0 at the origin)
    ux: np.ndarray


@functools.lru_cache(maxsize=8)
def _polar_tables(size: int, rays: int) -> _PolarTables:
    steps = int(np.ceil(size * np.sqrt(2.0))) + 2
    theta = 2 * np.pi * np.arange(rays) / rays
    r = np.arange(steps, dtype=np.float64)
    dy = np.rint(np.sin(theta)[:, None] * r).astype(np.int32)
    dx = np.rint(np.cos(theta)[:, None] * r).astype(np.int32)
    off = np.arange(-(size - 1), size, dtype=np.float64)
    oy, ox = np.meshgrid(off, off, indexing="ij")
    ray_of = (np.rint(np.arctan2(oy, ox) * rays / (2 * np.pi)).astype(np.int32)) % rays
    step_of = np.minimum(np.rint(np.hypot(oy, ox)), steps - 1).astype(np.int32)
    return _PolarTables(rays, steps, dy, dx, ray_of, step_of)


@functools.lru_cache(maxsize=4)
def _offset_tables(size: int) -> _OffsetTables:
    off = np.arange(-(size - 1), size, dtype=np.float64)
    oy, ox = np.meshgrid(off, off, indexing="ij")
    hyp = np.hypot(oy, ox)
    safe = np.maximum(hyp, 1e-9)
    return _OffsetTables(np.maximum(hyp, 1.0).astype(np.float32),
                         (oy / safe).astype(np.float32), (ox / safe).astype(np.float32))


def convex_corners(buildings: np.ndarray) -> np.ndarray:
    """Free pixels diagonal to a convex building corner, as (N, 2) (row, column), sorted.

    These are the diffraction points: a ray can bend round them without entering a building.
    """
    b = np.pad(np.asarray(buildings) > 0, 1)
    h, w = buildings.shape
    free = ~b[1:-1, 1:-1]
    hit = np.zeros((h, w), dtype=bool)
    for sy in (-1, 1):
        for sx in (-1, 1):
            diag = b[1 + sy:1 + sy + h, 1 + sx:1 + sx + w]
            side_y = b[1 + sy:1 + sy + h, 1:1 + w]
            side_x = b[1:1 + h, 1 + sx:1 + sx + w]
            hit |= free & diag & ~side_y & ~side_x
    return np.argwhere(hit)


class CityPropagator:
    """Path gain of any transmitter over one city; caches what transmitters share (corners).

    Transmitters use 8 x size rays; corners (relays of diffracted paths, where the loss is
    already smooth) use 4 x size rays, computed once per corner and city.
    """

    def __init__(self, buildings: np.ndarray, prop: Propagation | None = None):
        buildings = np.asarray(buildings)
        if buildings.ndim != 2 or min(buildings.shape) < 2:
            raise ValueError(f"buildings must be a 2-D map, got shape {buildings.shape}")
        self.prop = prop or Propagation()
        self.mask = buildings > 0
        self.shape = self.mask.shape
        self.size = max(self.shape)
        self.fine = _polar_tables(self.size, 8 * self.size)     # ~1 px apart at the far corner
        self.coarse = _polar_tables(self.size, 4 * self.size)
        self.offsets = _offset_tables(self.size)
        pad = self.fine.steps
        self._pad = pad
        self._wp = self.shape[1] + 2 * pad
        # outside the map counts as free space: rays leave through the edge unobstructed
        self._occ = np.pad(self.mask, pad).astype(np.uint8).ravel()
        self._ray_offsets = {id(t): t.dy * self._wp + t.dx for t in (self.fine, self.coarse)}
        self.corners = convex_corners(self.mask)
        self._corner_flat = self.corners[:, 0] * self.shape[1] + self.corners[:, 1]
        self._corner_cache: dict[int, tuple] = {}

    # geometry ---------------------------------------------------------------------------------
    def _window(self, table: np.ndarray, origin: tuple[int, int]) -> np.ndarray:
        """The (H, W) part of an offset table for pixels relative to ``origin``."""
        r0, c0 = origin
        s, (h, w) = self.size, self.shape
        return table[s - 1 - r0:s - 1 - r0 + h, s - 1 - c0:s - 1 - c0 + w]

    def _cast(self, origin: tuple[int, int], tables: _PolarTables) -> np.ndarray:
        """Building occupancy sampled along every ray from ``origin``: (rays, steps) uint8."""
        r0, c0 = origin
        base = (r0 + self._pad) * self._wp + (c0 + self._pad)
        return self._occ.take(base + self._ray_offsets[id(tables)])

    def _pixel_lookup(self, polar: np.ndarray, origin: tuple[int, int], tables: _PolarTables,
                      shift: int = 0) -> np.ndarray:
        """Read a (rays, steps) array at every pixel (nearest ray, step - shift)."""
        steps = np.maximum(self._window(tables.step_of, origin) - shift, 0)
        return polar[self._window(tables.ray_of, origin), steps]

    def visible(self, origin: tuple[int, int], coarse: bool = False) -> np.ndarray:
        """(H, W) bool: pixels in line of sight of ``origin`` (the pixel itself may be a wall)."""
        tables = self.coarse if coarse else self.fine
        occ = self._cast(origin, tables).astype(bool)
        first_hit = np.where(occ.any(axis=1), occ.argmax(axis=1), tables.steps)
        return self._window(tables.step_of, origin) <= first_hit[self._window(tables.ray_of, origin)]

    def _segment_clear(self, origin: tuple[int, int], targets: np.ndarray) -> np.ndarray:
        """Line of sight from ``origin`` to each target pixel, sampled every half pixel."""
        if len(targets) == 0:
            return np.zeros(0, dtype=bool)
        o = np.asarray(origin, dtype=np.float64)
        delta = targets - o
        n = int(np.ceil(np.abs(delta).max() * 2)) + 2
        t = np.linspace(0.0, 1.0, n)[None, :, None]
        pts = np.rint(o + t * delta[:, None, :]).astype(np.int64)
        return ~self.mask[pts[..., 0], pts[..., 1]].any(axis=1)

    def _corner_rays(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Free pixels that corner ``k`` sees (flat indices), their distance and unit direction."""
        if k not in self._corner_cache:
            corner = tuple(self.corners[k])
            idx = np.flatnonzero(self.visible(corner, coarse=True) & ~self.mask)
            o = self.offsets
            self._corner_cache[k] = (idx,) + tuple(self._window(t, corner).ravel()[idx]
                                                   for t in (o.dist, o.uy, o.ux))
        return self._corner_cache[k]

    # losses -----------------------------------------------------------------------------------
    def _direct_loss(self, tx: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Loss of the straight path (through buildings, with penetration loss) and the LOS mask."""
        p = self.prop
        occ = self._cast(tx, self.fine)
        metres = np.cumsum(occ, axis=1, dtype=np.int32)
        entries = occ.copy()
        entries[:, 1:] &= 1 - occ[:, :-1]
        crossed = np.cumsum(entries, axis=1, dtype=np.int32)
        # count what lies strictly before the pixel (shift 1): a pixel beside a wall is not behind it
        walls = 2 * self._pixel_lookup(crossed, tx, self.fine, shift=1)
        inside = self._pixel_lookup(metres, tx, self.fine, shift=1)
        penetration = np.minimum(walls * p.wall_db + inside * p.metre_db, p.penetration_cap_db)
        dist = self._window(self.offsets.dist, tx)
        loss = p.loss_1m_db + 10 * p.los_exponent * np.log10(dist) + penetration
        return loss.astype(np.float32), walls == 0

    def _relay(self, k: int, path_db: float, length: float, u_in: np.ndarray,
               best: np.ndarray, via: np.ndarray) -> None:
        """Lower ``best`` (flat loss) where a path that reaches corner ``k`` and bends there wins.

        ``path_db``: diffraction loss collected before the corner; ``length``: path length to
        the corner; ``u_in``: unit direction of arrival.
        """
        p = self.prop
        idx, d2, uy, ux = self._corner_rays(k)
        cos_turn = np.float32(u_in[0]) * uy + np.float32(u_in[1]) * ux
        loss = (np.float32(p.loss_1m_db + p.corner_db + path_db)
                + np.float32(10 * p.los_exponent) * np.log10(np.float32(length) + d2)
                + np.float32(p.turn_db) * (np.float32(1.0) - cos_turn))
        better = loss < best[idx]
        best[idx[better]] = loss[better]
        via[idx[better]] = k

    def _diffracted_loss(self, tx: tuple[int, int]) -> np.ndarray:
        """Loss of paths bending at a corner the TX sees, then maybe at a second corner.

        First-order relays are the corners the TX sees (nearest first when capped); second-order
        relays are the corners reached by one bend that the TX does not see (least loss first
        when capped). No relay is chosen by what it lights elsewhere: that would couple far
        buildings to near shadows.
        """
        p = self.prop
        h, w = self.shape
        best = np.full(h * w, np.inf, dtype=np.float32)
        via = np.full(h * w, -1, dtype=np.int32)
        if len(self.corners) == 0 or p.max_corners == 0:
            return best.reshape(self.shape)
        origin = np.asarray(tx, dtype=np.float64)
        d1 = np.hypot(*(self.corners - origin).T)
        order = [int(k) for k in np.argsort(d1, kind="stable") if d1[k] >= 1.0]
        seen = self._segment_clear(tx, self.corners[order]) if order else []
        first = [k for k, ok in zip(order, seen) if ok][:p.max_corners]
        for k in first:
            self._relay(k, 0.0, d1[k], (self.corners[k] - origin) / d1[k], best, via)
        if p.second_order_corners == 0 or not first:
            return best.reshape(self.shape)
        reached = best[self._corner_flat].copy()
        reached[[k for k, ok in zip(order, seen) if ok]] = np.inf   # the TX sees these: first order
        # the first-order corner each path came through, before second-order relays overwrite it
        came_from = via[self._corner_flat].copy()
        pool = [int(k) for k in np.argsort(reached, kind="stable") if np.isfinite(reached[k])]
        for k in pool[:p.second_order_corners]:
            prev = int(came_from[k])
            step = self.corners[k] - self.corners[prev]
            hop = float(np.hypot(*step))
            if hop < 1.0:
                continue
            length = float(d1[prev]) + hop
            # the first bend's cost: the loss at the corner minus its distance loss
            path_db = float(reached[k]) - p.loss_1m_db - 10 * p.los_exponent * np.log10(length)
            self._relay(k, path_db, length, step / hop, best, via)
        return best.reshape(self.shape)

    def gain_db(self, tx: tuple[int, int]) -> np.ndarray:
        """Path gain in dB (float32, clipped to [-147, -47]; buildings -147) of a TX at (row, col)."""
        r, c = int(tx[0]), int(tx[1])
        if not (0 <= r < self.shape[0] and 0 <= c < self.shape[1]):
            raise ValueError(f"transmitter {tx} lies outside the {self.shape} map")
        if self.mask[r, c]:
            raise ValueError(f"transmitter {tx} lies inside a building")
        direct, _ = self._direct_loss((r, c))
        loss = np.minimum(direct, self._diffracted_loss((r, c)))
        gain = np.clip(-loss, GAIN_DB_MIN, GAIN_DB_MAX).astype(np.float32)
        gain[self.mask] = GAIN_DB_MIN
        return gain


# --- cities -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CityStyle:
    """Shape of the procedural cities, in metres (= pixels)."""

    street: tuple[int, int] = (8, 18)       # street width range
    block: tuple[int, int] = (30, 80)       # block side range
    lot_max: tuple[int, int] = (14, 40)     # largest lot side, drawn per block
    setback: tuple[int, int] = (1, 3)       # gap between a building and its lot edge
    min_side: int = 4                       # smallest building side
    open_square: float = 0.1                # share of blocks left open (squares, parks)
    empty_lot: float = 0.1                  # share of lots without a building
    l_shape: float = 0.35                   # share of buildings cut into an L


def _axis_blocks(size: int, style: CityStyle, rng: np.random.Generator) -> list[tuple[int, int]]:
    """Blocks along one axis, alternating with streets; the map starts at a random phase."""
    pos = -int(rng.integers(0, style.block[1]))
    blocks = []
    while pos < size:
        length = int(rng.integers(style.block[0], style.block[1] + 1))
        lo, hi = max(pos, 0), min(pos + length, size)
        if hi - lo >= style.min_side + 2:
            blocks.append((lo, hi))
        pos += length + int(rng.integers(style.street[0], style.street[1] + 1))
    return blocks


def _split_lots(box: tuple[int, int, int, int], lot_max: int, rng: np.random.Generator) -> list:
    """Split a block (r0, r1, c0, c1) in two along its longer side until lots fit ``lot_max``."""
    r0, r1, c0, c1 = box
    h, w = r1 - r0, c1 - c0
    if max(h, w) <= lot_max:
        return [box]
    if h >= w:
        cut = r0 + int(round(h * rng.uniform(0.35, 0.65)))
        halves = [(r0, cut, c0, c1), (cut, r1, c0, c1)]
    else:
        cut = c0 + int(round(w * rng.uniform(0.35, 0.65)))
        halves = [(r0, r1, c0, cut), (r0, r1, cut, c1)]
    return [lot for half in halves for lot in _split_lots(half, lot_max, rng)]


def _paint_building(labels: np.ndarray, lot: tuple, ident: int, style: CityStyle,
                    rng: np.random.Generator) -> bool:
    """Paint a rectangle or L-shape inside ``lot``; False when the lot is too small."""
    r0, r1, c0, c1 = lot
    lo, hi = style.setback
    r0, c0 = r0 + int(rng.integers(lo, hi + 1)), c0 + int(rng.integers(lo, hi + 1))
    r1, c1 = r1 - int(rng.integers(lo, hi + 1)), c1 - int(rng.integers(lo, hi + 1))
    h, w = r1 - r0, c1 - c0
    if h < style.min_side or w < style.min_side:
        return False
    labels[r0:r1, c0:c1] = ident
    if rng.random() < style.l_shape and min(h, w) >= 2 * style.min_side:
        ch = int(rng.integers(int(0.3 * h), int(0.6 * h) + 1))
        cw = int(rng.integers(int(0.3 * w), int(0.6 * w) + 1))
        rows = slice(r0, r0 + ch) if rng.random() < 0.5 else slice(r1 - ch, r1)
        cols = slice(c0, c0 + cw) if rng.random() < 0.5 else slice(c1 - cw, c1)
        labels[rows, cols] = 0
    return True


def _city_blocks(size: int, style: CityStyle, rng: np.random.Generator) -> list[tuple[int, int, int, int]]:
    rows = _axis_blocks(size, style, rng)
    cols = _axis_blocks(size, style, rng)
    return [(r0, r1, c0, c1) for r0, r1 in rows for c0, c1 in cols]


def generate_city(size: int, rng: np.random.Generator, style: CityStyle = CityStyle()) -> np.ndarray:
    """A city map: (size, size) int32 labels, 0 = free, 1..N = building id (one component each)."""
    labels = np.zeros((size, size), dtype=np.int32)
    ident = 0
    for block in _city_blocks(size, style, rng):
        if rng.random() < style.open_square:
            continue
        lot_max = int(rng.integers(style.lot_max[0], style.lot_max[1] + 1))
        for lot in _split_lots(block, lot_max, rng):
            if rng.random() < style.empty_lot:
                continue
            if _paint_building(labels, lot, ident + 1, style, rng):
                ident += 1
    return labels


def place_transmitters(buildings: np.ndarray, count: int, rng: np.random.Generator,
                       clearance: int = 2) -> np.ndarray:
    """``count`` distinct street pixels at least ``clearance`` m from buildings and the map edge.

    Returns (count, 2) int (row, column).
    """
    from scipy.ndimage import binary_dilation

    mask = np.asarray(buildings) > 0
    near = binary_dilation(mask, np.ones((3, 3), bool), iterations=clearance) if mask.any() else mask
    ok = ~near
    ok[:clearance, :] = ok[-clearance:, :] = False
    ok[:, :clearance] = ok[:, -clearance:] = False
    candidates = np.flatnonzero(ok)
    if len(candidates) < count:
        raise ValueError(f"only {len(candidates)} street pixels for {count} transmitters")
    chosen = rng.choice(candidates, size=count, replace=False)
    return np.stack(np.unravel_index(chosen, mask.shape), axis=1).astype(np.int64)


def remove_buildings(labels: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """Buildings mask (bool) with ``count`` buildings, drawn at random, removed."""
    ids = np.unique(labels[labels > 0])
    drop = rng.choice(ids, size=min(count, len(ids)), replace=False) if len(ids) else ids
    return (labels > 0) & ~np.isin(labels, drop)


# --- rendering --------------------------------------------------------------------------------

_DEFAULTS = {
    "maps": 120, "transmitters": 20, "size": 256, "buildings_missing_levels": 4,
    "buildings_missing_versions": 6, "simulator": "DPM", "valid_fraction": 0.143,
    "test_fraction": 0.141, "propagation": {}, "workers": 2,
}


def _spec(params: dict) -> dict:
    """Params with defaults; unknown keys raise ValueError naming them."""
    unknown = sorted(set(params) - set(_DEFAULTS))
    if unknown:
        raise ValueError(f"radio-sim: unknown parameter(s) {unknown}; known: {sorted(_DEFAULTS)}")
    spec = {**_DEFAULTS, **params}
    spec["propagation"] = asdict(Propagation.from_params(spec["propagation"]))
    if spec["maps"] < 1 or spec["transmitters"] < 1 or spec["size"] < 16:
        raise ValueError(f"radio-sim: maps, transmitters must be >= 1 and size >= 16, got {params}")
    return spec


def _save_png(path: Path, image: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).save(path, compress_level=6)


def _map_rng(seed: int, m: int, stream: int) -> np.random.Generator:
    """Independent streams per (seed, map, purpose): map m is the same whatever ``maps`` is."""
    return np.random.default_rng([seed, m, stream])


def render_map(out_dir: Path, m: int, seed: int, spec: dict) -> dict:
    """Generate, simulate and write map ``m`` (all its PNGs and its antenna JSON); return stats."""
    size = spec["size"]
    labels = generate_city(size, _map_rng(seed, m, 0))
    buildings = labels > 0
    txs = place_transmitters(buildings, spec["transmitters"], _map_rng(seed, m, 1))
    png = out_dir / "png"
    _save_png(png / "buildings_complete" / f"{m}.png", buildings * 255)
    missing_rng = _map_rng(seed, m, 2)
    for level in range(1, spec["buildings_missing_levels"] + 1):
        for version in range(1, spec["buildings_missing_versions"] + 1):
            partial = remove_buildings(labels, level, missing_rng)
            _save_png(png / f"buildings_missing{level}" / str(version) / f"{m}.png", partial * 255)
    write_json(out_dir / "antenna" / f"{m}.json", [[int(c), int(r)] for r, c in txs], indent=None)
    city = CityPropagator(buildings, Propagation(**spec["propagation"]))
    gains = []
    for tx, (r, c) in enumerate(txs):
        antenna = np.zeros((size, size), dtype=np.uint8)
        antenna[r, c] = 255
        _save_png(png / "antennas" / f"{m}_{tx}.png", antenna)
        grey = gain_db_to_png(city.gain_db((r, c)), buildings)
        _save_png(out_dir / "gain" / spec["simulator"] / f"{m}_{tx}.png", grey)
        gains.append(float(grey[~buildings].mean()))
    return {"buildings": int(labels.max()), "building_share": float(buildings.mean()),
            "corners": int(len(city.corners)), "mean_grey": float(np.mean(gains))}


def _render_map_job(job: tuple) -> dict:
    return render_map(*job)


def _folders(out_dir: Path, spec: dict) -> None:
    png = out_dir / "png"
    for sub in ["buildings_complete", "antennas"] + [
            f"buildings_missing{k}/{v}" for k in range(1, spec["buildings_missing_levels"] + 1)
            for v in range(1, spec["buildings_missing_versions"] + 1)]:
        (png / sub).mkdir(parents=True, exist_ok=True)
    (out_dir / "gain" / spec["simulator"]).mkdir(parents=True, exist_ok=True)
    (out_dir / "antenna").mkdir(parents=True, exist_ok=True)


def render(out_dir: Path, params: dict, seed: int) -> dict:
    """Render the radio-sim dataset into ``out_dir`` in RadioMapSeer's layout.

    ``params`` is the ``datasets.radio_sim`` config section: maps, transmitters, size,
    buildings_missing_levels, buildings_missing_versions, simulator (gain folder name),
    propagation (overrides of :class:`Propagation`), workers (processes; 0 = all cores).
    valid_fraction and test_fraction are for the reader's split and unused here.
    Map m depends only on (seed, m), so the output is the same for any number of workers.
    """
    out_dir = Path(out_dir)
    spec = _spec(params)
    _folders(out_dir, spec)
    workers = spec["workers"] or os.cpu_count() or 1
    jobs = [(out_dir, m, seed, spec) for m in range(spec["maps"])]
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
            stats = list(progress(pool.map(_render_map_job, jobs), desc="radio-sim maps",
                                  total=len(jobs), unit="map"))
    else:
        stats = [_render_map_job(job) for job in progress(jobs, desc="radio-sim maps", unit="map")]
    files = [p for p in out_dir.rglob("*") if p.is_file()]
    return {
        "maps": spec["maps"], "transmitters": spec["transmitters"], "size": spec["size"],
        "simulator": spec["simulator"], "radio_maps": spec["maps"] * spec["transmitters"],
        "buildings_per_map": round(float(np.mean([s["buildings"] for s in stats])), 2),
        "building_share": round(float(np.mean([s["building_share"] for s in stats])), 4),
        "mean_street_grey": round(float(np.mean([s["mean_grey"] for s in stats])), 2),
        "files": len(files), "bytes": int(sum(p.stat().st_size for p in files)),
    }


def simulate_gain(buildings: np.ndarray, tx: tuple[int, int], params: dict | None = None) -> np.ndarray:
    """Simulate the path gain in dB of one transmitter over a city (the ``radio-sim`` physics).

    ``buildings``: (H, W) array, nonzero = building (1 px = 1 m); ``tx``: (row, column) of the
    transmitter, outside buildings; ``params``: overrides of :class:`Propagation` (unknown keys
    raise ValueError). Returns float32 dB in [-147, -47]; pixels inside buildings are -147
    (grey 0). Convert with :func:`gain_db_to_png` (what the dataset stores) or
    :func:`genex.studies.radio.data.gain_db_to_scaled` (what the reader returns). To simulate many
    transmitters over one city, use :class:`CityPropagator` (it caches corner visibility).
    """
    return CityPropagator(buildings, Propagation.from_params(params)).gain_db(tx)
