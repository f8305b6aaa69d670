"""Nothing genex reads may run code (models and features come from shared DVC remotes).

For every kind of file genex reads (each study's model files, features files and result
files), a pickle payload planted in it is refused by the study's own loader with an error
naming the file, the payload never runs (its marker file never appears), and the `genex`
command that reads it exits non-zero with one line on stderr naming the file. Genuine files
are written with the studies' own save functions from small random models and load back
equal.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.workflow import BIN, run

from genex.pipeline import load_arrays, load_tensors, save_tensors


class Payload:
    """Unpickling this creates ``marker``: code run by a loader."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture()
def marker(tmp_path):
    path = tmp_path / "PAYLOAD_RAN"
    yield path
    assert not path.exists(), "the planted payload ran"


def plant_pt(path: Path, marker: Path, payload: dict | None = None, key: str = "state_dict") -> Path:
    """A torch file whose ``key`` entry (or whole content) is the payload."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(Payload(marker) if payload is None else {**payload, key: Payload(marker)}, path)
    return path


def plant_npz(path: Path, marker: Path, arrays: dict | None = None, key: str = "x") -> Path:
    """An .npz whose ``key`` array is a pickled object array."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **{**(arrays or {}), key: np.array([Payload(marker)], dtype=object)})
    return path


def refused(call, path: Path, marker: Path) -> None:
    with pytest.raises(ValueError) as err:
        call()
    assert str(path) in str(err.value) and "refused" in str(err.value), err.value
    assert not marker.exists()


def cli_refuses(args: list[str], path: Path, marker: Path, cwd: Path) -> None:
    proc = run([str(BIN / "genex"), *args], cwd=cwd, check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0
    assert len(lines) == 1 and str(path) in lines[0] and "refused" in lines[0], proc.stderr
    assert not marker.exists()


# ---------------------------------------------------------------------------------- nsynth

LENGTH = 256


def nsynth_features(folder: Path) -> dict:
    from genex.studies.nsynth.data import FAMILIES

    n = 6
    feats = {"x": torch.randn(n, 2, LENGTH), "family": torch.arange(n) % 11,
             "split": ["train", "train", "valid", "valid", "test", "test"],
             "note_str": [f"n{i}" for i in range(n)], "instrument": [f"i{i}" for i in range(n)],
             "pitch": torch.arange(n) + 60, "families": list(FAMILIES), "sample_rate": 16000,
             "params": {"n_bins": LENGTH, "fmin": 20.0, "fmax": 8000.0, "n_fft": 1024}}
    folder.mkdir(parents=True, exist_ok=True)
    save_tensors(folder / "features.pt", feats)
    return feats


def nsynth_models(root: Path):
    from genex.studies.nsynth.models import Inpainter, InstrumentCNN
    from genex.studies.nsynth.outputs import save_classifier, save_inpainter

    torch.manual_seed(0)
    clf, inp = InstrumentCNN(11, 2, 4), Inpainter(LENGTH, 0.125)
    (root / "classifier").mkdir(parents=True)
    (root / "inpainter").mkdir(parents=True)
    save_classifier(root / "classifier" / "model.pt", clf, {"n_classes": 11, "width": 2, "hidden": 4,
                                                            "dropout": 0.2})
    save_inpainter(root / "inpainter" / "model.pt", inp, {"width": 0.125})
    return clf, inp


def equal(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(equal, a, b))
    return type(a) is type(b) and a == b


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return equal(dict(a.state_dict()), dict(b.state_dict()))


def test_nsynth_files_round_trip_and_a_planted_entry_is_refused(tmp_path, marker):
    from genex.studies.nsynth.outputs import load_classifier, load_features, load_inpainter

    feats = nsynth_features(tmp_path / "features")
    assert equal(load_features(tmp_path / "features"), feats)
    clf, inp = nsynth_models(tmp_path)
    assert same_weights(load_classifier(tmp_path / "classifier"), clf)
    assert same_weights(load_inpainter(tmp_path / "inpainter"), inp)
    saved = load_tensors(tmp_path / "inpainter" / "model.pt")
    assert saved["length"] == LENGTH and saved["params"] == {"width": 0.125}

    path = plant_pt(tmp_path / "classifier" / "model.pt", marker, saved)
    refused(lambda: load_classifier(tmp_path / "classifier"), path, marker)


@pytest.mark.parametrize("kind", ["features", "classifier", "inpainter", "masks", "scores"])
def test_nsynth_loader_refuses_a_planted_file(tmp_path, marker, kind):
    from genex.studies.nsynth import outputs as ns

    name = {"features": "features.pt", "masks": "masks.pt", "scores": "scores.pt"}.get(kind, "model.pt")
    path = plant_pt(tmp_path / kind / name, marker)
    refused(lambda: getattr(ns, f"load_{kind}")(tmp_path / kind), path, marker)


def test_nsynth_report_refuses_planted_scores(tmp_path, marker):
    from genex.studies.nsynth.report import write_section

    nsynth_features(tmp_path / "features")
    (tmp_path / "notes").mkdir()
    save_tensors(tmp_path / "notes" / "masks.pt", {"index": torch.tensor([4, 5]), "family": torch.tensor([4, 5])})
    path = plant_pt(tmp_path / "evaluation" / "scores.pt", marker, {"scores": {}}, key="example")
    refused(lambda: write_section(tmp_path / "section", {}, tmp_path / "features", tmp_path / "notes",
                                  tmp_path / "evaluation", {}), path, marker)
    assert not (tmp_path / "section").exists()


def test_genex_nsynth_refuses_planted_features(tmp_path, marker):
    path = plant_pt(tmp_path / "features" / "features.pt", marker, {"x": torch.zeros(1)}, key="split")
    cli_refuses(["nsynth", "train-classifier", "--features", str(tmp_path / "features"),
                 "--params", "{}", "--out", str(tmp_path / "out"), "--device", "cpu"],
                path, marker, tmp_path)


def test_genex_nsynth_evaluate_refuses_planted_masks(tmp_path, marker):
    nsynth_features(tmp_path / "features")
    nsynth_models(tmp_path)
    path = plant_pt(tmp_path / "notes" / "masks.pt", marker, {"index": torch.tensor([4])}, key="rde_l1")
    cli_refuses(["nsynth", "evaluate", "--features", str(tmp_path / "features"),
                 "--classifier", str(tmp_path / "classifier"), "--inpainter", str(tmp_path / "inpainter"),
                 "--notes", str(tmp_path / "notes"), "--params", '{"evaluation": {}, "rde": {}}',
                 "--out", str(tmp_path / "out"), "--device", "cpu"], path, marker, tmp_path)
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------- vocal

POOL, FRAMES, N_MELS = (4, 4), 115, 80
DETECTOR = {"conv": [2, 2, 4, 4], "dense": [8, 4], "dropout": 0.5, "padding": 1}
GAN = {"z_dim": 16, "g_width": 4, "d_width": 4}


def vocal_features(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "features.json").write_text(json.dumps(
        {"params": {"pool": list(POOL), "excerpt_frames": FRAMES, "n_mels": N_MELS, "fps": 70}}))


def test_vocal_models_round_trip_and_a_planted_entry_is_refused(tmp_path, marker):
    from genex.studies.vocal.steps import MODEL_FILE, _save_model, load_detector, load_generator
    from genex.studies.vocal.train import build_detector, build_gan

    vocal_features(tmp_path / "features")
    torch.manual_seed(0)
    det = build_detector(DETECTOR, POOL, N_MELS, FRAMES)
    gen, _ = build_gan(GAN, POOL, N_MELS, FRAMES)
    extra = {"pool": list(POOL), "frames": FRAMES, "best_epoch": 2}
    history = [{"epoch": 1, "train_loss": 0.5, "valid_loss": 0.25, "valid_accuracy": 0.75}]
    _save_model(tmp_path / "detector", {"detector": det}, DETECTOR, extra, history)
    _save_model(tmp_path / "gan", {"gen": gen}, GAN, extra, history)
    assert same_weights(load_detector(tmp_path / "detector", tmp_path / "features"), det)
    assert same_weights(load_generator(tmp_path / "gan", tmp_path / "features"), gen)
    saved = load_tensors(tmp_path / "detector" / MODEL_FILE)
    assert equal(saved, {"params": DETECTOR, **extra, "state": {"detector": dict(det.state_dict())}})

    path = plant_pt(tmp_path / "gan" / MODEL_FILE, marker, load_tensors(tmp_path / "gan" / MODEL_FILE),
                    key="state")
    refused(lambda: load_generator(tmp_path / "gan", tmp_path / "features"), path, marker)
    path = plant_pt(tmp_path / "detector" / MODEL_FILE, marker)
    refused(lambda: load_detector(tmp_path / "detector", tmp_path / "features"), path, marker)


def test_vocal_features_refuse_planted_arrays(tmp_path, marker):
    from genex.studies.vocal.features import load_split, load_stats

    good = {"mel": np.zeros((4, N_MELS), np.float32), "centres": np.arange(2), "labels": np.zeros(2),
            "song": np.zeros(2, np.int64), "songs": np.array(["a"])}
    np.savez(tmp_path / "valid.npz", **good)
    split = load_split(tmp_path, "valid")
    assert split.mel.dtype == np.float32 and split.songs == ["a"]
    path = plant_npz(tmp_path / "train.npz", marker, good, key="labels")
    refused(lambda: load_split(tmp_path, "train"), path, marker)
    path = plant_npz(tmp_path / "stats.npz", marker, {"mean": np.zeros(N_MELS)}, key="std")
    refused(lambda: load_stats(tmp_path), path, marker)
    # a raw pickle named .npz
    path.write_bytes(pickle.dumps(Payload(marker)))
    refused(lambda: load_stats(tmp_path), path, marker)


def test_genex_vocal_refuses_planted_model_and_features(tmp_path, marker):
    vocal_features(tmp_path / "features")
    path = plant_pt(tmp_path / "detector" / "model.pt", marker, {"params": DETECTOR}, key="state")
    cli_refuses(["vocal", "evaluate-detector", "--features", str(tmp_path / "features"),
                 "--detector", str(tmp_path / "detector"), "--params", "{}",
                 "--out", str(tmp_path / "out.json"), "--device", "cpu"], path, marker, tmp_path)
    good = {"mel": np.zeros((4, N_MELS), np.float32), "centres": np.arange(2), "labels": np.zeros(2),
            "song": np.zeros(2, np.int64), "songs": np.array(["a"])}
    path = plant_npz(tmp_path / "features" / "train.npz", marker, good, key="mel")
    cli_refuses(["vocal", "train-detector", "--features", str(tmp_path / "features"), "--params", "{}",
                 "--checkpoints", str(tmp_path / "ck"), "--out", str(tmp_path / "det"), "--device", "cpu"],
                path, marker, tmp_path)


# ---------------------------------------------------------------------------------- piano

def frame_set():
    from genex.studies.piano.features import FrameSet

    rng = np.random.default_rng(0)
    return FrameSet(x=rng.random((20, 144), dtype=np.float32), y=rng.random((20, 185), dtype=np.float32),
                    offsets=np.array([0, 10, 20]), names=np.array(["r0", "r1"]), pieces=np.array(["p0", "p1"]),
                    splits=np.array(["train", "test"]), instruments=np.zeros(2, np.int64),
                    pitches=-np.ones(2, np.int64))


def test_piano_files_round_trip_and_a_planted_entry_is_refused(tmp_path, marker):
    import genex.studies.piano.train as tp
    from genex.studies.piano.features import FrameSet
    from genex.studies.piano.models import FramewiseCNN, make_smoother

    frames = frame_set()
    frames.save(tmp_path / "pieces.npz")
    back = FrameSet.load(tmp_path / "pieces.npz")
    for k in FrameSet.__dataclass_fields__:
        a, b = getattr(frames, k), getattr(back, k)
        assert a.dtype == b.dtype and np.array_equal(a, b), k

    params = {"hidden": 8, "blocks": 1, "clamp": 2.0}
    models = {"inn": tp.build_inn(params, 3), "gru": make_smoother("gru", {"hidden": 4}),
              "cnn": FramewiseCNN(channels=2, hidden=8)}
    configs = {"inn": {"params": params, "seed": 3}, "gru": {"kind": "gru", "params": {"hidden": 4}, "seed": 0},
               "cnn": {"params": {"channels": 2, "hidden": 8}, "seed": 0}}
    history = [{"epoch": 0, "loss": 0.125, "valid_f1": 0.5}]
    loaders = {"inn": tp.load_inn, "gru": tp.load_smoother, "cnn": tp.load_cnn}
    for kind, model in models.items():
        path = tmp_path / f"{kind}.pt"
        tp.save_model(path, kind, model, configs[kind], history)
        assert equal(load_tensors(path), {"kind": kind, "config": configs[kind], "history": history,
                                          "state_dict": dict(model.state_dict())})
        assert same_weights(loaders[kind](path), model)
        plant_pt(path, marker, load_tensors(path), key="history")
        refused(lambda: loaders[kind](path), path, marker)  # noqa: B023 - called at once

    path = plant_npz(tmp_path / "planted.npz", marker, {k: getattr(frames, k) for k in FrameSet.__dataclass_fields__},
                     key="offsets")
    refused(lambda: FrameSet.load(path), path, marker)


def test_piano_evaluation_refuses_planted_predictions(tmp_path, marker):
    from genex.studies.piano.evaluate import test_rolls

    (tmp_path / "features").mkdir()
    frame_set().save(tmp_path / "features" / "pieces.npz")
    path = plant_npz(tmp_path / "predictions" / "pieces.npz", marker, {"z": np.zeros(3)}, key="y_hat")
    refused(lambda: test_rolls(tmp_path / "features", tmp_path / "predictions", tmp_path / "models", 0.5),
            path, marker)


def test_genex_piano_refuses_planted_features_and_model(tmp_path, marker):
    frames = frame_set()
    arrays = {k: getattr(frames, k) for k in frames.__dataclass_fields__}
    path = plant_npz(tmp_path / "features" / "pieces.npz", marker, arrays, key="x")
    cli_refuses(["piano", "train-inn", "--features", str(tmp_path / "features"), "--params", "{}",
                 "--checkpoints", str(tmp_path / "ck"), "--out", str(tmp_path / "inn.pt"), "--device", "cpu"],
                path, marker, tmp_path)
    path.unlink()
    frame_set().save(path)
    inn = plant_pt(tmp_path / "inn.pt", marker, {"kind": "inn"})
    cli_refuses(["piano", "predict", "--features", str(tmp_path / "features"), "--inn", str(inn),
                 "--out", str(tmp_path / "pred"), "--device", "cpu"], inn, marker, tmp_path)
    assert not (tmp_path / "pred").exists()


# ---------------------------------------------------------------------------------- radio

def radio_features(folder: Path) -> dict:
    rng = np.random.default_rng(0)
    n, size = 2, 16
    test = {"complete": (rng.random((n, size, size)) > 0.8).astype(np.uint8),
            "missing": (rng.random((n, size, size)) > 0.9).astype(np.uint8),
            "tx": rng.integers(0, size, (n, 2)), "gain": rng.random((n, size, size), dtype=np.float32),
            "measured": rng.random((n, size, size), dtype=np.float32)}
    folder.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(folder / "test.npz", **test)
    (folder / "meta.json").write_text(json.dumps({"metres_per_pixel": 4.0}))
    return test


def test_radio_files_round_trip_and_a_planted_entry_is_refused(tmp_path, marker):
    from genex.studies.radio.features import load_split
    from genex.studies.radio.models import build_model
    from genex.studies.radio.train import load_model, load_summary, save_model

    test = radio_features(tmp_path / "features")
    back = load_split(tmp_path / "features", "test")
    assert back.keys() == test.keys()
    assert all(back[k].dtype == test[k].dtype and np.array_equal(back[k], test[k]) for k in test)
    params = {"width": 2, "depth": 2, "chained": True}
    torch.manual_seed(0)
    net = build_model(3, params)
    payload = {"model": "phi", "params": params, "in_channels": 3,
               "state_dict": {k: v.cpu() for k, v in net.state_dict().items()}, "best_epoch": 1,
               "best_valid_rmse": 0.125, "history": [{"epoch": 1, "train_mse": 0.5, "valid_rmse": 0.125}]}
    save_model(tmp_path / "phi.pt", payload)
    assert equal(load_tensors(tmp_path / "phi.pt"), payload)
    assert same_weights(load_model(tmp_path / "phi.pt"), net)
    assert load_summary(tmp_path / "phi.pt") == {k: payload[k] for k in ("best_epoch", "best_valid_rmse", "history",
                                                                           "params")}

    path = plant_pt(tmp_path / "phi.pt", marker, payload, key="history")
    refused(lambda: load_summary(path), path, marker)
    refused(lambda: load_model(path), path, marker)
    path = plant_npz(tmp_path / "features" / "valid.npz", marker, test, key="gain")
    refused(lambda: load_split(tmp_path / "features", "valid"), path, marker)


def test_radio_section_refuses_planted_maps(tmp_path, marker):
    from genex.studies.radio.report import write_section

    (tmp_path / "metrics.json").write_text("{}")
    (tmp_path / "explain").mkdir()
    (tmp_path / "explain" / "explanations.json").write_text("{}")
    path = plant_npz(tmp_path / "explain" / "maps.npz", marker, {"inputs": np.zeros((1, 3, 4, 4))}, key="darken")
    refused(lambda: write_section(tmp_path / "section", tmp_path / "metrics.json", tmp_path / "features",
                                  tmp_path / "explain", tmp_path / "sanity", None, None, {"figures": 1}),
            path, marker)


def test_genex_radio_refuses_planted_features_and_model(tmp_path, marker):
    path = plant_npz(tmp_path / "planted" / "test.npz", marker, key="gain")
    models = ["--phi", str(tmp_path / "phi.pt"), "--phi-gt", str(tmp_path / "phi.pt")]
    cli_refuses(["radio", "evaluate", "--features", str(tmp_path / "planted"), *models,
                 "--out", str(tmp_path / "out.json")], path, marker, tmp_path)
    radio_features(tmp_path / "features")
    phi = plant_pt(tmp_path / "phi.pt", marker, {"in_channels": 3})
    cli_refuses(["radio", "evaluate", "--features", str(tmp_path / "features"), *models,
                 "--out", str(tmp_path / "out.json")], phi, marker, tmp_path)
    assert not (tmp_path / "out.json").exists()


# ---------------------------------------------------------------------------------- helpers

def test_save_tensors_round_trips_plain_data_exactly_and_refuses_objects(tmp_path):
    payload = {"f32": torch.randn(3), "f64": torch.randn(2, dtype=torch.float64),
               "f16": torch.randn(2).half(), "bf16": torch.randn(2).bfloat16(), "i64": torch.arange(3),
               "u8": torch.arange(3, dtype=torch.uint8), "bool": torch.tensor([True, False]),
               "nested": {"list": [1, 2.5, "a", None, True], "tuple": (1, (2, 3)), 3: "int key"}}
    save_tensors(tmp_path / "a.pt", payload)
    assert equal(load_tensors(tmp_path / "a.pt"), payload)
    for bad in (np.zeros(2), np.float64(0.5), Path("x"), {1.5: "float key"}):
        with pytest.raises(TypeError, match="a.partial"):
            save_tensors(tmp_path / "a.partial", {"history": [{"loss": bad}]})
        assert not (tmp_path / "a.partial").exists()


def test_load_arrays_names_the_file_of_every_unreadable_npz(tmp_path, marker):
    np.savez(tmp_path / "a.npz", x=np.arange(3, dtype=np.int16))
    assert load_arrays(tmp_path / "a.npz")["x"].dtype == np.int16
    with pytest.raises(ValueError, match=r"a\.npz.*missing y"):
        load_arrays(tmp_path / "a.npz", ["x", "y"])
    (tmp_path / "b.npz").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(ValueError, match=r"b\.npz: not a readable"):
        load_arrays(tmp_path / "b.npz")
    np.save(tmp_path / "c.npy", np.arange(3))
    with pytest.raises(ValueError, match=r"c\.npy: not the expected"):
        load_arrays(tmp_path / "c.npy")
    with pytest.raises(FileNotFoundError, match=r"d\.npz"):
        load_arrays(tmp_path / "d.npz")
