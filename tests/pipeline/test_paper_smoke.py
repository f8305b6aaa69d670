"""The paper profile end to end on CPU (issue 16): tiny fake datasets in the real datasets'
layouts (tests/helpers/paper_format.py: NSynth, MAPS, MAESTRO, Jamendo, RadioMapSeer), the
paper's model sizes and settings with every count cut to 1-2 (config/paper-smoke.yaml), the
whole DAG through to the report, run as a user with a GPU box would: `make repro PROFILE=paper`,
i.e. `dvc repro runs/paper/dvc.yaml` (Snakemake working in runs/paper/), with the overlays merged
into the copy's config/paper.yaml. `make test-paper-smoke` runs this file alone.

The one CPU concession beyond the overlay: the radio study works at 64 x 64 instead of the
paper's 256 x 256 (the same networks, 15.5 M parameters; 48 GFLOP per map forward at 256, ~1.7 s
per map on a loaded core, and matching pursuit needs hundreds of forwards)."""

from __future__ import annotations

import json

import pytest
import yaml
from helpers import paper_format
from helpers.workflow import BIN, GIT, deep_merge, run, workflow_copy

pytestmark = [pytest.mark.pipeline, pytest.mark.slow]

CPU_ONLY = {"radio": {"features": {"resolution": 64}}}


def test_the_paper_dag_runs_through_dvc_to_the_report_on_fake_real_format_data(tmp_path):
    repo = workflow_copy(tmp_path / "repo")
    config = repo / "config"
    overlay = paper_format.write_all(tmp_path / "datasets")
    paper = yaml.safe_load((config / "paper.yaml").read_text())
    for layer in (yaml.safe_load((config / "paper-smoke.yaml").read_text()), overlay, CPU_ONLY):
        paper = deep_merge(paper, layer)
    (config / "paper.yaml").write_text(yaml.safe_dump(paper, sort_keys=False))
    run(GIT + ["init", "-q", "-b", "main"], cwd=repo)
    # as `make repro PROFILE=paper` does: the stages follow the edited profile (MAPS now has a path)
    stages = run([str(BIN / "python"), "workflow/lib/dvc_stages.py", "--profile", "paper"], cwd=repo,
                 env={"PYTHONPATH": str(repo / "src")}).stdout
    (repo / "runs/paper").mkdir(parents=True, exist_ok=True)
    (repo / "runs/paper/dvc.yaml").write_text(stages)
    assert "results/datasets/maps" in yaml.safe_load(stages)["stages"]["piano"]["deps"]
    proc = run([str(BIN / "dvc"), "repro", "runs/paper/dvc.yaml"], cwd=repo, check=False)
    out = proc.stdout + proc.stderr
    failed = sorted(set(line.split("Error in rule ")[1].rstrip(":") for line in out.splitlines()
                        if "Error in rule " in line))
    assert proc.returncode == 0 and not failed, f"failed rules {failed}:\n{out[-6000:]}"
    assert "download_dataset" not in out  # every dataset read in place from its path
    work = repo / "runs" / "paper"
    for study in ("nsynth", "piano", "vocal", "radio"):
        metrics = json.loads((work / "results" / study / "metrics.json").read_text())
        assert metrics, study
    report = (work / "results" / "report" / "index.html").read_text()
    for name in ("nsynth", "maps", "jamendo", "radiomapseer"):  # the real datasets summarised
        assert (work / "results" / "datasets" / name / "stats.json").is_file(), name
    assert "skipped" in json.dumps(json.loads((work / "results" / "radio" / "metrics.json").read_text())
                                   ["building_sensitivity"])
    assert "radio" in report.lower() and "vocal" in report.lower()
    lock = yaml.safe_load((work / "dvc.lock").read_text())["stages"]
    assert {"nsynth", "piano", "vocal", "radio", "report"} <= set(lock)
    again = run([str(BIN / "dvc"), "repro", "runs/paper/dvc.yaml"], cwd=repo).stdout
    assert "Running stage" not in again, again
