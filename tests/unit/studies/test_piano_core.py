"""Piano study core: filterbank features, frame labels, the INN, SWD and framewise metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genex.pipeline.checkpoint import TrainState
from genex.pipeline.training import Loop
from genex.studies.piano import filterbank as fbk
from genex.studies.piano import labels as pl
from genex.studies.piano.framewise import framewise_prf, framewise_prf_pieces, mean_prf
from genex.studies.piano.swd import random_projections, sliced_wasserstein
from genex.studies.piano import inn

SR = fbk.SAMPLE_RATE


def sine(freq: float, seconds: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


# ----------------------------------------------------------------------------- filterbank

def test_filterbank_has_madmoms_144_bands():
    fb = fbk.log_filterbank()
    assert fb.matrix.shape == (2048, 144)
    assert fb.center_frequencies[0] == pytest.approx(43.07, abs=0.01)
    assert fb.center_frequencies[-1] == pytest.approx(9668.4, abs=0.1)
    assert np.all(np.diff(fb.center_bins) > 0)  # unique filters
    np.testing.assert_allclose(fb.matrix.sum(axis=0), 1.0, rtol=1e-12)  # unit area
    # the peak of every filter is its centre bin
    np.testing.assert_array_equal(fb.matrix.argmax(axis=0), fb.center_bins)


def test_spectrogram_matches_madmom_framing():
    audio = np.random.default_rng(0).standard_normal(SR).astype(np.float32)
    spec = fbk.magnitude_spectrogram(audio)
    assert spec.shape == (SR // fbk.HOP_SIZE + 1, 2048)  # 26 frames for 1 s
    t = 7  # frame 7 is centred on sample 7 * hop, fully inside the signal
    start = t * fbk.HOP_SIZE - fbk.FRAME_SIZE // 2
    ref = np.abs(np.fft.fft(audio[start:start + fbk.FRAME_SIZE] * np.hanning(fbk.FRAME_SIZE)))[:2048]
    np.testing.assert_allclose(spec[t], ref, rtol=1e-4, atol=1e-3)
    # frame 0 is centred on sample 0: its left half is zero padding
    ref0 = np.abs(np.fft.fft(np.concatenate([np.zeros(2048), audio[:2048]]) * np.hanning(4096)))[:2048]
    np.testing.assert_allclose(spec[0], ref0, rtol=1e-4, atol=1e-3)


def test_features_of_a_sine_peak_at_its_band():
    x = fbk.filterbank_spectrogram(sine(440.0, 1.0))
    assert x.shape == (26, 144) and x.dtype == np.float32
    assert np.all(x >= 0)
    centres = fbk.log_filterbank().center_frequencies
    assert abs(centres[x[10].argmax()] - 440.0) < 10.0
    # resampling path: the same tone at 22.05 kHz lands in the same band
    t = np.arange(22050) / 22050
    x22 = fbk.filterbank_spectrogram((0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 22050)
    assert x22[10].argmax() == x[10].argmax()


def test_inverse_filterbank_reproduces_bands_and_audio():
    rng = np.random.default_rng(1)
    audio = sine(440.0, 1.0) + sine(1500.0, 1.0, 0.2) + 0.02 * rng.standard_normal(SR).astype(np.float32)
    x = fbk.filterbank_spectrogram(audio)
    mag = fbk.filterbank_to_magnitude(x)
    assert mag.shape == (len(x), 2048) and np.all(mag >= 0)
    bands = 10.0 ** x - 1.0
    rel = np.abs(mag @ fbk.log_filterbank().matrix - bands).sum() / bands.sum()
    assert rel < 0.01
    wav = fbk.filterbank_to_audio(x, n_iter=8, seed=0)
    np.testing.assert_array_equal(wav, fbk.filterbank_to_audio(x, n_iter=8, seed=0))
    x2 = fbk.filterbank_spectrogram(wav)[:len(x)]
    assert x2[10].argmax() == x[10].argmax()
    assert np.abs(x2 - x).mean() < 0.2 * x.mean()
    with pytest.raises(ValueError, match="144"):
        fbk.filterbank_to_magnitude(np.zeros((3, 100)))


# ----------------------------------------------------------------------------- labels

def write_test_midi(path) -> None:
    """Sustain pedal from 0.3 to 1.0 s, a key re-struck under the pedal, notes outside it."""
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(initial_tempo=120.0)
    piano = pretty_midi.Instrument(program=0)
    for pitch, vel, start, end in [
        (60, 100, 0.0, 0.2),   # before the pedal: frames 0..5
        (64, 64, 0.4, 0.6),    # released under the pedal: sounds until 1.0 -> frames 10..25
        (67, 80, 0.4, 0.8),    # extended by the pedal but cut by the re-strike at 0.72 ...
        (67, 40, 0.72, 0.8),   # ... which sounds until the pedal release: frames 18..25
        (21, 127, 1.2, 1.32),  # lowest key after the pedal: frames 30..33
        (20, 90, 0.0, 1.0),    # below the piano range: ignored
    ]:
        piano.notes.append(pretty_midi.Note(velocity=vel, pitch=pitch, start=start, end=end))
    piano.control_changes += [pretty_midi.ControlChange(64, 127, 0.3),
                              pretty_midi.ControlChange(64, 64, 1.0)]  # 64 is "up" (needs > 64)
    pm.instruments.append(piano)
    pm.write(str(path))


def curve(n: int) -> np.ndarray:
    return 5.0 * 0.99 ** np.arange(n)


def test_labels_from_handwritten_midi(tmp_path):
    path = tmp_path / "hand.mid"
    write_test_midi(path)
    y = pl.labels_from_midi(path, n_frames=40, instrument=3)
    assert y.shape == (40, 185) and y.dtype == np.float32
    phase, vel, instr = y[:, pl.PHASE], y[:, pl.VELOCITY], y[:, pl.INSTRUMENT]

    expected_phase = np.zeros((40, 88))
    expected_vel = np.zeros((40, 88))
    for key, first, last, velocity in [(60 - 21, 0, 5, 100), (64 - 21, 10, 25, 64),
                                       (67 - 21, 10, 18, 80), (67 - 21, 18, 25, 40),
                                       (0, 30, 33, 127)]:
        expected_phase[first:last + 1, key] = curve(last + 1 - first)
        expected_vel[first:last + 1, key] = velocity / 127
    np.testing.assert_allclose(phase, expected_phase, rtol=1e-6)
    np.testing.assert_allclose(vel, expected_vel, rtol=1e-6)
    # the re-struck key restarts its clock at 5 with the new velocity
    assert phase[18, 46] == pytest.approx(5.0) and vel[18, 46] == pytest.approx(40 / 127)
    assert np.all(instr[:, 3] == 1) and instr.sum() == 40
    np.testing.assert_array_equal(pl.active_keys(y), expected_phase > 0)


def test_labels_clip_to_the_frame_count_and_reject_bad_input(tmp_path):
    path = tmp_path / "hand.mid"
    write_test_midi(path)
    y = pl.labels_from_midi(path, n_frames=20, instrument=0)
    assert y.shape == (20, 185)
    np.testing.assert_allclose(y[10:, 64 - 21], curve(10), rtol=1e-6)
    with pytest.raises(ValueError, match="instrument number 9"):
        pl.labels_from_midi(path, n_frames=20, instrument=9)
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"not midi")
    with pytest.raises(ValueError, match="bad.mid"):
        pl.labels_from_midi(bad, n_frames=20, instrument=0)


# ----------------------------------------------------------------------------- INN

def test_inn_has_the_papers_parameter_count():
    model = inn.PianoINN()
    assert model.n_parameters() == 990_720
    couplings = [m for m in model.net.module_list if type(m).__name__ == "RNVPCouplingBlock"]
    assert len(couplings) == 5


def test_inn_is_invertible():
    torch.manual_seed(0)
    model = inn.PianoINN().eval()
    x = torch.rand(256, 144)
    with torch.no_grad():
        z, pad, y = model.encode(x)
        assert (z.shape, pad.shape, y.shape) == ((256, 9), (256, 62), (256, 185))
        x_back, x_pad = model.decode(z, y, pad)
    assert torch.max(torch.abs(x_back - x)) < 1e-5  # float32, x -> out -> x
    assert torch.max(torch.abs(x_pad)) < 1e-5
    # both directions in float64, where round-off cannot hide a wrong inverse
    model = model.double()
    x = torch.rand(256, 256, dtype=torch.float64) * 3.0
    out = torch.randn(256, 256, dtype=torch.float64)
    with torch.no_grad():
        assert torch.max(torch.abs(model.inverse(model(x)) - x)) < 1e-9
        assert torch.max(torch.abs(model(model.inverse(out)) - out)) < 1e-9


def test_inn_permutations_come_from_the_seed_not_global_state():
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    a = inn.PianoINN(hidden=8, seed=1)
    assert np.array_equal(np.random.get_state()[1], before)
    np.random.seed(999)
    b = inn.PianoINN(hidden=8, seed=1)
    c = inn.PianoINN(hidden=8, seed=2)
    perms = lambda m: [p.perm for p in m.net.module_list if hasattr(p, "perm")]  # noqa: E731
    assert all(torch.equal(p, q) for p, q in zip(perms(a), perms(b)))
    assert not all(torch.equal(p, q) for p, q in zip(perms(a), perms(c)))


def test_split_helpers_check_shapes():
    with pytest.raises(ValueError, match="x must have shape"):
        inn.pad_x(torch.zeros(2, 100))
    z, pad, y = inn.split_out(inn.join_out(torch.ones(2, 9), 2 * torch.ones(2, 185)))
    assert torch.all(z == 1) and torch.all(pad == 0) and torch.all(y == 2)


def test_backward_ramp():
    assert inn.backward_ramp(0) == 0.0
    assert inn.backward_ramp(128) == pytest.approx(np.sqrt(2) - 1)
    assert inn.backward_ramp(256) == 1.0 and inn.backward_ramp(500) == 1.0
    assert inn.backward_ramp(8, ramp_epochs=16) == pytest.approx(np.sqrt(2) - 1)


def test_inn_losses_terms_and_determinism():
    torch.manual_seed(0)
    model = inn.PianoINN(hidden=16)
    x, y = torch.rand(32, 144), torch.rand(32, 185)
    losses = lambda epoch: inn.inn_losses(  # noqa: E731
        model, x, y, epoch, n_projections=64, generator=torch.Generator().manual_seed(5))
    terms = losses(0)
    assert set(terms) == {"fit", "latent", "yz_pad", "x_recon", "x_pad", "backward", "total", "ramp"}
    assert terms["backward"].item() == 0.0  # ramp is 0 at epoch 0
    parts = sum(v for k, v in terms.items() if k not in ("total", "ramp"))
    assert terms["total"].item() == pytest.approx(parts.item())
    assert all(torch.isfinite(v) for v in terms.values())
    again = losses(0)
    assert all(again[k].item() == terms[k].item() for k in terms)  # same generator, same losses
    late = losses(256)
    assert late["backward"].item() > 0 and late["ramp"].item() == 1.0


def test_inn_training_reduces_the_loss():
    torch.manual_seed(0)
    model = inn.PianoINN(hidden=32)
    optimizer, _ = inn.make_optimizer(model)
    assert optimizer.defaults["betas"] == (0.8, 0.8) and optimizer.defaults["eps"] == 1e-4
    gen = torch.Generator().manual_seed(0)
    x, y = torch.rand(32, 144), (torch.rand(32, 185) > 0.8).float()
    loop = Loop(torch.device("cpu"), TrainState(), amp=False)
    history = []
    for _ in range(15):  # the pipeline's step: the released code's ±15 gradient clamp
        model.train()
        terms = inn.inn_losses(model, x, y, 0, n_projections=128, generator=gen)
        loop.update(terms["total"], optimizer, clip_value=15.0)
        history.append({k: float(v.detach()) for k, v in terms.items()})
    assert history[-1]["fit"] < 0.6 * history[0]["fit"]
    assert history[-1]["x_recon"] < history[0]["x_recon"]


# ----------------------------------------------------------------------------- SWD

def test_swd_equals_pot_squared_with_the_same_projections():
    ot = pytest.importorskip("ot")
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(50, 7, generator=gen, dtype=torch.float64)
    b = torch.randn(50, 7, generator=gen, dtype=torch.float64) * 2 + 1
    proj = random_projections(7, 300, gen, dtype=torch.float64)
    np.testing.assert_allclose(proj.norm(dim=0).numpy(), 1.0)
    ours = sliced_wasserstein(a, b, projections=proj).item()
    pot = ot.sliced_wasserstein_distance(a.numpy(), b.numpy(), projections=proj.numpy())
    assert ours == pytest.approx(float(pot) ** 2, rel=1e-10)


def test_swd_properties():
    gen = torch.Generator().manual_seed(1)
    a = torch.randn(64, 5, generator=gen, requires_grad=True)
    d0 = sliced_wasserstein(a, a.detach().clone(), n_projections=256)
    d0.backward()
    assert d0.item() == pytest.approx(0.0, abs=1e-12) and torch.all(torch.isfinite(a.grad))
    b = torch.randn(64, 5, generator=gen) + 3.0
    d1 = sliced_wasserstein(a, b, 256, generator=torch.Generator().manual_seed(2))
    d2 = sliced_wasserstein(a, b, 256, generator=torch.Generator().manual_seed(2))
    d3 = sliced_wasserstein(a, b, 256, generator=torch.Generator().manual_seed(3))
    assert d1.item() == d2.item() != d3.item()  # fresh projections per call
    assert d1.item() > 1.0  # a shift by 3 in 5 dims: E[(3 * sum(u))^2] = 9
    with pytest.raises(ValueError, match="same shape"):
        sliced_wasserstein(a, b[:10])


# ----------------------------------------------------------------------------- framewise

def test_framewise_prf_hand_example():
    target = np.zeros((4, 88), bool)
    pred = np.zeros((4, 88), bool)
    target[0, 39] = target[1, 39] = target[2, 43] = True
    pred[0, 39] = pred[1, 39] = pred[3, 50] = True  # 2 hits, 1 false alarm, 1 miss
    r = framewise_prf(pred, target)
    assert (r["tp"], r["fp"], r["fn"]) == (2, 1, 1)
    assert r["precision"] == pytest.approx(2 / 3) and r["recall"] == pytest.approx(2 / 3)
    assert r["f1"] == pytest.approx(2 / 3)
    empty = framewise_prf(np.zeros((4, 88), bool), target)
    assert empty["precision"] == 0.0 and empty["f1"] == 0.0
    with pytest.raises(ValueError, match="shape"):
        framewise_prf(pred[:3], target)


def test_framewise_prf_agrees_with_mir_eval():
    mir_eval = pytest.importorskip("mir_eval")
    rng = np.random.default_rng(0)
    target = rng.random((200, 88)) < 0.05
    pred = target ^ (rng.random((200, 88)) < 0.02)
    times = np.arange(200) * 0.04

    def freqs(roll):
        return [mir_eval.util.midi_to_hz(np.flatnonzero(row) + 21.0) for row in roll]

    p, r = mir_eval.multipitch.metrics(times, freqs(target), times, freqs(pred))[:2]
    ours = framewise_prf(pred, target)
    assert ours["precision"] == pytest.approx(p) and ours["recall"] == pytest.approx(r)


def test_mean_over_pieces():
    target = np.zeros((2, 88), bool)
    target[0, 0] = True
    perfect = target.astype(float)  # scores: 1.0 > 0.5
    half = np.zeros((2, 88))
    half[0, 0] = half[1, 1] = 0.9  # precision 0.5, recall 1
    m = framewise_prf_pieces([perfect, half], [target, target])
    assert m["precision"] == pytest.approx(0.75) and m["recall"] == pytest.approx(1.0)
    assert m["f1"] == pytest.approx((1.0 + 2 / 3) / 2)
    with pytest.raises(ValueError):
        mean_prf([])


def test_register_f1_on_a_hand_made_roll():
    """Bass fully found, middle half found with a false alarm, treble missed entirely."""
    from genex.studies.piano.data import REGISTERS
    from genex.studies.piano.framewise import register_prf

    assert REGISTERS == {"bass": (21, 47), "middle": (48, 71), "treble": (72, 108)}
    target, pred = np.zeros((10, 88), bool), np.zeros((10, 88), bool)
    target[0:4, 21 - 21] = pred[0:4, 21 - 21] = True        # A0 lowest key: 4 hits
    target[0:2, 47 - 21] = pred[0:2, 47 - 21] = True        # B2 (last bass key): 2 hits
    target[0:4, 48 - 21] = True                             # C3 (first middle key): 4 cells,
    pred[0:2, 48 - 21] = True                               #   2 found
    pred[5, 60 - 21] = True                                 # a false alarm at middle C
    target[0:3, 108 - 21] = True                            # C8: 3 cells, never predicted
    pred[7, 100 - 21] = True                                # and a false alarm at E7
    second = np.zeros((5, 88), bool)                        # a second recording, pooled:
    second[0, 72 - 21] = True                               # C5 (first treble key) found once
    scores = register_prf([pred, second], [target, second], REGISTERS)
    assert scores["bass"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 6}
    middle = scores["middle"]
    assert middle["precision"] == pytest.approx(2 / 3) and middle["recall"] == pytest.approx(0.5)
    assert middle["f1"] == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5)) and middle["support"] == 4
    treble = scores["treble"]   # 1 hit, 1 false alarm, 3 misses
    assert treble["precision"] == pytest.approx(0.5) and treble["recall"] == pytest.approx(0.25)
    assert treble["f1"] == pytest.approx(1 / 3) and treble["support"] == 4
    # a register without notes has no score (nothing to find), whatever is predicted there
    quiet = register_prf([pred], [np.zeros((10, 88), bool)], REGISTERS)
    assert quiet["bass"] == {"precision": None, "recall": None, "f1": None, "support": 0}


def test_encode_frames_fills_its_one_array_batch_by_batch_as_one_forward_would():
    from genex.studies.piano.train import build_inn, encode_frames

    model = build_inn({"hidden": 8, "blocks": 1, "clamp": 2.0}, 0).eval()
    x = np.random.default_rng(0).random((23, 144), dtype=np.float32)
    with torch.no_grad():
        whole = model(torch.cat([torch.from_numpy(x), torch.zeros(23, 112)], 1)).numpy()
    batched = encode_frames(model, x, torch.device("cpu"), batch=5)   # the last batch is short
    assert batched.shape == (23, 256) and batched.dtype == np.float32
    np.testing.assert_allclose(batched, whole, rtol=1e-5, atol=1e-6)
