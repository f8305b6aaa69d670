"""Two tiny runs from scratch give identical metrics and identical data (CPU, fixed seed).

Allowed to differ, and why: ``resources/*/genex.json`` (render time, code version),
``results/datasets/*/section.json`` and the report built from it (they quote the render
time), ``logs/`` (timestamps, timings) and ``.snakemake/`` (Snakemake's own bookkeeping). Trained
models and explanations may differ in their last bits where a kernel is not bitwise
reproducible, but every ``results/**/metrics.json`` (what the report quotes) must not.
"""

from __future__ import annotations

import hashlib

import pytest
from helpers.workflow import run, snakemake_cmd, workflow_copy

pytestmark = [pytest.mark.pipeline, pytest.mark.slow]

ALLOWED_TO_DIFFER = {"genex.json", "section.json"}


def digests(folder):
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name not in ALLOWED_TO_DIFFER}


def test_two_runs_from_scratch_are_identical(tiny_run, tmp_path):
    second = workflow_copy(tmp_path / "second")
    run(snakemake_cmd(second))
    metrics = sorted(str(p.relative_to(tiny_run)) for p in tiny_run.glob("results/**/metrics.json"))
    assert "results/datasets/metrics.json" in metrics
    assert metrics == sorted(str(p.relative_to(second)) for p in second.glob("results/**/metrics.json"))
    for name in metrics:  # every study's numbers, byte for byte
        assert (second / name).read_bytes() == (tiny_run / name).read_bytes(), name
    assert digests(second / "resources") == digests(tiny_run / "resources")
    assert digests(second / "results" / "datasets") == digests(tiny_run / "results" / "datasets")
