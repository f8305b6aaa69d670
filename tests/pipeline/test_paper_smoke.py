"""The paper profile end to end on CPU (issue 16): tiny fake datasets in the real datasets'
layouts (tests/helpers/paper_format.py: NSynth, MAPS, MAESTRO, Jamendo, RadioMapSeer), the
paper's model sizes and settings with every count cut to 1-2 (config/paper-smoke.yaml), the
whole DAG through to the report. `make test-paper-smoke` runs this file alone.

The one CPU concession beyond the overlay: the radio study works at 64 x 64 instead of the
paper's 256 x 256 (the same networks, 15.5 M parameters; 48 GFLOP per map forward at 256, ~1.7 s
per map on a loaded core, and matching pursuit needs hundreds of forwards)."""

from __future__ import annotations

import json

import pytest
import yaml
from helpers import paper_format
from helpers.workflow import run, snakemake_cmd, workflow_copy

pytestmark = [pytest.mark.pipeline, pytest.mark.slow]

CPU_ONLY = {"radio": {"features": {"resolution": 64}}}


def test_the_paper_dag_runs_through_to_the_report_on_fake_real_format_data(tmp_path):
    work = workflow_copy(tmp_path / "work")
    overlay = paper_format.write_all(tmp_path / "datasets")
    overlay.update(CPU_ONLY)
    local = tmp_path / "paper-smoke-local.yaml"
    local.write_text(yaml.safe_dump(overlay))
    config = work / "config"
    # --keep-going: one run lists every failing rule; the return code still says it failed
    proc = run(snakemake_cmd(work, "--keep-going", "--configfile", str(config / "paper.yaml"),
                             str(config / "paper-smoke.yaml"), str(local), "--", profile="default"),
               check=False)
    out = proc.stdout + proc.stderr
    failed = sorted(set(line.split("Error in rule ")[1].rstrip(":") for line in out.splitlines()
                        if "Error in rule " in line))
    assert proc.returncode == 0 and not failed, f"failed rules {failed}:\n{out[-6000:]}"
    assert "download_dataset" not in out  # every dataset read in place from its path
    for study in ("nsynth", "piano", "vocal", "radio"):
        metrics = json.loads((work / "results" / study / "metrics.json").read_text())
        assert metrics, study
    report = (work / "results" / "report" / "index.html").read_text()
    for name in ("nsynth", "maps", "jamendo", "radiomapseer"):  # the real datasets summarised
        assert (work / "results" / "datasets" / name / "stats.json").is_file(), name
    assert "skipped" in json.dumps(json.loads((work / "results" / "radio" / "metrics.json").read_text())
                                   ["building_sensitivity"])
    assert "radio" in report.lower() and "vocal" in report.lower()
