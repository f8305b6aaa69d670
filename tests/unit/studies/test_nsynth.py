"""nsynth study: features, networks, infillers on the study's shapes, RDE on a planted
classifier over [2, 1024], the per-class query, resumable training (the tiny DAG:
tests/pipeline/test_nsynth_run.py).

Already covered generically in test_explain.py (not repeated here): infillers keep kept
entries bit-exactly for every infiller kind, and the concrete sampler's mean matches its
probabilities (``test_concrete_mask_mean_matches_probabilities``).
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from helpers.trainers import CLF_PARAMS, toy_family_data
from torch import nn

from genex.xai import BlurInfiller, MeanInfiller, NoiseInfiller, ZeroInfiller
from genex.studies.nsynth.explain import (
    class_query,
    explain_notes,
    generative_infiller,
    keep_top,
    select_notes,
    vertex_distortions,
)
from genex.studies.nsynth.spectrum import log_frequencies, note_spectrum, resynthesise
from genex.studies.nsynth.models import Critic, Inpainter, InstrumentCNN, count_parameters

SHAPE = (2, 1024)
BAND = list(range(400, 440))  # planted: magnitude bins 400..439 (≈ 0.6–0.8 kHz)


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("GENEX_NO_PROGRESS", "1")


# ---- features --------------------------------------------------------------------------------
def test_features_are_power_normalised_log_frequency_spectra():
    sr = 16000
    t = np.arange(sr) / sr
    audio = 0.3 * np.sin(2 * np.pi * 440.0 * t)
    spec = note_spectrum(audio, sr)
    assert spec.shape == SHAPE and spec.dtype == np.float32
    assert np.mean(spec[0].astype(np.float64) ** 2) == pytest.approx(1.0, rel=1e-5)
    f = log_frequencies()
    assert f[0] == pytest.approx(20.0) and f[-1] == pytest.approx(8000.0)
    assert abs(f[int(np.argmax(spec[0]))] - 440.0) < 3.0  # the peak sits at the tone
    assert np.all(np.abs(spec[1]) <= 1.0)
    # power normalisation: the level of the note does not matter
    assert np.allclose(note_spectrum(3 * audio, sr)[0], spec[0], rtol=1e-4, atol=1e-5)
    assert not note_spectrum(np.zeros(sr), sr)[0].any()  # silence stays zero, no NaN
    with pytest.raises(ValueError, match="Nyquist"):
        note_spectrum(audio, 8000)


def test_resynthesis_puts_energy_at_the_kept_frequencies():
    spec = np.zeros(SHAPE, np.float32)
    k = int(np.argmin(np.abs(log_frequencies() - 1000.0)))
    spec[0, k] = 1.0
    audio = resynthesise(spec, 16000, seconds=1.0)
    peak_hz = np.argmax(np.abs(np.fft.rfft(audio))) * 16000 / audio.size
    assert abs(peak_hz - log_frequencies()[k]) < 2.0
    assert np.max(np.abs(audio)) == pytest.approx(0.5, rel=1e-4)
    assert not resynthesise(np.zeros(SHAPE), 16000, 0.1).any()


# ---- networks --------------------------------------------------------------------------------
def test_inpainter_has_the_papers_table2_size_and_shapes():
    full = Inpainter(1024, width=1.0)
    assert count_parameters(full) == 737_266  # paper Table 2
    assert full.bottleneck_len == 112
    small = Inpainter(1024, width=0.125).eval()
    x = torch.randn(3, *SHAPE)
    mask = (torch.rand(3, *SHAPE) > 0.5).float()
    out = small(x * mask, mask, torch.randn(3, small.noise_dim))
    assert out.shape == (3, *SHAPE)
    assert bool((out[:, 0] >= 0).all()) and bool((out[:, 1].abs() <= 1).all())
    with pytest.raises(ValueError, match="noise"):
        small(x * mask, mask, torch.randn(3, 5))
    assert Critic(0.25)(x).shape == (3,)
    clf = InstrumentCNN(11, 4, 16).eval()
    assert clf(x).shape == (3, 11) and clf.embed(x).shape == (3, 16)


def test_every_study_infiller_keeps_kept_components_bit_exactly():
    torch.manual_seed(0)
    x = torch.randn(4, *SHAPE)
    keep = (torch.rand(4, *SHAPE) > 0.5).float()
    gan = generative_infiller(Inpainter(1024, width=0.0625).eval(), seed=0)
    for infiller in (gan, ZeroInfiller(), MeanInfiller(x.mean(0)), NoiseInfiller(0.0, 1.0),
                     BlurInfiller(8.0)):
        z = infiller(x, keep, 3)
        assert z.shape == (3, 4, *SHAPE)
        kept = keep.bool().expand_as(z)
        assert torch.equal(z[kept], x.expand_as(z)[kept]), type(infiller).__name__
    z = gan(x, keep, 2)
    assert not torch.equal(z[0], z[1])  # fresh noise per draw


# ---- explanation -----------------------------------------------------------------------------
class PlantedSpectrumModel(nn.Module):
    """Two logits over [2, 1024]: logit 0 sums the planted magnitude band, logit 1 is 0."""

    def __init__(self, channel: int = 0, band: list[int] = BAND) -> None:
        super().__init__()
        w = torch.zeros(2, *SHAPE)
        w[0, channel, band] = 1.0
        self.weight = nn.Parameter(w)

    def forward(self, z):
        return torch.einsum("ncl,kcl->nk", z, self.weight)


RDE_PARAMS = dict(lam=20.0, temperature=0.1, lr_concrete=0.1, lr_l1=0.05, steps=120,
                  n_samples=4, init=0.5, class_lam=1.0, class_lr=0.1, class_steps=120)


def test_rde_explains_a_planted_band_on_the_study_shape():
    g = torch.Generator().manual_seed(0)
    x = 1.0 + torch.rand(3, *SHAPE, generator=g)
    masks = explain_notes(PlantedSpectrumModel(), NoiseInfiller(0.0, 1.0), x, RDE_PARAMS, seed=0)
    for name in ("rde_concrete", "rde_l1"):
        m = masks[name]
        assert m.shape == (3, 2048)
        top = m.topk(len(BAND), dim=1).indices
        overlap = [len(set(r.tolist()) & set(BAND)) / len(BAND) for r in top]
        assert min(overlap) >= 0.8, (name, overlap)


def test_class_query_separates_magnitude_from_phase():
    """One logit reads both channels' band; family 0's notes carry it in the phase only,
    family 1's in the magnitude only, so (zero infill) each family needs one channel."""

    class BandSum(nn.Module):
        def forward(self, z):
            return (z[:, 0, BAND].sum(1) + z[:, 1, BAND].sum(1)).unsqueeze(1)

    g = torch.Generator().manual_seed(1)
    x = 1.0 + torch.rand(8, *SHAPE, generator=g)
    x[:4, 0, BAND] = 0.0   # family 0: nothing in the magnitude band
    x[4:, 1, BAND] = 0.0   # family 1: nothing in the phase band
    families = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    probs, history = class_query(BandSum(), ZeroInfiller(), x, families, 3, RDE_PARAMS, seed=0)
    assert probs.shape == (3, 2)
    assert float(probs[0, 1]) > 0.9 and float(probs[0, 0]) < 0.1   # family 0: phase
    assert float(probs[1, 0]) > 0.9 and float(probs[1, 1]) < 0.1   # family 1: magnitude
    assert bool(torch.isnan(probs[2]).all())  # a family without notes has no answer
    assert history["loss"][-1] < history["loss"][0]


def test_keep_top_and_note_selection():
    scores = torch.tensor([[0.1, 0.9, 0.5, 0.5], [1.0, 0.0, 0.0, 0.0]])
    assert keep_top(scores, 0.5).tolist() == [[0, 1, 1, 0], [1, 1, 0, 0]]  # ties: lower index
    assert keep_top(scores, 0.0).sum() == 0
    labels = np.array([0] * 10 + [1] * 3 + [2] * 5)
    idx = select_notes(labels, 4, 4)
    assert np.bincount(labels[idx], minlength=4).tolist() == [4, 3, 4, 0]
    assert idx[0] == 0 and 9 in idx  # spread over the family, both ends


# ---- training resumes after a kill ----------------------------------------------------------
def test_classifier_training_resumes_after_a_kill(tmp_path, monkeypatch, caplog):
    from genex.pipeline import checkpoint as ckpt_mod
    from genex.studies.nsynth.train import train_classifier

    data = toy_family_data()
    torch.manual_seed(0)
    whole, state = train_classifier(data, CLF_PARAMS, 0, torch.device("cpu"), tmp_path / "a")
    assert state.epoch == 3 and len(state.history) == 3

    saves = {"n": 0}
    real_save = ckpt_mod.Checkpointer.save

    def dying_save(self, st, best=False):
        real_save(self, st, best)
        saves["n"] += 1
        if saves["n"] == 2:
            raise KeyboardInterrupt("killed")  # the job dies right after epoch 2's checkpoint

    monkeypatch.setattr(ckpt_mod.Checkpointer, "save", dying_save)
    torch.manual_seed(0)
    with pytest.raises(KeyboardInterrupt):
        train_classifier(data, CLF_PARAMS, 0, torch.device("cpu"), tmp_path / "b")
    monkeypatch.setattr(ckpt_mod.Checkpointer, "save", real_save)
    torch.manual_seed(123)  # a resumed run must not depend on the global seed at start
    with caplog.at_level(logging.INFO, logger="genex.pipeline.checkpoint"):
        resumed, state_b = train_classifier(data, CLF_PARAMS, 0, torch.device("cpu"), tmp_path / "b")
    assert "resumed from checkpoint" in caplog.text and "at epoch 2" in caplog.text
    assert state_b.epoch == 3 and state_b.history == state.history
    for (k, a), (_, b) in zip(whole.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), k


# ---- the tiny run ----------------------------------------------------------------------------
def test_exact_vertex_finds_the_known_optimum_and_the_converged_concrete_query_agrees():
    """A logit reads a magnitude band and a phase band; with zero infill the expected
    distortion of each (magnitude, phase) vertex is known in closed form. Family 0 carries
    the band in the magnitude only (keep magnitude), 1 in the phase only (keep phase), 2 in
    both (keep both), 3 almost nowhere (keep nothing: the rate costs more than the loss)."""
    from genex.studies.nsynth.explain import VERTICES, exact_vertex, vertex_distortions

    class BandSum(nn.Module):
        def forward(self, z):
            return 0.1 * (z[:, 0, BAND].sum(1) + z[:, 1, BAND].sum(1)).unsqueeze(1)

    g = torch.Generator().manual_seed(3)
    x = 1.0 + torch.rand(8, *SHAPE, generator=g)
    families = torch.arange(4).repeat_interleave(2)
    x[families == 0, 1] = 0.0
    x[families == 1, 0] = 0.0
    x[families == 3] *= 0.01
    lam = 10.0
    per_note = vertex_distortions(BandSum(), ZeroInfiller(), x, draws=2, seed=0)
    mag = 0.1 * x[:, 0, BAND].sum(1)
    phase = 0.1 * x[:, 1, BAND].sum(1)
    expected = torch.stack([0.5 * (mag + phase) ** 2, 0.5 * phase ** 2, 0.5 * mag ** 2,
                            torch.zeros_like(mag)])
    assert torch.allclose(per_note, expected, rtol=1e-4, atol=1e-6)
    result = exact_vertex(per_note, families, 5, lam)
    known = [(1, 0), (0, 1), (1, 1), (0, 0)]
    assert [tuple(int(v) for v in row) for row in result["optimum"][:4]] == known
    assert all(VERTICES[int(torch.argmin(result["objective"][f]))] == known[f] for f in range(4))
    assert bool((result["margin"][:4] > 0).all()) and int(result["notes"][4]) == 0
    assert bool(torch.isnan(result["optimum"][4]).all())  # no notes, no answer

    params = {**RDE_PARAMS, "class_lam": lam, "class_lr": 0.2, "class_steps": 200,
              "class_schedule": "cosine", "class_warmup": 0.1, "n_samples": 2}
    probs, _ = class_query(BandSum(), ZeroInfiller(), x, families, 5, params, seed=0)
    rounded = [tuple(int(p >= 0.5) for p in row.tolist()) for row in probs[:4]]
    assert rounded == known
    # converged: every keep probability decided, none left near ½
    assert bool(((probs[:4] < 0.05) | (probs[:4] > 0.95)).all()), probs[:4]


def test_bimodal_share_counts_decided_keep_probabilities():
    from genex.studies.nsynth.explain import bimodal_share

    assert bimodal_share(torch.tensor([0.0, 0.04, 0.5, 0.96, 1.0])) == pytest.approx(0.8)
    assert bimodal_share(torch.tensor([[0.3, 0.7]])) == 0.0


def test_explain_classes_under_a_memory_budget_equals_unbatched():
    """rde.max_batch_mb splits the classifier's and the GAN's forwards (vertex draws, the
    per-class graph) into slices; the draws are made for the whole batch, so Table 1's
    numbers do not move."""
    from genex.studies.nsynth.explain import within_budget

    torch.manual_seed(0)
    model = InstrumentCNN(n_classes=3, width=2, hidden=8).eval()
    gan = Inpainter(1024, width=0.0625).eval()
    x = 1.0 + torch.rand(4, *SHAPE, generator=torch.Generator().manual_seed(4))
    families = torch.tensor([0, 0, 1, 2])
    params = dict(RDE_PARAMS, class_steps=2, n_samples=2)

    def table(m, g):
        per_note = vertex_distortions(m, generative_infiller(g, 0), x, draws=3, seed=0)
        probs, _ = class_query(m, generative_infiller(g, 0), x, families, 3, params, seed=0)
        return per_note, probs

    plain = table(model, gan)
    small_model, small_gan = within_budget(model, gan, x, 0.6)   # GAN 2 rows, CNN 10 (of 8 and 12)
    assert small_gan.rows < 8 and small_model.rows < 12, (small_gan.rows, small_model.rows)
    chunked = table(small_model, small_gan)
    torch.testing.assert_close(chunked[0], plain[0], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(chunked[1], plain[1], atol=1e-6, rtol=1e-5)
