"""Training checkpoints that survive a kill, and the device/thread choice every trainer makes.

A training rule declares only its final model as output; its checkpoints live in a folder
outside the outputs (``results/<study>/checkpoints/<model>``), because Snakemake deletes
the outputs of a killed job before it reruns it. :class:`Checkpointer` saves everything a
run needs to continue as if never stopped: the state of every model, optimiser, scheduler
and grad scaler, the RNG states, and the trainer's counters.

A checkpoint resumes only the run it was written by. Its *identity* has three parts: the
trainer's fingerprint (params, seed, data shapes), a digest of every input file the trainer
reads (features, upstream models) and a digest of the genex sources. When any part differs,
or ``last.pt``/``best.pt`` is unreadable or inconsistent, both files are discarded, the log
(stderr) names the file and what changed, and training starts from scratch: one policy, so
no rerun stays stuck on a stale or broken checkpoint.

Bit-equal resume needs one more thing from the trainer: draw each epoch's data order from
``epoch_rng(seed, epoch)`` (not from a generator carried across epochs) and checkpoint at
epoch ends. Every loop calls :func:`finite_loss` on each loss: a NaN/inf stops training with
an error naming the epoch and step, before anything is written.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import logging
import math
import os
import random
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genex.pipeline.io import atomic_file, load_tensors, save_tensors

log = logging.getLogger("genex.pipeline.checkpoint")

FORMAT = 2  # checkpoint layout: loadable with weights_only=True (no pickled objects)
_CHUNK = 1 << 20


class NonFiniteLoss(RuntimeError):
    """A training loss (or the weights) became NaN or infinite: training stops."""


def resolve_device(spec: str = "auto") -> torch.device:
    """``auto`` -> CUDA when present, else CPU; ``cpu``/``cuda``/``cuda:1`` as given."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(spec)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {spec!r} requested, but CUDA is not available")
    return device


def set_threads(threads: int | None) -> None:
    """Use the CPU threads Snakemake gave the rule (``threads:``), no more."""
    if threads:
        torch.set_num_threads(max(1, int(threads)))


def fingerprint(*parts: Any) -> str:
    """A short stable hash of JSON-able parts (params, seed, data shapes)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def epoch_rng(seed: int, epoch: int) -> np.random.Generator:
    """The generator of one epoch (data order, masks): a resumed epoch replays exactly."""
    return np.random.default_rng([seed, epoch])


def finite_loss(loss: torch.Tensor | float, state: TrainState, name: str = "loss") -> float:
    """``loss`` as a float; raise :class:`NonFiniteLoss` naming the epoch and step if it is
    NaN or infinite. Call it before the optimiser step of every training step."""
    value = float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss)
    if not math.isfinite(value):
        raise NonFiniteLoss(f"training {name} is {value} at epoch {state.epoch + 1}, step "
                            f"{state.step + 1}: training stopped, no model written")
    return value


def file_digest(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes, or of a folder's files (relative names and bytes, sorted;
    hidden files such as Snakemake's ``.snakemake_timestamp`` are not data). Chunked, so a
    large feature file is never held in memory."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: training input not found")
    files = [path] if path.is_file() else sorted(
        p for p in path.rglob("*") if p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(path).parts))
    h = hashlib.sha256()
    for f in files:
        h.update(f"{f.relative_to(path).as_posix() if f != path else ''}\0{f.stat().st_size}\0".encode())
        with open(f, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                h.update(chunk)
    return h.hexdigest()[:16]


@functools.lru_cache(maxsize=1)
def code_digest() -> str:
    """sha256 of every ``.py`` source of the genex package. Conservative on purpose: which
    modules a trainer's numbers depend on (models, features, metrics, utils) is not tracked
    here, so any source change makes old checkpoints a different run."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for f in sorted(root.rglob("*.py")):
        if "__pycache__" not in f.parts:
            h.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def input_digests(inputs: Mapping[str, Any] | None) -> dict[str, str]:
    """``{name: digest}`` of a trainer's inputs (name -> a file/folder or a list of them)."""
    out = {}
    for name, paths in sorted((inputs or {}).items()):
        if isinstance(paths, (str, os.PathLike)):
            out[name] = file_digest(paths)
        else:
            assert isinstance(paths, Sequence)
            out[name] = fingerprint([file_digest(p) for p in paths])
    return out


@dataclass
class TrainState:
    """The counters a trainer carries across epochs (saved in every checkpoint)."""

    epoch: int = 0                 # epochs completed
    step: int = 0                  # optimiser steps completed
    best: float | None = None      # best validation score so far (lower is better)
    best_epoch: int | None = None
    history: list[dict] = field(default_factory=list)  # one record per epoch

    def improved(self, score: float) -> bool:
        """Record a validation score (lower is better); True when it is the best so far."""
        if self.best is None or score < self.best:
            self.best, self.best_epoch = float(score), self.epoch
            return True
        return False


class Checkpointer:
    """Save and restore training state in ``folder`` (``last.pt``, ``best.pt``).

    ``objects`` maps names to anything with ``state_dict``/``load_state_dict``: models,
    optimisers, LR schedulers, grad scalers. ``inputs`` maps names to the files or folders
    the trainer reads (their content is part of the checkpoint's identity).
    """

    def __init__(self, folder: str | os.PathLike, objects: dict[str, Any], fingerprint: str,
                 inputs: Mapping[str, Any] | None = None) -> None:
        self.folder = Path(folder)
        self.objects = objects
        self.fingerprint = fingerprint
        self.identity = {"params": fingerprint, "inputs": input_digests(inputs),
                         "code": code_digest()}

    @property
    def last(self) -> Path:
        return self.folder / "last.pt"

    @property
    def best(self) -> Path:
        return self.folder / "best.pt"

    def _discard(self, why: str) -> TrainState:
        """The one policy: say why on stderr, delete both files, start from scratch."""
        log.warning("%s; discarding %s and training from scratch", why,
                    " and ".join(str(p) for p in (self.last, self.best) if p.exists()) or "it")
        self.last.unlink(missing_ok=True)
        self.best.unlink(missing_ok=True)
        return TrainState()

    def _changed(self, saved: Any) -> list[str]:
        """What differs between this run and a checkpoint's identity."""
        if not isinstance(saved, dict) or set(saved) != set(self.identity):
            return ["other parameters"]  # written by an older genex: nothing to compare
        reasons = ["other parameters"] if saved["params"] != self.identity["params"] else []
        names = sorted(k for k in set(saved["inputs"]) | set(self.identity["inputs"])
                       if saved["inputs"].get(k) != self.identity["inputs"].get(k))
        if saved["code"] != self.identity["code"]:
            names.append("code")
        if names:
            reasons.append("inputs changed: " + ", ".join(names))
        return reasons

    def resume(self) -> TrainState:
        """Load ``last.pt`` when it belongs to this run; a fresh state otherwise."""
        if not self.last.exists():
            if self.best.exists():
                return self._discard(f"checkpoint {self.best} has no {self.last.name} beside it")
            return TrainState()
        try:
            ckpt = load_tensors(self.last)
            if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
                raise ValueError(f"{self.last}: not a genex checkpoint of format {FORMAT}")
        except ValueError as err:
            return self._discard(f"checkpoint unusable: {err}")
        reasons = self._changed(ckpt.get("fingerprint"))
        if reasons:
            return self._discard(f"checkpoint {self.last} was written for another run "
                                 f"({'; '.join(reasons)})")
        before = {name: copy.deepcopy(obj.state_dict()) for name, obj in self.objects.items()}
        try:
            state = TrainState(**ckpt["state"])
            if state.best_epoch is not None:
                self._check_best(state.best_epoch)
            for name, obj in self.objects.items():
                obj.load_state_dict(ckpt["objects"][name])
            _set_rng_state(ckpt["rng"])
        except (ValueError, KeyError, TypeError, RuntimeError) as err:
            for name, obj in self.objects.items():  # a half-loaded object must start afresh
                obj.load_state_dict(before[name])
            text = str(err) if str(self.folder) in str(err) else f"{self.last}: {err!r}"
            return self._discard(f"checkpoint unusable: {text}")
        log.info("resumed from checkpoint %s at epoch %d (step %d)", self.last, state.epoch, state.step)
        return state

    def _read_best(self) -> dict:
        saved = load_tensors(self.best)
        if not isinstance(saved, dict) or saved.get("fingerprint") != self.identity:
            raise ValueError(f"{self.best}: written by another run (or an older genex)")
        return saved

    def _check_best(self, epoch: int) -> None:
        if not self.best.exists():
            raise ValueError(f"{self.best}: missing, but {self.last.name} records a best epoch")
        saved = self._read_best()
        if saved.get("epoch") != epoch or set(saved.get("objects", {})) != set(self.objects):
            raise ValueError(f"{self.best}: holds epoch {saved.get('epoch')}, "
                             f"{self.last.name} records best epoch {epoch}")

    def save(self, state: TrainState, best: bool = False) -> None:
        """Write ``best.pt`` (when best) and then ``last.pt``, each atomically."""
        for name, obj in self.objects.items():
            if isinstance(obj, torch.nn.Module) and not all(
                    bool(torch.isfinite(v).all()) for v in obj.state_dict().values() if v.is_floating_point()):
                raise NonFiniteLoss(f"the weights of {name} are not finite after epoch {state.epoch}: "
                                    "training stopped, no model written")
        self.folder.mkdir(parents=True, exist_ok=True)
        objects = {name: obj.state_dict() for name, obj in self.objects.items()}
        if best:
            with atomic_file(self.best) as tmp:
                save_tensors(tmp, {"format": FORMAT, "fingerprint": self.identity, "epoch": state.epoch,
                                   "objects": objects})
        ckpt = {"format": FORMAT, "fingerprint": self.identity, "state": _plain(asdict(state)),
                "rng": _rng_state(), "objects": objects}
        with atomic_file(self.last) as tmp:
            save_tensors(tmp, ckpt)

    def load_best(self) -> None:
        """Restore the objects saved with the best validation score (no-op if none was)."""
        if not self.best.exists():
            return
        try:
            saved = self._read_best()
        except ValueError:
            self._discard(f"checkpoint {self.best} changed during training")
            raise
        for name, obj in self.objects.items():
            obj.load_state_dict(saved["objects"][name])


def _plain(obj: Any) -> Any:
    """numpy scalars and arrays as Python numbers and lists (weights_only refuses numpy)."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _rng_state() -> dict:
    """Every RNG's state as tensors and plain numbers (loadable with weights_only=True)."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"python": [version, torch.tensor(internal, dtype=torch.int64), gauss],
             "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss),
                       float(cached)],
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((int(version), tuple(int(v) for v in internal.tolist()), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), int(pos), int(has_gauss), float(cached)))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
