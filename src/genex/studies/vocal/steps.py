"""`genex vocal <step>`: the vocal study, one subcommand per workflow rule.

features → train-detector → evaluate-detector, train-gan → activation-max → report.
Each step reads the config subsection it needs as JSON (``--params``) and writes its
outputs atomically. Torch and friends are imported inside the steps.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from genex.pipeline.steps import step_arguments, torch_step
from genex.pipeline.io import parse_params

log = logging.getLogger("genex.vocal")

MODEL_FILE = "model.pt"




def _grid(features: Path) -> tuple[tuple[int, int], int]:
    """The models' pooling and the excerpt length, as the features were written."""
    from genex.pipeline import read_json

    p = read_json(features / "features.json")["params"]
    return tuple(p["pool"]), int(p["excerpt_frames"])


# ---------------------------------------------------------------------------------- steps

def cmd_features(args: argparse.Namespace) -> None:
    """Log-mel features of every song, standardised with the training statistics."""
    from genex.studies.vocal.features import extract
    from genex.pipeline import atomic_dir, seed_everything

    seed_everything(args.seed)
    t0 = time.perf_counter()
    with atomic_dir(args.out) as tmp:
        summary = extract(args.root, tmp, parse_params(args.params))
    log.info("features of %s written to %s in %.1f s: %s", args.root, args.out,
             time.perf_counter() - t0, summary["splits"])


def _save_model(out: Path, models: dict, params: dict, extra: dict, history: list[dict]) -> None:
    """A trained model folder: weights + config (``model.pt``), ``train.json``, ``history.csv``."""
    import pandas as pd

    from genex.pipeline import atomic_dir, save_tensors, write_json

    with atomic_dir(out) as tmp:
        save_tensors(tmp / MODEL_FILE, {"params": params, **extra,
                                        "state": {k: m.state_dict() for k, m in models.items()}})
        write_json(tmp / "train.json", {"params": params, **extra, "history": history})
        pd.DataFrame(history).to_csv(tmp / "history.csv", index=False, float_format="%.6g")


def cmd_train_detector(args: argparse.Namespace) -> None:
    """Train the singing-voice detector (best epoch on validation loss)."""
    device = torch_step(args)  # first: before torch is imported
    from genex.studies.vocal.features import load_split
    from genex.studies.vocal.train import train_detector

    feats = Path(args.features)
    pool, frames = _grid(feats)
    params = parse_params(args.params)
    model, state = train_detector(load_split(feats, "train"), load_split(feats, "valid"), params,
                                  pool, frames, args.seed, device, Path(args.checkpoints),
                                  inputs={"features": feats})
    _save_model(Path(args.out), {"detector": model.cpu()}, params,
                {"pool": list(pool), "frames": frames, "best_epoch": state.best_epoch},
                state.history)


def load_detector(folder: Path, features: Path, device=None):
    """The trained detector (eval mode, frozen) from its model folder."""
    from genex.studies.vocal.train import build_detector
    from genex.pipeline import load_tensors

    path = Path(folder) / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: detector missing (run `genex vocal train-detector`)")
    saved = load_tensors(path)
    n_mels = _n_mels(features)
    model = build_detector(saved["params"], tuple(saved["pool"]), n_mels, saved["frames"])
    model.load_state_dict(saved["state"]["detector"])
    return _frozen(model, device)


def load_generator(folder: Path, features: Path, device=None):
    """The trained DCGAN generator (eval mode, frozen) from its model folder."""
    from genex.studies.vocal.train import build_gan
    from genex.pipeline import load_tensors

    path = Path(folder) / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: generator missing (run `genex vocal train-gan`)")
    saved = load_tensors(path)
    gen, _ = build_gan(saved["params"], tuple(saved["pool"]), _n_mels(features), saved["frames"])
    gen.load_state_dict(saved["state"]["gen"])
    return _frozen(gen, device)


def _n_mels(features: Path) -> int:
    from genex.pipeline import read_json

    return int(read_json(Path(features) / "features.json")["params"]["n_mels"])


def _frozen(model, device):
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model.to(device) if device is not None else model


def cmd_evaluate_detector(args: argparse.Namespace) -> None:
    """Frame-level accuracy, AUC and F1 (after median filtering) on the test songs."""
    device = torch_step(args)  # first: before torch is imported
    from genex.studies.vocal.features import load_split
    from genex.studies.vocal.metrics import evaluate_frames
    from genex.studies.vocal.train import predict
    from genex.pipeline import write_json

    feats = Path(args.features)
    _, frames = _grid(feats)
    model = load_detector(Path(args.detector), feats, device)
    test = load_split(feats, "test")
    logits = predict(model, test, _all(test), frames, device)
    result = evaluate_frames(logits, test.labels, test.song, parse_params(args.params))
    result["test_songs"] = len(test.songs)
    write_json(args.out, result)
    log.info("detector on %d test songs: %s", len(test.songs),
             {k: result[k] for k in ("accuracy", "auc", "f1")})


def _all(feats):
    """Every excerpt of a split (every frame of its songs is a centre)."""
    import numpy as np

    return np.arange(len(feats.centres))


def cmd_train_gan(args: argparse.Namespace) -> None:
    """Train the DCGAN on (pooled) training excerpts."""
    device = torch_step(args)  # first: before torch is imported
    from genex.studies.vocal.features import load_split
    from genex.studies.vocal.train import train_gan

    feats = Path(args.features)
    pool, frames = _grid(feats)
    params = parse_params(args.params)
    gen, state = train_gan(load_split(feats, "train"), load_split(feats, "valid"), params, pool,
                           frames, args.seed, device, Path(args.checkpoints),
                           inputs={"features": feats})
    _save_model(Path(args.out), {"gen": gen.cpu()}, params,
                {"pool": list(pool), "frames": frames, "best_epoch": state.best_epoch},
                state.history)


def cmd_activation_max(args: argparse.Namespace) -> None:
    """AM over the whole grid in one batch, Fréchet selection, GAN Fréchet distance."""
    device = torch_step(args)  # first: before torch is imported
    from genex.studies.vocal.explain import run_activation_max
    from genex.pipeline import atomic_dir

    feats = Path(args.features)
    detector = load_detector(Path(args.detector), feats, device)
    gen = load_generator(Path(args.gan), feats, device)
    with atomic_dir(args.out) as tmp:
        run_activation_max(feats, detector, gen, parse_params(args.params), args.seed, device, tmp)


def cmd_report(args: argparse.Namespace) -> None:
    """metrics.json and the report section (tables, mel images, audio players)."""
    from genex.studies.vocal.report import write_report

    write_report(Path(args.features), Path(args.evaluation), Path(args.detector), Path(args.gan),
                 Path(args.am), parse_params(args.params), args.seed, Path(args.metrics),
                 Path(args.section))
    for model, curve in zip(("detector", "gan"), args.curves or []):
        _copy_atomic(Path(getattr(args, model)) / "history.csv", Path(curve))


def _copy_atomic(src: Path, dst: Path) -> None:
    """Copy a file so that ``dst`` is never half-written."""
    import shutil

    from genex.pipeline import atomic_file

    with atomic_file(dst) as tmp:
        shutil.copyfile(src, tmp)


# ----------------------------------------------------------------------------- registration

def register(subparsers) -> None:
    """Add ``genex vocal <step>`` to the genex command line."""
    vocal = subparsers.add_parser("vocal", help="study: GAN activation maximisation of a singing-voice detector",
                                  description="Steps of the vocal study (workflow/rules/vocal.smk).")
    steps = vocal.add_subparsers(dest="step", required=True, metavar="STEP")

    p = steps.add_parser("features", help="log-mel features and excerpt labels of a Jamendo-layout corpus")
    p.add_argument("--root", required=True, help="the corpus folder (audio/, labels/, filelists/)")
    step_arguments(p, out=False)
    p.add_argument("--out", required=True, help="features folder (replaced atomically)")
    p.set_defaults(func=cmd_features)

    for name, func, what in (("train-detector", cmd_train_detector, "the singing-voice detector"),
                             ("train-gan", cmd_train_gan, "the DCGAN on excerpts")):
        p = steps.add_parser(name, help=f"train {what} (checkpoints, resume, best on validation)")
        p.add_argument("--features", required=True, help="features folder")
        step_arguments(p, torch=True, out=False)
        p.add_argument("--checkpoints", required=True, help="checkpoint folder (kept across kills)")
        p.add_argument("--out", required=True, help="model folder (replaced atomically)")
        p.set_defaults(func=func)

    p = steps.add_parser("evaluate-detector", help="frame-level accuracy, AUC, F1 on the test songs")
    p.add_argument("--features", required=True)
    p.add_argument("--detector", required=True, help="detector model folder")
    step_arguments(p, torch=True, out=False)
    p.add_argument("--out", required=True, help="evaluation JSON")
    p.set_defaults(func=cmd_evaluate_detector)

    p = steps.add_parser("activation-max", help="activation maximisation over the lr x lambda x iterations grid")
    p.add_argument("--features", required=True)
    p.add_argument("--detector", required=True, help="detector model folder")
    p.add_argument("--gan", required=True, help="DCGAN model folder")
    step_arguments(p, torch=True, out=False)
    p.add_argument("--out", required=True, help="AM results folder (replaced atomically)")
    p.set_defaults(func=cmd_activation_max)

    p = steps.add_parser("report", help="metrics.json and the report section")
    for name in ("features", "evaluation", "detector", "gan", "am"):
        p.add_argument(f"--{name}", required=True)
    step_arguments(p, out=False)
    p.add_argument("--metrics", required=True, help="metrics JSON")
    p.add_argument("--section", required=True, help="section folder (replaced atomically)")
    p.add_argument("--curves", nargs=2, metavar=("DETECTOR_CSV", "GAN_CSV"),
                   help="copies of the training histories (DVC plots)")
    p.set_defaults(func=cmd_report)
