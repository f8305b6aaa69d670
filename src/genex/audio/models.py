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
from pathlib import Path

import torch
from torch import nn

from genex.audio.loaded import OUTPUT_KINDS, LoadedModel, ModelError, _loaded, _metadata, wrap_module

__all__ = ["load_model", "LoadedModel", "ModelError", "OUTPUT_KINDS"]

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
