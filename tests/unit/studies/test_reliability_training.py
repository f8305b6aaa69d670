"""Reliability of training (library level, seconds): every one of the eight training loops

* stops on a non-finite loss with an error naming the epoch and step, and writes nothing;
* writes checkpoints that load with ``weights_only=True`` (``genex.pipeline.io.load_tensors``);

and the Checkpointer

* resumes only a run with the same inputs (input files, code), saying what changed;
* discards a corrupt or foreign ``last.pt``/``best.pt``, names it, and trains from scratch.

The pipeline-level tests (an upstream change retrains every model, SIGKILL + resume of every
training rule) are in test_reliability_training_pipeline.py.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.trainers import CLF_PARAMS, INN_PARAMS, POOL, synthetic_frames, synthetic_split, toy_family_data

from genex.pipeline import checkpoint
from genex.pipeline.io import load_tensors

CPU = torch.device("cpu")
SMOOTHER = {"hidden": 4, "layers": 1, "dropout": 0.0, "optimizer": "adam", "lr": 0.01,
            "momentum": 0.9, "epochs": 2, "batch_size": 8, "batches_per_epoch": 2, "crop": 16}
CNN = {"channels": 2, "hidden": 8, "lr": 1e-3, "epochs": 2, "batch_size": 16, "batches_per_epoch": 0}
INPAINTER = {"width": 0.0625, "critic_width": 0.125, "epochs": 2, "batch_size": 16, "lr": 5e-4,
             "recon_weight": 1.0, "channel_drop": 0.2}
DETECTOR = {"conv": [2, 2, 4, 4], "dense": [8, 4], "padding": 1, "epochs": 2, "batch": 16,
            "train_hop": 2, "valid_hop": 4}
GAN = {"z_dim": 8, "g_width": 4, "d_width": 4, "epochs": 2, "batch": 8, "train_hop": 4,
       "valid_samples": 16}
RADIO = {"width": 2, "depth": 2, "chained": True, "epochs": 2, "batch_size": 4, "lr": 0.01,
         "lr_step": 1, "lr_gamma": 0.5}
LOOPS = ["classifier", "inpainter", "inn", "smoother", "cnn", "detector", "gan", "radio"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def radio_data(tmp_path_factory) -> Path:
    from genex.studies.radio.render import render

    data = tmp_path_factory.mktemp("radio") / "data"
    data.mkdir()
    render(data, {"maps": 6, "transmitters": 2, "size": 64, "buildings_missing_levels": 1,
                  "buildings_missing_versions": 1, "workers": 1}, seed=5)
    return data


def _radio_features(radio_data: Path, out: Path, nan: bool) -> Path:
    from genex.studies.radio.features import build_features

    out.mkdir(parents=True)
    build_features(radio_data, out, {"resolution": 16, "simulator": "DPM", "missing_levels": [1],
                                     "measurements": [3, 6]}, seed=5)
    if nan:
        with np.load(out / "train.npz") as f:
            arrays = dict(f)
        arrays["gain"][:] = np.nan
        np.savez_compressed(out / "train.npz", **arrays)
    return out


def train(loop: str, tmp: Path, radio_data: Path, nan: bool = False):
    """Run one training loop on small synthetic data (NaN inputs when ``nan``); returns the
    checkpoint folder and the model file (or None where the loop writes no file itself)."""
    from genex.studies.nsynth import train as nsynth
    from genex.studies.piano import train as piano
    from genex.studies.radio import train as radio
    from genex.studies.vocal import train as vocal

    ckpt, out = tmp / "ckpt", tmp / "model.pt"
    torch.manual_seed(0)
    if loop in ("classifier", "inpainter"):
        data = toy_family_data()
        if nan:
            data["train"][0][:] = float("nan")
        if loop == "classifier":
            nsynth.train_classifier(data, CLF_PARAMS | {"epochs": 2}, 0, CPU, ckpt)
        else:
            from genex.studies.nsynth.models import InstrumentCNN

            clf = InstrumentCNN(11, 4, 16, 0.0)
            nsynth.train_inpainter(data, clf, INPAINTER, 0, CPU, ckpt)
        return ckpt, None
    if loop in ("inn", "smoother", "cnn"):
        frames = synthetic_frames()
        if nan and loop != "smoother":
            frames.x[:] = np.nan
        if loop == "inn":
            piano.train_inn(frames, INN_PARAMS | {"epochs": 2}, 0, CPU, ckpt, out)
        elif loop == "smoother":
            y_hat = frames.y + 0.05
            if nan:
                y_hat[:] = np.nan
            piano.train_smoother("gru", frames, y_hat, SMOOTHER, 0, CPU, ckpt, out)
        else:
            piano.train_cnn(frames, CNN, 0, CPU, ckpt, out)
        return ckpt, out
    if loop in ("detector", "gan"):
        rng = np.random.default_rng(0)
        tr, va = synthetic_split(rng), synthetic_split(rng, songs=1)
        if nan:
            tr.mel[:] = np.nan
        fn = vocal.train_detector if loop == "detector" else vocal.train_gan
        fn(tr, va, DETECTOR if loop == "detector" else GAN, POOL, 115, 0, CPU, ckpt)
        return ckpt, None
    features = _radio_features(radio_data, tmp / "features", nan)
    radio.train_model("phi", features, RADIO, 0, CPU, ckpt, out)
    return ckpt, out


# ------------------------------------------------------------------ case 12: non-finite loss

@pytest.mark.parametrize("loop", LOOPS)
def test_a_nan_loss_stops_training_naming_epoch_and_step_and_writes_no_model(loop, tmp_path, radio_data):
    with pytest.raises(checkpoint.NonFiniteLoss, match=r"is nan at epoch 1, step 1\b"):
        train(loop, tmp_path, radio_data, nan=True)
    assert not (tmp_path / "model.pt").exists()
    assert not (tmp_path / "ckpt" / "last.pt").exists() and not (tmp_path / "ckpt" / "best.pt").exists()


def test_the_cli_reports_a_nan_loss_in_one_line_and_writes_no_model(tmp_path):
    """Today's symptom: NaN features gave a NaN model and rc 0."""
    from genex.cli import main

    data = toy_family_data()
    x = torch.cat([data["train"][0], data["valid"][0], data["valid"][0]])
    x[:] = float("nan")
    y = torch.cat([data["train"][1], data["valid"][1], data["valid"][1]])
    split = ["train"] * len(data["train"][0]) + ["valid"] * 22 + ["test"] * 22
    (tmp_path / "features").mkdir()
    torch.save({"x": x, "family": y, "split": split}, tmp_path / "features" / "features.pt")
    params = '{"width": 4, "hidden": 16, "dropout": 0.0, "epochs": 2, "batch_size": 16, ' \
             '"lr": 0.01, "weight_decay": 0.0}'
    rc = main(["nsynth", "train-classifier", "--features", str(tmp_path / "features"), "--params",
               params, "--checkpoints", str(tmp_path / "ckpt"), "--out", str(tmp_path / "clf"),
               "--device", "cpu"])
    assert rc == 1
    assert not (tmp_path / "clf").exists() and not (tmp_path / "ckpt" / "last.pt").exists()


# ------------------------------------------------------------ weights_only-loadable checkpoints

@pytest.mark.parametrize("loop", LOOPS)
def test_every_loops_checkpoints_load_without_running_code(loop, tmp_path, radio_data):
    ckpt, _ = train(loop, tmp_path, radio_data)
    last, best = load_tensors(ckpt / "last.pt"), load_tensors(ckpt / "best.pt")
    assert last["state"]["epoch"] == 2 and best["epoch"] == last["state"]["best_epoch"]
    assert best["fingerprint"] == last["fingerprint"]


# --------------------------------------------------- case 1 at unit level: inputs and code

class Killed(Exception):
    pass


def _train_toy(folder: Path, inputs: dict, epochs: int = 3, die_after: int | None = None):
    """The classifier on toy data; ``die_after``: killed right after that epoch's checkpoint."""
    from genex.studies.nsynth.train import train_classifier

    real_save = checkpoint.Checkpointer.save

    def save(self, state, best=False):
        real_save(self, state, best)
        if state.epoch == die_after:
            raise Killed

    torch.manual_seed(0)
    kw = {"inputs": inputs} if inputs else {}  # (the unit tests of case 3 need no inputs)
    checkpoint.Checkpointer.save = save
    try:
        return train_classifier(toy_family_data(), CLF_PARAMS | {"epochs": epochs}, 0, CPU, folder, **kw)
    finally:
        checkpoint.Checkpointer.save = real_save


def test_a_changed_input_file_or_code_trains_from_scratch_and_says_what_changed(tmp_path, caplog,
                                                                                monkeypatch):
    feats, upstream = tmp_path / "features", tmp_path / "classifier"
    feats.mkdir()
    upstream.mkdir()
    (feats / "features.pt").write_bytes(b"a" * 3_000_000)  # over two hash chunks
    (upstream / "model.pt").write_bytes(b"m")
    inputs = {"features": feats, "classifier": upstream}
    with pytest.raises(Killed):
        _train_toy(tmp_path / "ck", inputs, die_after=1)
    with caplog.at_level(logging.INFO, logger="genex.pipeline.checkpoint"), pytest.raises(Killed):
        _train_toy(tmp_path / "ck", inputs, die_after=2)
    assert "resumed from checkpoint" in caplog.text and "at epoch 1" in caplog.text  # same inputs

    caplog.clear()
    with open(feats / "features.pt", "r+b") as fh:  # same size, one byte late in the file
        fh.seek(2_999_999)
        fh.write(b"b")
    with caplog.at_level(logging.INFO, logger="genex.pipeline.checkpoint"), pytest.raises(Killed):
        _train_toy(tmp_path / "ck", inputs, die_after=1)
    assert "(inputs changed: features); discarding" in caplog.text, caplog.text
    assert "training from scratch" in caplog.text and "resumed" not in caplog.text

    caplog.clear()
    monkeypatch.setattr(checkpoint, "code_digest", lambda: "another-code")
    (upstream / "model.pt").write_bytes(b"n")
    with caplog.at_level(logging.INFO, logger="genex.pipeline.checkpoint"):
        _, state = _train_toy(tmp_path / "ck", inputs)
    assert "inputs changed: classifier, code" in caplog.text and "resumed" not in caplog.text
    assert [h["epoch"] for h in state.history] == [1, 2, 3]


def test_code_digest_covers_the_genex_sources():
    import genex

    root = Path(genex.__file__).parent
    assert (root / "pipeline" / "checkpoint.py").is_file()
    assert checkpoint.code_digest() == checkpoint.code_digest.__wrapped__()
    assert len(checkpoint.code_digest()) == 16


# ------------------------------------------------------------ case 3: corrupt checkpoints

def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _garble(path: Path) -> None:
    path.write_bytes(b"\x00not a torch file" * 10)


def _wrong_shapes(path: Path) -> None:
    """A readable checkpoint of this run whose weights do not fit the model."""
    saved = load_tensors(path)
    for key, value in saved["objects"]["model"].items():
        saved["objects"]["model"][key] = torch.zeros(value.numel() + 1)
    torch.save(saved, path)


def _other_run(path: Path) -> None:
    saved = load_tensors(path)
    saved["fingerprint"] = {**saved["fingerprint"], "params": "0" * 16}
    torch.save(saved, path)


def _pickled_object(path: Path) -> None:
    """A checkpoint holding a pickled object: must be refused, not run."""
    saved = load_tensors(path)
    saved["state"]["history"] = [np.float64(1.0)]
    torch.save(saved, path)


@pytest.mark.parametrize("name,damage", [
    ("last.pt", _truncate), ("last.pt", _garble), ("last.pt", _wrong_shapes),
    ("last.pt", _pickled_object), ("best.pt", _truncate), ("best.pt", _garble),
    ("best.pt", _other_run), ("best.pt", None)])
def test_a_corrupt_checkpoint_is_discarded_named_and_training_starts_again(name, damage, tmp_path,
                                                                          caplog):
    reference, ref_state = _train_toy(tmp_path / "clean", {})
    with pytest.raises(Killed):
        _train_toy(tmp_path / "ck", {}, die_after=2)
    target = tmp_path / "ck" / name
    damage(target) if damage else target.unlink()  # None: best.pt deleted
    with caplog.at_level(logging.INFO, logger="genex.pipeline.checkpoint"):
        model, state = _train_toy(tmp_path / "ck", {})
    assert f"{target}" in caplog.text and "training from scratch" in caplog.text, caplog.text
    assert "resumed" not in caplog.text
    assert state.history == ref_state.history
    for a, b in zip(reference.state_dict().values(), model.state_dict().values()):
        assert torch.equal(a, b)
    assert load_tensors(tmp_path / "ck" / "last.pt")["state"]["epoch"] == 3  # replaced, usable
