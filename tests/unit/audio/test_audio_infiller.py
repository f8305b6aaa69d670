"""genex.audio.infiller and genex.audio.indist: the 2-D inpainting GAN fitted on the user's
audio (shapes, the infiller contract, resume, determinism, that it beats noise and the mean
at reconstructing held-out dropped parts, load errors) and the in-distribution table."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

sf = pytest.importorskip("soundfile")
pytest.importorskip("librosa")

from genex.audio.components import time_segments, time_frequency_tiles  # noqa: E402
from genex.audio.indist import format_table, in_distribution_table, library_infillers  # noqa: E402
from genex.audio.infiller import (TFCritic, TFInpainter, fit_infiller, load_infiller,  # noqa: E402
                                  random_component_masks)
from genex.audio.representations import make_representation  # noqa: E402
from genex.pipeline.io import load_tensors, save_tensors  # noqa: E402
from genex.xai import GenerativeInfiller, MeanInfiller, NoiseInfiller  # noqa: E402

SR = 4000
TINY = {"batch_size": 4, "crop_frames": 16, "width": 0.125, "critic_width": 0.125,
        "valid_crops": 8, "progress": False}


def _tone(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """A harmonic tone (random f0 and phases, 1/k partials) with a short attack: one family
    of sounds whose missing parts are predictable from what is kept."""
    t = np.arange(int(SR * seconds)) / SR
    f0 = rng.uniform(120.0, 360.0)
    wave = sum(np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi)) / k for k in range(1, 6))
    return (0.3 * wave * np.minimum(1.0, t * 40)).astype(np.float32)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny convolutions: one thread is faster than two fighting a busy machine's cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tones(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tones")
    rng = np.random.default_rng(0)
    files = []
    for i in range(5):  # five files: the fifth is held out for validation
        path = folder / f"tone{i}.wav"
        sf.write(path, _tone(rng, 0.8), SR)
        files.append(path)
    return files


@pytest.fixture(scope="module")
def rep():
    return make_representation("stft", SR, n_fft=64, hop=32)


@pytest.fixture(scope="module")
def fitted(tones, rep, tmp_path_factory):
    """A short fit on the tones (the folder several tests read)."""
    out = tmp_path_factory.mktemp("fitted")
    fit_infiller(tones, rep, out, steps=100, seed=0, checkpoint_every=50, **TINY)
    return out


def _weights(folder):
    return load_tensors(folder / "infiller.pt")["weights"]


# --- the networks ---------------------------------------------------------------------------

@pytest.mark.parametrize("n_frames", [1, 7, 16, 53])
def test_inpainter_takes_any_length_and_returns_magnitudes(n_frames):
    torch.manual_seed(0)
    net = TFInpainter(33, "stft", width=0.125).eval()
    x = torch.rand(3, 33, n_frames) * 10
    mask = (torch.rand_like(x) < 0.5).float()
    out = net(x * mask, mask, torch.randn_like(x))
    assert out.shape == x.shape
    assert bool((out >= 0).all())  # STFT magnitudes stay non-negative
    critic = TFCritic(33, "stft", width=0.125)
    assert critic(x).shape == (3,)


def test_inpainter_mel_output_is_signed_and_shapes_are_checked():
    torch.manual_seed(0)
    net = TFInpainter(20, "mel", width=0.125).eval()
    x = torch.randn(2, 20, 12) * 3 - 5  # log-mel values are mostly negative
    net.scaler.mean.fill_(-5.0)
    out = net(x, torch.zeros_like(x), torch.randn_like(x))
    assert bool((out < 0).any())
    with pytest.raises(ValueError, match=r"expected x \[N, 20, Tf\]"):
        net(torch.zeros(2, 21, 12), torch.zeros(2, 21, 12), torch.zeros(2, 21, 12))
    with pytest.raises(ValueError, match="must have the shape of x"):
        net(x, torch.zeros_like(x), torch.zeros(2, 20, 11))


def test_as_generative_infiller_keeps_x_exactly_and_is_differentiable_in_the_mask():
    torch.manual_seed(0)
    infiller = GenerativeInfiller(TFInpainter(33, "stft", width=0.125).eval(), seed=0)
    x = torch.rand(2, 33, 20) * 5
    keep = (torch.rand(2, 33, 20) < 0.4).float()
    z = infiller(x, keep, n_samples=3)
    assert z.shape == (3, 2, 33, 20)
    assert torch.equal(z[:, keep == 1], x[keep == 1].expand(3, -1))  # bit-exact where kept
    assert not torch.equal(z[0], z[1])  # the noise makes the draws differ
    relaxed = torch.full((3, 2, 33, 20), 0.5, requires_grad=True)
    infiller(x, relaxed, n_samples=3).sum().backward()
    assert relaxed.grad is not None and bool(relaxed.grad.abs().sum() > 0)


def test_training_masks_are_binary_varied_and_seeded():
    a = random_component_masks(32, (33, 16), np.random.default_rng(1))
    b = random_component_masks(32, (33, 16), np.random.default_rng(1))
    assert torch.equal(a, b)
    assert set(a.unique().tolist()) <= {0.0, 1.0}
    kept = a.mean(dim=(1, 2))
    assert float(kept.min()) < 0.3 and float(kept.max()) > 0.7  # keep rates spread over (0, 1)
    # time segments (whole columns) and bands (whole rows) both occur
    columns = ((a == a[:, :1, :]).all(dim=1)).all(dim=1)
    rows = ((a == a[:, :, :1]).all(dim=2)).all(dim=1)
    assert bool(columns.any()) and bool(rows.any())


def test_training_masks_include_harmonic_combs_on_the_crop_s_partials(rep):
    """Given the crops, some masks switch the harmonics of an f0 guessed from the crop: rows
    constant over time that alternate between kept and dropped far more often than bands do."""
    freqs = rep.frequencies
    crops = torch.zeros(64, rep.n_bins, 16)
    crops[:, 10] = 5.0  # a partial at row 10 (625 Hz) is the strongest row
    crops[:, 20] = 2.0
    rng = np.random.default_rng(0)
    masks = random_component_masks(64, (rep.n_bins, 16), rng, crops, freqs)
    rows_only = (masks == masks[:, :, :1]).all(dim=2).all(dim=1)
    changes = (masks[:, 1:, 0] != masks[:, :-1, 0]).sum(1)
    assert bool((rows_only & (changes > 6)).any())
    # the guessed f0 is the strongest row over 1, 2 or 3: that row is always on a harmonic
    from genex.audio.infiller import _harmonic_labels
    for seed in range(10):
        labels, n_components = _harmonic_labels(crops[0], freqs, np.random.default_rng(seed))
        rest = n_components - 1
        assert labels[10, 0] != rest and (labels == labels[:, :1]).all()
        assert (labels[:, 0] == rest).sum() > 0
    # a crop whose strongest row is DC gives no f0: its masks fall back to the other kinds
    dc = torch.zeros(64, rep.n_bins, 16)
    dc[:, 0] = 1.0
    fallback = random_component_masks(64, (rep.n_bins, 16), np.random.default_rng(0), dc, freqs)
    assert set(fallback.unique().tolist()) <= {0.0, 1.0}


# --- fitting --------------------------------------------------------------------------------

def test_fit_writes_weights_and_report(fitted, tones, rep):
    report = json.loads((fitted / "infiller.json").read_text())
    assert report["representation"] == rep.to_dict()
    assert report["settings"]["steps"] == 100 and report["settings"]["seed"] == 0
    assert [a["use"] for a in report["audio"]] == ["training"] * 4 + ["validation"]
    assert report["validation"]["from"] == "held-out files"
    assert [h["step"] for h in report["history"]] == [50, 100]
    assert set(report["final_losses"]) == {"critic", "adversarial", "reconstruction"}
    assert all(np.isfinite(v) for v in report["final_losses"].values())
    assert (fitted / "checkpoints" / "last.pt").is_file()


def test_fitted_infiller_beats_noise_and_mean_on_held_out_audio(fitted, tones, rep):
    """After 100 steps on harmonic tones the GAN fills dropped parts of an unseen tone closer
    to the truth (log1p magnitude, L1) than noise or the mean spectrum: a check that fails
    for an untrained or broken network (untrained, it fills in about the mean: measured
    0.153 vs mean 0.154 after 1 step, 0.109 after 100, 0.104 after 200)."""
    final = json.loads((fitted / "infiller.json").read_text())["validation"]["final"]
    assert final["fitted"] < 0.8 * final["mean"], final
    assert final["fitted"] < 0.8 * final["noise"], final
    # independently of the trainer's own validation: the loaded infiller on the held-out file
    infiller = load_infiller(fitted, rep)
    wave, _ = sf.read(tones[4], dtype="float32")
    x = rep.analyse(torch.from_numpy(wave)[None])
    train = torch.cat([rep.analyse(torch.from_numpy(sf.read(f, dtype="float32")[0])[None])
                       for f in tones[:4]], dim=-1)
    row_mean = train.mean(dim=(0, 2)).unsqueeze(-1)
    cmap = time_segments(tuple(x.shape[1:]), 5)
    keep = cmap.expand(torch.tensor([[1.0, 0.0, 1.0, 0.0, 1.0]]))
    dropped = keep == 0

    def error(inf):
        z = inf(x, keep, n_samples=4, generator=torch.Generator().manual_seed(0))
        return float((torch.log1p(z.clamp_min(0)) - torch.log1p(x))[:, dropped].abs().mean())

    noise = NoiseInfiller(row_mean, train.std(dim=(0, 2)).unsqueeze(-1))
    fitted_err, mean_err, noise_err = error(infiller), error(MeanInfiller(row_mean)), error(noise)
    assert fitted_err < mean_err and fitted_err < noise_err, (fitted_err, mean_err, noise_err)


def test_resume_ends_with_the_weights_of_an_uninterrupted_run(tones, rep, tmp_path):
    once = tmp_path / "once"
    fit_infiller(tones, rep, once, steps=5, seed=3, checkpoint_every=2, **TINY)
    parts = tmp_path / "parts"
    fit_infiller(tones, rep, parts, steps=3, seed=3, checkpoint_every=2, **TINY)  # "killed" at 3
    assert load_tensors(parts / "checkpoints" / "last.pt")["state"]["step"] == 3
    fit_infiller(tones, rep, parts, steps=5, seed=3, checkpoint_every=2, **TINY)
    a, b = _weights(once), _weights(parts)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)
    history = json.loads((parts / "infiller.json").read_text())["history"]
    assert [h["step"] for h in history] == [2, 3, 4, 5]


def test_a_run_killed_between_checkpoints_resumes_to_the_same_weights(tones, rep, tmp_path,
                                                                      monkeypatch):
    import genex.audio.infiller as module

    fit_infiller(tones, rep, tmp_path / "once", steps=5, seed=4, checkpoint_every=2, **TINY)
    real_step, calls = module._gan_step, []

    def dies_at_the_fourth_step(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt  # as a kill: steps 3 and 4 are lost, the checkpoint is at 2
        return real_step(*args, **kwargs)

    monkeypatch.setattr(module, "_gan_step", dies_at_the_fourth_step)
    with pytest.raises(KeyboardInterrupt):
        fit_infiller(tones, rep, tmp_path / "killed", steps=5, seed=4, checkpoint_every=2, **TINY)
    assert not (tmp_path / "killed" / "infiller.pt").exists()
    assert load_tensors(tmp_path / "killed" / "checkpoints" / "last.pt")["state"]["step"] == 2
    monkeypatch.setattr(module, "_gan_step", real_step)
    fit_infiller(tones, rep, tmp_path / "killed", steps=5, seed=4, checkpoint_every=2, **TINY)
    a, b = _weights(tmp_path / "once"), _weights(tmp_path / "killed")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)


def test_fit_is_deterministic_for_a_seed(tones, rep, tmp_path):
    runs = {}
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        fit_infiller(tones, rep, tmp_path / name, steps=2, seed=seed, checkpoint_every=2, **TINY)
        runs[name] = _weights(tmp_path / name)
    assert all(torch.equal(runs["a"][k], runs["b"][k]) for k in runs["a"])
    assert not all(torch.equal(runs["a"][k], runs["c"][k]) for k in runs["a"])


def test_restart_and_changed_settings_train_from_scratch(tones, rep, tmp_path):
    out = tmp_path / "run"
    fit_infiller(tones, rep, out, steps=2, seed=0, checkpoint_every=2, **TINY)
    # other settings: the checkpoint is not reused, training starts at step 0 again
    fit_infiller(tones, rep, out, steps=2, seed=0, checkpoint_every=2, lr=1e-3, **TINY)
    assert json.loads((out / "infiller.json").read_text())["history"][0]["step"] == 2
    with pytest.raises(ValueError, match="past steps=1"):
        fit_infiller(tones, rep, out, steps=1, seed=0, checkpoint_every=2, lr=1e-3, **TINY)
    fit_infiller(tones, rep, out, steps=1, seed=0, checkpoint_every=2, lr=1e-3, resume=False, **TINY)
    assert load_tensors(out / "infiller.pt")["steps"] == 1


@pytest.mark.parametrize("n_files, held_out", [(4, 0), (5, 1)])
def test_validation_holds_out_every_fifth_file(tones, rep, tmp_path, n_files, held_out):
    fit_infiller(tones[:n_files], rep, tmp_path, steps=1, **TINY)
    report = json.loads((tmp_path / "infiller.json").read_text())
    assert [a["use"] for a in report["audio"]].count("validation") == held_out
    assert report["validation"]["from"].startswith("held-out" if held_out else "training files")
    assert all(np.isfinite(v) for v in report["validation"]["final"].values())


def test_fit_refuses_bad_audio_and_too_short_files(tones, rep, tmp_path):
    with pytest.raises(ValueError, match="no audio file has 500 frames"):
        fit_infiller(tones, rep, tmp_path / "x", steps=1, **{**TINY, "crop_frames": 500})
    text = tmp_path / "notes.wav"
    text.write_text("not audio")
    with pytest.raises(ValueError, match="notes.wav"):
        fit_infiller([text], rep, tmp_path / "y", steps=1, **TINY)
    assert not (tmp_path / "y" / "infiller.pt").exists()


# --- loading --------------------------------------------------------------------------------

def test_load_infiller_errors_name_the_file(fitted, rep, tmp_path):
    with pytest.raises(FileNotFoundError, match="no such infiller folder"):
        load_infiller(tmp_path / "missing", rep)
    with pytest.raises(ValueError, match="not a fitted infiller folder"):
        load_infiller(tmp_path, rep)
    other = make_representation("stft", SR, n_fft=128, hop=32)
    with pytest.raises(ValueError, match=r"infiller.pt: fitted for another representation: n_fft 64"):
        load_infiller(fitted, other)
    mel = make_representation("mel", SR, n_fft=64, hop=32, n_mels=16)
    with pytest.raises(ValueError, match="kind 'stft' \\(explaining with 'mel'\\)"):
        load_infiller(fitted, mel)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "infiller.pt").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="bad/infiller.pt: not a readable torch file"):
        load_infiller(bad, rep)
    save_tensors(bad / "infiller.pt", {"format": "something else"})
    with pytest.raises(ValueError, match="not a genex audio infiller"):
        load_infiller(bad, rep)
    # waveform models are explained in the same STFT magnitude: the infiller serves them too
    load_infiller(fitted, make_representation("waveform", SR, n_fft=64, hop=32, n_mels=40))
    with pytest.raises(ValueError, match="sample_rate 4000 \\(explaining with 8000\\)"):
        load_infiller(fitted, make_representation("waveform", 8000, n_fft=64, hop=32))
    infiller = load_infiller(fitted / "infiller.pt")  # the file itself, no representation check
    assert infiller.representation == rep.to_dict()
    assert not any(p.requires_grad for p in infiller.net.parameters())


def test_fit_infiller_on_log_mel(tones, tmp_path):
    mel = make_representation("mel", SR, n_fft=64, hop=32, n_mels=16)
    fit_infiller(tones[:2], mel, tmp_path, steps=2, checkpoint_every=2, **TINY)
    report = json.loads((tmp_path / "infiller.json").read_text())
    assert report["validation"]["from"].startswith("training files")
    assert "log-mel" in report["validation"]["metric"]
    infiller = load_infiller(tmp_path, mel)
    x = mel.analyse(torch.from_numpy(sf.read(tones[0], dtype="float32")[0])[None])
    z = infiller(x, torch.zeros_like(x), 1)
    assert z.shape == (1, *x.shape) and bool(torch.isfinite(z).all())


# --- the in-distribution table --------------------------------------------------------------

class _Model(torch.nn.Module):
    """A small classifier over [N, F, Tf] with penultimate features."""

    def __init__(self, n_bins: int, framewise: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = torch.nn.Linear(n_bins, 3)  # 3 features: 5 clips give a full-rank covariance
        self.head = torch.nn.Linear(3, 3)
        self.framewise = framewise

    def embed(self, x):
        h = torch.tanh(self.body(torch.log1p(x.clamp_min(0)).transpose(1, 2)))  # [N, Tf, 3]
        return h if self.framewise else h.mean(1)

    def forward(self, x):
        return self.head(self.embed(x))


def test_in_distribution_table_rows_and_exact_values(tones, rep, fitted):
    x = torch.cat([rep.analyse(torch.from_numpy(sf.read(f, dtype="float32")[0])[None]) for f in tones])
    model = _Model(rep.n_bins)
    cmap = time_frequency_tiles(tuple(x.shape[1:]), 4, 4)
    # one draw per input: at keep rate 1 the obfuscated set is the clean set itself
    rows = in_distribution_table(model, model.embed, x, cmap, keep_rates=(0.0, 0.5, 1.0),
                                 n_samples=1, fitted=load_infiller(fitted, rep))
    assert [(r["infiller"], r["keep_rate"]) for r in rows] == [
        (n, k) for n in ("noise", "zero", "mean", "blur", "fitted") for k in (0.0, 0.5, 1.0)]
    for r in rows:
        assert 0.0 <= r["agreement"] <= 1.0 and r["frechet"] >= 0.0
        if r["keep_rate"] == 1.0:  # nothing removed: every infiller returns x itself
            assert r["frechet"] < 1e-6 and r["agreement"] == 1.0
    # everything removed and zero-filled: every obfuscated input has the features of silence
    with torch.no_grad():
        silent = model.embed(torch.zeros(1, *x.shape[1:]))
        real = model.embed(x).double()
    expected = float(((real.mean(0) - silent[0].double()) ** 2).sum() + torch.trace(torch.cov(real.T)))
    zero = next(r for r in rows if r["infiller"] == "zero" and r["keep_rate"] == 0.0)
    assert zero["frechet"] == pytest.approx(expected, rel=1e-3)
    assert "fitted" in format_table(rows)


def test_in_distribution_table_one_clip_and_framewise_outputs(tones, rep):
    x = rep.analyse(torch.from_numpy(sf.read(tones[0], dtype="float32")[0])[None])
    cmap = time_segments(tuple(x.shape[1:]), 4)
    for framewise in (False, True):
        model = _Model(rep.n_bins, framewise=framewise)
        rows = in_distribution_table(model, model.embed, x, cmap, n_samples=2)
        assert [r["infiller"] for r in rows] == list(library_infillers(x))
        assert all(np.isfinite(r["frechet"]) for r in rows)
    with pytest.raises(ValueError, match=r"x must be \[B, F, Tf\]"):
        in_distribution_table(model, model.embed, x[0], cmap)
