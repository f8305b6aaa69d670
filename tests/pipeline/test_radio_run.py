"""The radio study in the tiny DAG: its metrics and section, and what a parameter reruns."""

from __future__ import annotations

import json


def test_tiny_run_writes_radio_metrics_and_a_valid_section(tiny_run):
    from genex.pipeline.report.html import load_section

    metrics = json.loads((tiny_run / "results" / "radio" / "metrics.json").read_text())
    for model in ("phi", "phi_gt", "free_space"):
        assert metrics["models"][model]["rmse"] > 0
    k = 3  # config/tiny.yaml
    for infill in ("zero", "model", "model_p0.025"):
        entry = metrics["mp"][infill]
        for key in ("distortion_at_k", "random_at_k", "nearest_at_k"):
            assert len(entry[key]) == k, (infill, key)
    assert len(metrics["mp"]["model"]["rde_concrete_at_k"]) == k
    assert isinstance(metrics["sanity"]["planted_building_rank"], int)
    section = load_section(tiny_run / "results" / "radio" / "section")
    assert section.group == "Studies"
    assert (tiny_run / "results" / "report" / "studies" / "radio").is_dir()  # its assets


def test_explanation_parameters_rerun_only_explanation_rules(tiny_run, copy_of):
    import yaml
    from helpers.workflow import planned_jobs

    workdir = copy_of(tiny_run)
    tiny = workdir / "config" / "tiny.yaml"
    config = yaml.safe_load(tiny.read_text())
    config["radio"]["explain"]["roi"] += 1
    tiny.write_text(yaml.safe_dump(config))
    jobs = set(planned_jobs(workdir))
    assert {"radio_explain", "radio_sanity", "radio_metrics", "radio_section"} <= jobs, jobs
    assert not {"radio_features", "radio_train", "radio_evaluate"} & jobs, jobs


# --- building sensitivity ---------------------------------------------------------------------
