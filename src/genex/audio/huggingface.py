"""A local Hugging Face audio-classification folder as a ``genex explain`` model SPEC.

A folder written by ``model.save_pretrained(folder)`` and ``feature_extractor.save_pretrained(folder)``
(``config.json``, ``model.safetensors``, ``preprocessor_config.json``) is loaded with
``transformers`` (the ``genex[hf]`` extra), offline: ``local_files_only=True``, nothing is
downloaded and no code from the folder runs (``trust_remote_code`` stays off).

What is read from the folder:

* labels: ``config.id2label`` (in index order);
* sample rate: the feature extractor's ``sampling_rate``;
* output: ``sigmoid`` when ``config.problem_type == "multi_label_classification"``, else
  ``softmax``; an ``...ForAudioFrameClassification`` architecture gives ``framewise`` logits.

Masks and gradients must pass through the feature extractor, and transformers' extractors run
in numpy. So the model is wrapped in a module on raw waveforms ``[B, T]`` that redoes the
preprocessing in torch, for the extractors where that is short and exact:
``Wav2Vec2FeatureExtractor`` (wav2vec2, HuBERT, WavLM and data2vec-audio classifiers, each
tested against transformers' own extractor + model): per clip
``(x - mean) / sqrt(var + 1e-7)`` when ``do_normalize``, as transformers computes it. Other extractors (AST's Kaldi fbank, Whisper's log-mel, CLAP, ...)
are refused with a pointer to the ``package.module:factory`` route.

Weights: safetensors only. A folder whose weights are only a pickled ``pytorch_model.bin``
is refused (a pickle may run code when loaded; convert it once with
``model.save_pretrained(folder, safe_serialization=True)`` where you trust it).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import Tensor, nn

from genex.audio.loaded import LoadedModel, ModelError, _loaded

__all__ = ["load_huggingface", "HFWaveformClassifier", "SUPPORTED_EXTRACTORS"]

#: feature extractors re-implemented here in torch (exactly)
SUPPORTED_EXTRACTORS = ("Wav2Vec2FeatureExtractor",)
#: transformers' variance floor in Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm
_VARIANCE_EPS = 1e-7


class HFWaveformClassifier(nn.Module):
    """Waveforms ``[B, T]`` -> logits: a Wav2Vec2-style extractor in torch, then the HF model.

    Every clip in the batch has the same length (no padding), so no attention mask is needed:
    this is what the extractor + model compute for one unpadded clip.
    """

    def __init__(self, model: nn.Module, *, do_normalize: bool, labels: list[str] | None,
                 sample_rate: int, output: str) -> None:
        super().__init__()
        self.model = model
        self.do_normalize = bool(do_normalize)
        self.labels = labels
        self.sample_rate = int(sample_rate)
        self.input_kind = "waveform"
        self.output = output

    def preprocess(self, wave: Tensor) -> Tensor:
        """The extractor's normalisation, per clip (population variance, as numpy's ``var``)."""
        if not self.do_normalize:
            return wave
        mean = wave.mean(dim=-1, keepdim=True)
        var = wave.var(dim=-1, unbiased=False, keepdim=True)
        return (wave - mean) / torch.sqrt(var + _VARIANCE_EPS)

    def forward(self, wave: Tensor) -> Tensor:
        if wave.dim() == 1:
            wave = wave.unsqueeze(0)
        return self.model(input_values=self.preprocess(wave)).logits


def _read_json(path: Path, folder: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{folder}: {path.name} is not readable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ModelError(f"{folder}: {path.name} is not a JSON object")
    return data


def _check_weights(folder: Path) -> None:
    if any(folder.glob("*.safetensors")):
        return
    pickles = sorted(p.name for p in folder.glob("*.bin"))
    if pickles:
        raise ModelError(
            f"{folder}: weights only as pickle ({', '.join(pickles)}); genex loads safetensors only "
            f"(a pickle may run code) - re-save with save_pretrained(folder, safe_serialization=True)")
    raise ModelError(f"{folder}: no model weights (*.safetensors) in the folder")


def _labels(config, folder: Path) -> list[str] | None:
    id2label = getattr(config, "id2label", None) or {}
    try:
        pairs = sorted((int(k), str(v)) for k, v in id2label.items())
    except (TypeError, ValueError):
        raise ModelError(f"{folder}: config.json's id2label keys are not class indices") from None
    if [k for k, _ in pairs] != list(range(len(pairs))):
        raise ModelError(f"{folder}: config.json's id2label does not number the classes 0..{len(pairs) - 1}")
    return [v for _, v in pairs] or None


def load_huggingface(folder, device: str | torch.device = "cpu", spec: str | None = None) -> LoadedModel:
    """The audio classifier saved in ``folder``, wrapped to take waveforms ``[B, T]``.

    Raises:
        ModelError: one line naming the folder: transformers missing, pickled weights only,
            no or an unsupported feature extractor, a config transformers cannot build.
    """
    folder = Path(folder)
    spec = spec or str(folder)
    if not (folder / "config.json").is_file():
        raise ModelError(f"{folder}: not a Hugging Face folder (no config.json)")
    preprocessor = folder / "preprocessor_config.json"
    if not preprocessor.is_file():
        raise ModelError(f"{folder}: no preprocessor_config.json (save the feature extractor "
                         f"with feature_extractor.save_pretrained(folder))")
    extractor_class = _read_json(preprocessor, folder).get("feature_extractor_type")
    if extractor_class not in SUPPORTED_EXTRACTORS:
        raise ModelError(
            f"{folder}: feature extractor {extractor_class} is not supported (genex redoes only "
            f"{', '.join(SUPPORTED_EXTRACTORS)} in torch, so masks and gradients pass); write a "
            f"package.module:factory returning an nn.Module on waveforms with the preprocessing in torch")
    _check_weights(folder)
    # nothing is fetched: local_files_only below; the variable also covers any hub call inside
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import transformers
    except ImportError:
        raise ModelError(f"{folder}: a Hugging Face folder needs transformers "
                         f"(pip install 'genex[hf]')") from None
    from transformers import (AutoConfig, AutoFeatureExtractor, AutoModelForAudioClassification,
                              AutoModelForAudioFrameClassification)

    def _first_line(exc: Exception) -> str:
        text = str(exc).strip()
        return text.splitlines()[0] if text else type(exc).__name__

    try:
        config = AutoConfig.from_pretrained(folder, local_files_only=True)
        extractor = AutoFeatureExtractor.from_pretrained(folder, local_files_only=True)
    except Exception as exc:  # transformers raises many kinds; the user needs the first line
        raise ModelError(f"{folder}: transformers {transformers.__version__} cannot read the "
                         f"config ({type(exc).__name__}: {_first_line(exc)})") from None
    if type(extractor).__name__ not in SUPPORTED_EXTRACTORS:  # the auto class may remap the name
        raise ModelError(f"{folder}: feature extractor {type(extractor).__name__} is not supported "
                         f"(only {', '.join(SUPPORTED_EXTRACTORS)}); use a package.module:factory")
    framewise = any(a.endswith("ForAudioFrameClassification") for a in (config.architectures or []))
    auto = AutoModelForAudioFrameClassification if framewise else AutoModelForAudioClassification
    hf_logging = transformers.utils.logging
    bars_were_on = hf_logging.is_progress_bar_enabled()
    if os.environ.get("GENEX_NO_PROGRESS"):  # genex's switch also quiets transformers' bars
        hf_logging.disable_progress_bar()
    try:
        # float32 whatever the saved dtype: the explanation runs float32 waveforms through it
        model = auto.from_pretrained(folder, local_files_only=True, use_safetensors=True,
                                     trust_remote_code=False, dtype=torch.float32)
    except Exception as exc:
        raise ModelError(f"{folder}: transformers {transformers.__version__} cannot load it as "
                         f"{auto.__name__} ({type(exc).__name__}: {_first_line(exc)})") from None
    finally:
        if bars_were_on:
            hf_logging.enable_progress_bar()
    problem = getattr(config, "problem_type", None)
    if problem == "regression" or (problem is None and getattr(config, "num_labels", 2) == 1):
        # softmax over one output is always 1: there would be no decision to explain
        raise ModelError(f"{folder}: a regression model (one output, problem_type "
                         f"{problem or 'unset'}); genex explains classifiers")
    if framewise:
        output = "framewise"
    elif problem == "multi_label_classification":
        output = "sigmoid"
    else:
        output = "softmax"
    sample_rate = getattr(extractor, "sampling_rate", None)
    if not sample_rate:
        raise ModelError(f"{folder}: the feature extractor declares no sampling_rate")
    wrapper = HFWaveformClassifier(model.eval(), do_normalize=getattr(extractor, "do_normalize", True),
                                   labels=_labels(config, folder), sample_rate=sample_rate, output=output)
    meta = {"labels": wrapper.labels, "sample_rate": wrapper.sample_rate, "input_kind": "waveform",
            "output": output}
    return _loaded(wrapper.eval(), meta, spec).to(device)
