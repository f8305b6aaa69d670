"""Training of the nsynth study's networks: the classifier Φ and the inpainting GAN.

Both trainers run the pipeline's training loop (:func:`genex.pipeline.training.fit`) and fill
its hooks: the epoch's order, masks and noise come from ``epoch_rng(seed, epoch)`` (the
resume contract of :mod:`genex.pipeline.checkpoint`), the loop checkpoints at every epoch
end and keeps the best epoch on the validation split.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from genex.xai.frechet import frechet_distance
from genex.studies.nsynth.models import Critic, Inpainter, InstrumentCNN
from genex.pipeline.checkpoint import Checkpointer, TrainState, epoch_rng, fingerprint
from genex.pipeline.training import EpochLosses, Loop, autocast, fit, index_batches


__all__ = ["train_classifier", "train_inpainter", "random_masks", "evaluate_classifier",
           "confusion_matrix"]


@torch.no_grad()
def evaluate_classifier(model: nn.Module, x: Tensor, y: Tensor, device: torch.device,
                        batch_size: int = 256) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` on ``(x, y)`` in eval mode."""
    model.eval()
    loss, correct = 0.0, 0
    for idx in index_batches(np.arange(len(x)), batch_size):
        xb, yb = x[idx].to(device), y[idx].to(device)
        out = model(xb).float()
        loss += float(F.cross_entropy(out, yb, reduction="sum"))
        correct += int((out.argmax(1) == yb).sum())
    return loss / max(1, len(x)), correct / max(1, len(x))


def train_classifier(data: dict, params: dict, seed: int, device: torch.device,
                     checkpoints: Path, inputs: dict | None = None) -> tuple[InstrumentCNN, TrainState]:
    """Train Φ on ``data["train"]``, choose the epoch with the best validation accuracy.

    ``data[split] = (x [N, 2, L], y [N])``; params: width, hidden, dropout, epochs,
    batch_size, lr, weight_decay, the augmentations of :func:`_augment` and optionally
    ``label_smoothing`` (cross-entropy towards a softened target) and ``ema`` (decay of an
    exponential moving average of the weights, 0 = off; the average is what is validated and
    returned: it smooths the epoch-to-epoch swings of accuracy on unseen instruments).
    ``inputs``: the files the data came from (see :class:`Checkpointer`).
    """
    x_tr, y_tr = data["train"]
    x_va, y_va = data["valid"]
    model = InstrumentCNN(int(params["n_classes"]), params["width"], params["hidden"],
                          params["dropout"]).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=params["lr"], weight_decay=params["weight_decay"])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, params["epochs"]))
    decay = float(params.get("ema", 0.0))
    averaged = (torch.optim.swa_utils.AveragedModel(
        model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(decay), use_buffers=True)
        if decay > 0 else None)
    objects = {"model": model, "opt": opt, "sched": sched}
    if averaged is not None:
        objects["ema"] = averaged
    ckpt = Checkpointer(checkpoints, objects,
                        fingerprint(params, seed, list(x_tr.shape), list(x_va.shape)), inputs)
    smoothing = float(params.get("label_smoothing", 0.0))

    def batches(epoch: int):
        # the augmentation generator and the order both start from the epoch's own generator
        gen = torch.Generator().manual_seed(int(epoch_rng(seed, epoch).integers(2**31)))
        for idx in index_batches(epoch_rng(seed, epoch).permutation(len(x_tr)), params["batch_size"]):
            yield idx, gen

    def step(batch, loop: Loop) -> dict[str, float]:
        idx, gen = batch
        xb, yb = x_tr[idx].to(device), y_tr[idx].to(device)
        xb = _augment(xb, params.get("gain_jitter", 0.0), params.get("shift_bins", 0),
                      params.get("phase_dropout", 0.0), gen, params.get("freq_masks", 0),
                      params.get("freq_mask_bins", 0))
        with loop.autocast():
            loss = F.cross_entropy(model(xb).float(), yb, label_smoothing=smoothing)
        value = loop.update(loss, opt)
        if averaged is not None:
            averaged.update_parameters(model)
        return {"loss": value}

    def evaluate(epoch: int, losses: EpochLosses) -> tuple[float, dict]:
        judged = averaged.module if averaged is not None else model
        val_loss, val_acc = evaluate_classifier(judged, x_va, y_va, device)
        # best = highest validation accuracy (the loss breaks ties): the number that matters
        return ((1.0 - val_acc) + 1e-3 * val_loss,
                {"epoch": epoch + 1, "train_loss": round(losses.sums["loss"] / len(x_tr), 6),
                 "valid_loss": round(val_loss, 6), "valid_accuracy": round(val_acc, 6)})

    state = fit("classifier", epochs=params["epochs"], checkpointer=ckpt, device=device,
                batches=batches, step=step, evaluate=evaluate, modules=[model], schedulers=[sched],
                weight=lambda batch: len(batch[0]))
    if averaged is not None:
        model.load_state_dict(averaged.module.state_dict())
    return model.eval(), state


@torch.no_grad()
def confusion_matrix(model: nn.Module, x: Tensor, y: Tensor, n_classes: int,
                     device: torch.device, batch_size: int = 256) -> list[list[int]]:
    """``counts[true][predicted]`` of ``model`` on ``(x, y)`` (eval mode)."""
    model.eval()
    counts = torch.zeros(n_classes, n_classes, dtype=torch.long)
    for idx in index_batches(np.arange(len(x)), batch_size):
        pred = model(x[idx].to(device)).argmax(1).cpu()
        counts.index_put_((y[idx].long(), pred), torch.ones(len(idx), dtype=torch.long),
                          accumulate=True)
    return counts.tolist()


def _augment(x: Tensor, gain_jitter: float, shift_bins: int, phase_dropout: float,
             gen: torch.Generator, freq_masks: int = 0, freq_mask_bins: int = 0) -> Tensor:
    """Augmentation: a random per-note magnitude gain (±gain_jitter, relative), a random
    shift by up to ±shift_bins along the log-frequency axis (a transposition: ~10 bins per
    semitone), so Φ learns timbre rather than the training instruments' exact pitches, the
    phase channel zeroed in a share ``phase_dropout`` of the notes (an ablation: Table 1 then
    asks a classifier trained to ignore phase how much it relies on phase), and
    ``freq_masks`` bands of up to ``freq_mask_bins`` bins zeroed in both channels
    (SpecAugment's frequency masking on the log-frequency axis)."""
    if phase_dropout > 0:
        keep = (torch.rand(x.shape[0], 1, 1, generator=gen) >= phase_dropout).to(x)
        x = torch.cat([x[:, :1], x[:, 1:] * keep], dim=1)
    if gain_jitter > 0:
        g = 1.0 + gain_jitter * (2 * torch.rand(x.shape[0], 1, 1, generator=gen) - 1)
        x = torch.cat([x[:, :1] * g.to(x), x[:, 1:]], dim=1)
    if shift_bins > 0:
        length = x.shape[-1]
        shift = torch.randint(-shift_bins, shift_bins + 1, (x.shape[0], 1, 1), generator=gen)
        index = (torch.arange(length).view(1, 1, -1) - shift) % length
        x = torch.gather(x, 2, index.expand(-1, x.shape[1], -1).to(x.device))
    if freq_masks > 0 and freq_mask_bins > 0:
        length = x.shape[-1]
        bins = torch.arange(length).view(1, -1)
        keep = torch.ones(x.shape[0], length, dtype=torch.bool)
        for _ in range(int(freq_masks)):
            width = torch.randint(0, int(freq_mask_bins) + 1, (x.shape[0], 1), generator=gen)
            start = (torch.rand(x.shape[0], 1, generator=gen) * (length - width)).long()
            keep &= ~((bins >= start) & (bins < start + width))
        x = x * keep.unsqueeze(1).to(x)
    return x


def random_masks(n: int, length: int, rng: np.random.Generator, channel_drop: float = 0.2) -> Tensor:
    """Training masks ``[n, 2, L]`` (1 = keep): i.i.d. Bernoulli(p) per component with
    ``p ~ U(0.05, 0.95)`` per note; with probability ``channel_drop`` a whole channel (the
    magnitude or the phase) is dropped instead, as the per-class query does."""
    p = rng.uniform(0.05, 0.95, size=(n, 1, 1))
    masks = (rng.random((n, 2, length)) < p).astype(np.float32)
    whole = rng.random(n) < channel_drop
    channel = rng.integers(0, 2, size=n)
    for i in np.flatnonzero(whole):
        masks[i] = 1.0
        masks[i, channel[i]] = 0.0
    return torch.from_numpy(masks)


@torch.no_grad()
def inpainting_frechet(inpainter: Inpainter, classifier: InstrumentCNN, x: Tensor, seed: int,
                       device: torch.device, keep: float = 0.5, batch_size: int = 256) -> float:
    """Fréchet distance between Φ's penultimate features of real and inpainted notes
    (i.i.d. masks keeping ``keep`` of the components): the GAN's validation score."""
    inpainter.eval()
    rng = np.random.default_rng([seed, 7])
    gen = torch.Generator().manual_seed(seed)
    real, fake = [], []
    for idx in index_batches(np.arange(len(x)), batch_size):
        xb = x[idx]
        mask = torch.from_numpy((rng.random(xb.shape) < keep).astype(np.float32))
        noise = torch.randn(len(idx), inpainter.noise_dim, generator=gen)
        xb, mask, noise = xb.to(device), mask.to(device), noise.to(device)
        with autocast(device):
            out = inpainter(xb * mask, mask, noise).float()
        filled = torch.where(mask == 1, xb, out)
        real.append(classifier.embed(xb).float().cpu())
        fake.append(classifier.embed(filled).float().cpu())
    return frechet_distance(torch.cat(real).numpy(), torch.cat(fake).numpy())


def train_inpainter(data: dict, classifier: InstrumentCNN, params: dict, seed: int,
                    device: torch.device, checkpoints: Path,
                    inputs: dict | None = None) -> tuple[Inpainter, TrainState]:
    """Train G adversarially against a critic (non-saturating GAN loss) plus an L1
    reconstruction term on the dropped components (``recon_weight``; it steadies the short
    CPU training). Best epoch: the lowest validation Fréchet distance of Φ's features."""
    x_tr = data["train"][0]
    x_va = data["valid"][0]
    length = x_tr.shape[-1]
    gen_net = Inpainter(length, params["width"]).to(device)
    critic = Critic(params["critic_width"]).to(device)
    opt_g = torch.optim.Adam(gen_net.parameters(), lr=params["lr"], betas=(0.5, 0.9))
    opt_d = torch.optim.Adam(critic.parameters(), lr=params["lr"], betas=(0.5, 0.9))
    ckpt = Checkpointer(checkpoints, {"generator": gen_net, "critic": critic, "opt_g": opt_g,
                                      "opt_d": opt_d},
                        fingerprint(params, seed, list(x_tr.shape), list(x_va.shape)), inputs)
    classifier.eval()

    def batches(epoch: int):
        rng = epoch_rng(seed, epoch)
        noise_gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
        for idx in index_batches(rng.permutation(len(x_tr)), params["batch_size"]):
            # drawn batch by batch, after the order: the order of draws from rng is the contract
            mask = random_masks(len(idx), length, rng, params["channel_drop"])
            noise = torch.randn(len(idx), gen_net.noise_dim, generator=noise_gen)
            yield idx, mask, noise

    def step(batch, loop: Loop) -> dict[str, float]:
        idx, mask, noise = batch
        return _gan_step(gen_net, critic, opt_g, opt_d, x_tr[idx].to(device), mask.to(device),
                         noise.to(device), params["recon_weight"], loop)

    def evaluate(epoch: int, losses: EpochLosses) -> tuple[float, dict]:
        score = inpainting_frechet(gen_net, classifier, x_va, seed, device)
        record = {k: round(losses.sums[k] / len(x_tr), 6) for k in ("d", "adv", "rec")}
        return score, {"epoch": epoch + 1, **record, "valid_frechet": round(score, 6)}

    state = fit("inpainter", epochs=params["epochs"], checkpointer=ckpt, device=device,
                batches=batches, step=step, evaluate=evaluate, modules=[gen_net, critic],
                weight=lambda batch: len(batch[0]))
    return gen_net.eval(), state


def _gan_step(gen_net: Inpainter, critic: Critic, opt_g, opt_d, x: Tensor, mask: Tensor,
              noise: Tensor, recon_weight: float, loop: Loop) -> dict[str, float]:
    """One critic and one generator update; returns the three loss values."""
    with loop.autocast():
        fake = torch.where(mask == 1, x, gen_net(x * mask, mask, noise).float())
        d_loss = (F.softplus(-critic(x).float()).mean()
                  + F.softplus(critic(fake.detach()).float()).mean())
    d_value = loop.update(d_loss, opt_d, "critic loss")
    with loop.autocast():
        adv = F.softplus(-critic(fake).float()).mean()
        dropped = 1 - mask
        rec = ((fake - x).abs() * dropped).sum() / dropped.sum().clamp_min(1)
        g_loss = adv + recon_weight * rec
    loop.update(g_loss, opt_g, "generator loss")
    return {"d": d_value, "adv": float(adv.detach()), "rec": float(rec.detach())}
