"""`explain`: which parts of a clip's spectrogram does *your* model's decision rest on?

The explanation lives in a spectrogram ``x [F, Tf]`` (:mod:`genex.audio.representations`):
a waveform model is explained in the STFT magnitude and sees ``iSTFT(x · original phase)``;
a spectrogram model (``input="stft"|"mel"``) sees ``x`` itself. Components
(:mod:`genex.audio.components`) are switched on and off; removed ones are filled in by an
infiller (noise, zero, mean, blur, or a generative one fitted with ``genex fit-infiller``).

Methods (what each trusts):

* ``rde-concrete`` / ``rde-l1``: rate-distortion explanations; the smallest set of components
  that keeps the target output when everything else is infilled. They trust the infiller:
  with one that keeps the obfuscated inputs in distribution (a fitted one) the answer is
  about the model, with noise or zeros partly about the model's reaction to artefacts.
* ``pursuit``: greedy matching pursuit with the same objective (exact but slow).
* ``saliency``: |gradient| at the input; trusts the local linearisation of the model.
* ``ig``: integrated gradients from silence; trusts the straight path from silence to the clip.
* ``occlusion``: the target change when a component alone is silenced; trusts that removing
  one component at a time reveals its role (no interactions).
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from genex.audio.components import parse_components
from genex.audio.models import LoadedModel, ModelError, load_model
from genex.audio.representations import Representation, make_representation
from genex.audio.signal import AudioError, load_audio, resample
from genex.progress import progress
from genex.xai import (RDEL1, BlurInfiller, ComponentMap, Infiller, IntegratedGradients,
                       MatchingPursuit, MeanInfiller, NoiseInfiller, Occlusion, RDEConcrete,
                       Saliency, ZeroInfiller, binarise, binarised_distortion)
from genex.xai import prune as prune_mask
from genex.xai.rde import DEFAULTS as RDE_DEFAULTS

__all__ = ["explain", "explain_many", "Explanation", "ExplainError", "METHODS", "INFILLERS"]

log = logging.getLogger("genex.audio")

METHODS = ("rde-concrete", "rde-l1", "pursuit", "saliency", "ig", "occlusion")
INFILLERS = ("noise", "zero", "mean", "blur")
#: keep fractions at which the binarised distortion is reported
KEEP_FRACTIONS = (0.05, 0.1, 0.2, 0.5)


class ExplainError(ValueError):
    """A run that cannot go ahead; one line, starting with the file or SPEC at fault."""


# ---- the model as a function of the explained spectrogram ------------------------------------

class SpectrogramModel(nn.Module):
    """``x [N, F, Tf] -> outputs``: the user's model behind the representation.

    Rows are draw-major over the ``B`` clips whose phase is held (row ``i`` is clip ``i % B``),
    the layout of RDE's draws, Captum's steps and a whole-batch evaluation; a call on fewer
    rows than clips is taken as the leading clips. Callers that pick arbitrary subsets of the
    clips (matching pursuit's candidates) must run one clip at a time.
    """

    def __init__(self, loaded: LoadedModel, representation: Representation, waves: Tensor) -> None:
        super().__init__()
        self.net = loaded.module
        self.representation = representation
        self.length = waves.shape[-1]
        self.register_buffer("phase", representation.phase(waves), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        phase = self.phase
        if x.shape[0] < phase.shape[0] and x.shape[0] % phase.shape[0]:
            phase = phase[: x.shape[0]]  # the leading clips alone (a call on x[:k])
        return self.net(self.representation.model_input(x, phase, self.length))


# ---- the result ------------------------------------------------------------------------------

@dataclass
class Explanation:
    """One clip's explanation.

    Attributes:
        scores: ``[C]`` component scores (higher = more important; RDE: keep probabilities).
        mask: ``[F, Tf]`` the scores spread over the spectrogram.
        target: ``{"index", "label", "kind", "span"}``: which output was explained.
        x: ``[F, Tf]`` the explained spectrogram; ``wave`` ``[T]`` the clip at ``sample_rate``.
        distortion: binarised distortion per keep fraction (``{"0.1": ..., ...}``), with
            ``"empty"`` (nothing kept) for scale.
    """

    scores: np.ndarray
    mask: np.ndarray
    target: dict
    x: np.ndarray
    wave: np.ndarray
    sample_rate: int
    representation: Representation
    component_map: ComponentMap
    infiller: Infiller
    infiller_name: str
    method: str
    components: str
    model_spec: str
    prediction: dict
    distortion: dict
    settings: dict
    source: str | None = None
    sha256: str | None = None
    in_distribution: list | None = field(default=None)

    def binary_scores(self, fraction: float | None = None) -> np.ndarray:
        """A 0/1 keep mask over components: the top ``fraction``, or by default the method's
        own cut (RDE: keep probability > ½; pursuit: chosen; gradient baselines: top 20 %)."""
        s = torch.as_tensor(self.scores, dtype=torch.float32).unsqueeze(0)
        if fraction is not None:
            return binarise(s, fraction=fraction)[0].numpy()
        if self.method.startswith("rde"):
            return binarise(s, threshold=0.5)[0].numpy()
        if self.method == "pursuit":
            return binarise(s, threshold=0.0)[0].numpy()
        return binarise(s, fraction=0.2)[0].numpy()

    def _silence(self) -> float:
        return math.log(self.representation.log_offset) if self.representation.kind == "mel" else 0.0

    def _audio(self, keep_components: np.ndarray, infill: bool) -> np.ndarray:
        keep = self.component_map.expand(torch.as_tensor(keep_components, dtype=torch.float32)[None])
        x = torch.as_tensor(self.x)[None]
        if infill:
            device = _infiller_device(self.infiller)
            gen = torch.Generator(device=device).manual_seed(int(self.settings.get("seed", 0)))
            with torch.no_grad():
                filled = self.infiller(x.to(device), keep.to(device), 1, generator=gen)[0].cpu()
        else:
            filled = torch.where(keep > 0, x, torch.full_like(x, self._silence()))
        with torch.no_grad():
            wave = self.representation.listen(filled, torch.as_tensor(self.wave)[None])
        return wave[0].numpy().astype(np.float32)

    def kept_audio(self, fraction: float | None = None, infill: bool = False) -> np.ndarray:
        """The clip with only the kept components (see :meth:`binary_scores`), the rest
        silenced (or infilled with ``infill=True``), resynthesised with the original phase."""
        return self._audio(self.binary_scores(fraction), infill)

    def removed_audio(self, fraction: float | None = None, infill: bool = False) -> np.ndarray:
        """The clip with the kept components removed (silenced, or infilled)."""
        return self._audio(1.0 - self.binary_scores(fraction), infill)

    def frequencies(self) -> np.ndarray:
        return self.representation.frequencies

    def times(self) -> np.ndarray:
        return self.representation.times(self.x.shape[-1])

    def plot(self, path: str | Path | None = None):
        """The spectrogram and the mask over it (matplotlib figure; written to ``path`` if given)."""
        from genex.audio.page import plot_explanation

        return plot_explanation(self, path)

    def save(self, out_dir: str | Path) -> Path:
        """Write every output into ``out_dir`` (one atomic folder; see :mod:`genex.audio.page`)."""
        from genex.audio.page import write_outputs

        return write_outputs(out_dir, [self])

    def to_dict(self) -> dict:
        """Everything but the arrays, JSON-able (``explanation.json``)."""
        return {
            "source": self.source, "sha256": self.sha256, "model": self.model_spec,
            "input": self.representation.kind, "representation": self.representation.to_dict(),
            "components": self.components, "n_components": int(self.scores.shape[0]),
            "method": self.method, "infiller": self.infiller_name, "target": self.target,
            "prediction": self.prediction, "scores": [float(v) for v in self.scores],
            "binarised_distortion": self.distortion, "settings": self.settings,
            "sample_rate": self.sample_rate, "duration_s": round(len(self.wave) / self.sample_rate, 4),
            "in_distribution": self.in_distribution,
        }


def _infiller_device(infiller: Infiller) -> torch.device:
    for module in infiller.modules():
        for p in module.parameters():
            return p.device
    return torch.device("cpu")


# ---- inputs ----------------------------------------------------------------------------------

@dataclass
class _Clip:
    wave: np.ndarray
    source: str | None
    sha256: str | None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _clips(audio, sample_rate: int | None, model_rate: int | None) -> tuple[list[_Clip], int]:
    """The clips as mono float32 at one rate: the model's, or the first clip's."""
    items = audio if isinstance(audio, (list, tuple)) else [audio]
    if isinstance(audio, np.ndarray) and audio.ndim == 2:
        items = list(audio)
    if isinstance(audio, Tensor):
        items = list(audio.detach().cpu().numpy()) if audio.dim() == 2 else [audio.detach().cpu().numpy()]
    if not items:
        raise ExplainError("explain: no audio given")
    clips, rate = [], model_rate
    for item in items:
        if isinstance(item, (str, Path)):
            wave, sr = load_audio(item, rate)
            clips.append(_Clip(wave, str(item), _sha256(Path(item))))
        else:
            if sample_rate is None:
                raise ExplainError("explain: audio given as an array needs its sample_rate")
            wave = np.asarray(item, dtype=np.float32).reshape(-1)
            if wave.size == 0:
                raise AudioError("<array>: empty audio (0 samples)")
            if not np.isfinite(wave).all():
                raise AudioError(f"<array>: {int((~np.isfinite(wave)).sum())} samples are NaN or infinite")
            sr = int(sample_rate)
            if rate is not None and sr != rate:
                log.warning("<array>: resampling from %d Hz to the %d Hz the model takes", sr, rate)
                wave, sr = resample(wave, sr, rate), rate
            clips.append(_Clip(wave, None, None))
        rate = sr if rate is None else rate
    return clips, int(rate)


# ---- targets ---------------------------------------------------------------------------------

def _label_list(labels: Sequence[str]) -> str:
    shown = ", ".join(labels[:40])
    return shown + (f", ... ({len(labels)} labels)" if len(labels) > 40 else "")


def _span_frames(n_frames: int, duration: float, span: tuple[float, float] | None) -> np.ndarray:
    """Output frames (of ``n_frames`` spread evenly over the clip) whose centre is in ``span``."""
    if span is None:
        return np.arange(n_frames)
    centres = (np.arange(n_frames) + 0.5) * duration / n_frames
    start, end = span
    frames = np.nonzero((centres >= start) & (centres < end))[0]
    if frames.size == 0:  # a span shorter than a frame: its nearest frame
        frames = np.array([int(np.argmin(np.abs(centres - 0.5 * (start + end))))])
    return frames


def _resolve_target(target, outputs: Tensor, kind: str, loaded: LoadedModel,
                    duration: float, span) -> tuple[list[int], Tensor | None, list[dict]]:
    """Per clip: the class index, the Target weights (framewise) and a description."""
    n_classes = outputs.shape[-1]
    frames = _span_frames(outputs.shape[1], duration, span) if kind == "framewise" else None
    if kind == "framewise":
        per_class = outputs[:, frames, :].mean(1)  # mean logit over the span
    else:
        per_class = outputs
    if target is None or str(target) == "auto":
        indices = [int(v) for v in per_class.argmax(-1)]
    else:
        text = str(target)
        if re.fullmatch(r"-?\d+", text):
            index = int(text)
            if not 0 <= index < n_classes:
                raise ExplainError(f"{loaded.spec}: target {index} is out of range; the model has "
                                   f"{n_classes} outputs (0..{n_classes - 1})")
        elif loaded.labels and text in loaded.labels:
            index = loaded.labels.index(text)
        elif loaded.labels:
            raise ExplainError(f"{loaded.spec}: unknown target {text!r}; the model's labels are: "
                               f"{_label_list(loaded.labels)}")
        else:
            raise ExplainError(f"{loaded.spec}: target {text!r} is a name but the model has no "
                               f"labels; give a class index (0..{n_classes - 1}) or auto")
        indices = [index] * outputs.shape[0]
    weights = None
    if kind == "framewise":
        weights = torch.zeros_like(outputs)
        for b, index in enumerate(indices):
            weights[b, frames, index] = 1.0 / len(frames)
    probs = (torch.sigmoid(per_class) if kind == "sigmoid" else torch.softmax(per_class, -1))
    described = []
    for b, index in enumerate(indices):
        d = {"index": index, "label": loaded.label(index), "kind": kind,
             "logit": float(per_class[b, index]),
             "probability": float(probs[b, index])}
        if kind == "framewise":
            d["span_frames"] = [int(frames[0]), int(frames[-1]) + 1]
            d["span_s"] = [round(float(frames[0]) * duration / outputs.shape[1], 4),
                           round(float(frames[-1] + 1) * duration / outputs.shape[1], 4)]
        described.append(d)
    return indices, weights, described


# ---- infillers and methods -------------------------------------------------------------------

def make_infiller(name: str, x: Tensor, representation: Representation, seed: int = 0,
                  device="cpu") -> Infiller:
    """``noise`` (Gaussian with the mean and std of all the clips' entries), ``zero``
    (silence), ``mean`` (each frequency row's mean over the clips' frames), ``blur``
    (Gaussian along time, 0.1 s), or a folder written by ``genex fit-infiller``.

    The noise is one level for every frequency: per-row statistics would put the clip's own
    long-term spectrum back into removed components (a steady tone would survive removal).
    """
    per_row_mean = x.mean(dim=(0, 2)).unsqueeze(-1)
    if name == "noise":
        return NoiseInfiller(x.mean(), x.std() if x.numel() > 1 else torch.ones(()), seed=seed)
    if name == "zero":
        silence = math.log(representation.log_offset) if representation.kind == "mel" else 0.0
        return MeanInfiller(silence) if silence else ZeroInfiller()
    if name == "mean":
        return MeanInfiller(per_row_mean)
    if name == "blur":
        return BlurInfiller(sigma=max(1.0, 0.1 * representation.sample_rate / representation.hop))
    path = Path(name)
    if not path.is_dir():
        raise ExplainError(f"{name}: not an infiller; use noise, zero, mean, blur or a folder "
                           f"written by `genex fit-infiller`")
    try:
        from genex.audio.infiller import load_infiller
    except ImportError as exc:
        raise ExplainError(f"{name}: fitted infillers need genex.audio.infiller ({exc})") from None
    infiller = load_infiller(path, representation, seed=seed)
    for module in infiller.modules():
        module.to(device)
    return infiller


def _explainer(method: str, forward: nn.Module, infiller: Infiller, cmap: ComponentMap,
               representation: Representation, *, n_samples: int, steps: int | None,
               lam: float | None, seed: int):
    lam = RDE_DEFAULTS["lam"] if lam is None else lam
    steps = RDE_DEFAULTS["steps"] if steps is None else steps
    silence = math.log(representation.log_offset) if representation.kind == "mel" else 0.0
    if method == "rde-concrete":
        return RDEConcrete(forward, infiller, cmap, lam=lam, steps=steps, n_samples=n_samples, seed=seed)
    if method == "rde-l1":
        return RDEL1(forward, infiller, cmap, lam=lam, steps=steps, n_samples=n_samples, seed=seed)
    if method == "pursuit":
        k = max(1, min(cmap.n_components, math.ceil(0.25 * cmap.n_components)))
        return MatchingPursuit(forward, infiller, cmap, k=k, n_samples=n_samples, seed=seed)
    if method in ("saliency", "ig", "occlusion"):
        try:
            import captum  # noqa: F401
        except ImportError:
            raise ExplainError(f"--method {method} needs Captum: pip install 'genex[captum]'") from None
        if method == "saliency":
            return Saliency(forward, cmap)
        if method == "ig":
            return IntegratedGradients(forward, cmap, baseline=silence, n_steps=32)
        return Occlusion(forward, cmap, baseline=silence)
    raise ExplainError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")


def _check_outputs(outputs, loaded: LoadedModel, shape: tuple, kind: str) -> str:
    if not isinstance(outputs, Tensor):
        raise ModelError(f"{loaded.spec}: the model returned {type(outputs).__name__}, not a tensor")
    if not torch.isfinite(outputs).all():
        raise ModelError(f"{loaded.spec}: the model returned NaN or infinite outputs for input {list(shape)}")
    output = loaded.output or ("framewise" if outputs.dim() == 3 else "softmax")
    want = 3 if output == "framewise" else 2
    if outputs.dim() != want:
        raise ModelError(f"{loaded.spec}: a {output} model must return {want}-D outputs, got "
                         f"{list(outputs.shape)} for input {list(shape)} ({kind})")
    return output


# ---- the entry points ------------------------------------------------------------------------

def explain(model, audio, sample_rate: int | None = None, **kw) -> Explanation:
    """Explain ``model``'s decision on one clip; see :func:`explain_many` for the arguments."""
    several = (len(audio) if isinstance(audio, (list, tuple))
               else audio.shape[0] if isinstance(audio, (np.ndarray, Tensor)) and audio.ndim == 2 else 1)
    if several != 1:
        raise ExplainError(f"explain: takes one clip, got {several}; use explain_many for several")
    return explain_many(model, audio, sample_rate, **kw)[0]


def explain_many(model, audio, sample_rate: int | None = None, *, input: str | None = None,
                 components: str = "tiles:16x8", method: str = "rde-concrete",
                 infiller: str = "noise", target="auto", span: tuple[float, float] | None = None,
                 n_samples: int = 8, steps: int | None = None, lam: float | None = None,
                 seed: int = 0, device: str = "cpu", batch_size: int = 16,
                 n_fft: int | None = None, hop: int | None = None, n_mels: int | None = None,
                 f0: float | Sequence[float] | None = None, in_distribution: bool = True,
                 prune: bool = False) -> list[Explanation]:
    """Explain ``model``'s decision on each clip; clips of equal length run as one batch.

    Args:
        model: a SPEC (TorchScript file or ``package.module:factory``), an ``nn.Module`` or a
            :class:`~genex.audio.models.LoadedModel`.
        audio: a file, an array ``[T]``/``[B, T]``, or a list of files / arrays.
        sample_rate: of arrays (files carry theirs); clips are resampled to the model's rate.
        input: ``waveform``, ``stft`` or ``mel``: what the model takes (default: what the
            model declares, else ``waveform``).
        components: ``tiles:FxT``, ``bands:N``, ``segments:N`` or ``harmonics:N``.
        method: one of :data:`METHODS`.
        infiller: ``noise``, ``zero``, ``mean``, ``blur`` or a ``genex fit-infiller`` folder.
        target: ``auto`` (the predicted class; framewise: highest mean logit over ``span``;
            sigmoid: highest score), a class index, or a label.
        span: ``(start, end)`` in seconds, the frames a framewise target covers.
        n_samples: mask/infill draws per step (RDE) or per candidate (pursuit).
        steps, lam: RDE steps and λ (default: :data:`genex.xai.rde.DEFAULTS`).
        seed: seeds every random draw; the same seed gives the same scores.
        n_fft, hop, n_mels: representation settings (default: the model's, else 512/128/64).
        f0: for ``harmonics``: the f0 in Hz (one, or one per clip); default: estimated.
        in_distribution: also report the in-distribution table (needs genex.audio.indist).
        prune: RDE only: after the optimisation, drop the kept components (keep probability
            >= 0.5) that the binary objective does not need (:func:`genex.xai.prune`, one
            forward per kept component); their scores become 0.
    """
    loaded = load_model(model, device)
    if method not in METHODS:
        raise ExplainError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if prune and not method.startswith("rde"):
        raise ExplainError(f"prune applies to rde-concrete and rde-l1 (keep probabilities), not {method}")
    kind = input or loaded.input_kind or "waveform"
    clips, rate = _clips(audio, sample_rate, loaded.sample_rate)
    rep_kw = {"n_fft": 512, "hop": 128, "n_mels": 64, **loaded.options}
    rep_kw.update({k: v for k, v in (("n_fft", n_fft), ("hop", hop), ("n_mels", n_mels)) if v})
    if kind != "mel":
        rep_kw.pop("n_mels")
    representation = make_representation(kind, rate, **rep_kw)
    f0s = None if f0 is None else list(np.broadcast_to(np.atleast_1d(np.asarray(f0, float)), (len(clips),)))

    # equal lengths batch together; order of the results = order of the clips
    groups: dict[int, list[int]] = {}
    for i, clip in enumerate(clips):
        groups.setdefault(len(clip.wave), []).append(i)
    if kind == "waveform" and method == "pursuit":
        # pursuit evaluates candidates of any subset of the clips in one forward, but a
        # waveform model needs each row's own phase, which the wrapper knows by row position
        # only (row i = clip i % B): one clip at a time keeps every row with its phase
        batch_size = 1
    batches = [idx[s: s + batch_size] for idx in groups.values() for s in range(0, len(idx), batch_size)]
    results: dict[int, Explanation] = {}
    for rows in progress(batches, desc="explain", unit="batch") if len(batches) > 1 else batches:
        for i, e in zip(rows, _explain_batch(
                loaded, [clips[i] for i in rows], rate, representation, components=components,
                method=method, infiller_name=infiller, target=target, span=span,
                n_samples=n_samples, steps=steps, lam=lam, seed=seed, device=device,
                f0=None if f0s is None else [f0s[i] for i in rows],
                with_indist=in_distribution, prune=prune)):
            results[i] = e
    return [results[i] for i in range(len(clips))]


def _explain_batch(loaded: LoadedModel, clips: list[_Clip], rate: int,
                   representation: Representation, *, components: str, method: str,
                   infiller_name: str, target, span, n_samples: int, steps: int | None,
                   lam: float | None, seed: int, device: str, f0, with_indist: bool,
                   prune: bool = False) -> list[Explanation]:
    waves = torch.as_tensor(np.stack([c.wave for c in clips])).to(device)
    where = clips[0].source or "<array>"
    try:
        x = representation.analyse(waves)
    except ValueError as exc:
        raise AudioError(f"{where}: {exc}") from None
    forward = SpectrogramModel(loaded, representation, waves).to(device).eval()
    model_in = representation.model_input(x, forward.phase, waves.shape[-1])
    try:
        with torch.no_grad():
            outputs = forward(x)
    except Exception as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{loaded.spec}: the model failed on input of shape {list(model_in.shape)} "
                         f"({representation.kind} at {rate} Hz): {type(exc).__name__}: {msg}") from None
    kind = _check_outputs(outputs, loaded, tuple(model_in.shape), representation.kind)
    if span is not None and kind != "framewise":
        raise ExplainError(f"{loaded.spec}: --span applies to framewise models (outputs "
                           f"[B, frames, K]); this one returns {list(outputs.shape)} ({kind})")
    duration = waves.shape[-1] / rate
    indices, weights, described = _resolve_target(target, outputs, kind, loaded, duration, span)
    tgt = weights if weights is not None else indices
    try:
        cmap = parse_components(components, representation, f0, n_frames=x.shape[-1],
                                waves=[c.wave for c in clips])
    except ValueError as exc:
        raise ExplainError(f"--components {components}: {exc}") from None
    infiller = make_infiller(infiller_name, x, representation, seed, device)
    explainer = _explainer(method, forward, infiller, cmap, representation, n_samples=n_samples,
                           steps=steps, lam=lam, seed=seed)
    scores = explainer.attribute(x, tgt).detach()
    one_chunk = max(64, x.shape[0])  # every clip in one forward: rows keep their phases
    if prune:
        kept = prune_mask(forward, infiller, cmap, x, scores >= 0.5, tgt,
                          lam=RDE_DEFAULTS["lam"] if lam is None else lam, scores=scores,
                          n_samples=1 if infiller.deterministic else n_samples, seed=seed,
                          batch_size=one_chunk)
        scores = scores * kept
    masks = cmap.to(device).expand(scores.to(x.dtype)).detach()

    distortion_samples = 1 if infiller.deterministic else n_samples
    distortion = {}
    for fraction in (0.0, *KEEP_FRACTIONS):
        d = binarised_distortion(forward, infiller, cmap, x, scores, tgt, fraction=fraction,
                                 n_samples=distortion_samples, seed=seed,
                                 batch_size=one_chunk)
        distortion["empty" if fraction == 0 else str(fraction)] = d["distortion"].cpu()

    indist = _indist_table(forward, x, cmap, infiller, infiller_name, representation, seed,
                           device) if with_indist else None
    settings = {"seed": seed, "n_samples": n_samples,
                "steps": (RDE_DEFAULTS["steps"] if steps is None else steps) if method.startswith("rde") else None,
                "lam": (RDE_DEFAULTS["lam"] if lam is None else lam) if method.startswith("rde") else None,
                "device": str(device), "span": list(span) if span else None, "prune": prune}
    out = []
    for b, clip in enumerate(clips):
        labels = cmap.labels[b] if cmap.per_input else cmap.labels
        clip_map = ComponentMap(labels.cpu(), cmap.n_components, cmap.uncovered)
        out.append(Explanation(
            scores=scores[b].cpu().numpy(), mask=masks[b].cpu().numpy(), target=described[b],
            x=x[b].detach().cpu().numpy(), wave=clip.wave, sample_rate=rate,
            representation=representation, component_map=clip_map, infiller=infiller,
            infiller_name=infiller_name, method=method, components=components,
            model_spec=loaded.spec, prediction={"output": kind, "n_outputs": int(outputs.shape[-1])},
            distortion={k: float(v[b]) for k, v in distortion.items()}, settings=settings,
            source=clip.source, sha256=clip.sha256, in_distribution=indist))
    return out


def _indist_table(forward: nn.Module, x: Tensor, cmap: ComponentMap, infiller: Infiller,
                  infiller_name: str, representation: Representation, seed: int, device) -> list | None:
    """Fréchet distance and agreement of the built-in infillers (and a fitted one, reported as
    ``fitted``) on this batch, when genex.audio.indist is there; None otherwise.

    The model's outputs serve as its features (framewise outputs: one sample per frame):
    genex cannot know which inner layer of *your* model is its embedding.
    """
    try:
        from genex.audio.indist import in_distribution_table
    except ImportError:
        return None
    builtin = {name: make_infiller(name, x, representation, seed, device) for name in INFILLERS}
    fitted = infiller if infiller_name not in INFILLERS else None
    with torch.no_grad():
        # one chunk for the whole batch: rows then follow the draw-major layout of the phases
        return in_distribution_table(forward, forward, x, cmap, builtin, seed=seed, fitted=fitted,
                                     batch_size=max(64, x.shape[0]))
