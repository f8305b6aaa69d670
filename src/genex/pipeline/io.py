"""Atomic file and folder outputs: a failure never leaves a half-written result."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def follow_umask(path: Path, folder: bool) -> None:
    """mkstemp/mkdtemp create 0600/0700; a finished output gets the modes of a plain one."""
    os.chmod(path, (0o777 if folder else 0o666) & ~_umask())


def remove_stale(target: str | os.PathLike, suffix: str = ".partial") -> list[Path]:
    """Remove what a killed earlier attempt at ``target`` left beside it (``.<name>.*<suffix>``).

    Called when a step starts writing ``target`` again: only one job writes an output at a
    time, so whatever such leftovers exist belong to dead attempts.
    """
    target = Path(target)
    removed = []
    if target.parent.is_dir():
        for stale in target.parent.glob(f".{glob.escape(target.name)}.*{suffix}"):
            shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)
            removed.append(stale)
    return removed


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``target``; rename it onto ``target`` on success.

    On an exception the temporary folder is removed and ``target`` is left as it was. What a
    killed earlier attempt left (``.<name>.*.partial``) is removed first.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    try:
        yield tmp
        follow_umask(tmp, folder=True)
        if target.exists():
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def atomic_file(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(target)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if tmp.exists():
            follow_umask(tmp, folder=False)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _to_builtin(obj):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_json(path: str | os.PathLike, data, indent: int = 2) -> None:
    """Write JSON atomically with sorted keys (stable diffs, stable DVC hashes)."""
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(data, indent=indent, sort_keys=True, default=_to_builtin) + "\n")


def read_json(path: str | os.PathLike):
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: file not found") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None


def write_wav(path: str | os.PathLike, audio: np.ndarray, sample_rate: int) -> None:
    """Write mono float audio as 16-bit PCM WAV (NSynth's and MAPS's format)."""
    import soundfile as sf

    audio = np.asarray(audio, dtype=np.float32)
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak > 1.0:
        audio = audio / peak
    sf.write(str(path), audio, int(sample_rate), subtype="PCM_16")


def load_tensors(path: str | os.PathLike, map_location="cpu"):
    """Load a genex ``.pt`` file without running code: tensors, numbers, strings, lists, dicts.

    ``torch.load(weights_only=True)`` refuses pickled objects (a planted payload, a numpy
    array, a class); the error names the file. Models and features reach users through shared
    DVC remotes, so no file genex reads may execute anything.
    """
    import pickle

    import torch

    path = Path(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: file not found") from None
    except pickle.UnpicklingError as err:
        text = str(err)
        found = re.search(r"GLOBAL (\S+)|Unsupported global: (?:GLOBAL )?(\S+)", text)
        if not found:
            details = [ln.strip() for ln in text.splitlines() if ln.strip()]
            reason = details[-2] if len(details) > 1 else text
            raise ValueError(f"{path}: not a readable torch file ({reason})") from None
        what = found.group(1) or found.group(2)
        raise ValueError(f"{path}: refused to load: it holds {what}, not only tensors and plain "
                         f"data (a file genex reads may not run code)") from None
    except (RuntimeError, EOFError, OSError) as err:
        raise ValueError(f"{path}: not a readable torch file ({err})") from None


_PLAIN = (type(None), bool, int, float, complex, str, bytes)


def _check_plain(obj, where: str) -> None:
    """Raise TypeError unless ``obj`` is only tensors and plain data (what load_tensors reads)."""
    import collections

    import torch

    if isinstance(obj, torch.Tensor):
        if type(obj) not in (torch.Tensor, torch.nn.Parameter):
            raise TypeError(f"{where} is a {type(obj).__name__}, not a plain tensor")
    elif isinstance(obj, (torch.Size, torch.dtype, torch.device)) or type(obj) in _PLAIN:
        pass
    elif type(obj) in (list, tuple):
        for i, v in enumerate(obj):
            _check_plain(v, f"{where}[{i}]")
    elif type(obj) in (dict, collections.OrderedDict):
        for k, v in obj.items():
            if type(k) not in (str, int):
                raise TypeError(f"{where} has a key of type {type(k).__name__}")
            _check_plain(v, f"{where}[{k!r}]")
    else:
        raise TypeError(f"{where} is a {type(obj).__module__}.{type(obj).__qualname__}, "
                        f"not a tensor or plain data")


def save_tensors(path: str | os.PathLike, payload) -> None:
    """``torch.save`` a payload of tensors and plain data only, so :func:`load_tensors` reads it.

    A numpy array or any other object would be pickled and refused on load: refuse it here,
    before the file is shared. (Not atomic: call inside ``atomic_dir``/``atomic_file``.)
    """
    import torch

    try:
        _check_plain(payload, "payload")
    except TypeError as err:
        raise TypeError(f"{path}: cannot save: {err} (load_tensors would refuse it)") from None
    torch.save(payload, path)


def load_arrays(path: str | os.PathLike, keys=None, mmap: bool = False) -> dict[str, np.ndarray]:
    """The arrays of a genex ``.npz`` file (all, or ``keys``), read with ``allow_pickle=False``.

    With ``mmap``, arrays stored uncompressed (``np.savez``) are memory-mapped read-only
    (:func:`mapped_npz_member`): pages are read when indexed, so a split of a 30 GB feature
    file costs only the frames a batch touches; compressed or empty members are read.
    An object array (pickled data) is refused, not run; every error names the file.
    """
    import zipfile

    path = Path(path)
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise _NotNpz("not an .npz archive")
        with data:
            missing = [k for k in (keys or []) if k not in data.files]
            if missing:
                raise _NotNpz(f"missing {', '.join(missing)}")
            wanted = data.files if keys is None else keys
            if not mmap:
                return {k: data[k] for k in wanted}
            out = {}
            for k in wanted:
                mapped = mapped_npz_member(path, data.zip.getinfo(f"{k}.npy"))
                out[k] = data[k] if mapped is None else mapped
            return out
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: file not found") from None
    except _NotNpz as err:
        raise ValueError(f"{path}: not the expected .npz file ({err})") from None
    except ValueError as err:
        if "pickle" in str(err) or "Object arrays" in str(err):
            raise ValueError(f"{path}: refused to load: it holds pickled (object) data, not only "
                             f"plain arrays (a file genex reads may not run code)") from None
        raise ValueError(f"{path}: not a readable .npz file ({err})") from None
    except (zipfile.BadZipFile, EOFError, OSError, KeyError) as err:
        raise ValueError(f"{path}: not a readable .npz file ({err})") from None


class _NotNpz(Exception):
    pass


def mapped_npz_member(path: Path, info) -> np.ndarray | None:
    """A read-only ``np.memmap`` of one ``.npy`` member of an ``.npz`` (a ``ZipInfo``), or
    ``None`` where it cannot be mapped (compressed, empty, an unknown ``.npy`` version).
    The header is parsed by numpy's own reader; object dtypes are refused."""
    import struct
    import zipfile

    if info.compress_type != zipfile.ZIP_STORED:
        return None
    fmt = np.lib.format
    with open(path, "rb") as fh:
        fh.seek(info.header_offset)
        local = fh.read(30)
        if local[:4] != b"PK\x03\x04":
            raise _NotNpz(f"member {info.filename}: no local file header")
        name_len, extra_len = struct.unpack("<HH", local[26:30])
        fh.seek(info.header_offset + 30 + name_len + extra_len)
        version = fmt.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, fortran, dtype = fmt.read_array_header_2_0(fh)
        else:
            return None
        if dtype.hasobject:
            raise ValueError("Object arrays cannot be loaded when allow_pickle=False")
        offset = fh.tell()
    if int(np.prod(shape)) == 0:
        return None
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape,
                     order="F" if fortran else "C")


def parse_params(text: str) -> dict:
    """A command's ``--params``: inline JSON, or ``@path/to/file.json``."""
    try:
        if text.startswith("@"):
            return json.loads(Path(text[1:]).read_text())
        return json.loads(text)
    except (OSError, json.JSONDecodeError) as err:
        raise SystemExit(f"genex: --params is not valid JSON ({err})") from None
