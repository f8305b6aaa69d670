"""`genex piano <step>`: the invertible transcription study (Kelz & Widmer 2019), run both ways.

Steps, in DAG order (workflow/rules/piano.smk runs one per rule)::

    features        x (144-bin log filterbank) and y (185-d labels) of every recording
    train-inn       the FrEIA INN x <-> [z | pad | y], three passes, losses (8)-(13)
    predict         ŷ, ẑ of every frame (eval mode, zero padding), reconstruction error,
                    latent statistics
    train-smoother  GRU(S) / LSTM(S) / biGRU(L) per-key smoother of ŷ (--model)
    train-cnn       the non-invertible framewise "CNN only" baseline
    evaluate        framewise P/R/F1 per test piece, mean over pieces (Table 1)
    inspect         Figs 1, 4, 5, 6, 7, the concept quantiles and listenable samples
    report          results/piano/metrics.json and the report section

Heavy imports (torch, FrEIA, matplotlib) happen inside the steps, so `genex --help` is fast.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from genex.pipeline.steps import step_arguments, torch_step
from genex.pipeline.io import load_arrays, parse_params

log = logging.getLogger("genex.piano")




def _features(args):
    from genex.studies.piano.features import build_feature_set
    from genex.pipeline import atomic_dir, seed_everything

    seed_everything(args.seed)
    t0 = time.perf_counter()
    with atomic_dir(args.out) as tmp:
        summary = build_feature_set(args.root, tmp, parse_params(args.params), args.seed)
    log.info("features of %s: %s (%.1f s)", args.root, summary, time.perf_counter() - t0)


def _train_inn(args):
    from genex.studies.piano.features import FrameSet
    from genex.studies.piano.train import train_inn

    device = torch_step(args)
    info = train_inn(FrameSet.load(Path(args.features) / "pieces.npz", mmap=True), parse_params(args.params),
                     args.seed, device, Path(args.checkpoints), Path(args.out),
                     inputs={"features": args.features})
    log.info("INN trained on %s: %s", device, info)


def _predict(args):
    from genex.studies.piano.evaluate import predict_all
    from genex.pipeline import atomic_dir

    device = torch_step(args)
    with atomic_dir(args.out) as tmp:
        info = predict_all(Path(args.features), Path(args.inn), tmp, device)
    log.info("predictions: %s", info)


def _train_smoother(args):
    from genex.studies.piano.features import FrameSet
    from genex.studies.piano.train import train_smoother

    device = torch_step(args)
    features = FrameSet.load(Path(args.features) / "pieces.npz", mmap=True)
    y_hat = load_arrays(Path(args.predictions) / "pieces.npz", ["y_hat"], mmap=True)["y_hat"]
    info = train_smoother(args.model, features, y_hat, parse_params(args.params), args.seed, device,
                          Path(args.checkpoints), Path(args.out),
                          inputs={"features": args.features, "predictions": args.predictions})
    log.info("%s smoother trained: %s", args.model, info)


def _train_cnn(args):
    from genex.studies.piano.features import FrameSet
    from genex.studies.piano.train import train_cnn

    device = torch_step(args)
    info = train_cnn(FrameSet.load(Path(args.features) / "pieces.npz", mmap=True), parse_params(args.params),
                     args.seed, device, Path(args.checkpoints), Path(args.out),
                     inputs={"features": args.features})
    log.info("CNN baseline trained: %s", info)


def _evaluate(args):
    from genex.studies.piano.evaluate import evaluate
    from genex.pipeline import atomic_dir

    torch_step(args)
    with atomic_dir(args.out) as tmp:
        evaluate(Path(args.features), Path(args.predictions), Path(args.models), tmp, parse_params(args.params))


def _inspect(args):
    from genex.studies.piano.inspection import inspect
    from genex.pipeline import atomic_dir

    torch_step(args)
    with atomic_dir(args.out) as tmp:
        inspect(Path(args.features), Path(args.predictions), Path(args.inn), tmp,
                parse_params(args.params), args.seed)


def _report(args):
    from genex.studies.piano.report import write_metrics_and_section

    write_metrics_and_section(Path(args.predictions), Path(args.evaluation), Path(args.inspection),
                              Path(args.features), Path(args.metrics), Path(args.section),
                              parse_params(args.params))


def register(subparsers) -> None:
    """Add `genex piano <step>` to the CLI."""
    piano = subparsers.add_parser("piano", help="study: invertible network for transcription",
                                  description=__doc__.split("\n\n")[0])
    steps = piano.add_subparsers(dest="step", required=True, metavar="STEP")

    p = steps.add_parser("features", help="filterbank spectrograms and 185-d labels of a dataset")
    p.add_argument("--root", required=True, help="piano dataset folder (piano-sf, MAPS, MAESTRO)")
    p.add_argument("--out", required=True, help="feature folder (replaced atomically)")
    step_arguments(p, out=False)
    p.set_defaults(func=_features)

    p = steps.add_parser("train-inn", help="train the invertible network")
    p.add_argument("--features", required=True)
    p.add_argument("--checkpoints", required=True, help="checkpoint folder (resume after a kill)")
    p.add_argument("--out", required=True, help="model file (.pt)")
    step_arguments(p, torch=True, out=False)
    p.set_defaults(func=_train_inn)

    p = steps.add_parser("predict", help="ŷ and ẑ of every frame, reconstruction error, latent stats")
    p.add_argument("--features", required=True)
    p.add_argument("--inn", required=True, help="trained INN (.pt)")
    p.add_argument("--out", required=True, help="prediction folder")
    step_arguments(p, params=False, torch=True, out=False)
    p.set_defaults(func=_predict)

    p = steps.add_parser("train-smoother", help="train a per-key RNN smoother on the INN's ŷ")
    p.add_argument("--model", required=True, choices=["gru", "lstm", "bigru"])
    p.add_argument("--features", required=True)
    p.add_argument("--predictions", required=True)
    p.add_argument("--checkpoints", required=True)
    p.add_argument("--out", required=True, help="model file (.pt)")
    step_arguments(p, torch=True, out=False)
    p.set_defaults(func=_train_smoother)

    p = steps.add_parser("train-cnn", help="train the non-invertible framewise baseline")
    p.add_argument("--features", required=True)
    p.add_argument("--checkpoints", required=True)
    p.add_argument("--out", required=True, help="model file (.pt)")
    step_arguments(p, torch=True, out=False)
    p.set_defaults(func=_train_cnn)

    p = steps.add_parser("evaluate", help="framewise P/R/F1 of every model on the test pieces")
    p.add_argument("--features", required=True)
    p.add_argument("--predictions", required=True)
    p.add_argument("--models", required=True, help="folder with gru.pt, lstm.pt, bigru.pt, cnn.pt")
    p.add_argument("--out", required=True)
    step_arguments(p, torch=True, out=False)
    p.set_defaults(func=_evaluate)

    p = steps.add_parser("inspect", help="figures, concept test and listenable backward samples")
    p.add_argument("--features", required=True)
    p.add_argument("--predictions", required=True)
    p.add_argument("--inn", required=True)
    p.add_argument("--out", required=True)
    step_arguments(p, torch=True, out=False)
    p.set_defaults(func=_inspect)

    p = steps.add_parser("report", help="metrics.json and the report section")
    p.add_argument("--features", required=True)
    p.add_argument("--predictions", required=True)
    p.add_argument("--evaluation", required=True)
    p.add_argument("--inspection", required=True)
    p.add_argument("--metrics", required=True, help="metrics file to write")
    p.add_argument("--section", required=True, help="section folder to write")
    step_arguments(p, out=False)
    p.set_defaults(func=_report)
