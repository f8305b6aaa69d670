"""Training checkpoints that survive a kill, and the device/thread choice every trainer makes.

A training rule declares only its final model as output; its checkpoints live in a folder
outside the outputs (``results/<study>/checkpoints/<model>``), because Snakemake deletes
the outputs of a killed job before it reruns it. :class:`Checkpointer` saves everything a
run needs to continue as if never stopped: the state of every model, optimiser, scheduler
and grad scaler, the RNG states, and the trainer's counters. A checkpoint written for other
parameters (a different *fingerprint*) is ignored, so a config change trains from scratch.

Bit-equal resume needs one more thing from the trainer: draw each epoch's data order from
``epoch_rng(seed, epoch)`` (not from a generator carried across epochs) and checkpoint at
epoch ends.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genex.utils.io import atomic_file

log = logging.getLogger("genex.train")


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
    optimisers, LR schedulers, grad scalers.
    """

    def __init__(self, folder: str | os.PathLike, objects: dict[str, Any], fingerprint: str) -> None:
        self.folder = Path(folder)
        self.objects = objects
        self.fingerprint = fingerprint

    @property
    def last(self) -> Path:
        return self.folder / "last.pt"

    @property
    def best(self) -> Path:
        return self.folder / "best.pt"

    def resume(self) -> TrainState:
        """Load ``last.pt`` when it belongs to this run; a fresh state otherwise."""
        if not self.last.exists():
            return TrainState()
        try:
            ckpt = torch.load(self.last, map_location="cpu", weights_only=False)
        except Exception as err:  # noqa: BLE001 - a corrupt checkpoint means: start again
            log.warning("checkpoint %s is unreadable (%s); training from scratch", self.last, err)
            return TrainState()
        if ckpt.get("fingerprint") != self.fingerprint:
            log.warning("checkpoint %s was written for other parameters; training from scratch",
                        self.last)
            return TrainState()
        for name, obj in self.objects.items():
            obj.load_state_dict(ckpt["objects"][name])
        _set_rng_state(ckpt["rng"])
        state = TrainState(**ckpt["state"])
        log.info("resumed from checkpoint %s at epoch %d (step %d)", self.last, state.epoch, state.step)
        return state

    def save(self, state: TrainState, best: bool = False) -> None:
        """Write ``last.pt`` atomically (and ``best.pt`` holding the model weights when best)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        ckpt = {"fingerprint": self.fingerprint, "state": asdict(state), "rng": _rng_state(),
                "objects": {name: obj.state_dict() for name, obj in self.objects.items()}}
        with atomic_file(self.last) as tmp:
            torch.save(ckpt, tmp)
        if best:
            with atomic_file(self.best) as tmp:
                torch.save(ckpt["objects"], tmp)

    def load_best(self) -> None:
        """Restore the objects saved with the best validation score (no-op if none was)."""
        if self.best.exists():
            saved = torch.load(self.best, map_location="cpu", weights_only=False)
            for name, obj in self.objects.items():
                obj.load_state_dict(saved[name])


def _rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(),
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
