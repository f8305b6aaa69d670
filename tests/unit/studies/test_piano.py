"""Piano study: smoother sizes, the training loops' resume, the backward tools (the tiny DAG:
tests/pipeline/test_piano_run.py).

The issue's core tests (invertibility to 1e-5, the label builder on a hand-written MIDI with
sustain pedal and a re-struck key, the filterbank, SWD = POT²) live in test_piano_core.py.
"""

from __future__ import annotations


import numpy as np
import pytest
import torch
from helpers.trainers import INN_PARAMS, synthetic_frames

from genex.studies.piano.labels import N_KEYS, PHASE, VELOCITY, Y_DIM
from genex.studies.piano.models import PAPER_SMOOTHER_PARAMS, FramewiseCNN, KeySmoother
from genex.pipeline import load_tensors

# ----------------------------------------------------------------------------- models

@pytest.mark.parametrize("kind,hidden,layers", [("gru", 4, 1), ("lstm", 4, 1), ("bigru", 8, 3)])
def test_smoothers_have_the_papers_sizes(kind, hidden, layers):
    model = KeySmoother(kind, hidden, layers, dropout=0.5 if layers > 1 else 0.0)
    assert model.n_parameters() == PAPER_SMOOTHER_PARAMS[kind]
    out = model(torch.zeros(5, 17, 2))
    assert out.shape == (5, 17, 3)


def test_cnn_baseline_is_about_as_large_as_the_inn():
    assert 0.8 * 990_720 < FramewiseCNN().n_parameters() < 1.2 * 990_720
    assert FramewiseCNN()(torch.zeros(3, 144)).shape == (3, 88)


def test_key_sequences_targets():
    from genex.studies.piano.train import key_sequences

    y = np.zeros((6, Y_DIM), np.float32)
    y[1:4, PHASE][:, 5] = [5.0, 4.95, 4.9]
    y[1:4, VELOCITY][:, 5] = 0.5
    y_hat = y + 0.1
    inputs, targets = key_sequences(y_hat, y)
    assert inputs.shape == (N_KEYS, 6, 2) and targets.shape == (N_KEYS, 6, 3)
    np.testing.assert_allclose(inputs[5, :, 0], y_hat[:, 5])
    np.testing.assert_array_equal(targets[5, :, 2], [0, 1, 1, 1, 0, 0])
    assert targets[:5, :, 2].sum() == 0


# ----------------------------------------------------------------------------- training

class Killed(Exception):
    pass


def test_inn_training_resumes_after_a_kill_to_the_same_weights(tmp_path, monkeypatch):
    """A run killed after its first checkpoint and restarted ends with bit-equal weights."""
    import genex.studies.piano.train as tp

    data = synthetic_frames()
    cpu = torch.device("cpu")
    tp.train_inn(data, INN_PARAMS, 3, cpu, tmp_path / "ck_a", tmp_path / "a.pt")

    real_save = tp.Checkpointer.save

    def save_then_die(self, state, best=False):
        real_save(self, state, best)
        raise Killed

    monkeypatch.setattr(tp.Checkpointer, "save", save_then_die)
    with pytest.raises(Killed):
        tp.train_inn(data, INN_PARAMS, 3, cpu, tmp_path / "ck_b", tmp_path / "b.pt")
    assert not (tmp_path / "b.pt").exists()  # nothing half-written
    monkeypatch.setattr(tp.Checkpointer, "save", real_save)
    tp.train_inn(data, INN_PARAMS, 3, cpu, tmp_path / "ck_b", tmp_path / "b.pt")
    a, b = load_tensors(tmp_path / "a.pt"), load_tensors(tmp_path / "b.pt")
    assert len(b["history"]) == 3
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key


def test_inn_training_learns_and_stays_invertible(tmp_path):
    import genex.studies.piano.train as tp

    data = synthetic_frames()
    params = INN_PARAMS | {"epochs": 6, "lr": 3e-3}
    tp.train_inn(data, params, 0, torch.device("cpu"), tmp_path / "ck", tmp_path / "inn.pt")
    history = load_tensors(tmp_path / "inn.pt")["history"]
    assert history[-1]["fit"] < history[0]["fit"]
    model = tp.load_inn(tmp_path / "inn.pt")
    x = torch.as_tensor(data.x)
    with torch.no_grad():
        z, pad, y = model.encode(x)
        x_back, _ = model.decode(z, y, pad)
    assert torch.max(torch.abs(x_back - x)) < 1e-5


def test_smoother_and_cnn_train_and_write_their_models(tmp_path):
    import genex.studies.piano.train as tp

    data = synthetic_frames()
    cpu = torch.device("cpu")
    params = {"hidden": 4, "layers": 1, "dropout": 0.0, "optimizer": "sgd", "lr": 0.05,
              "momentum": 0.9, "epochs": 2, "batch_size": 8, "batches_per_epoch": 2, "crop": 16}
    info = tp.train_smoother("lstm", data, data.y + 0.05, params, 0, cpu, tmp_path / "ck", tmp_path / "lstm.pt")
    assert info["parameters"] == 143
    roll = tp.smooth_roll(tp.load_smoother(tmp_path / "lstm.pt"), data.y[:40], cpu)
    assert roll.shape == (40, 88) and np.all((roll >= 0) & (roll <= 1))
    cnn = {"channels": 2, "hidden": 8, "lr": 1e-3, "epochs": 1, "batch_size": 16, "batches_per_epoch": 0}
    tp.train_cnn(data, cnn, 0, cpu, tmp_path / "ck_cnn", tmp_path / "cnn.pt")
    assert tp.cnn_roll(tp.load_cnn(tmp_path / "cnn.pt"), data.x[:10], cpu).shape == (10, 88)


# ----------------------------------------------------------------------------- backward tools

def test_denoise_and_concept_quantiles():
    from genex.studies.piano.inspection import denoise_labels, quantile_table

    y = np.array([[0.2, 0.6, -0.1]], np.float32)
    np.testing.assert_allclose(denoise_labels(y, 0.5), [[0.0, 0.6, 0.0]])
    table = quantile_table({60: np.arange(101, dtype=float)[None], 21: np.zeros((2, 3))})
    assert list(table) == ["21", "60"]
    assert table["60"] == {"q05": 5.0, "q25": 25.0, "q50": 50.0, "q75": 75.0, "q95": 95.0}


def test_latent_statistics_of_a_normal_sample():
    from genex.studies.piano.evaluate import latent_statistics

    z = np.random.default_rng(0).standard_normal((4000, 9))
    stats = latent_statistics(z)
    assert abs(stats["z_mean"]) < 0.05 and abs(stats["z_std"] - 1) < 0.05
    assert stats["ks_statistic"] < 0.02
    assert latent_statistics(0.1 * z)["ks_statistic"] > 0.3


# ----------------------------------------------------------------------------- tiny DAG

def test_register_table_and_key_ranges_in_the_report():
    from genex.studies.piano.report import ROW_NAMES, _ranges, register_table

    assert _ranges([21, 22, 23, 33, 90, 92, 93]) == "21–23, 33, 90, 92–93"
    assert _ranges([]) == ""
    score = {"precision": 0.5, "recall": 0.25, "f1": 1 / 3, "support": 7}
    empty = {"precision": None, "recall": None, "f1": None, "support": 0}
    regs = {"bass": [21, 47], "middle": [48, 71], "treble": [72, 108]}
    metrics = {"framewise_registers": {"keys": regs, "scores": {
        "pieces": {m: {"bass": empty, "middle": score, "treble": score} for m in ROW_NAMES},
        "chord_sets": {m: {"bass": score, "middle": score, "treble": score} for m in ROW_NAMES}}}}
    table = register_table(metrics)
    assert table["columns"][1] == "bass 21–47, pieces" and table["columns"][4] == "bass 21–47, chord sets"
    assert table["rows"][0][1:] == [None, 33.33, 33.33, 33.33, 33.33, 33.33]
    assert table["rows"][-1] == ["active cells (support)", 0, 7, 7, 7, 7, 7]


# ----------------------------------------------------------------------------- memory-mapped features

def test_memory_mapped_features_train_the_same_models(tmp_path):
    """FrameSet.load(mmap=True) maps x and y in place (MAESTRO's are ~30 GB); training gathers
    each batch from them and learns exactly what it learns from arrays in memory."""
    import genex.studies.piano.train as tp
    from genex.studies.piano.features import FrameSet

    data = synthetic_frames()
    data.save(tmp_path / "pieces.npz")
    mapped = FrameSet.load(tmp_path / "pieces.npz", mmap=True)
    assert isinstance(mapped.x, np.memmap) and isinstance(mapped.y, np.memmap)
    assert not mapped.x.flags.writeable
    for key in FrameSet.__dataclass_fields__:
        assert np.array_equal(getattr(mapped, key), getattr(data, key)), key
    assert np.array_equal(mapped.frame_rows("train"), np.flatnonzero(data.frame_mask("train")))
    cpu = torch.device("cpu")
    params = INN_PARAMS | {"epochs": 1}
    cnn = {"channels": 2, "hidden": 8, "lr": 1e-3, "epochs": 1, "batch_size": 16, "batches_per_epoch": 0}
    for name, source in (("memory", data), ("mapped", mapped)):
        tp.train_inn(source, params, 0, cpu, tmp_path / f"ck_inn_{name}", tmp_path / f"inn_{name}.pt")
        tp.train_cnn(source, cnn, 0, cpu, tmp_path / f"ck_cnn_{name}", tmp_path / f"cnn_{name}.pt")
    for kind in ("inn", "cnn"):
        a, b = (load_tensors(tmp_path / f"{kind}_{n}.pt") for n in ("memory", "mapped"))
        for key, value in a["state_dict"].items():
            assert torch.equal(value, b["state_dict"][key]), (kind, key)


def test_load_arrays_maps_stored_members_and_refuses_pickles(tmp_path):
    from genex.pipeline import load_arrays

    np.savez(tmp_path / "plain.npz", a=np.arange(12.0).reshape(3, 4), empty=np.zeros((0, 5)),
             f=np.asfortranarray(np.arange(6).reshape(2, 3)))
    out = load_arrays(tmp_path / "plain.npz", mmap=True)
    assert isinstance(out["a"], np.memmap) and np.array_equal(out["a"], np.arange(12.0).reshape(3, 4))
    assert np.array_equal(out["f"], np.arange(6).reshape(2, 3)) and out["empty"].shape == (0, 5)
    np.savez_compressed(tmp_path / "packed.npz", a=np.arange(5))
    packed = load_arrays(tmp_path / "packed.npz", mmap=True)["a"]   # compressed: read, not mapped
    assert not isinstance(packed, np.memmap) and packed.tolist() == [0, 1, 2, 3, 4]
    np.savez(tmp_path / "pickled.npz", o=np.array([{"run": "code"}], dtype=object))
    with pytest.raises(ValueError, match="pickled.npz: refused"):
        load_arrays(tmp_path / "pickled.npz", mmap=True)
