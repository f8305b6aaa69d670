"""The representation an audio explanation lives in: STFT magnitude or log-mel, in torch.

Masks are optimised over ``x = analyse(wave)`` (``[B, F, Tf]``), which is differentiable, and
every obfuscated ``x`` can be listened to (:meth:`Representation.listen`): the magnitude is
put back with the original recording's phase and inverted with the iSTFT.

* ``kind="waveform"``: the model takes waveforms. The explanation lives in the STFT magnitude;
  the model sees ``iSTFT(x · original phase)`` (:meth:`Representation.model_input`).
* ``kind="stft"``: the model takes the STFT magnitude ``[B, F, Tf]`` directly.
* ``kind="mel"``: the model takes the log-mel spectrogram ``log(M |STFT| + offset)``
  (``M`` a librosa mel filterbank matrix); listening goes back through the filterbank's
  pseudo-inverse.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = ["Representation", "make_representation", "KINDS"]

KINDS = ("waveform", "stft", "mel")


@dataclass
class Representation:
    """How a waveform becomes the explained ``[B, F, Tf]`` input, and back.

    Args:
        kind: ``"waveform"``, ``"stft"`` or ``"mel"`` (what the model takes; see module doc).
        sample_rate: Hz.
        n_fft: STFT size (Hann window of the same length).
        hop: STFT hop in samples.
        n_mels: mel bands (``kind="mel"`` only).
        fmin, fmax: mel filterbank range in Hz (``fmax`` None = Nyquist).
        log_offset: added to the mel magnitude before the log, so silence stays finite.
    """

    kind: str
    sample_rate: int
    n_fft: int = 512
    hop: int = 128
    n_mels: int = 64
    fmin: float = 0.0
    fmax: float | None = None
    log_offset: float = 1e-5

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"representation: unknown kind {self.kind!r}; choose one of {', '.join(KINDS)}")
        if self.sample_rate <= 0 or self.n_fft < 2 or not 0 < self.hop <= self.n_fft:
            raise ValueError(f"representation: need sample_rate > 0, n_fft >= 2 and 0 < hop <= n_fft; "
                             f"got {self.sample_rate}, {self.n_fft}, {self.hop}")
        self._filterbank: Tensor | None = None
        self._pinv: Tensor | None = None

    # ---- description --------------------------------------------------------------------
    @property
    def n_bins(self) -> int:
        """``F``: frequency rows of ``x``."""
        return self.n_mels if self.kind == "mel" else self.n_fft // 2 + 1

    @property
    def frequencies(self) -> np.ndarray:
        """Centre frequency of each row of ``x`` in Hz, ``[F]``."""
        if self.kind == "mel":
            import librosa

            fmax = self.fmax or self.sample_rate / 2
            return librosa.mel_frequencies(self.n_mels + 2, fmin=self.fmin, fmax=fmax)[1:-1]
        return np.linspace(0.0, self.sample_rate / 2, self.n_fft // 2 + 1)

    def n_frames(self, n_samples: int) -> int:
        """``Tf`` for a clip of ``n_samples`` (centred frames, as :func:`torch.stft`)."""
        return n_samples // self.hop + 1

    def times(self, n_frames: int) -> np.ndarray:
        """Centre time of each frame in seconds, ``[Tf]``."""
        return np.arange(n_frames) * self.hop / self.sample_rate

    def to_dict(self) -> dict:
        """Plain JSON-able settings (stored with fitted infillers and explanations)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Representation":
        """The inverse of :meth:`to_dict`; unknown keys are an error."""
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"representation: unknown settings {sorted(unknown)}")
        return cls(**data)

    def same_as(self, other: "Representation") -> bool:
        return self.to_dict() == other.to_dict()

    # ---- transforms ---------------------------------------------------------------------
    def _window(self, like: Tensor) -> Tensor:
        return torch.hann_window(self.n_fft, device=like.device, dtype=like.dtype)

    def stft(self, wave: Tensor) -> Tensor:
        """Complex STFT ``[B, n_fft//2+1, Tf]`` of ``wave [B, T]``."""
        wave = torch.as_tensor(wave, dtype=torch.float32) if not isinstance(wave, Tensor) else wave
        if wave.shape[-1] < self.n_fft // 2 + 1:
            raise ValueError(f"representation: clip of {wave.shape[-1]} samples is shorter than "
                             f"half an FFT window ({self.n_fft // 2 + 1} samples)")
        return torch.stft(wave, self.n_fft, self.hop, window=self._window(wave), center=True,
                          return_complex=True)

    def filterbank(self, device=None, dtype=torch.float32) -> Tensor:
        """Mel filterbank ``[n_mels, n_fft//2+1]`` (librosa's Slaney-normalised triangles)."""
        if self._filterbank is None:
            import librosa

            fb = librosa.filters.mel(sr=self.sample_rate, n_fft=self.n_fft, n_mels=self.n_mels,
                                     fmin=self.fmin, fmax=self.fmax)
            self._filterbank = torch.as_tensor(fb, dtype=torch.float32)
            self._pinv = torch.linalg.pinv(self._filterbank)
        return self._filterbank.to(device=device, dtype=dtype)

    def _pseudo_inverse(self, device, dtype) -> Tensor:
        self.filterbank()
        return self._pinv.to(device=device, dtype=dtype)

    def from_magnitude(self, magnitude: Tensor) -> Tensor:
        """``x`` from an STFT magnitude ``[..., n_fft//2+1, Tf]`` (differentiable)."""
        if self.kind != "mel":
            return magnitude
        fb = self.filterbank(magnitude.device, magnitude.dtype)
        return torch.log(torch.matmul(fb, magnitude) + self.log_offset)

    def to_magnitude(self, x: Tensor) -> Tensor:
        """An STFT magnitude from ``x`` (mel: the filterbank's pseudo-inverse, clipped at 0)."""
        if self.kind != "mel":
            return x
        mel = torch.exp(x) - self.log_offset
        return torch.relu(torch.matmul(self._pseudo_inverse(x.device, x.dtype), mel))

    def analyse(self, wave: Tensor) -> Tensor:
        """The explained input ``x [B, F, Tf]`` of ``wave [B, T]``: |STFT| or log-mel."""
        return self.from_magnitude(self.stft(wave).abs())

    def phase(self, wave: Tensor) -> Tensor:
        """Unit-modulus complex phase ``[B, n_fft//2+1, Tf]`` of ``wave`` (1 where silent)."""
        spec = self.stft(wave)
        mag = spec.abs()
        return torch.where(mag > 0, spec / mag.clamp_min(1e-30), torch.ones_like(spec))

    def synthesise(self, x: Tensor, phase: Tensor, length: int) -> Tensor:
        """Waveforms ``[N, T]`` from ``x [N, F, Tf]`` and a phase of ``B`` inputs, ``N = r·B``.

        Rows are draw-major (row ``i`` takes the phase of input ``i % B``), the layout of the
        explainers' Monte-Carlo draws. Differentiable in ``x``.
        """
        n, b = x.shape[0], phase.shape[0]
        if n % b:
            raise ValueError(f"representation: {n} rows is not a multiple of {b} phases")
        phase = phase.repeat(n // b, 1, 1) if n != b else phase
        spec = self.to_magnitude(x).to(phase.real.dtype) * phase
        return torch.istft(spec, self.n_fft, self.hop, window=self._window(spec.real),
                           center=True, length=length)

    def listen(self, x: Tensor, reference_wave: Tensor) -> Tensor:
        """Waveform ``[B, T]`` of ``x [B, F, Tf]`` with the phase of ``reference_wave [B, T]``."""
        reference_wave = torch.as_tensor(reference_wave, dtype=torch.float32)
        return self.synthesise(x, self.phase(reference_wave), reference_wave.shape[-1])

    def model_input(self, x: Tensor, phase: Tensor, length: int) -> Tensor:
        """What the model is given for ``x``: the waveform for ``kind="waveform"``, else ``x``."""
        return self.synthesise(x, phase, length) if self.kind == "waveform" else x


def make_representation(kind: str, sample_rate: int, **kw) -> Representation:
    """A :class:`Representation`; ``kw`` = ``n_fft``, ``hop``, ``n_mels``, ``fmin``, ``fmax``."""
    return Representation(kind=kind, sample_rate=int(sample_rate), **kw)
