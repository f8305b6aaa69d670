"""The model to explain as genex sees it (:class:`LoadedModel`), whatever loaded it.

Shared by the loaders (:mod:`genex.audio.models` for TorchScript files and factories,
:mod:`genex.audio.huggingface` for Hugging Face folders), so neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

__all__ = ["LoadedModel", "ModelError", "OUTPUT_KINDS", "wrap_module"]

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
