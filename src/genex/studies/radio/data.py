"""RadioMapSeer: the on-disk format, the gain scaling, and a reader for the real and embedded sets.

Layout (the real RadioMapSeer and the embedded ``radio-sim`` share it)::

    png/buildings_complete/{m}.png              255 = building, 0 = free
    png/buildings_missing{k}/{v}/{m}.png        k buildings removed (k = 1..4), version v = 1..6
    png/antennas/{m}_{tx}.png                   one white pixel at the transmitter
    gain/<simulator>/{m}_{tx}.png               path gain as 8-bit grey, 0 inside buildings
    antenna/{m}.json                            transmitter positions [[x, y], ...] (x = column)

Gain scale (RadioUNet, Levie et al.): grey = 255 (G - G_min) / (G_max - G_min) with path gain
G in dB between ``GAIN_DB_MIN`` = -147 dB (truncation) and ``GAIN_DB_MAX`` = -47 dB (the gain
1 m from the antenna at 5.9 GHz). Readers divide by 255, floor at 0.2 (= -127 dB, the noise
floor) and rescale (g - 0.2) / 0.8, so a read gain of 0 means "at or below the noise floor or
inside a building" and 1 means "at the antenna".
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

GAIN_DB_MAX = -47.0      # path gain 1 m from the antenna (free space at 5.9 GHz): grey 255
GAIN_DB_MIN = -147.0     # truncation: grey 0
GAIN_FLOOR = 0.2         # noise floor (-127 dB) as a fraction of the grey scale
MISSING_VERSIONS = 6     # versions per buildings_missing level in the real dataset
# RadioUNet's split of 700 maps (np.random.seed(42) shuffle; indices 0-500, 501-600, 601-699).
RADIOMAPSEER_FRACTIONS = (501 / 700, 100 / 700, 99 / 700)
# RadioUNet's loader reads map maps_inds[i] + 1: the real maps are numbered 1..700
RADIOMAPSEER_MAPS = tuple(range(1, 701))

_TX_NAME = re.compile(r"^(\d+)_(\d+)\.png$")


# --- the gain scale ---------------------------------------------------------------------------

def gain_db_to_png(gain_db: np.ndarray, buildings: np.ndarray | None = None) -> np.ndarray:
    """Path gain in dB -> RadioMapSeer's 8-bit grey (clipped to [-147, -47] dB; buildings 0)."""
    grey = (np.asarray(gain_db, dtype=np.float64) - GAIN_DB_MIN) / (GAIN_DB_MAX - GAIN_DB_MIN)
    png = np.round(np.clip(grey, 0.0, 1.0) * 255.0).astype(np.uint8)
    if buildings is not None:
        png[np.asarray(buildings) > 0] = 0
    return png


def png_to_gain(png: np.ndarray, floor: float = GAIN_FLOOR) -> np.ndarray:
    """8-bit grey -> the gain RadioUNet trains on: /255, floored at ``floor``, rescaled to [0, 1]."""
    gain = np.asarray(png, dtype=np.float32) / 255.0
    if floor > 0:
        gain = (np.maximum(gain, floor) - floor) / (1.0 - floor)
    return gain.astype(np.float32)


def gain_db_to_scaled(gain_db: np.ndarray, buildings: np.ndarray | None = None,
                      floor: float = GAIN_FLOOR) -> np.ndarray:
    """Path gain in dB -> the reader's scaled gain, through the same 8-bit quantisation."""
    return png_to_gain(gain_db_to_png(gain_db, buildings), floor)


# --- the reader -------------------------------------------------------------------------------

def read_png(path: Path, size: int | None = None) -> np.ndarray:
    """An 8-bit grey map as a 2-D array; ``size``: the dataset's map size (square).

    Grey (L), bilevel (1) and grey stored as RGB(A)/LA/palette are read; other modes
    (16-bit, float, colour) and a wrong size are refused, naming the file.
    """
    from PIL import Image

    try:
        with Image.open(path) as img:
            mode = img.mode
            if mode == "P":  # a palette of greys: its colours
                img = img.convert("RGB")
            array = np.asarray(img)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: file not found") from None
    except (OSError, ValueError, SyntaxError) as err:  # PIL's errors for damaged files
        raise ValueError(f"{path}: not a readable PNG ({err})") from None
    if mode not in ("L", "1", "LA", "RGB", "RGBA", "P") or array.dtype not in (np.uint8, bool):
        raise ValueError(f"{path}: image mode {mode!r} ({array.dtype}), expected 8-bit grey (L)")
    if array.ndim == 3:
        colour = array[..., :3] if array.shape[2] >= 3 else array[..., :1]
        if (colour != colour[..., :1]).any():
            raise ValueError(f"{path}: a colour image (mode {mode!r}), expected 8-bit grey (L)")
        array = array[..., 0]
    if array.ndim != 2 or 0 in array.shape:
        raise ValueError(f"{path}: image of shape {array.shape}, expected a 2-D map")
    if size is not None and array.shape != (size, size):
        raise ValueError(f"{path}: {array.shape[1]}x{array.shape[0]} pixels, but the dataset's "
                         f"maps are {size}x{size}")
    return array


class RadioMapSeer:
    """Reader of a RadioMapSeer-layout folder: the real dataset or the embedded ``radio-sim``.

    ``root`` is the folder holding ``png/`` and ``gain/``; ``simulator`` names the gain folder
    (DPM, IRT2, ...); ``floor`` is the noise-floor threshold of the gain scaling (0 disables).
    """

    def __init__(self, root: str | os.PathLike, simulator: str = "DPM", floor: float = GAIN_FLOOR):
        self.root = Path(root)
        self.simulator = simulator
        self.floor = float(floor)
        complete = self.root / "png" / "buildings_complete"
        if not complete.is_dir():
            raise FileNotFoundError(f"{complete}: folder not found (is {self.root} a RadioMapSeer folder?)")
        self._maps = sorted(int(p.stem) for p in complete.glob("*.png") if p.stem.isdigit())
        if not self._maps:
            raise FileNotFoundError(f"{complete}: no maps ({{m}}.png) found")
        self._tx: dict[int, list[int]] | None = None
        self._size: int | None = None

    @property
    def size(self) -> int:
        """Side of the (square) maps in pixels, from the first complete-buildings map."""
        if self._size is None:
            path = self.buildings_path(self._maps[0])
            h, w = read_png(path).shape
            if h != w:
                raise ValueError(f"{path}: {w}x{h} pixels, but maps must be square")
            self._size = int(h)
        return self._size

    @property
    def maps(self) -> list[int]:
        """Map ids, sorted."""
        return list(self._maps)

    def transmitters(self, m: int) -> list[int]:
        """Transmitter ids of map ``m`` (from png/antennas/{m}_{tx}.png), sorted."""
        if self._tx is None:
            self._tx = self._scan_antennas()
        if m not in self._tx:
            raise FileNotFoundError(f"{self.root / 'png' / 'antennas'}: no {m}_{{tx}}.png for map {m}")
        return list(self._tx[m])

    def _scan_antennas(self) -> dict[int, list[int]]:
        folder = self.root / "png" / "antennas"
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: folder not found")
        found: dict[int, list[int]] = {}
        with os.scandir(folder) as entries:  # one pass: the real set has 56,000 files
            for entry in entries:
                match = _TX_NAME.match(entry.name)
                if match:
                    found.setdefault(int(match[1]), []).append(int(match[2]))
        return {m: sorted(txs) for m, txs in found.items()}

    def split(self, seed: int = 42, fractions: tuple[float, float, float] = RADIOMAPSEER_FRACTIONS
              ) -> dict[str, list[int]]:
        """Split the maps into train/val/test like RadioUNet (shuffle by map with ``seed``).

        Sizes: val = round(n f_val), test = round(n f_test), train = the rest; for the 700 real
        maps and the defaults this is RadioUNet's 501/100/99 with the same maps in each part
        (the legacy ``RandomState(seed)`` shuffle is the one ``np.random.seed(42)`` gives).
        """
        if len(fractions) != 3 or min(fractions) < 0 or sum(fractions) <= 0:
            raise ValueError(f"split fractions must be three non-negative numbers, got {fractions}")
        total = float(sum(fractions))
        n = len(self._maps)
        n_val = int(round(n * fractions[1] / total))
        n_test = int(round(n * fractions[2] / total))
        n_train = n - n_val - n_test
        if n_train < 1:
            raise ValueError(f"{self.root}: {n} maps are too few for the split {fractions}")
        self._check_numbering()
        order = np.random.RandomState(seed).permutation(n)
        maps = [self._maps[i] for i in order]
        return {"train": maps[:n_train], "valid": maps[n_train:n_train + n_val],
                "test": maps[n_train + n_val:]}

    @property
    def embedded(self) -> bool:
        """Whether the folder is genex's own render (radio-sim), not a RadioMapSeer copy."""
        marker = self.root / "genex.json"
        if not marker.is_file():
            return False
        from genex.pipeline import read_json

        return read_json(marker).get("dataset") == "radio-sim"

    def _check_numbering(self) -> None:
        """The split is RadioUNet's only for exactly the maps 1..700 (its loader reads
        ``maps_inds[i] + 1``): 700 maps numbered otherwise would give other maps to each part
        without a word, so they are refused; another count of real maps is split by the same
        rule, with a warning that it is not RadioUNet's split."""
        if self.embedded or tuple(self._maps) == RADIOMAPSEER_MAPS:
            return
        folder = self.root / "png" / "buildings_complete"
        found = f"{len(self._maps)} maps numbered {self._maps[0]}..{self._maps[-1]}"
        if len(self._maps) == len(RADIOMAPSEER_MAPS):
            gaps = sorted(set(RADIOMAPSEER_MAPS) - set(self._maps))[:3]
            raise ValueError(f"{folder}: {found} (missing {gaps}), but RadioUNet's split needs the "
                             f"maps 1..700 as RadioMapSeer numbers them")
        import warnings

        warnings.warn(f"{folder}: {found}, not RadioMapSeer's 700 numbered 1..700: the split is "
                      f"RadioUNet's rule but not its maps", stacklevel=3)

    def buildings_path(self, m: int, missing: int = 0, version: int = 1) -> Path:
        """The buildings PNG of map ``m``: complete (missing=0) or with ``missing`` buildings removed."""
        if missing == 0:
            return self.root / "png" / "buildings_complete" / f"{m}.png"
        return self.root / "png" / f"buildings_missing{missing}" / str(version) / f"{m}.png"

    def tx_position(self, m: int, tx: int) -> tuple[int, int]:
        """(row, column) of transmitter ``tx`` of map ``m``, from antenna/{m}.json ([x, y] pairs)."""
        from genex.pipeline import read_json

        path = self.root / "antenna" / f"{m}.json"
        positions = read_json(path)
        try:
            x, y = positions[tx][:2]
            row, col = int(round(y)), int(round(x))
        except (IndexError, KeyError, TypeError, ValueError, OverflowError):
            raise ValueError(f"{path}: no [x, y] position for transmitter {tx}") from None
        if not (0 <= row < self.size and 0 <= col < self.size):
            raise ValueError(f"{path}: transmitter {tx} at [x, y] = [{x}, {y}] lies outside the "
                             f"{self.size}x{self.size} map")
        self._check_tx_image(path, m, tx, row, col)
        return row, col

    def _check_tx_image(self, json_path: Path, m: int, tx: int, row: int, col: int) -> None:
        """The JSON's position must be a lit pixel of png/antennas/{m}_{tx}.png (the image is
        what RadioUNet feeds its network; the JSON's [x, y] order is not documented)."""
        image_path = self.root / "png" / "antennas" / f"{m}_{tx}.png"
        lit = np.argwhere(read_png(image_path, self.size) > 0)
        if not len(lit):
            raise ValueError(f"{image_path}: no transmitter pixel (the image is all black)")
        if ((lit[:, 0] == row) & (lit[:, 1] == col)).any():
            return
        at_row, at_col = (int(v) for v in np.round(lit.mean(axis=0)))
        swapped = " ([x, y] read as [row, column]?)" if (at_row, at_col) == (col, row) else ""
        raise ValueError(f"{json_path}: transmitter {tx} at row {row}, column {col}, but "
                         f"{image_path} has it at row {at_row}, column {at_col}{swapped}")

    def load(self, m: int, tx: int, missing: int = 0, version: int = 1) -> dict[str, np.ndarray]:
        """One sample as float32 arrays: ``buildings`` (complete, 0/1), ``buildings_missing``
        (level ``missing``, version ``version``; level 0 = complete), ``tx`` (0/1) and ``gain``
        (/255, floored and rescaled to [0, 1])."""
        size = self.size
        complete = (read_png(self.buildings_path(m), size) > 0).astype(np.float32)
        partial = complete if missing == 0 else \
            (read_png(self.buildings_path(m, missing, version), size) > 0).astype(np.float32)
        antenna = (read_png(self.root / "png" / "antennas" / f"{m}_{tx}.png", size) > 0
                   ).astype(np.float32)
        gain = png_to_gain(read_png(self.root / "gain" / self.simulator / f"{m}_{tx}.png", size),
                           self.floor)
        return {"buildings": complete, "buildings_missing": partial, "tx": antenna, "gain": gain}
