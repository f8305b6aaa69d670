"""The nsynth study in the tiny DAG: its metrics and section, and what a parameter reruns."""

from __future__ import annotations

import json




METRIC_KEYS = ["classifier.test_accuracy", "sanity.randomised_model_spearman",
               *(f"in_distribution.{i}.{k}" for i in ("gan", "zero", "mean", "noise", "blur")
                 for k in ("agreement", "frechet")),
               *(f"faithfulness.{m}.keep_{k}" for m in ("rde_concrete", "rde_l1", "saliency",
                                                        "integrated_gradients", "occlusion", "random")
                 for k in (5, 10, 20)),
               *(f"table1.{f}.{c}" for f in ("bass", "brass", "flute", "guitar", "keyboard", "mallet",
                                             "organ", "reed", "string", "synth_lead", "vocal")
                 for c in ("magnitude", "phase", "paper_magnitude", "paper_phase",
                           "distortion.none", "distortion.magnitude", "distortion.phase",
                           "concrete_magnitude", "concrete_phase", "ablation_magnitude",
                           "ablation_phase")),
               "table1_query.concrete_agreement", "table1_query.agree_with_paper",
               "ablation_classifier.test_accuracy", "classifier.test_confusion.counts",
               "masks.bimodal_share"]


def _lookup(tree: dict, dotted: str):
    for key in dotted.split("."):
        tree = tree[key]
    return tree


def test_tiny_run_writes_metrics_and_a_valid_section(tiny_run):
    from genex.pipeline.report.html import load_section

    metrics = json.loads((tiny_run / "results/nsynth/metrics.json").read_text())
    for key in METRIC_KEYS:
        _lookup(metrics, key)  # KeyError names the missing key
    assert 0.0 <= metrics["classifier"]["test_accuracy"] <= 1.0
    assert metrics["table1"]["string"]["paper_phase"] == 0.0
    assert metrics["table1"]["string"]["magnitude"] in (0, 1)  # the exact optimum is a vertex
    assert metrics["ablation_classifier"]["phase_dropout"] == 0.5
    assert metrics["classifier"]["phase_dropout"] == 0.0
    counts = metrics["classifier"]["test_confusion"]["counts"]
    assert len(counts) == 11 and sum(map(sum, counts)) == metrics["test_notes"]
    section = load_section(tiny_run / "results/nsynth/section")
    assert section.group == "Studies"
    kinds = [b["type"] for b in section.blocks]
    assert kinds.count("audio") >= 3 and kinds.count("figure") >= 4 and kinds.count("table") >= 3
    assert (tiny_run / "results/nsynth/deletion_curve.csv").read_text().startswith("keep_percent,")
    assert (tiny_run / "results/nsynth/checkpoints/classifier/last.pt").is_file()
    text = (tiny_run / "results/nsynth/metrics.json").read_text()
    assert "/" not in text.replace("\\/", "")  # no paths in the metrics
    for name in ("features", "train_classifier", "train_classifier_ablation", "train_inpainter",
                 "explain_notes", "explain_classes", "explain_classes_ablation", "evaluate", "report"):
        assert (tiny_run / f"logs/benchmarks/nsynth/{name}.tsv").is_file()


def test_changing_rde_lambda_reruns_only_explanation_rules(tiny_run, copy_of):
    import yaml
    from helpers.workflow import planned_jobs

    work = copy_of(tiny_run)
    tiny = work / "config" / "tiny.yaml"
    config = yaml.safe_load(tiny.read_text())
    config["nsynth"]["rde"]["lam"] += 2.0
    tiny.write_text(yaml.safe_dump(config))
    jobs = planned_jobs(work)
    assert {"nsynth_explain_notes", "nsynth_explain_classes", "nsynth_evaluate",
            "nsynth_report"} <= set(jobs), jobs
    for rule in ("nsynth_features", "nsynth_train_classifier", "nsynth_train_inpainter"):
        assert rule not in jobs, jobs
