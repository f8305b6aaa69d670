"""Loading the model to explain from a SPEC string.

SPEC is one of

* a TorchScript file (``torch.jit.save``); its labels, sample rate, input kind and output
  kind come from the module's attributes ``labels``, ``sample_rate``, ``input_kind``,
  ``output`` when it has them, or from a ``genex.json`` extra file saved beside the code
  (``torch.jit.save(m, path, _extra_files={"genex.json": json.dumps({...})})``);
* ``package.module:factory``: a Python callable (no arguments) that returns an
  ``nn.Module``, with the same optional attributes (e.g. ``genex.audio.zoo:torchcrepe_pitch``).

* a local Hugging Face audio-classification folder (``config.json``, safetensors weights,
  a ``Wav2Vec2FeatureExtractor``), with ``transformers`` installed (``genex[hf]``): see
  :mod:`genex.audio.huggingface`.

Output kinds: ``softmax`` (one class, logits ``[B, K]``), ``sigmoid`` (multi-label logits
``[B, K]``), ``framewise`` (logits ``[B, frames, K]``). Without an ``output`` attribute a
2-D output is taken as ``softmax`` and a 3-D output as ``framewise``.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

__all__ = ["load_model", "LoadedModel", "ModelError", "OUTPUT_KINDS"]

OUTPUT_KINDS = ("softmax", "sigmoid", "framewise")


class ModelError(ValueError):
    """A model SPEC that cannot be loaded or run; one line naming the SPEC."""


@dataclass
class LoadedModel:
    """A model ready to explain.

    Attributes:
        module: the ``nn.Module`` (eval mode).
        labels: one name per output class, or None.
        sample_rate: the rate the model takes (Hz), or None = any (the clip's own).
        input_kind: ``"waveform"``, ``"stft"`` or ``"mel"``, or None = not declared.
        output: ``"softmax"``, ``"sigmoid"``, ``"framewise"``, or None = infer from the shape.
        spec: the SPEC string it came from (or the class name of a module given directly).
        options: representation settings the model declares (``n_fft``, ``hop``, ``n_mels``).
    """

    module: nn.Module
    labels: list[str] | None = None
    sample_rate: int | None = None
    input_kind: str | None = None
    output: str | None = None
    spec: str = ""
    options: dict = field(default_factory=dict)

    def label(self, index: int) -> str | None:
        """The name of class ``index`` (None without labels)."""
        return self.labels[index] if self.labels and 0 <= index < len(self.labels) else None

    def to(self, device) -> "LoadedModel":
        self.module.to(device)
        return self


_META_KEYS = ("labels", "sample_rate", "input_kind", "output", "n_fft", "hop", "n_mels")


def _metadata(module: nn.Module, extra: dict) -> dict:
    meta = dict(extra)
    for key in _META_KEYS:
        value = getattr(module, key, None)
        if value is not None and not callable(value):
            meta.setdefault(key, value)
    return meta


def wrap_module(module: nn.Module, spec: str | None = None, **overrides) -> LoadedModel:
    """A :class:`LoadedModel` from a module in memory (attributes as for a SPEC)."""
    if not isinstance(module, nn.Module):
        raise ModelError(f"{spec or type(module).__name__}: expected an nn.Module, "
                         f"got {type(module).__name__}")
    meta = _metadata(module, {k: v for k, v in overrides.items() if v is not None})
    return _loaded(module.eval(), meta, spec or type(module).__name__)


def _loaded(module: nn.Module, meta: dict, spec: str) -> LoadedModel:
    labels = meta.get("labels")
    if labels is not None:
        labels = [str(v) for v in labels]
    output = meta.get("output")
    if output is not None and output not in OUTPUT_KINDS:
        raise ModelError(f"{spec}: output {output!r} is not one of {', '.join(OUTPUT_KINDS)}")
    input_kind = meta.get("input_kind")
    if input_kind is not None and input_kind not in ("waveform", "stft", "mel"):
        raise ModelError(f"{spec}: input_kind {input_kind!r} is not waveform, stft or mel")
    rate = meta.get("sample_rate")
    options = {k: int(meta[k]) for k in ("n_fft", "hop", "n_mels") if meta.get(k) is not None}
    return LoadedModel(module, labels, None if rate is None else int(rate), input_kind, output,
                       spec, options)


def load_model(spec, device: str | torch.device = "cpu") -> LoadedModel:
    """The model that ``spec`` names (see the module doc), in eval mode on ``device``.

    ``spec`` may also be an ``nn.Module`` or a :class:`LoadedModel` (returned as is).
    """
    if isinstance(spec, LoadedModel):
        return spec.to(device)
    if isinstance(spec, nn.Module):
        return wrap_module(spec).to(device)
    spec = str(spec)
    path = Path(spec)
    if path.is_file():
        extra = {"genex.json": ""}
        try:
            module = torch.jit.load(str(path), map_location=device, _extra_files=extra)
        except Exception as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"{spec}: not a TorchScript file torch.jit.load can read ({reason})") from None
        try:
            meta = json.loads(extra["genex.json"]) if extra["genex.json"] else {}
        except json.JSONDecodeError as exc:
            raise ModelError(f"{spec}: its genex.json extra file is not JSON ({exc})") from None
        return _loaded(module.eval(), _metadata(module, meta), spec)
    if path.is_dir():
        if (path / "config.json").is_file():
            from genex.audio.huggingface import load_huggingface  # transformers only when needed
            return load_huggingface(path, device, spec=spec)
        raise ModelError(f"{spec}: a folder without config.json (not a Hugging Face model "
                         f"folder); give a TorchScript file, package.module:factory or a "
                         f"Hugging Face audio-classification folder")
    if ":" not in spec:
        raise ModelError(f"{spec}: no such file, and not a package.module:factory reference")
    module_name, _, factory_name = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), factory_name)
    except (ImportError, AttributeError) as exc:
        raise ModelError(f"{spec}: cannot import the factory ({exc})") from None
    try:
        module = factory()
    except Exception as exc:
        raise ModelError(f"{spec}: the factory failed ({type(exc).__name__}: {exc})") from None
    return wrap_module(module, spec).to(device)
