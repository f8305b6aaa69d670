"""The vocal study in the tiny DAG: its metrics and section, and what a parameter reruns."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import yaml
from helpers.workflow import run, snakemake_cmd


VOCAL_RULES = {"vocal_features", "vocal_train_detector", "vocal_train_gan", "vocal_evaluate_detector",
               "vocal_activation_max", "vocal_report"}


def test_tiny_run_writes_vocal_metrics_and_a_valid_section(tiny_run):
    from genex.pipeline.report.html import load_section

    metrics = json.loads((tiny_run / "results" / "vocal" / "metrics.json").read_text())
    for key in ("accuracy", "auc", "f1"):
        assert 0.0 <= metrics["detector"][key] <= 1.0 or np.isnan(metrics["detector"][key])
    assert metrics["gan"]["frechet"] >= 0
    cfg = yaml.safe_load((tiny_run / "config" / "tiny.yaml").read_text())["vocal"]["am"]
    n_configs = len(cfg["lrs"]) * len(cfg["lambdas"]) * len(cfg["iterations"])
    for direction in ("maximise", "minimise"):
        am = metrics["am"][direction]
        configs = [k for k in am if re.match(r"^lr.+_lam.+_it\d+$", k)]
        assert len(configs) == n_configs
        for k in configs:
            assert {"frechet", "mean_response"} <= set(am[k])
        assert set(am["selected"]) == {"best", "median", "worst"}
        assert set(am["selected"].values()) <= set(configs)
        assert {"frechet", "mean_response"} <= set(am["random_z"])
    section = load_section(tiny_run / "results" / "vocal" / "section")
    kinds = {b["type"] for b in section.blocks}
    assert {"text", "table", "figure", "audio"} <= kinds and section.group == "Studies"
    assert "vocal" in (tiny_run / "results" / "report" / "index.html").read_text().lower()
    assert (tiny_run / "logs" / "benchmarks" / "vocal" / "activation_max.tsv").is_file()
    assert (tiny_run / "results" / "vocal" / "checkpoints" / "detector" / "best.pt").is_file()


def _planned(workdir) -> dict[str, int]:
    proc = run(snakemake_cmd(workdir, "--dry-run"))
    text = proc.stdout + proc.stderr
    if "Nothing to be done" in text:
        return {}
    table = text.split("Job stats:")[1].split("Reasons:")[0]
    return {m.group(1): int(m.group(2)) for m in
            (re.match(r"^(\w+)\s+(\d+)\s*$", line.strip()) for line in table.splitlines())
            if m and m.group(1) != "total"}


@pytest.mark.parametrize("subsection, key, rules", [
    ("am", "examples", {"vocal_activation_max", "vocal_report"}),
    ("evaluate", "median_frames", {"vocal_evaluate_detector", "vocal_report"}),
    ("gan", "epochs", {"vocal_train_gan", "vocal_activation_max", "vocal_report"}),
    ("report", "examples_shown", {"vocal_report"}),
])
def test_a_vocal_parameter_reruns_only_the_rules_that_use_it(tiny_run, copy_of, subsection, key, rules):
    workdir = copy_of(tiny_run)
    tiny = workdir / "config" / "tiny.yaml"
    config = yaml.safe_load(tiny.read_text())
    section = config["vocal"].setdefault(subsection, {})
    defaults = yaml.safe_load((workdir / "config" / "config.yaml").read_text())["vocal"][subsection]
    section[key] = section.get(key, defaults[key]) + 1
    tiny.write_text(yaml.safe_dump(config))
    jobs = _planned(workdir)
    assert set(jobs) & VOCAL_RULES == rules, jobs
    assert not {"render_dataset", "vocal_features", "vocal_train_detector"} & (set(jobs) - rules)
