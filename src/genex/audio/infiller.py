"""An inpainting GAN for *your* audio: the infiller that keeps obfuscated spectrograms in distribution.

The nsynth study's inpainter (Heiss et al. 2020, paper Table 2: :class:`genex.studies.nsynth.models.Inpainter`
and its critic) generalised from 1-D spectra to 2-D time-frequency inputs ``x [N, F, Tf]``
(STFT magnitude or log-mel, as :class:`genex.audio.Representation` makes them):

* :class:`TFInpainter` ``net(x_masked, mask, noise) -> x_full [N, F, Tf]``: Conv2d encoder
  (two stride-2 steps) and transposed-conv decoder with a skip connection, noise at the input
  and at the bottleneck, fully convolutional in time (any ``Tf``; ``F`` is fixed by the
  representation). Magnitudes are compressed with ``log1p`` and standardised per frequency
  row inside the network, and its STFT output is non-negative. ``noise`` has the input's
  shape ``[N, F, Tf]`` (what :class:`genex.xai.GenerativeInfiller` draws by default); the
  bottleneck's 16 noise channels are the same draws rearranged (pixel-unshuffle), so they
  are independent standard normals at the coarse resolution.
* :class:`TFCritic`: strided Conv2d over a full spectrogram -> one realness score.
* :func:`fit_infiller`: trains both on random crops of your audio files with random
  component masks (time-frequency tiles, frequency bands, time segments, single bins and the
  harmonics of an f0 guessed from the crop, each kept with a per-crop probability drawn from U(0.05, 0.95), as the paper's random binary
  masks), the nsynth loss (non-saturating adversarial loss + L1 on the dropped entries),
  checkpointed every ``checkpoint_every`` steps and resumable after a kill with the same
  final weights. Writes ``out_dir/infiller.pt`` and ``out_dir/infiller.json``.
* :func:`load_infiller`: the fitted network as a :class:`genex.xai.GenerativeInfiller`.

Command line (``genex fit-infiller``, wired in :mod:`genex.audio.cli`)::

    fit_infiller(audio_files: Sequence[str | Path], representation: Representation,
                 out_dir: str | Path, *, steps: int = 2000, batch_size: int = 16,
                 crop_frames: int = 64, seed: int = 0, device: str = "cpu",
                 resume: bool = True, progress: bool = True, width: float = 0.25,
                 critic_width: float = 0.25, lr: float = 5e-4, recon_weight: float = 1.0,
                 checkpoint_every: int = 100, valid_crops: int = 32) -> Path  # out_dir/infiller.pt
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from genex.progress import progress as progress_bar
from genex.pipeline.checkpoint import Checkpointer, file_digest, fingerprint
from genex.pipeline.training import EpochLosses, Loop, fit
from genex.pipeline.io import atomic_file, load_tensors, save_tensors
from genex.xai import GenerativeInfiller, MeanInfiller, NoiseInfiller, ZeroInfiller

__all__ = ["TFInpainter", "TFCritic", "SpectrogramScaler", "fit_infiller", "load_infiller",
           "random_component_masks", "FORMAT", "DEFAULTS"]

log = logging.getLogger("genex.audio")

FORMAT = "genex-audio-infiller/1"
WEIGHTS = "infiller.pt"
REPORT = "infiller.json"
DOWNSAMPLE = 4  # two stride-2 steps: inputs are padded to a multiple of 4 in F and Tf
BOTTLENECK_NOISE = DOWNSAMPLE * DOWNSAMPLE  # pixel-unshuffled input noise = 16 channels (paper: 16)

#: Training settings of :func:`fit_infiller` (all but ``steps`` identify a run's checkpoints).
DEFAULTS = {"width": 0.25, "critic_width": 0.25, "lr": 5e-4, "recon_weight": 1.0,
            "checkpoint_every": 100, "valid_crops": 32}


def _compresses(kind: str) -> bool:
    """STFT magnitudes (kinds ``stft`` and ``waveform``) are heavy-tailed: log1p them; a
    log-mel spectrogram is already logarithmic."""
    return kind != "mel"


class SpectrogramScaler(nn.Module):
    """``x [N, F, Tf]`` -> ``(log1p(x) or x − mean_f) / std_f`` and back (per frequency row).

    The statistics are fitted on the training audio (:meth:`fit`) and saved with the weights.
    """

    def __init__(self, n_bins: int, compress: bool) -> None:
        super().__init__()
        self.compress = bool(compress)
        self.register_buffer("mean", torch.zeros(n_bins))
        self.register_buffer("std", torch.ones(n_bins))

    @torch.no_grad()
    def fit(self, features: Sequence[Tensor]) -> None:
        """Per-row mean and std of the compressed ``features`` (each ``[F, T_i]``)."""
        values = torch.cat([self.squash(f.to(self.mean.dtype)) for f in features], dim=-1)
        self.mean.copy_(values.mean(-1))
        self.std.copy_(values.std(-1).clamp_min(1e-3))

    def squash(self, x: Tensor) -> Tensor:
        """The compressed domain (log1p for magnitudes): where errors are measured."""
        return torch.log1p(F.relu(x)) if self.compress else x

    def forward(self, x: Tensor) -> Tensor:
        return (self.squash(x) - self.mean[:, None]) / self.std[:, None]

    def inverse(self, z: Tensor) -> Tensor:
        y = z * self.std[:, None] + self.mean[:, None]
        return torch.expm1(F.relu(y)) if self.compress else y


def _scaled(c: int, width: float) -> int:
    return max(1, int(round(c * width)))


def _pad_to(t: Tensor, multiple: int) -> Tensor:
    """Zero-pad the last two axes up to a multiple (the mask is 0 there: nothing kept)."""
    pf = -t.shape[-2] % multiple
    pt = -t.shape[-1] % multiple
    return F.pad(t, (0, pt, 0, pf)) if pf or pt else t


class TFInpainter(nn.Module):
    """G(x ⊙ s, s, n) over time-frequency inputs ``[N, F, Tf]`` (the nsynth inpainter in 2-D).

    Input channels: the masked, scaled spectrogram, the mask, the noise, the mean over time of
    the kept entries of each frequency row (context from the whole clip, any length) and the
    row's relative frequency (so one kernel can behave differently at low and high rows).
    Encoder Conv2d 5×5 -> 32, then 4×4 stride 2 -> 64, 4×4 stride 2 -> 128, 3×3 -> 16 (ReLU,
    BatchNorm, as in paper Table 2), 16 noise channels joined at the bottleneck, decoder
    ConvTranspose2d -> 64 -> 64, skip concatenation with the first conv's output and the
    input, Conv2d 3×3 -> 64 -> 1 (paper: 128). Channel counts scale with ``width``.

    Args:
        n_bins: ``F``, the representation's frequency rows.
        kind: the representation's kind (``stft``/``waveform`` magnitudes are log1p-compressed
            and the output is non-negative; ``mel`` is already logarithmic).
        width: channel multiplier.
    """

    IN_CHANNELS = 5

    def __init__(self, n_bins: int, kind: str = "stft", width: float = DEFAULTS["width"]) -> None:
        super().__init__()
        c = lambda n: _scaled(n, width)  # noqa: E731 - scaled channel count
        self.n_bins, self.kind, self.width = int(n_bins), kind, float(width)
        self.scaler = SpectrogramScaler(n_bins, _compresses(kind))
        c_in = self.IN_CHANNELS
        self.conv1 = nn.Sequential(nn.Conv2d(c_in, c(32), 5, padding=2), nn.ReLU())
        self.encoder = nn.Sequential(
            nn.Conv2d(c(32), c(64), 4, stride=2, padding=1), nn.ReLU(), nn.BatchNorm2d(c(64)),
            nn.Conv2d(c(64), c(128), 4, stride=2, padding=1), nn.ReLU(), nn.BatchNorm2d(c(128)),
            nn.Conv2d(c(128), c(16), 3, padding=1), nn.ReLU(), nn.BatchNorm2d(c(16)))
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(c(16) + BOTTLENECK_NOISE, c(64), 4, stride=2, padding=1), nn.ReLU(),
            nn.BatchNorm2d(c(64)),
            nn.ConvTranspose2d(c(64), c(64), 4, stride=2, padding=1), nn.ReLU(), nn.BatchNorm2d(c(64)))
        # the paper's head is 128 wide at full resolution; 64 keeps CPU training affordable
        self.head = nn.Sequential(nn.Conv2d(c(64) + c(32) + c_in, c(64), 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(c(64), 1, 3, padding=1))

    def config(self) -> dict:
        """What :func:`load_infiller` needs to rebuild the network."""
        return {"n_bins": self.n_bins, "kind": self.kind, "width": self.width}

    def forward(self, x_masked: Tensor, mask: Tensor, noise: Tensor) -> Tensor:
        if x_masked.dim() != 3 or x_masked.shape[1] != self.n_bins:
            raise ValueError(f"TFInpainter: expected x [N, {self.n_bins}, Tf], got {tuple(x_masked.shape)}")
        if mask.shape != x_masked.shape or noise.shape != x_masked.shape:
            raise ValueError(f"TFInpainter: mask {tuple(mask.shape)} and noise {tuple(noise.shape)} "
                             f"must have the shape of x {tuple(x_masked.shape)}")
        n, n_bins, n_frames = x_masked.shape
        scaled = self.scaler(x_masked) * mask  # dropped entries sit at the row's mean (0)
        context = (scaled.sum(-1, keepdim=True) / mask.sum(-1, keepdim=True).clamp_min(1.0))
        rows = torch.linspace(-1.0, 1.0, n_bins, device=x_masked.device, dtype=x_masked.dtype)
        inp = torch.stack([scaled, mask, noise, context.expand_as(scaled),
                           rows[:, None].expand(n, n_bins, n_frames)], dim=1)
        inp = _pad_to(inp, DOWNSAMPLE)
        first = self.conv1(inp)
        deep_noise = F.pixel_unshuffle(_pad_to(noise, DOWNSAMPLE).unsqueeze(1), DOWNSAMPLE)
        deep = self.decoder(torch.cat([self.encoder(first), deep_noise], dim=1))
        out = self.head(torch.cat([deep, first, inp], dim=1))[:, 0, :n_bins, :n_frames]
        return self.scaler.inverse(out)


class TFCritic(nn.Module):
    """The GAN's critic: strided Conv2d 4×4 (LeakyReLU 0.2) over a full scaled spectrogram
    (plus the relative-frequency channel) -> global average -> one score per input."""

    def __init__(self, n_bins: int, kind: str = "stft", width: float = DEFAULTS["critic_width"]) -> None:
        super().__init__()
        c = lambda n: _scaled(n, width)  # noqa: E731
        self.scaler = SpectrogramScaler(n_bins, _compresses(kind))
        chans = [2, c(32), c(64), c(128), c(128)]
        layers: list[nn.Module] = []
        for c_in, c_out in zip(chans[:-1], chans[1:]):
            layers += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.out = nn.Linear(chans[-1], 1)

    def forward(self, x: Tensor) -> Tensor:
        n, n_bins, n_frames = x.shape
        rows = torch.linspace(-1.0, 1.0, n_bins, device=x.device, dtype=x.dtype)
        inp = torch.stack([self.scaler(x), rows[:, None].expand(n, n_bins, n_frames)], dim=1)
        return self.out(self.body(_pad_to(inp, 16))).squeeze(1)  # four stride-2 steps: any length


# --- training masks ---------------------------------------------------------------------------

MASK_KINDS = ("tiles", "bands", "segments", "bins", "harmonics")


def _harmonic_labels(crop: Tensor, frequencies: np.ndarray,
                     rng: np.random.Generator) -> tuple[np.ndarray, int] | None:
    """Labels of a harmonic partition of one crop ``[F, Tf]`` (the ``harmonics:N`` components
    of :mod:`genex.audio.harmonics`), for an f0 guessed from the crop: its strongest row
    divided by 1, 2 or 3, so the combs usually sit on its partials. None when that row is DC."""
    from genex.audio.harmonics import harmonic_components

    peak = float(frequencies[int(torch.argmax(crop.mean(-1)))])
    if peak <= 0:
        return None
    f0 = peak / int(rng.integers(1, 4))
    cmap = harmonic_components(frequencies, tuple(crop.shape), f0,
                               n_harmonics=int(rng.integers(4, 17)), width_bins=int(rng.integers(0, 2)))
    return cmap.labels.numpy(), cmap.n_components


def random_component_masks(n: int, shape: tuple[int, int], rng: np.random.Generator,
                           crops: Tensor | None = None, frequencies: np.ndarray | None = None) -> Tensor:
    """Training keep masks ``[n, F, Tf]`` (1 = keep), one random partition per crop.

    Each crop gets a partition of its ``[F, Tf]`` into components, built with the explainer's
    own constructors (:mod:`genex.audio.components`, :mod:`genex.audio.harmonics`):
    time-frequency tiles of a random grid, frequency bands, time segments, single bins, or
    (given the ``crops`` and the rows' ``frequencies``) the harmonics of an f0 guessed from the
    crop; each component is kept with a probability ``p ~ U(0.05, 0.95)`` drawn per crop (the
    paper's random binary masks, over components).
    """
    from genex.audio.components import time_frequency_tiles

    n_bins, n_frames = shape
    kinds = MASK_KINDS if crops is not None and frequencies is not None else MASK_KINDS[:-1]
    masks = np.empty((n, n_bins, n_frames), dtype=np.float32)
    for i in range(n):
        kind = kinds[int(rng.integers(len(kinds)))]
        n_f = int(rng.integers(2, min(32, n_bins) + 1))
        n_t = int(rng.integers(2, min(16, n_frames) + 1))
        found = _harmonic_labels(crops[i], frequencies, rng) if kind == "harmonics" else None
        if found is None:
            if kind == "harmonics":
                kind = "tiles"
            grid = {"tiles": (n_f, n_t), "bands": (n_f, 1), "segments": (1, n_t),
                    "bins": (n_bins, n_frames)}[kind]
            cmap = time_frequency_tiles(shape, *grid)
            found = cmap.labels.numpy(), cmap.n_components
        labels, n_components = found
        keep = np.append(rng.random(n_components) < rng.uniform(0.05, 0.95), True)  # C: uncovered
        masks[i] = keep[labels]
    return torch.from_numpy(masks)


# --- data -------------------------------------------------------------------------------------

def _features(files: Sequence[Path], representation, progress: bool) -> list[Tensor]:
    """Each file's ``x [F, T_i]`` in the representation (read with the explainer's reader)."""
    from genex.audio.signal import load_audio

    out = []
    items = progress_bar(files, desc="reading audio", total=len(files), unit="file") if progress else files
    for path in items:
        wave, _ = load_audio(path, sample_rate=representation.sample_rate)
        with torch.no_grad():
            out.append(representation.analyse(torch.from_numpy(wave)[None])[0].float().contiguous())
    return out


def _split(features: list[Tensor], files: list[Path], crop_frames: int
           ) -> tuple[list[int], list[int], str]:
    """Training and validation file indices: every fifth usable file is held out when there
    are at least five; with fewer, validation crops come from the training files."""
    usable = [i for i, f in enumerate(features) if f.shape[-1] >= crop_frames]
    if not usable:
        longest = max(f.shape[-1] for f in features)
        raise ValueError(f"fit-infiller: no audio file has {crop_frames} frames (the longest, "
                         f"{files[int(np.argmax([f.shape[-1] for f in features]))]}, has {longest}); "
                         f"lower crop_frames or give longer files")
    for i in sorted(set(range(len(features))) - set(usable)):
        log.warning("%s: %d frames, shorter than crop_frames=%d: not used", files[i],
                    features[i].shape[-1], crop_frames)
    if len(usable) >= 5:
        valid = usable[4::5]
        return [i for i in usable if i not in valid], valid, "held-out files"
    return usable, usable, "training files (fewer than 5 files: none held out)"


def _crops(features: list[Tensor], pool: list[int], n: int, crop_frames: int,
           rng: np.random.Generator) -> Tensor:
    """``n`` random crops ``[n, F, crop_frames]``; files are drawn in proportion to their length."""
    lengths = np.array([features[i].shape[-1] - crop_frames + 1 for i in pool], dtype=np.float64)
    which = rng.choice(len(pool), size=n, p=lengths / lengths.sum())
    starts = [int(rng.integers(lengths[w])) for w in which]
    return torch.stack([features[pool[w]][:, s: s + crop_frames] for w, s in zip(which, starts)])


# --- validation -------------------------------------------------------------------------------

@torch.no_grad()
def _validation(net: TFInpainter, features: list[Tensor], pool: list[int], crop_frames: int,
                n_crops: int, seed: int, device: torch.device, frequencies: np.ndarray) -> dict[str, float]:
    """Mean absolute error on the dropped entries of fixed held-out crops, in the compressed
    domain (log1p magnitude, or log-mel), for the fitted network and the library's noise
    (per-row mean and std of the training audio), mean and zero infillers."""
    rng = np.random.default_rng([seed, 2**31 - 1])  # the same crops and masks at every check
    x = _crops(features, pool, n_crops, crop_frames, rng).to(device)
    keep = random_component_masks(n_crops, tuple(x.shape[1:]), rng, x.cpu(), frequencies).to(device)
    squash = net.scaler.squash
    mean_raw = net.scaler.inverse(torch.zeros(net.n_bins, 1, device=device))  # the row's typical value
    # noise in the compressed domain mapped back: what a per-row Gaussian of the data looks like
    noise = _SquashedNoise(net.scaler, seed)
    infillers = {"fitted": GenerativeInfiller(net, seed=seed), "noise": noise,
                 "mean": MeanInfiller(mean_raw), "zero": ZeroInfiller()}
    dropped = (1 - keep).unsqueeze(0)
    out = {}
    was_training = net.training
    net.eval()
    for name, infiller in infillers.items():
        gen = torch.Generator(device=device).manual_seed(seed)
        z = infiller(x, keep, 1, generator=gen)
        err = ((squash(z) - squash(x).unsqueeze(0)).abs() * dropped).sum() / dropped.sum().clamp_min(1)
        out[name] = round(float(err), 6)
    net.train(was_training)
    return out


class _SquashedNoise(NoiseInfiller):
    """Gaussian noise with the training audio's per-row mean and std in the compressed domain,
    mapped back to the representation (non-negative magnitudes): the fair noise baseline."""

    def __init__(self, scaler: SpectrogramScaler, seed: int = 0) -> None:
        super().__init__(0.0, 1.0, seed)
        self.scaler = scaler

    def fill(self, x: Tensor, keep: Tensor, n_samples: int, generator: torch.Generator) -> Tensor:
        return self.scaler.inverse(super().fill(x, keep, n_samples, generator))


# --- fitting ----------------------------------------------------------------------------------

def _gan_step(net: TFInpainter, critic: TFCritic, opt_g, opt_d, x: Tensor, mask: Tensor,
              noise: Tensor, recon_weight: float, loop: Loop) -> dict[str, float]:
    """One critic and one generator update (the nsynth trainer's step, in 2-D): non-saturating
    GAN loss, plus L1 on the dropped entries in the network's scaled domain."""
    with loop.autocast():
        fake = torch.where(mask == 1, x, net(x * mask, mask, noise).float())
        d_loss = F.softplus(-critic(x).float()).mean() + F.softplus(critic(fake.detach()).float()).mean()
    d_value = loop.update(d_loss, opt_d, "critic loss")
    with loop.autocast():
        adv = F.softplus(-critic(fake).float()).mean()
        dropped = 1 - mask
        rec = ((net.scaler(fake) - net.scaler(x)).abs() * dropped).sum() / dropped.sum().clamp_min(1)
        g_loss = adv + recon_weight * rec
    loop.update(g_loss, opt_g, "generator loss")
    return {"critic": d_value, "adversarial": float(adv.detach()), "reconstruction": float(rec.detach())}


def _step_rng(seed: int, step: int) -> np.random.Generator:
    """Step ``step``'s crops, masks and noise: a function of (seed, step) alone, so a run
    resumed at any checkpoint replays exactly the steps an uninterrupted run takes."""
    return np.random.default_rng([seed, step])


def fit_infiller(audio_files: Sequence[str | os.PathLike], representation, out_dir: str | os.PathLike, *,
                 steps: int = 2000, batch_size: int = 16, crop_frames: int = 64, seed: int = 0,
                 device: str | torch.device = "cpu", resume: bool = True, progress: bool = True,
                 width: float = DEFAULTS["width"], critic_width: float = DEFAULTS["critic_width"],
                 lr: float = DEFAULTS["lr"], recon_weight: float = DEFAULTS["recon_weight"],
                 checkpoint_every: int = DEFAULTS["checkpoint_every"],
                 valid_crops: int = DEFAULTS["valid_crops"]) -> Path:
    """Train a :class:`TFInpainter` on ``audio_files`` in ``representation``; return ``out_dir/infiller.pt``.

    Every step draws ``batch_size`` random crops of ``crop_frames`` frames (files in proportion
    to their length), one random component mask per crop (:func:`random_component_masks`)
    and the noise, all from ``(seed, step)``; the critic and the generator each take one Adam
    step (lr, betas 0.5/0.9, constant). A checkpoint is written to ``out_dir/checkpoints``
    every ``checkpoint_every`` steps and at the end; with ``resume`` a later call (after a
    kill, or with more ``steps``) continues from it and ends with the weights an
    uninterrupted run would have. A checkpoint of other settings, files or genex code is
    discarded (logged). ``resume=False`` deletes the checkpoints first.

    Writes, each atomically: ``out_dir/infiller.json`` (the files it was trained on, the
    settings, the final losses, the validation error against the noise, mean and zero
    infillers at every checkpoint) and then ``out_dir/infiller.pt`` (weights, representation,
    network config; read by :func:`load_infiller`).

    Args:
        audio_files: audio files (anything :func:`genex.audio.load_audio` reads); resampled to
            ``representation.sample_rate``.
        representation: the :class:`genex.audio.Representation` the explanations will use.
        steps: total optimiser steps (a resumed run counts the steps already taken).
        crop_frames: frames per training crop (the network takes any length afterwards).
        device: ``cpu`` (deterministic for a seed) or ``cuda``.
    """
    if steps < 1 or batch_size < 1 or crop_frames < 1 or checkpoint_every < 1:
        raise ValueError("fit-infiller: steps, batch_size, crop_frames and checkpoint_every must be >= 1")
    files = [Path(f) for f in audio_files]
    if not files:
        raise ValueError("fit-infiller: no audio files given")
    out_dir = Path(out_dir)
    device = torch.device(device)
    settings = {"batch_size": int(batch_size), "crop_frames": int(crop_frames), "width": float(width),
                "critic_width": float(critic_width), "lr": float(lr),
                "recon_weight": float(recon_weight), "checkpoint_every": int(checkpoint_every),
                "valid_crops": int(valid_crops)}
    rep = representation.to_dict()

    features = _features(files, representation, progress)
    frequencies = np.asarray(representation.frequencies, dtype=np.float64)
    train_idx, valid_idx, valid_from = _split(features, files, crop_frames)
    torch.manual_seed(seed)  # the initial weights
    net = TFInpainter(representation.n_bins, representation.kind, width).to(device)
    critic = TFCritic(representation.n_bins, representation.kind, critic_width).to(device)
    net.scaler.fit([features[i] for i in train_idx])
    critic.scaler.load_state_dict(net.scaler.state_dict())
    opt_g = torch.optim.Adam(net.parameters(), lr=lr, betas=(0.5, 0.9))
    opt_d = torch.optim.Adam(critic.parameters(), lr=lr, betas=(0.5, 0.9))

    checkpoints = out_dir / "checkpoints"
    if not resume and checkpoints.exists():
        shutil.rmtree(checkpoints)
    ckpt = Checkpointer(checkpoints, {"generator": net, "critic": critic, "opt_g": opt_g, "opt_d": opt_d},
                        fingerprint(settings, seed, rep, str(device.type)), {"audio": files})
    state = ckpt.resume()
    if state.step > steps:
        raise ValueError(f"fit-infiller: {checkpoints / 'last.pt'} is at step {state.step}, past "
                         f"steps={steps}; ask for more steps, or resume=False to start again")
    # one epoch of the shared loop = the steps up to the next checkpoint (a multiple of
    # checkpoint_every, or the last step), planned from where the checkpoint left off
    ends = [*range((state.step // checkpoint_every + 1) * checkpoint_every, steps, checkpoint_every), steps]
    ends = [end for end in ends if end > state.step]
    intervals = [range(start, end) for start, end in zip([state.step, *ends], ends)]
    first_epoch = state.epoch

    def batches(epoch: int):
        for step in intervals[epoch - first_epoch]:
            rng = _step_rng(seed, step)
            x = _crops(features, train_idx, batch_size, crop_frames, rng)
            mask = random_component_masks(batch_size, tuple(x.shape[1:]), rng, x, frequencies)
            gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
            yield x.to(device), mask.to(device), torch.randn(x.shape, generator=gen).to(device)

    def step(batch, loop: Loop) -> dict[str, float]:
        return _gan_step(net, critic, opt_g, opt_d, *batch, recon_weight, loop)

    def evaluate(epoch: int, losses: EpochLosses) -> tuple[float, dict]:
        valid = _validation(net, features, valid_idx, crop_frames, valid_crops, seed, device, frequencies)
        means = {k: round(v / max(losses.batches, 1), 6) for k, v in losses.sums.items()}
        return valid["fitted"], {"step": state.step, **means, "valid_mae": valid}

    started = time.perf_counter()
    # the last weights are kept: the validation error is reported, not used to pick a step
    fit("fit-infiller", epochs=first_epoch + len(intervals), checkpointer=ckpt, device=device,
        batches=batches, step=step, evaluate=evaluate, modules=[net, critic], state=state,
        batch_progress=True, quiet=not progress, restore_best=False)
    net.eval()
    seconds = time.perf_counter() - started
    if not state.history or state.history[-1]["step"] != state.step:  # nothing left to train
        state.history.append({"step": state.step, "valid_mae": _validation(
            net, features, valid_idx, crop_frames, valid_crops, seed, device, frequencies)})

    last = state.history[-1]
    report = {
        "format": FORMAT, "representation": rep, "network": net.config(),
        "settings": {**settings, "steps": int(steps), "seed": int(seed), "device": str(device)},
        "audio": [{"file": str(f), "sha256_16": file_digest(f), "frames": int(x.shape[-1]),
                   "use": "validation" if i in valid_idx and i not in train_idx else
                   ("training" if i in train_idx else "too short")}
                  for i, (f, x) in enumerate(zip(files, features))],
        "seconds_of_audio": round(sum(x.shape[-1] for x in features) * representation.hop
                                  / representation.sample_rate, 3),
        "validation": {"crops": int(valid_crops), "from": valid_from,
                       "metric": "mean absolute error on the dropped entries, "
                                 + ("log1p magnitude" if net.scaler.compress else "log-mel"),
                       "final": last["valid_mae"]},
        "final_losses": {k: v for k, v in last.items() if k not in ("step", "valid_mae")},
        "history": state.history,
        "seconds_this_call": round(seconds, 3),
        "versions": {"torch": torch.__version__, "numpy": np.__version__,
                     "python": platform.python_version()},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_file(out_dir / REPORT) as tmp:
        tmp.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    weights = out_dir / WEIGHTS
    with atomic_file(weights) as tmp:
        save_tensors(tmp, {"format": FORMAT, "representation": rep, "network": net.config(),
                           "weights": {k: v.detach().cpu() for k, v in net.state_dict().items()},
                           "steps": int(state.step), "seed": int(seed)})
    log.info("fit-infiller: wrote %s after %d steps (validation MAE %s)", weights, state.step,
             last["valid_mae"])
    return weights


# --- loading ----------------------------------------------------------------------------------

def _same_spectrogram(rep: dict) -> dict:
    """The settings that define ``x``: kinds ``waveform`` and ``stft`` both explain the STFT
    magnitude (one infiller serves both); mel settings matter only for ``mel``."""
    rep = dict(rep)
    if rep.get("kind") == "waveform":
        rep["kind"] = "stft"
    if rep.get("kind") != "mel":
        for key in ("n_mels", "fmin", "fmax", "log_offset"):
            rep.pop(key, None)
    return rep


def _rep_dict(representation) -> dict | None:
    if representation is None:
        return None
    return representation.to_dict() if hasattr(representation, "to_dict") else dict(representation)


def load_infiller(path: str | os.PathLike, representation=None, seed: int = 0,
                  device: str | torch.device = "cpu") -> GenerativeInfiller:
    """The infiller fitted by :func:`fit_infiller` in folder ``path`` (or its ``infiller.pt``).

    Returns a :class:`genex.xai.GenerativeInfiller` around the :class:`TFInpainter` (eval mode;
    noise of the input's shape), with ``.representation`` (the settings it was fitted on as a
    dict) and ``.path`` set. With ``representation`` given, a fit on other settings (kind,
    sample rate, FFT size, hop, mel bands, ...) is refused (``waveform`` and ``stft`` count as
    one kind: both explain the STFT magnitude) with a one-line error naming the
    file and the settings that differ; so is a folder that holds no fitted infiller.
    """
    path = Path(path)
    weights = path / WEIGHTS if path.is_dir() else path
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such infiller folder (make one with genex fit-infiller)")
    if not weights.is_file():
        raise ValueError(f"{path}: not a fitted infiller folder (no {WEIGHTS}; make one with "
                         f"genex fit-infiller)")
    saved = load_tensors(weights)
    if not isinstance(saved, dict) or saved.get("format") != FORMAT:
        raise ValueError(f"{weights}: not a genex audio infiller (format "
                         f"{saved.get('format') if isinstance(saved, dict) else type(saved).__name__!r}, "
                         f"expected {FORMAT!r})")
    stored, wanted = saved["representation"], _rep_dict(representation)
    if wanted is not None and _same_spectrogram(wanted) != _same_spectrogram(stored):
        a, b = _same_spectrogram(stored), _same_spectrogram(wanted)
        diff = ", ".join(f"{k} {stored.get(k)!r} (explaining with {wanted.get(k)!r})"
                         for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k))
        raise ValueError(f"{weights}: fitted for another representation: {diff}; fit one for "
                         f"these settings with genex fit-infiller")
    config = saved["network"]
    net = TFInpainter(int(config["n_bins"]), str(config["kind"]), float(config["width"]))
    try:
        net.load_state_dict(saved["weights"])
    except (RuntimeError, KeyError) as err:
        raise ValueError(f"{weights}: weights do not fit the network they name "
                         f"({str(err).splitlines()[0]})") from None
    net = net.to(device).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    infiller = GenerativeInfiller(net, noise_shape=None, seed=seed)
    infiller.representation = stored
    infiller.path = weights
    return infiller
