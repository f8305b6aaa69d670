"""`genex nsynth <step>`: the nsynth study (paper §3.1, Figs 1–2, Table 1).

Steps, in DAG order (workflow/rules/nsynth.smk):

* ``features``: [2, 1024] log-frequency DFT magnitude/phase of every note;
* ``train-classifier``: the instrument-family CNN Φ (checkpointed, best on valid);
* ``train-inpainter``: the inpainting GAN G and its critic (checkpointed, best on valid);
* ``explain-notes``: per-note RDE masks (concrete and ℓ1) + listenable audio;
* ``explain-classes``: the per-family magnitude-vs-phase query (Table 1): exact at the four
  vertices, concrete optimisation beside it;
* ``evaluate``: in-distribution test, baselines, faithfulness curves, sanity check, Fig 1 data;
* ``report``: ``metrics.json`` (every number the report quotes) and the report section.

torch and friends are imported inside the steps (``genex --help`` stays fast).
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from genex.pipeline.steps import step_arguments, torch_step
from genex.pipeline.io import parse_params, save_tensors
from genex.studies.nsynth.outputs import (load_classifier, load_features, load_inpainter, load_masks, save_classifier, save_inpainter, split_data)

log = logging.getLogger("genex.nsynth")


# ------------------------------------------------------------------------------ helpers


def _rounded(obj, digits: int = 6):
    """Floats to ``digits`` significant digits (stable JSON, no last-bit noise); NaN -> null."""
    if isinstance(obj, float):
        return None if obj != obj else float(f"{obj:.{digits}g}")
    if isinstance(obj, dict):
        return {k: _rounded(v, digits) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_rounded(v, digits) for v in obj]
    return obj


# ------------------------------------------------------------------------------ steps
def cmd_features(args: argparse.Namespace) -> None:
    """Spectra of every note of the dataset (all splits)."""
    import numpy as np
    import torch

    from genex.studies.nsynth.data import FAMILIES, check_notes, load_note, read_nsynth
    from genex.studies.nsynth.spectrum import note_spectrum
    from genex.pipeline import atomic_dir, progress, write_json

    params = parse_params(args.params)
    frame = read_nsynth(args.root)  # refuses labels out of range, naming the entry
    if params.get("max_notes_per_split"):
        frame = frame.groupby("split", sort=False).head(int(params["max_notes_per_split"]))
    rate, length = check_notes(frame, args.root)
    specs = []
    for path in progress(frame["audio_path"], desc="spectra", unit="note"):
        audio, sr = load_note(path, rate, min_seconds=length / rate)
        try:
            specs.append(note_spectrum(audio, sr, params["n_bins"], params["fmin"],
                                       params["fmax"], params["n_fft"]))
        except ValueError as err:  # e.g. fmax above the note's Nyquist frequency
            raise ValueError(f"{path}: {err}") from None
    x = torch.from_numpy(np.stack(specs))
    feats = {"x": x, "family": torch.tensor(frame["instrument_family"].to_numpy()),
             "split": frame["split"].tolist(), "note_str": frame["note_str"].tolist(),
             "instrument": frame["instrument_str"].tolist(),
             "pitch": torch.tensor(frame["pitch"].to_numpy()), "families": list(FAMILIES),
             "sample_rate": int(frame["sample_rate"].iloc[0]), "params": params}
    counts = frame.groupby("split").size().to_dict()
    with atomic_dir(args.out) as tmp:
        save_tensors(tmp / "features.pt", feats)
        write_json(tmp / "features.json", {"notes": counts, "shape": list(x.shape[1:]),
                                           "params": params})
    log.info("features of %d notes written to %s", len(frame), args.out)


def cmd_train_classifier(args: argparse.Namespace) -> None:
    """Train Φ (resumable; best epoch on the validation loss)."""
    import torch

    from genex.studies.nsynth.train import confusion_matrix, evaluate_classifier, train_classifier
    from genex.pipeline import atomic_dir, write_json

    device = torch_step(args)
    params = {**parse_params(args.params), "n_classes": 11}
    feats = load_features(args.features)
    data = {s: split_data(feats, s) for s in ("train", "valid")}
    ckpt = Path(args.checkpoints or Path(args.out).parent / "checkpoints" / "classifier")
    t0 = time.perf_counter()
    model, state = train_classifier(data, params, args.seed, device, ckpt,
                                    inputs={"features": args.features})
    x_te, y_te = split_data(feats, "test")
    test_loss, test_acc = evaluate_classifier(model, x_te, y_te, device)
    seconds = time.perf_counter() - t0
    confusion = confusion_matrix(model, x_te, y_te, params["n_classes"], device)
    log.info("classifier: test accuracy %.3f (best epoch %s) in %.1f s", test_acc,
             state.best_epoch, seconds)
    with atomic_dir(args.out) as tmp:
        save_classifier(tmp / "model.pt", model, params)
        write_json(tmp / "train.json", _rounded({
            "test_accuracy": test_acc, "test_loss": test_loss, "best_epoch": state.best_epoch,
            "epochs": state.epoch, "history": state.history, "params": params,
            # rows: true family, columns: predicted family (test split, unseen instruments)
            "test_confusion": {"families": list(feats["families"]), "counts": confusion}}))


def cmd_train_inpainter(args: argparse.Namespace) -> None:
    """Train the inpainting GAN (resumable; best epoch on the validation Fréchet distance)."""
    import torch

    from genex.studies.nsynth.models import count_parameters
    from genex.studies.nsynth.train import train_inpainter
    from genex.pipeline import atomic_dir, write_json

    device = torch_step(args)
    params = parse_params(args.params)
    feats = load_features(args.features)
    data = {s: split_data(feats, s) for s in ("train", "valid")}
    classifier = load_classifier(args.classifier, device)
    ckpt = Path(args.checkpoints or Path(args.out).parent / "checkpoints" / "inpainter")
    model, state = train_inpainter(data, classifier, params, args.seed, device, ckpt,
                                   inputs={"features": args.features, "classifier": args.classifier})
    with atomic_dir(args.out) as tmp:
        save_inpainter(tmp / "model.pt", model, params)
        write_json(tmp / "train.json", _rounded({
            "parameters": count_parameters(model), "best_epoch": state.best_epoch,
            "best_valid_frechet": state.best, "epochs": state.epoch, "history": state.history,
            "params": params}))


def _explained_notes(feats: dict, per_family: int):
    """Test notes explained per note: ``per_family`` of every family; ``(index, x, y)``."""
    import torch

    from genex.studies.nsynth.explain import select_notes

    test = [i for i, s in enumerate(feats["split"]) if s == "test"]
    fam = feats["family"][torch.tensor(test)].numpy()
    local = select_notes(fam, per_family, len(feats["families"]))
    index = torch.tensor([test[i] for i in local])
    return index, feats["x"][index], feats["family"][index]


def cmd_explain_notes(args: argparse.Namespace) -> None:
    """Per-note RDE masks with both optimisers, and listenable audio of a few notes."""
    import torch

    from genex.studies.nsynth.explain import (bimodal_share, explain_notes, generative_infiller,
                                              within_budget)
    from genex.pipeline import atomic_dir, write_json

    device = torch_step(args)
    params = parse_params(args.params)
    feats = load_features(args.features)
    model = load_classifier(args.classifier, device)
    inpainter = load_inpainter(args.inpainter, device)
    index, x, y = _explained_notes(feats, params["notes_per_family"])
    budgeted, budgeted_gan = within_budget(model, inpainter, x.to(device), params.get("max_batch_mb"))
    t0 = time.perf_counter()
    masks = explain_notes(budgeted, generative_infiller(budgeted_gan, args.seed), x.to(device), params,
                          args.seed, params.get("batch_notes"))
    seconds = time.perf_counter() - t0
    log.info("RDE masks of %d notes x 2 optimisers in %.1f s", len(index), seconds)
    with torch.no_grad():
        pred = model(x.to(device)).argmax(1).cpu()
    with atomic_dir(args.out) as tmp:
        save_tensors(tmp / "masks.pt", {"index": index, "family": y, "predicted": pred,
                                        "rde_concrete": masks["rde_concrete"], "rde_l1": masks["rde_l1"]})
        audio = _write_listenable(tmp, feats, index, x, masks["rde_concrete"], inpainter,
                                  params, args.seed)
        write_json(tmp / "notes.json", _rounded({
            "notes": len(index), "audio": audio, "history": masks["history"],
            # converged concrete masks are bimodal: share of keep probabilities near 0 or 1
            "bimodal_share": bimodal_share(masks["rde_concrete"]),
            "steps": params["steps"], "seconds": seconds}))


def _write_listenable(folder: Path, feats: dict, index, x, mask, inpainter, params: dict,
                      seed: int) -> list[dict]:
    """For a few notes: the original, "only kept" (dropped part GAN-infilled) and "removed"
    (only the dropped components), resynthesised from the spectra as WAV files."""
    import torch

    from genex.studies.nsynth.explain import generative_infiller, keep_top
    from genex.studies.nsynth.spectrum import resynthesise
    from genex.pipeline import write_wav

    fp = feats["params"]
    sr = feats["sample_rate"]
    infiller = generative_infiller(inpainter.cpu(), seed)
    n = min(params["audio_notes"], len(index))
    picks = torch.linspace(0, len(index) - 1, n).round().long().unique() if n else []
    records = []
    for i in picks.tolist():
        keep = keep_top(mask[i: i + 1], params["audio_keep"]).view(1, *x.shape[1:])
        with torch.no_grad():
            kept = infiller(x[i: i + 1], keep, 1)[0, 0].numpy()
        removed = (x[i] * (1 - keep[0])).numpy()
        name = feats["note_str"][int(index[i])]
        files = {}
        for kind, spec in (("original", x[i].numpy()), ("kept", kept), ("removed", removed)):
            path = folder / f"audio_{name}_{kind}.wav"
            write_wav(path, resynthesise(spec, sr, params["audio_seconds"], fp["fmin"], fp["fmax"]), sr)
            files[kind] = path.name
        records.append({"note": name, "family": feats["families"][int(feats["family"][int(index[i])])],
                        "files": files})
    return records


def cmd_explain_classes(args: argparse.Namespace) -> None:
    """Table 1: per family, the expected distortion of the four binary (magnitude, phase)
    configurations over every test note of the family (the exact optimum), and the concrete
    optimisation of the same query as a cross-check."""
    import torch

    from genex.studies.nsynth.explain import (VERTICES, class_query, exact_vertex, generative_infiller,
                                              vertex_distortions, within_budget)
    from genex.pipeline import atomic_dir, write_json

    device = torch_step(args)
    params = parse_params(args.params)
    feats = load_features(args.features)
    model = load_classifier(args.classifier, device)
    inpainter = load_inpainter(args.inpainter, device)
    n_families, lam = len(feats["families"]), params["class_lam"]
    x_all, y_all = split_data(feats, "test")
    # rde.max_batch_mb bounds each forward (every test note x vertex_draws, then every
    # explained note x n_samples in one graph); the results do not depend on it
    model, inpainter = within_budget(model, inpainter, x_all[:1].to(device), params.get("max_batch_mb"))
    t0 = time.perf_counter()
    per_note = vertex_distortions(model, generative_infiller(inpainter, args.seed), x_all.to(device),
                                  params["vertex_draws"], args.seed)
    exact = exact_vertex(per_note, y_all, n_families, lam)
    log.info("exact vertices of %d test notes x %d draws in %.1f s", len(x_all),
             params["vertex_draws"], time.perf_counter() - t0)

    index, x, y = _explained_notes(feats, params["class_notes_per_family"])
    t0 = time.perf_counter()
    probs, history = class_query(model, generative_infiller(inpainter, args.seed), x.to(device),
                                 y, n_families, params, args.seed)
    log.info("concrete per-class query on %d notes in %.1f s", len(index), time.perf_counter() - t0)
    # the exact optimum on the concrete query's own notes: the like-for-like cross-check
    test_index = {int(i): j for j, i in enumerate(i for i, s in enumerate(feats["split"]) if s == "test")}
    same = exact_vertex(per_note[:, [test_index[int(i)] for i in index]], y, n_families, lam)

    kept = {(0, 0): "none", (1, 0): "magnitude", (0, 1): "phase", (1, 1): "both"}
    names = [kept[v] for v in VERTICES]  # what each vertex keeps
    table, agree, agree_all = {}, 0, 0
    for f, fam in enumerate(feats["families"]):
        if not int(exact["notes"][f]):
            continue
        rounded = [int(float(p) >= 0.5) for p in probs[f]]
        on_same = [int(v) for v in same["optimum"][f].tolist()]
        optimum = [int(v) for v in exact["optimum"][f].tolist()]
        agree += rounded == on_same
        agree_all += rounded == optimum
        table[fam] = {
            "distortion": dict(zip(names, exact["distortion"][f].tolist())),
            "sem": dict(zip(names, exact["sem"][f].tolist())),
            "objective": dict(zip(names, exact["objective"][f].tolist())),
            "exact": {"magnitude": optimum[0], "phase": optimum[1]},
            "margin": float(exact["margin"][f]), "notes": int(exact["notes"][f]),
            "concrete": {"magnitude": float(probs[f, 0]), "phase": float(probs[f, 1])},
            "exact_concrete_notes": {"magnitude": on_same[0], "phase": on_same[1]},
            "concrete_agrees": rounded == on_same}
    families = len(table)
    with atomic_dir(args.out) as tmp:
        write_json(tmp / "table1.json", _rounded({
            "table1": table, "lam": lam, "draws": params["vertex_draws"], "test_notes": len(x_all),
            "concrete": {"notes": len(index), "steps": params["class_steps"],
                         "lr": params["class_lr"], "schedule": params.get("class_schedule", "constant"),
                         "agreement": agree / max(1, families),
                         "agreement_all_notes": agree_all / max(1, families),
                         "history": history}}))


def cmd_evaluate(args: argparse.Namespace) -> None:
    """In-distribution test, baselines, faithfulness (deletion) curves, sanity, Fig 1 data."""
    import torch

    from genex.xai import (
        BlurInfiller,
        ComponentMap,
        MeanInfiller,
        NoiseInfiller,
        ZeroInfiller,
    )
    from genex.xai.baselines import (
        IntegratedGradients,
        Random,
        Saliency,
    )
    from genex.studies.nsynth.explain import explain_notes, generative_infiller
    from genex.studies.nsynth.metrics import deletion_curve, in_distribution, sanity as randomised_sanity
    from genex.studies.nsynth.models import InstrumentCNN
    from genex.pipeline import atomic_dir, write_json

    device = torch_step(args)
    params = parse_params(args.params)
    ev, rde = params["evaluation"], params["rde"]
    feats = load_features(args.features)
    model = load_classifier(args.classifier, device)
    inpainter = load_inpainter(args.inpainter, device)
    saved = load_masks(args.notes)
    x_tr, _ = split_data(feats, "train")
    x_te, _ = split_data(feats, "test")
    mean, std = x_tr.mean(0), x_tr.std(0)
    gan = generative_infiller(inpainter, args.seed)
    infillers = {"gan": gan, "zero": ZeroInfiller(), "mean": MeanInfiller(mean),
                 "noise": NoiseInfiller(mean, std, seed=args.seed),
                 "blur": BlurInfiller(ev["blur_sigma"])}
    t0 = time.perf_counter()
    indist = in_distribution(model, infillers, x_te.to(device), ev["keep_fraction"], args.seed)
    log.info("in-distribution test in %.1f s", time.perf_counter() - t0)

    x = feats["x"][saved["index"]].to(device)
    target = saved["predicted"].to(device)
    cmap = ComponentMap.identity(tuple(x.shape[1:]))
    baselines = {
        "saliency": Saliency(model, cmap),
        "integrated_gradients": IntegratedGradients(model, cmap, mean.to(device),
                                                            n_steps=ev["ig_steps"]),
        "occlusion": _WindowedOcclusion(model, x.shape[1:], mean.to(device), ev["occlusion_window"]),
        "random": Random(model, cmap, seed=args.seed),
    }
    scores = {"rde_concrete": saved["rde_concrete"], "rde_l1": saved["rde_l1"]}
    for name, method in baselines.items():
        t1 = time.perf_counter()
        scores[name] = method.attribute(x, target).cpu()
        log.info("%s attributions in %.1f s", name, time.perf_counter() - t1)
    fractions = sorted({*(k / 100 for k in ev["keeps"]), *ev["curve"]})
    t0 = time.perf_counter()
    curves = deletion_curve(model, gan, x, scores, fractions, ev["draws"], args.seed)
    log.info("faithfulness curves in %.1f s", time.perf_counter() - t0)
    faithful = {m: {f"keep_{k}": curves[m][fractions.index(k / 100)] for k in ev["keeps"]}
                for m in scores}

    # sanity: the same RDE on Φ with re-initialised weights; masks should not correlate
    n_sanity = min(ev["sanity_notes"], len(x))

    def randomise(phi):
        torch.manual_seed(args.seed + 1)
        return InstrumentCNN(11, phi.body[0].out_channels,
                             phi.penultimate[0].out_features).to(device).eval()

    def explain(phi, notes):
        return explain_notes(phi, gan, notes, rde, args.seed, methods=("rde_concrete",))["rde_concrete"]

    sanity = randomised_sanity(explain, model, randomise, x[:n_sanity], saved["rde_concrete"][:n_sanity])

    example = _inpainting_example(feats, inpainter, ev, args.seed)
    with atomic_dir(args.out) as tmp:
        save_tensors(tmp / "scores.pt", {"scores": scores, "example": example})
        with open(tmp / "deletion_curve.csv", "w") as f:
            f.write("keep_percent," + ",".join(scores) + "\n")
            for j, frac in enumerate(fractions):
                f.write(f"{100 * frac:g}," + ",".join(f"{curves[m][j]:.6g}" for m in scores) + "\n")
        write_json(tmp / "evaluation.json", _rounded({
            "in_distribution": indist, "faithfulness": faithful,
            "deletion_curve": {"keep_percent": [100 * f for f in fractions], **curves},
            "sanity": {"randomised_model_spearman": sanity, "notes": n_sanity},
            "notes": int(len(x)), "draws": ev["draws"],
            "test_notes": int(len(x_te))}))


class _WindowedOcclusion:
    """Occlusion over windows of ``window`` adjacent frequency bins of one channel (Captum's
    FeatureAblation via :class:`Occlusion`), each bin scored with its window's score:
    ``window`` times fewer forward passes than one per component."""

    def __init__(self, model, shape, baseline, window: int) -> None:
        import torch

        from genex.xai import ComponentMap
        from genex.xai.baselines import Occlusion

        channels, length = shape
        self.window = max(1, int(window))
        groups = -(-length // self.window)
        labels = (torch.arange(channels).view(-1, 1) * groups
                  + torch.arange(length).view(1, -1) // self.window)
        self.inner = Occlusion(model, ComponentMap(labels, channels * groups), baseline)
        self.channels, self.groups, self.length = channels, groups, length

    def attribute(self, x, target=None):
        scores = self.inner.attribute(x, target).view(x.shape[0], self.channels, self.groups)
        per_bin = scores.repeat_interleave(self.window, dim=2)[:, :, : self.length]
        return per_bin.reshape(x.shape[0], -1)


def _inpainting_example(feats: dict, inpainter, ev: dict, seed: int) -> dict:
    """Fig 1: a test note (the first bass note), a random mask and the GAN's inpainting."""
    import torch

    test = [i for i, s in enumerate(feats["split"]) if s == "test"]
    i = next((j for j in test if int(feats["family"][j]) == 0), test[0])
    x = feats["x"][i: i + 1]
    gen = torch.Generator().manual_seed(seed)
    mask = (torch.rand(x.shape, generator=gen) < ev["keep_fraction"]).float()
    noise = torch.randn(1, inpainter.noise_dim, generator=gen)
    with torch.no_grad():
        out = inpainter.cpu()(x * mask, mask, noise)
    return {"note": feats["note_str"][i], "x": x[0], "mask": mask[0],
            "inpainted": torch.where(mask == 1, x, out)[0]}


def cmd_report(args: argparse.Namespace) -> None:
    """metrics.json (every number the report quotes) and the report section."""
    from genex.studies.nsynth.report import build_metrics, write_section

    metrics = build_metrics(Path(args.classifier), Path(args.inpainter), Path(args.notes),
                            Path(args.classes), Path(args.evaluation),
                            Path(args.ablation_classifier), Path(args.ablation_classes))
    import shutil

    from genex.pipeline import atomic_file, write_json

    write_json(args.metrics, metrics)
    with atomic_file(args.curve) as tmp:
        shutil.copyfile(Path(args.evaluation) / "deletion_curve.csv", tmp)
    write_section(Path(args.out), metrics, Path(args.features), Path(args.notes),
                  Path(args.evaluation), parse_params(args.params))


# ------------------------------------------------------------------------------ CLI
def register(subparsers) -> None:
    """Add `genex nsynth <step>`."""
    top = subparsers.add_parser("nsynth", help="the nsynth study: RDE with an inpainting GAN",
                                description=__doc__.split("\n\n")[0])
    steps = top.add_subparsers(dest="step", required=True, metavar="STEP")

    p = steps.add_parser("features", help="[2, 1024] log-frequency DFT magnitude/phase per note")
    p.add_argument("--root", required=True, help="the dataset folder (nsynth-sf or NSynth)")
    step_arguments(p)
    p.set_defaults(func=cmd_features)

    p = steps.add_parser("train-classifier", help="train the instrument-family CNN Φ")
    p.add_argument("--features", required=True, help="the features step's folder")
    p.add_argument("--checkpoints", default=None,
                   help="checkpoint folder (default: <out>/../checkpoints/classifier)")
    step_arguments(p, torch=True)
    p.set_defaults(func=cmd_train_classifier)

    p = steps.add_parser("train-inpainter", help="train the inpainting GAN G and its critic")
    p.add_argument("--features", required=True)
    p.add_argument("--classifier", required=True, help="train-classifier's folder")
    p.add_argument("--checkpoints", default=None,
                   help="checkpoint folder (default: <out>/../checkpoints/inpainter)")
    step_arguments(p, torch=True)
    p.set_defaults(func=cmd_train_inpainter)

    for name, func, text in (("explain-notes", cmd_explain_notes, "per-note RDE masks + audio"),
                             ("explain-classes", cmd_explain_classes,
                              "Table 1: per family, the exact expected distortion of the four "
                              "(magnitude, phase) kept/dropped configurations over every test "
                              "note, the optimum, and the concrete optimiser as a cross-check")):
        p = steps.add_parser(name, help=text)
        p.add_argument("--features", required=True)
        p.add_argument("--classifier", required=True)
        p.add_argument("--inpainter", required=True)
        step_arguments(p, torch=True)
        p.set_defaults(func=func)

    p = steps.add_parser("evaluate", help="in-distribution, faithfulness, sanity")
    p.add_argument("--features", required=True)
    p.add_argument("--classifier", required=True)
    p.add_argument("--inpainter", required=True)
    p.add_argument("--notes", required=True, help="explain-notes' folder")
    step_arguments(p, torch=True)
    p.set_defaults(func=cmd_evaluate)

    p = steps.add_parser("report", help="metrics.json and the report section")
    for name in ("features", "classifier", "inpainter", "notes", "classes", "evaluation"):
        p.add_argument(f"--{name}", required=True)
    p.add_argument("--ablation-classifier", required=True,
                   help="train-classifier's folder of the ablation Φ (nsynth.ablation)")
    p.add_argument("--ablation-classes", required=True,
                   help="explain-classes' folder for the ablation Φ (Table 1's ablation row)")
    p.add_argument("--metrics", required=True, help="metrics.json to write")
    p.add_argument("--curve", required=True, help="deletion-curve CSV to write (a DVC plot)")
    step_arguments(p)
    p.set_defaults(func=cmd_report)
