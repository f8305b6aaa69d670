"""Real pitch models no one here wrote, as differentiable ``nn.Module`` s on raw waveforms.

* :func:`torchcrepe_pitch` — CREPE (Kim et al. 2018) as ported by ``torchcrepe`` (MIT; the
  ``tiny`` and ``full`` weights ship inside its wheel);
* :func:`pesto_pitch` — PESTO (Riou et al. 2023, ``pesto-pitch``, LGPL-3; weights inside its
  wheel).

Both take a waveform ``[B, T]`` at 16 kHz and return framewise pitch logits
``[B, frames, bins]`` (CREPE: pre-sigmoid logits; PESTO: log-probabilities) (one frame every 10 ms), with ``.labels`` (``"MIDI 60.0"`` per bin),
``.midi`` (the MIDI pitch of each bin), ``.sample_rate`` and ``.hop_length``, so they work as
``genex explain --model genex.audio.zoo:torchcrepe_pitch``.

Install them with ``pip install --no-deps torchcrepe==0.0.24 pesto-pitch==2.0.1 resampy``
(``make test`` does): both declare ``torchaudio``, which has no release for the pinned torch,
and neither needs it to compute pitch; only their file loaders use it (see
:func:`_torchaudio_stand_in`).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import math
import os
import sys
import types
from typing import Iterator

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["torchcrepe_pitch", "pesto_pitch", "TorchcrepePitch", "PestoPitch"]

SAMPLE_RATE = 16000
HOP_LENGTH = 160  # 10 ms at 16 kHz, both models' default


@contextlib.contextmanager
def _torchaudio_stand_in() -> Iterator[None]:
    """Import torchcrepe / pesto without torchaudio.

    Both packages ``import torchaudio`` at the top of a module, only for their own file loaders
    (``torchcrepe.load.audio``, ``pesto.predict_from_files``), which genex never calls (audio
    goes through :func:`genex.audio.load_audio`). When torchaudio is missing, a stand-in module
    whose ``load`` raises is placed in ``sys.modules`` for the duration of the import only,
    so nothing else in the process sees a fake torchaudio afterwards.
    """
    if "torchaudio" in sys.modules or importlib.util.find_spec("torchaudio") is not None:
        yield
        return
    stand_in = types.ModuleType("torchaudio")
    stand_in.__doc__ = "genex stand-in: torchaudio is not installed (see genex.audio.zoo)"

    def load(*args, **kwargs):
        raise RuntimeError("torchaudio is not installed (genex stand-in); load audio with "
                           "genex.audio.load_audio instead")

    stand_in.load = load
    sys.modules["torchaudio"] = stand_in
    try:
        yield
    finally:
        if sys.modules.get("torchaudio") is stand_in:
            del sys.modules["torchaudio"]


def _import(package: str, pip_name: str):
    try:
        with _torchaudio_stand_in():
            return importlib.import_module(package)
    except ImportError as err:
        raise ImportError(f"genex.audio.zoo: {package} is not installed ({err}); install it with "
                          f"`pip install --no-deps {pip_name}`") from err


def _labels(midi: np.ndarray) -> list[str]:
    return [f"MIDI {m:.1f}" for m in midi]


class _PitchModel(nn.Module):
    """Shared attributes: what :func:`genex.audio.load_model` reads off a module."""

    sample_rate = SAMPLE_RATE
    hop_length = HOP_LENGTH
    input_kind = "waveform"
    output = "framewise"
    # the STFT genex explain uses for these models unless told otherwise: 15.6 Hz rows keep
    # the harmonics of notes from about C2 apart, and one STFT frame per model frame
    n_fft = 1024
    hop = HOP_LENGTH

    def _set_bins(self, midi: np.ndarray) -> None:
        self.midi = np.asarray(midi, dtype=np.float64)
        self.frequencies = 440.0 * 2.0 ** ((self.midi - 69.0) / 12.0)
        self.labels = _labels(self.midi)

    def n_frames(self, n_samples: int) -> int:
        """Frames the model returns for ``n_samples`` of audio (centred frames)."""
        return 1 + n_samples // self.hop_length

    def midi_of(self, logits: Tensor) -> Tensor:
        """MIDI pitch of the argmax bin of each frame, ``[B, frames]``."""
        return torch.as_tensor(self.midi, dtype=torch.float32, device=logits.device)[logits.argmax(-1)]


class TorchcrepePitch(_PitchModel):
    """CREPE on a waveform ``[B, T]`` at 16 kHz -> logits ``[B, 1 + T // 160, 360]``.

    The 360 bins are 20 cents apart from 1997.38 cents above 10 Hz (≈ 31.7 Hz, MIDI 23.5).
    torchcrepe frames the (zero-padded, centred) signal in 1024-sample windows with a 160-sample
    hop and normalises each frame to zero mean and unit standard deviation before the network;
    that is done here in torch so gradients reach the waveform, with one change: the standard
    deviation is ``sqrt(var + 1e-20)`` instead of ``max(std, 1e-10)`` — the same value wherever
    the frame is not silent, and a finite gradient (not 0/0 = NaN) where it is. The logits are
    the classifier's outputs before CREPE's sigmoid.
    """

    window = 1024

    def __init__(self, capacity: str = "tiny") -> None:
        super().__init__()
        torchcrepe = _import("torchcrepe", "torchcrepe==0.0.24")
        if capacity not in ("tiny", "full"):
            raise ValueError(f"torchcrepe_pitch: capacity must be 'tiny' or 'full', got {capacity!r}")
        self.capacity = capacity
        self.crepe = torchcrepe.Crepe(capacity)
        weights = os.path.join(os.path.dirname(torchcrepe.__file__), "assets", f"{capacity}.pth")
        self.crepe.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        # an explainer differentiates with respect to the input only
        self.eval().requires_grad_(False)
        cents = torchcrepe.CENTS_PER_BIN * np.arange(torchcrepe.PITCH_BINS) + 1997.3794084376191
        self._set_bins(69.0 + 12.0 * np.log2(10.0 / 440.0) + cents / 100.0)

    def frames(self, wave: Tensor) -> Tensor:
        """Normalised frames ``[B, n, 1024]`` of ``wave [B, T]`` (torchcrepe.preprocess)."""
        half = self.window // 2
        padded = nn.functional.pad(wave, (half, half))
        frames = padded.unfold(-1, self.window, self.hop_length)
        frames = frames - frames.mean(dim=-1, keepdim=True)
        return frames / torch.sqrt(frames.var(dim=-1, keepdim=True) + 1e-20)

    @staticmethod
    def _layer(x: Tensor, conv: nn.Conv2d, norm: nn.BatchNorm2d, padding=(31, 32)) -> Tensor:
        """torchcrepe's ``Crepe.layer`` on ``[N, C, L]`` with 1-D ops.

        CREPE's convolutions are 2-D with ``(k, 1)`` kernels over ``[N, C, L, 1]``; the same
        arithmetic as ``conv1d`` (identical outputs), but torch's CPU backward of a 2-D
        convolution with a 512×1 kernel is ~30× slower than the 1-D one (5.1 s vs 0.18 s for
        104 frames), which is the whole cost of an explanation.
        """
        x = nn.functional.pad(x, padding)
        x = nn.functional.conv1d(x, conv.weight.squeeze(-1), conv.bias, stride=conv.stride[0])
        x = nn.functional.relu(x)
        x = nn.functional.batch_norm(x, norm.running_mean, norm.running_var, norm.weight,
                                     norm.bias, False, 0.0, norm.eps)
        return nn.functional.max_pool1d(x, 2, 2)

    def forward(self, wave: Tensor) -> Tensor:
        if wave.dim() != 2:
            raise ValueError(f"torchcrepe_pitch: expected a waveform [B, T], got shape {tuple(wave.shape)}")
        frames = self.frames(wave)
        b, n, _ = frames.shape
        c = self.crepe
        h = self._layer(frames.reshape(b * n, 1, self.window), c.conv1, c.conv1_BN, (254, 254))
        for conv, norm in ((c.conv2, c.conv2_BN), (c.conv3, c.conv3_BN), (c.conv4, c.conv4_BN),
                           (c.conv5, c.conv5_BN), (c.conv6, c.conv6_BN)):
            h = self._layer(h, conv, norm)
        h = h.transpose(1, 2).reshape(b * n, c.in_features)
        return c.classifier(h).view(b, n, -1)


# omegaconf containers in pesto's checkpoint (its hyper-parameters): allowed to be rebuilt by
# torch's restricted (weights_only) unpickler, which runs no code from the file
def _pesto_safe_globals() -> list:
    import collections
    import typing

    from omegaconf import DictConfig, ListConfig
    from omegaconf.base import ContainerMetadata, Metadata
    from omegaconf.nodes import AnyNode

    return [DictConfig, ListConfig, ContainerMetadata, Metadata, AnyNode, typing.Any,
            collections.defaultdict, dict, list, int]


def _plain(value):
    """omegaconf containers -> plain dicts / lists."""
    try:
        from omegaconf import OmegaConf
    except ImportError:  # pragma: no cover - omegaconf is needed to read the file at all
        return value
    if OmegaConf.is_config(value):
        return OmegaConf.to_container(value, resolve=True)
    return value


class PestoPitch(_PitchModel):
    """PESTO on a waveform ``[B, T]`` at 16 kHz -> logits ``[B, frames, 384]``.

    384 bins, a third of a semitone apart from MIDI 0 (``bins_per_semitone = 3``). The network
    is pesto's own (HCQT front end, ResNet-1d encoder, the checkpoint's absolute-pitch shift);
    the outputs are log-probabilities (``log_softmax`` of the encoder's outputs, computed
    stably). Not the raw pre-softmax outputs: those all move together by hundreds (the pitch
    bin's sits near 800 on a rendered note) without changing the decision, and an explanation
    of "the pitch bin's mean logit" would chase that common level. The checkpoint is read with
    ``torch.load(weights_only=True)`` (pesto's own loader unpickles it unrestricted).

    Gradients: pesto's ``ToLogMagnitude`` computes ``abs().clamp_().log10_().mul_(20)`` in
    place and ``PESTO.forward`` scales that result in place again (``x.mul_(log(10)/10)``)
    before ``exp`` and the encoder read it. Autograd accepts all of it (checked, no version-counter
    error and no zero gradient): the gradient of
    pesto's own softmax output with respect to the waveform equals this wrapper's exactly
    (tests/unit/audio/test_audio_pitch.py). The wrapper still reproduces ``PESTO.forward`` out of place
    (same values) rather than calling it, because ``PESTO.forward`` returns the softmax
    probabilities, whose log underflows to -inf far from the pitch (zero gradient there), and
    it runs the volume/confidence heads, which the pitch logits do not depend on.
    """

    def __init__(self, checkpoint: str = "mir-1k_g7", step_ms: float = 10.0) -> None:
        super().__init__()
        pesto = _import("pesto", "pesto-pitch==2.0.1")
        from pesto.data import Preprocessor
        from pesto.model import PESTO, Resnet1d

        path = checkpoint if os.path.exists(checkpoint) else os.path.join(
            os.path.dirname(pesto.__file__), "weights", checkpoint + ".ckpt")
        if not os.path.exists(path):
            raise FileNotFoundError(f"pesto_pitch: {path}: no such checkpoint")
        with torch.serialization.safe_globals(_pesto_safe_globals()):
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
        hparams = _plain(ckpt["hparams"])
        hcqt = _plain(ckpt["hcqt_params"])
        self.checkpoint = checkpoint
        self.step_ms = float(step_ms)
        self.hop_length = int(self.step_ms * SAMPLE_RATE / 1000 + 0.5)
        self.pesto = PESTO(Resnet1d(**hparams["encoder"]),
                           preprocessor=Preprocessor(hop_size=step_ms, sampling_rate=SAMPLE_RATE, **hcqt),
                           crop_kwargs=hparams["pitch_shift"], reduction=hparams["reduction"])
        missing, unexpected = self.pesto.load_state_dict(ckpt["state_dict"], strict=False)
        # the HCQT kernels are rebuilt from hcqt_params, not stored
        missing = [k for k in missing if not k.startswith("preprocessor.hcqt_kernels.")]
        if missing or unexpected:
            raise RuntimeError(f"pesto_pitch: {path}: checkpoint does not match the network "
                               f"(missing {missing}, unexpected {unexpected})")
        self.eval().requires_grad_(False)
        n_bins = int(hparams["encoder"]["output_dim"])
        self.bins_per_semitone = self.pesto.bins_per_semitone
        self._shift_bins = round(float(self.pesto.shift) * self.bins_per_semitone)
        self._set_bins(np.arange(n_bins) / self.bins_per_semitone)

    def encoder_logits(self, cqt: Tensor) -> Tensor:
        """pesto's Resnet1d forward without its final softmax; ``cqt [N, 1, bins]``."""
        enc = self.pesto.encoder
        x = enc.conv1(enc.layernorm(cqt))
        for layer in enc.prefilt_layers:
            x = layer(x) + x if enc.residual else layer(x)
        return enc.fc(enc.flatten(enc.conv_layers(x)))

    def forward(self, wave: Tensor) -> Tensor:
        if wave.dim() != 2:
            raise ValueError(f"pesto_pitch: expected a waveform [B, T], got shape {tuple(wave.shape)}")
        b = wave.shape[0]
        pre = self.pesto.preprocessor
        try:
            cqt = torch.view_as_complex(pre.hcqt(wave, sr=SAMPLE_RATE)).permute(0, 3, 1, 2)
        except RuntimeError as err:
            if "Padding size" not in str(err):
                raise
            # the CQT reflect-pads by half its longest kernel (2048 samples at 16 kHz)
            raise ValueError(f"pesto_pitch: a clip of {wave.shape[-1]} samples is too short for "
                             f"pesto's CQT; give more than 2048 samples (0.128 s)") from None
        db = 20.0 * torch.log10(cqt.abs().clamp(min=pre.to_log.eps))   # ToLogMagnitude
        x = (db * (math.log(10) / 10.0)).flatten(0, 1)                 # PESTO.forward's mul_
        logits = self.encoder_logits(self.pesto.crop_cqt(x))
        logits = logits.view(b, -1, logits.shape[-1]).roll(-self._shift_bins, -1)
        return torch.log_softmax(logits, -1)


def torchcrepe_pitch(capacity: str = "tiny") -> TorchcrepePitch:
    """CREPE pitch logits on 16 kHz waveforms (``capacity`` ``"tiny"`` or ``"full"``)."""
    return TorchcrepePitch(capacity)


def pesto_pitch(checkpoint: str = "mir-1k_g7") -> PestoPitch:
    """PESTO pitch logits on 16 kHz waveforms (checkpoint ``"mir-1k_g7"`` or ``"mir-1k"``)."""
    return PestoPitch(checkpoint)
