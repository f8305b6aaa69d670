"""genex.audio core: representations, components, audio loading, model SPECs, explain()."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import soundfile as sf
import torch

from helpers.audio_tiny_models import (HOP, N_FFT, RATE, BandEnergy, FramewiseBands, MelBands, MultiLabel,
                               NeedsChannels, Polarity, SpectrogramBands, save_torchscript, tone)
from genex.audio import (AudioError, Representation, explain, explain_many, frequency_bands,
                         load_audio, load_model, make_representation, parse_components,
                         time_frequency_tiles, time_segments)
from genex.audio.explain import ExplainError
from genex.audio.models import ModelError

FAST = dict(steps=20, n_samples=2, in_distribution=False, n_fft=N_FFT, hop=HOP)

# TorchScript is a SPEC users have, even though torch 2.13 deprecates it
pytestmark = pytest.mark.filterwarnings("ignore:.*torch.jit.* is deprecated:DeprecationWarning")

@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("GENEX_NO_PROGRESS", "1")


# ---- representations -------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["waveform", "stft"])
def test_stft_representations_resynthesise_the_clip_with_its_phase(kind):
    rep = make_representation(kind, RATE, n_fft=N_FFT, hop=HOP)
    wave = torch.as_tensor(np.stack([tone(), tone(seed=1)]))
    x = rep.analyse(wave)
    assert x.shape == (2, N_FFT // 2 + 1, rep.n_frames(wave.shape[-1]))
    assert len(rep.frequencies) == x.shape[1] and len(rep.times(x.shape[-1])) == x.shape[-1]
    assert torch.allclose(rep.listen(x, wave), wave, atol=1e-4)


def test_mel_is_log_filterbank_of_the_magnitude_and_listens_back_close():
    rep = make_representation("mel", RATE, n_fft=N_FFT, hop=HOP, n_mels=32)
    wave = torch.as_tensor(tone())[None]
    x = rep.analyse(wave)
    assert x.shape[1] == 32 and rep.frequencies.shape == (32,)
    assert np.all(np.diff(rep.frequencies) > 0) and rep.frequencies[-1] < RATE / 2
    back = rep.listen(x, wave)[0]
    corr = np.corrcoef(back.numpy(), wave[0].numpy())[0, 1]
    assert corr > 0.8, corr  # the pseudo-inverse loses detail, not the signal


def test_the_waveform_a_model_hears_is_differentiable_in_the_spectrogram():
    rep = make_representation("waveform", RATE, n_fft=N_FFT, hop=HOP)
    wave = torch.as_tensor(tone())[None]
    x = rep.analyse(wave).requires_grad_(True)
    heard = rep.model_input(x, rep.phase(wave), wave.shape[-1])
    BandEnergy()(heard)[0, 0].backward()
    grad = x.grad[0].abs().sum(1)
    assert grad[:16].sum() > 0 and grad[64:].sum() < 1e-3 * grad[:16].sum()


def test_representation_settings_round_trip_and_refuse_nonsense():
    rep = make_representation("mel", 16000, n_fft=1024, hop=256, n_mels=80)
    assert Representation.from_dict(rep.to_dict()).same_as(rep)
    with pytest.raises(ValueError, match="unknown kind"):
        make_representation("cqt", 16000)
    with pytest.raises(ValueError, match="unknown settings"):
        Representation.from_dict({**rep.to_dict(), "window": "hann"})


# ---- components ------------------------------------------------------------------------------

def test_tiles_bands_and_segments_cover_every_entry_once():
    shape = (129, 126)
    tiles = time_frequency_tiles(shape, 8, 4)
    assert tiles.n_components == 32 and tiles.sizes().sum() == 129 * 126
    assert int(tiles.labels[0, 0]) == 0 and int(tiles.labels[-1, -1]) == 31
    assert int(tiles.labels[0, -1]) == 3  # component f * time + t: first band, last segment
    bands, segments = frequency_bands(shape, 5), time_segments(shape, 7)
    assert bool((bands.labels == bands.labels[:, :1]).all())  # a band spans the whole clip
    assert bool((segments.labels == segments.labels[:1]).all())
    assert sorted(bands.sizes()[0].tolist()) == [25 * 126] + [26 * 126] * 4  # rows split evenly


def test_parse_components_reads_the_specs_and_explains_bad_ones():
    rep = make_representation("stft", RATE, n_fft=N_FFT, hop=HOP)
    assert parse_components("tiles:4x3", rep, n_frames=50).n_components == 12
    assert parse_components("bands:16", rep, n_frames=50).input_shape == (129, 50)
    assert parse_components("segments:5", rep, n_frames=50).n_components == 5
    for bad in ("tiles:4", "bands:", "grid:3x3", "bands:0", "segments:51"):
        with pytest.raises(ValueError, match="components"):
            parse_components(bad, rep, n_frames=50)


def test_harmonic_components_per_clip_f0():
    rep = make_representation("stft", RATE, n_fft=N_FFT, hop=HOP)
    cmap = parse_components("harmonics:4", rep, f0=[200.0, 300.0], n_frames=20)
    assert cmap.per_input and cmap.n_components == 5
    row_200 = int(np.argmin(np.abs(rep.frequencies - 200.0)))
    assert int(cmap.labels[0, row_200, 0]) == 0 and int(cmap.labels[1, row_200, 0]) != 0


# ---- audio files -----------------------------------------------------------------------------

def test_load_audio_mixes_to_mono_and_resamples_with_a_notice(tmp_path, caplog):
    stereo = np.stack([tone(), tone({500.0: 0.5})], 1)
    sf.write(tmp_path / "s.wav", stereo, RATE)
    wave, sr = load_audio(tmp_path / "s.wav")
    assert sr == RATE and wave.dtype == np.float32 and wave.shape == (RATE,)
    np.testing.assert_allclose(wave, stereo.mean(1), atol=1e-4)
    with caplog.at_level(logging.WARNING, logger="genex.audio"):
        wave, sr = load_audio(tmp_path / "s.wav", sample_rate=16000)
    assert sr == 16000 and wave.shape == (2 * RATE,)
    assert "resampling from 8000 Hz to the 16000 Hz" in caplog.text


@pytest.mark.parametrize("case, message", [
    ("text", "not a readable audio file"), ("empty", "no samples (an empty audio file)"),
    ("nan", "non-finite samples (NaN or inf)"), ("missing", "audio file not found")])
def test_load_audio_names_the_file_and_the_problem_in_one_line(tmp_path, case, message):
    path = tmp_path / f"{case}.wav"
    if case == "text":
        path.write_text("this is not a wav file\n")
    elif case == "empty":
        sf.write(path, np.zeros(0, dtype=np.float32), RATE)
    elif case == "nan":
        sf.write(path, np.full(100, np.nan, dtype=np.float32), RATE, subtype="FLOAT")
    with pytest.raises(AudioError) as err:
        load_audio(path)
    text = str(err.value)
    assert text.startswith(str(path)) and message in text and "\n" not in text


# ---- models ----------------------------------------------------------------------------------

def test_torchscript_and_factory_specs_carry_labels_and_rate(tmp_path, monkeypatch):
    path = save_torchscript(tmp_path / "m.pt")
    loaded = load_model(str(path))
    assert loaded.labels == ["low", "mid", "high"] and loaded.sample_rate == RATE
    assert not loaded.module.training
    wave = torch.as_tensor(tone())[None]
    torch.testing.assert_close(loaded.module(wave), BandEnergy()(wave))
    factory = load_model("helpers.audio_tiny_models:band_energy")
    assert factory.labels == ["low", "mid", "high"] and factory.spec == "helpers.audio_tiny_models:band_energy"


@pytest.mark.parametrize("spec, message", [
    ("no_such_module_xyz:make", "cannot import the factory"),
    ("helpers.audio_tiny_models:no_such_factory", "cannot import the factory"),
    ("nowhere.pt", "no such file"),
])
def test_bad_model_specs_say_what_is_wrong(spec, message):
    with pytest.raises(ModelError, match=message):
        load_model(spec)


def test_a_file_that_is_not_torchscript_is_refused(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="not a TorchScript file"):
        load_model(str(bad))


# ---- explain ---------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["rde-concrete", "rde-l1", "pursuit", "saliency", "ig", "occlusion"])
def test_every_method_finds_the_band_the_class_listens_to(method):
    """Class `low` reads rows 0..15 (< 500 Hz) only; with 8 bands of ~16 rows, band 0 holds
    them and the 200 Hz tone. Every method must put its top score there."""
    e = explain(BandEnergy(), tone(), RATE, components="bands:8", method=method, target="low", **FAST)
    assert e.target["index"] == 0 and e.target["label"] == "low"
    assert e.scores.shape == (8,) and e.mask.shape == (129, RATE // HOP + 1)
    assert int(np.argmax(e.scores)) == 0, (method, e.scores)
    assert e.distortion["0.5"] <= e.distortion["empty"]


def test_rde_is_deterministic_for_a_seed():
    clip, fast = tone(seconds=0.5), {**FAST, "steps": 10}
    a = explain(BandEnergy(), clip, RATE, components="tiles:4x2", seed=3, **fast)
    b = explain(BandEnergy(), clip, RATE, components="tiles:4x2", seed=3, **fast)
    c = explain(BandEnergy(), clip, RATE, components="tiles:4x2", seed=4, **fast)
    np.testing.assert_array_equal(a.scores, b.scores)
    assert not np.array_equal(a.scores, c.scores)


@pytest.mark.parametrize("method", ["rde-concrete", "rde-l1"])
def test_pruning_keeps_a_subset_that_still_holds_the_class(method):
    """--prune drops kept bands the objective does not need: what stays is a subset of RDE's
    kept bands, band 0 (the only one class `low` reads) among them, recorded in the settings;
    other methods refuse it."""
    plain = explain(BandEnergy(), tone(), RATE, components="bands:8", method=method, target="low", **FAST)
    pruned = explain(BandEnergy(), tone(), RATE, components="bands:8", method=method, target="low",
                     prune=True, **FAST)
    kept, left = plain.scores >= 0.5, pruned.scores >= 0.5
    assert left[0] and not (left & ~kept).any(), (plain.scores, pruned.scores)
    assert pruned.settings["prune"] is True and plain.settings["prune"] is False
    np.testing.assert_array_equal(pruned.scores[left], plain.scores[left])
    with pytest.raises(ExplainError, match="prune applies to rde"):
        explain(BandEnergy(), tone(), RATE, components="bands:8", method="saliency", prune=True, **FAST)


def test_auto_target_is_the_predicted_class():
    quiet_low = tone({200.0: 0.05, 3000.0: 0.8})
    e = explain(BandEnergy(), quiet_low, RATE, components="bands:4", method="occlusion", **FAST)
    assert e.target["label"] == "high"
    assert e.target["probability"] > 0.5


def test_multi_label_auto_target_is_the_highest_score():
    e = explain(MultiLabel(), tone(), RATE, components="bands:4", method="saliency", **FAST)
    assert e.target["kind"] == "sigmoid" and e.target["label"] == "low"
    assert e.target["probability"] == pytest.approx(1 / (1 + np.exp(-e.target["logit"])))


def test_framewise_targets_follow_the_span():
    """Low tone in the first half, high tone in the second: the span decides the class, and
    the explanation of the second half keeps the second half's segments."""
    t = np.arange(RATE) / RATE
    wave = np.where(t < 0.5, np.sin(2 * np.pi * 200 * t), np.sin(2 * np.pi * 3000 * t)).astype(np.float32)
    first = explain(FramewiseBands(), wave, RATE, components="segments:4", method="occlusion",
                    span=(0.0, 0.4), **FAST)
    second = explain(FramewiseBands(), wave, RATE, components="segments:4", method="rde-concrete",
                     span=(0.6, 1.0), **FAST)
    assert first.target["label"] == "low" and second.target["label"] == "high"
    assert first.target["kind"] == "framewise" and second.target["span_s"][0] >= 0.55
    assert set(np.argsort(-second.scores)[:2]) == {2, 3}, second.scores


def test_a_spectrogram_model_sees_the_spectrogram():
    e = explain(SpectrogramBands(), tone(), RATE, components="bands:8", method="occlusion",
                target="low", steps=10, n_samples=1, in_distribution=False)
    assert e.representation.kind == "stft" and e.representation.n_fft == N_FFT  # the model's
    assert int(np.argmax(e.scores)) == 0


def test_batches_give_what_each_clip_gives_alone():
    clips = [tone(seed=0), tone({200.0: 0.1, 3000.0: 0.9}, seconds=0.75), tone(seed=2)]
    together = explain_many(BandEnergy(), clips, RATE, components="bands:4", method="occlusion", **FAST)
    assert [e.wave.shape[0] for e in together] == [RATE, 6000, RATE]
    for clip, e in zip(clips, together):
        alone = explain(BandEnergy(), clip, RATE, components="bands:4", method="occlusion", **FAST)
        np.testing.assert_allclose(e.scores, alone.scores, rtol=1e-4, atol=1e-5)
        assert e.target == alone.target


@pytest.mark.parametrize("method", ["pursuit", "occlusion", "saliency", "ig"])
def test_every_clip_of_a_batch_is_heard_with_its_own_phase(method):
    """Batched clips give what each gives alone, also where only the phase tells them apart
    (a clip and its negative). Pursuit's candidates mix clips, so it runs clip by clip."""
    clip = tone({200.0: 0.6, 2500.0: 0.3})
    clips = [clip, -clip]
    fast = {**FAST, "n_samples": 1}
    together = explain_many(Polarity(), clips, RATE, components="bands:8", method=method,
                            infiller="zero", **fast)
    assert [e.target["label"] for e in together] == ["up", "down"]
    for clip, e in zip(clips, together):
        alone = explain(Polarity(), clip, RATE, components="bands:8", method=method,
                        infiller="zero", **fast)
        np.testing.assert_allclose(e.scores, alone.scores, rtol=1e-4, atol=1e-6)
        assert int(np.argmax(e.scores)) == 0  # the 200 Hz band


def test_kept_and_removed_audio_add_up_to_the_clip():
    e = explain(BandEnergy(), tone(), RATE, components="bands:8", method="occlusion", target="low", **FAST)
    kept, removed = e.kept_audio(fraction=0.25), e.removed_audio(fraction=0.25)
    np.testing.assert_allclose(kept + removed, e.wave, atol=1e-4)
    # the kept quarter (the two lowest-scoring bands excluded) holds the 200 Hz tone
    spectrum = np.abs(np.fft.rfft(kept))
    assert spectrum[200] > 10 * spectrum[2500]


def test_unknown_target_names_list_the_labels():
    with pytest.raises(ExplainError, match=r"unknown target 'bird'.*low, mid, high"):
        explain(BandEnergy(), tone(), RATE, target="bird", **FAST)
    with pytest.raises(ExplainError, match="out of range"):
        explain(BandEnergy(), tone(), RATE, target="7", **FAST)


def test_a_model_that_fails_on_the_shape_says_shape_and_spec():
    with pytest.raises(ModelError) as err:
        explain(NeedsChannels(), tone(), RATE, **FAST)
    text = str(err.value)
    assert text.startswith("NeedsChannels:") and f"[1, {RATE}]" in text and "\n" not in text


def test_arrays_need_a_sample_rate_and_are_resampled_to_the_model(caplog):
    with pytest.raises(ExplainError, match="sample_rate"):
        explain(BandEnergy(), tone(), None, **FAST)
    with caplog.at_level(logging.WARNING, logger="genex.audio"):
        e = explain(BandEnergy(), tone(rate=16000), 16000, components="bands:4", method="saliency", **FAST)
    assert e.sample_rate == RATE and e.wave.shape == (RATE,)
    assert "resampling from 16000 Hz to the 8000 Hz" in caplog.text


def test_explain_takes_one_clip_and_points_to_explain_many():
    with pytest.raises(ExplainError, match="explain_many"):
        explain(BandEnergy(), [tone(), tone()], RATE, **FAST)


def test_harmonic_components_from_the_estimated_f0():
    """A 250 Hz note with 3 harmonics: the f0 comes from pYIN and class `low` (< 500 Hz)
    rests on the first harmonic's component (component 0), not the rest (the last one)."""
    note = tone({250.0: 0.6, 500.0: 0.3, 750.0: 0.2})
    e = explain(BandEnergy(), note, RATE, components="harmonics:3", method="occlusion",
                target="low", **FAST)
    assert e.scores.shape == (4,)
    assert int(np.argmax(e.scores)) == 0, e.scores


def test_the_in_distribution_table_rates_every_builtin_infiller():
    pytest.importorskip("genex.audio.indist", reason="F2's in-distribution table is not in this tree")
    e = explain(BandEnergy(), tone(), RATE, components="bands:4", method="saliency",
                **{**FAST, "in_distribution": True})
    rows = {row["infiller"]: row for row in e.in_distribution}
    assert set(rows) == {"noise", "zero", "mean", "blur"}
    assert all(0 <= r["agreement"] <= 1 and r["frechet"] >= 0 for r in rows.values())
    # zeroing half the bands moves the model's outputs further than blurring them in time
    assert rows["zero"]["frechet"] > rows["blur"]["frechet"]


def test_a_mel_model_is_explained_in_its_log_mel_bands():
    e = explain(MelBands(), tone({150.0: 0.8}), RATE, components="bands:4", method="occlusion",
                target="low", **{**FAST, "n_fft": None, "hop": None})
    assert e.representation.kind == "mel" and e.x.shape[0] == 32 and e.mask.shape[0] == 32
    assert int(np.argmax(e.scores)) == 0, e.scores  # mel bands 0..7 = component 0
    assert e.kept_audio().shape == (RATE,) and np.isfinite(e.removed_audio()).all()


def test_a_span_needs_a_framewise_model():
    with pytest.raises(ExplainError, match="--span applies to framewise models"):
        explain(BandEnergy(), tone(), RATE, span=(0.0, 0.5), **FAST)


def test_the_public_namespace_resolves_and_loads_lazily():
    import subprocess
    import sys

    import genex.audio

    assert [name for name in genex.audio.__all__ if not hasattr(genex.audio, name)] == []
    code = "import sys, genex.audio; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"  # `import genex.audio` alone stays cheap
    # the submodule genex.audio.explain imported first must not shadow the function explain
    code = ("from genex.audio.explain import explain_many\nfrom genex.audio import explain\n"
            "import genex.audio\nprint(callable(explain), callable(genex.audio.explain))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True True"


def test_clips_of_one_batch_get_their_own_harmonics():
    notes = [tone({250.0: 0.6, 500.0: 0.3}), tone({400.0: 0.6, 800.0: 0.3})]
    a, b = explain_many(BandEnergy(), notes, RATE, components="harmonics:2", method="occlusion",
                        f0=[250.0, 400.0], **{**FAST, "in_distribution": True})
    rows = a.representation.frequencies
    for e, f0 in ((a, 250.0), (b, 400.0)):
        first = np.nonzero((e.component_map.labels[:, 0] == 0).numpy())[0]  # first harmonic's rows
        nearest = int(np.argmin(np.abs(rows - f0)))
        assert nearest in first and np.abs(first - nearest).max() <= 1  # f0's bin and its neighbours
    assert {r["infiller"] for r in a.in_distribution} >= {"noise", "zero"}
