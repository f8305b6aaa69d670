"""The paper profile's training and explanation steps, one per model, at paper size.

Shared by ``bench_paper_costs.py`` (CPU step costs + FLOP-based GPU estimate) and
``gpu_paper_burst.py`` (a short burst of real steps on a GPU). A *workload* is one
optimisation step of one model at the paper profile's sizes and batch (config/paper.yaml),
built from the study's own model classes and losses where they are importable as one call
(piano's ``inn_losses``), otherwise a plain loss of the same shape (stated in ``what``).
A *rule* is ``steps × workload``: its step counts come from config/paper.yaml and the real
datasets' sizes (:data:`DATASET_SIZES`, ASSUMED where the set is not on this machine).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F

#: Real-dataset sizes the step counts assume (published sizes; ASSUMED where marked).
DATASET_SIZES = {
    "nsynth_train_notes": 289_205,          # NSynth train split (published)
    "nsynth_test_notes": 4_096,             # NSynth test split (published)
    "radiomapseer_train_samples": 500 * 80, # RadioUNet split: 500 train maps x 80 transmitters
    "maps_train_frames": 1_200_000,         # ASSUMED: ~13 h of MAPS training audio at 25 fps
    "maps_smoother_frames": 2_000,          # ASSUMED: crop = min(100000, shortest training piece) ~80 s at 25 fps
    "radio_candidates": 300,                # ASSUMED: buildings + measurements per map (10-299 measurements)
}
#: Key sequences per smoother step in config/paper.yaml: one piece's 88 keys (equal length), 139
#: steps per epoch. The paper trains one sequence at a time (12,232 steps per epoch), which is
#: RNN latency on a GPU: ~51 h for the three smoothers (ESTIMATE) against the 12 h aim.
SMOOTHER_BATCH = 88


@dataclass
class Workload:
    """One step of one model: ``make(device, quick, div)`` returns ``step()`` (forward,
    backward, update) at the paper batch divided by ``div`` (``cpu_div`` on CPU: the cost is
    linear in the batch, so the CPU measures a share and scales it; the GPU runs ``div`` 1)."""

    name: str
    what: str
    batch: int
    make: Callable[[torch.device, bool], Callable[[], None]]
    amp: str = "fp32"             # what the study's trainer runs on CUDA: fp32, bf16, fp16
    sequential_steps: int = 0     # RNN time steps run one after another (latency-bound on a GPU)
    cpu_div: int = 1              # batch divisor for the CPU timing


def _adam(model):
    # foreach: CUDA's default, one multi-tensor kernel per update operator, not one per parameter
    # (the CPU default), so the operator count is that of a GPU step
    return torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4, foreach=True)


def _autocast(device: torch.device, amp: str):
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None and device.type == "cuda")


def _supervised(model, x, loss_of, device, amp):
    model = model.to(device).train()
    x = x.to(device)
    opt = _adam(model)

    def step():
        opt.zero_grad(set_to_none=True)
        with _autocast(device, amp):
            loss = loss_of(model(x))
        loss.float().backward()
        opt.step()
    return step


# ------------------------------------------------------------------------------ nsynth

def _nsynth_classifier(device, quick, div=1):
    from genex.studies.nsynth.models import InstrumentCNN
    b = 4 if quick else 128 // div
    y = torch.randint(0, 11, (b,), device=device)
    return _supervised(InstrumentCNN(11, 32, 128, 0.3), torch.rand(b, 2, 1024), lambda o: F.cross_entropy(o, y),
                       device, "fp32")


def _nsynth_inpainter(device, quick, div=1):
    from genex.studies.nsynth.models import Critic, Inpainter
    b = 4 if quick else 128 // div
    gen, critic = Inpainter(1024, 1.0).to(device).train(), Critic(1.0).to(device).train()
    og, oc = _adam(gen), _adam(critic)
    x = torch.rand(b, 2, 1024, device=device)

    def step():  # one critic and one generator update (adversarial + L1 on dropped entries)
        mask = (torch.rand(b, 2, 1024, device=device) > 0.5).float()
        noise = torch.randn(b, gen.noise_dim, device=device)
        fake = gen(x * mask, mask, noise)
        oc.zero_grad(set_to_none=True)
        (critic(fake.detach()).mean() - critic(x).mean()).backward()
        oc.step()
        og.zero_grad(set_to_none=True)
        (-critic(fake).mean() + ((fake - x).abs() * (1 - mask)).mean()).backward()
        og.step()
    return step


def _rde(notes: int, components: str):
    def make(device, quick, div=1):
        from genex.studies.nsynth.explain import generative_infiller
        from genex.studies.nsynth.models import InstrumentCNN, Inpainter
        from genex.xai import ComponentMap, RDEConcrete
        n = min(notes, 2) if quick else max(1, notes // div)
        phi = InstrumentCNN(11, 32, 128, 0.3).to(device).eval()
        gan = Inpainter(1024, 1.0).to(device).eval()
        x = torch.rand(n, 2, 1024, device=device)
        cmap = (ComponentMap.identity((2, 1024)) if components == "bins"
                else ComponentMap.along_axis((2, 1024), 0))
        # steps=1: one Adam step on the mask (+ the reference forward, a small share)
        rde = RDEConcrete(phi, generative_infiller(gan, 0), cmap, lam=50.0, steps=1, n_samples=8,
                          log_every=0, schedule="constant")
        rde._check_relaxation = lambda *a, **k: None  # once per run, not per step

        def step():
            rde.attribute(x, None)
        return step
    return make


# ------------------------------------------------------------------------------ piano

def _piano_inn(device, quick, div=1):
    from genex.studies.piano.inn import PianoINN, inn_losses
    b = 4 if quick else 32 // div
    torch.manual_seed(0)
    model = PianoINN(hidden=128, n_blocks=5, clamp=2.0).to(device).train()
    opt = _adam(model)
    x, y = torch.rand(b, 144, device=device), (torch.rand(b, 185, device=device) > 0.9).float()

    def step():
        opt.zero_grad(set_to_none=True)
        terms = inn_losses(model, x, y, 1.0, n_projections=2048, lambda_backward=100.0)
        terms["total"].backward()
        opt.step()
    return step


def _smoother(kind: str, hidden: int, layers: int):
    def make(device, quick, div=1):
        from genex.studies.piano.models import KeySmoother
        t = 50 if quick else DATASET_SIZES["maps_smoother_frames"]
        b = 2 if quick else SMOOTHER_BATCH
        model = KeySmoother(kind, hidden, layers, 0.5 if layers > 1 else 0.0)
        target = torch.rand(b, t, 3, device=device)
        return _supervised(model, torch.rand(b, t, 2), lambda o: F.mse_loss(o, target), device, "fp32")
    return make


def _piano_cnn(device, quick, div=1):
    from genex.studies.piano.models import FramewiseCNN
    b = 8 if quick else 256 // div
    y = (torch.rand(b, 88, device=device) > 0.9).float()
    return _supervised(FramewiseCNN(16, 384), torch.rand(b, 144),
                       lambda o: F.binary_cross_entropy_with_logits(o.float(), y), device, "bf16")


# ------------------------------------------------------------------------------ vocal

def _vocal_detector(device, quick, div=1):
    from genex.studies.vocal.models import VocalDetector
    b = 4 if quick else 32 // div
    model = VocalDetector((64, 32, 128, 64), (256, 64), dropout=0.5, padding=0)
    y = torch.rand(b, device=device)
    return _supervised(model, torch.rand(b, 1, 80, 115),
                       lambda o: F.binary_cross_entropy_with_logits(o.float().reshape(-1), y), device, "fp16")


def _vocal_gan(device, quick, div=1):
    from genex.studies.vocal.models import Discriminator, Generator
    b = 4 if quick else 64 // div
    gen, disc = Generator(128, 64).to(device).train(), Discriminator(64).to(device).train()
    og, od = _adam(gen), _adam(disc)
    real = torch.rand(b, 1, 80, 115, device=device)

    def step():  # one discriminator and one generator update (non-saturating GAN)
        with _autocast(device, "fp16"):
            fake = gen.full(torch.randn(b, 128, device=device)) if hasattr(gen, "full") else gen(
                torch.randn(b, 128, device=device))
            d_real, d_fake = disc(real).float().reshape(-1), disc(fake.detach()).float().reshape(-1)
        od.zero_grad(set_to_none=True)
        (F.softplus(-d_real) + F.softplus(d_fake)).mean().backward()
        od.step()
        with _autocast(device, "fp16"):
            g_out = disc(fake).float().reshape(-1)
        og.zero_grad(set_to_none=True)
        F.softplus(-g_out).mean().backward()
        og.step()
    return step


def _vocal_am(device, quick, div=1):
    from genex.studies.vocal.models import Generator, VocalDetector
    b = 4 if quick else 9 * 50 * 2 // div   # (lr, λ) trajectories x N x both directions, one batch
    gen = Generator(128, 64).to(device).eval()
    det = VocalDetector((64, 32, 128, 64), (256, 64), dropout=0.5, padding=0).to(device).eval()
    for p in [*gen.parameters(), *det.parameters()]:
        p.requires_grad_(False)
    z = torch.randn(b, 128, device=device, requires_grad=True)
    opt = torch.optim.Adam([z], lr=0.01)

    def step():
        opt.zero_grad(set_to_none=True)
        (-det(gen(z)).sum() + 0.01 * (z ** 2).sum()).backward()
        opt.step()
    return step


# ------------------------------------------------------------------------------ radio

def _radio_train(channels: int):
    def make(device, quick, div=1):
        from genex.studies.radio.models import RadioWNet
        b, size = (2, 32) if quick else (15 // div, 256)
        target = torch.rand(b, 1, size, size, device=device)
        return _supervised(RadioWNet(channels, 32, 4), torch.rand(b, channels, size, size),
                           lambda o: F.mse_loss(o, target), device, "fp32")
    return make


def _radio_forward(device, quick, div=1):
    """Matching pursuit's unit of work: one batch of candidate maps through Φ, no gradient."""
    from genex.studies.radio.models import RadioWNet
    b, size = (2, 32) if quick else (64 // div, 256)
    model = RadioWNet(3, 32, 4).to(device).eval()
    x = torch.rand(b, 3, size, size, device=device)

    def step():
        with torch.no_grad():
            model(x)
    return step


WORKLOADS: dict[str, Workload] = {w.name: w for w in [
    Workload("nsynth_classifier", "InstrumentCNN(32, 128): cross-entropy step", 128, _nsynth_classifier),
    Workload("nsynth_inpainter", "Inpainter(width 1) + Critic(1): critic + generator update", 128,
             _nsynth_inpainter, cpu_div=4),
    Workload("nsynth_rde_notes", "RDEConcrete step, 110 notes x 8 draws, 2048 bins (Φ + G)", 110 * 8,
             _rde(110, "bins"), cpu_div=11),
    Workload("nsynth_rde_sanity", "RDEConcrete step, 22 notes x 8 draws (evaluate's sanity check)", 22 * 8,
             _rde(22, "bins"), cpu_div=2),
    Workload("nsynth_rde_classes", "RDEConcrete step, 704 notes x 8 draws, 2 components", 704 * 8,
             _rde(704, "channels"), cpu_div=64),
    Workload("piano_inn", "PianoINN(128, 5): the study's inn_losses (fwd, inverse, SWD 2048)", 32, _piano_inn),
    Workload("piano_gru", "KeySmoother gru(4): MSE over 88 key sequences", SMOOTHER_BATCH, _smoother("gru", 4, 1),
             sequential_steps=DATASET_SIZES["maps_smoother_frames"]),
    Workload("piano_lstm", "KeySmoother lstm(4)", SMOOTHER_BATCH, _smoother("lstm", 4, 1),
             sequential_steps=DATASET_SIZES["maps_smoother_frames"]),
    Workload("piano_bigru", "KeySmoother bigru(8, 3 layers)", SMOOTHER_BATCH, _smoother("bigru", 8, 3),
             sequential_steps=DATASET_SIZES["maps_smoother_frames"] * 3),
    Workload("piano_cnn", "FramewiseCNN(16, 384): BCE step", 256, _piano_cnn, amp="bf16"),
    Workload("vocal_detector", "VocalDetector (64,32,128,64 / 256,64) on 80x115: BCE step", 32,
             _vocal_detector, amp="fp16", cpu_div=2),
    Workload("vocal_gan", "DCGAN G(64) + D(64): discriminator + generator update", 64, _vocal_gan, amp="fp16", cpu_div=4),
    Workload("vocal_am", "activation maximisation: Adam on z through G and the detector", 900, _vocal_am, cpu_div=30),
    Workload("radio_phi", "RadioWNet(3 ch, width 32, depth 4) at 256x256: MSE step", 15, _radio_train(3), cpu_div=5),
    Workload("radio_phi_gt", "RadioWNet(2 ch, width 32, depth 4) at 256x256: MSE step", 15, _radio_train(2), cpu_div=5),
    Workload("radio_pursuit", "RadioWNet forward of 64 candidate maps (no gradient)", 64, _radio_forward, cpu_div=16),
]}


def rule_steps(rde_steps: int, class_steps: int) -> dict[str, list[tuple[str, float]]]:
    """Per rule (``rule[job]`` where a rule runs several jobs), ``[(workload, steps)]`` at the
    paper profile (config/paper.yaml), with the per-note RDE at ``rde_steps`` and the
    per-class query at ``class_steps``."""
    d = DATASET_SIZES
    nsynth_epoch = math.ceil(d["nsynth_train_notes"] / 128)
    maps_epoch = math.ceil(d["maps_train_frames"] / 256)
    radio_epoch = math.ceil(d["radiomapseer_train_samples"] / 15)
    # pursuit: examples 20 x 2 queries x k 10 picks x candidates x 3 sample fractions x 8 draws
    pursuit_maps = 20 * 2 * 10 * d["radio_candidates"] * 3 * 8
    return {
        "nsynth_train_classifier": [("nsynth_classifier", 50 * nsynth_epoch)],
        "nsynth_train_classifier[ablation]": [("nsynth_classifier", 50 * nsynth_epoch)],
        "nsynth_train_inpainter": [("nsynth_inpainter", 200 * nsynth_epoch)],
        "nsynth_explain_notes": [("nsynth_rde_notes", 2 * rde_steps)],       # concrete + l1
        # Φ's and the ablation Φ's Table 1 (the exact vertices, forward only, are not counted)
        "nsynth_explain_classes": [("nsynth_rde_classes", class_steps)],
        "nsynth_explain_classes[ablation]": [("nsynth_rde_classes", class_steps)],
        "nsynth_evaluate": [("nsynth_rde_sanity", rde_steps)],  # the re-initialised-Φ sanity check
        "piano_train_inn": [("piano_inn", 512 * 2048)],
        "piano_train_smoother[gru]": [("piano_gru", 100 * 12232 // SMOOTHER_BATCH)],
        "piano_train_smoother[lstm]": [("piano_lstm", 100 * 12232 // SMOOTHER_BATCH)],
        "piano_train_smoother[bigru]": [("piano_bigru", 100 * 12232 // SMOOTHER_BATCH)],
        "piano_train_cnn": [("piano_cnn", 100 * maps_epoch)],
        "vocal_train_detector": [("vocal_detector", 20 * 32000 // 32)],
        "vocal_train_gan": [("vocal_gan", 25 * 64000 // 64)],
        "vocal_activation_max": [("vocal_am", 1000)],
        "radio_train[phi]": [("radio_phi", 50 * radio_epoch)],
        "radio_train[phi_gt]": [("radio_phi_gt", 50 * radio_epoch)],
        "radio_explain": [("radio_pursuit", pursuit_maps / 64)],
    }


@dataclass
class Measured:
    seconds: float
    flops: float
    ops: int
    extra: dict = field(default_factory=dict)


def count_ops_and_flops(step: Callable[[], None]) -> tuple[float, int]:
    """FLOPs (torch's FlopCounterMode: matmuls and convolutions, forward and backward) and
    the number of ATen operators one step dispatches that launch a GPU kernel in eager mode
    (the latency floor of small models). Views and metadata-only operators (``t``, ``view``,
    ``detach``, ``slice``, ``_unsafe_view``) launch none and are not counted: counted, they were
    1,543 of the piano INN's 4,650."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import FlopCounterMode

    class _Count(TorchDispatchMode):
        ops = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if not (func.is_view or func.overloadpacket is torch.ops.aten._unsafe_view):
                _Count.ops += 1
            return func(*args, **(kwargs or {}))

    with FlopCounterMode(display=False) as counter:
        step()
    with _Count():
        step()
    return float(counter.get_total_flops()), _Count.ops


def rnn_flops(kind: str, hidden: int, layers: int, frames: int) -> float:
    """Forward + backward (3x forward) FLOPs of a GRU/LSTM over ``frames`` steps (the flop
    counter does not see fused RNN kernels)."""
    gates = 4 if kind == "lstm" else 3
    directions = 2 if kind == "bigru" else 1
    total = 0.0
    for layer in range(layers):
        n_in = 2 if layer == 0 else hidden * directions
        total += directions * frames * 2 * gates * hidden * (n_in + hidden)
    return 3 * total
