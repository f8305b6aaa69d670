"""Incremental reruns: a change reruns exactly what depends on it, nothing reruns nothing."""

from __future__ import annotations

import os
import re
import time

import yaml
from helpers.workflow import planned_jobs, run, snakemake_cmd

DATA_RULES = {"render_dataset", "download_dataset"}


def test_touching_nothing_reruns_nothing(tiny_run, copy_of):
    workdir = copy_of(tiny_run)
    assert planned_jobs(workdir) == {}
    t0 = time.perf_counter()
    run(snakemake_cmd(workdir))
    assert planned_jobs(workdir) == {}
    print(f"no-op run: {time.perf_counter() - t0:.2f} s")


def test_report_parameter_reruns_only_downstream_rules(tiny_run, copy_of):
    workdir = copy_of(tiny_run)
    tiny = workdir / "config" / "tiny.yaml"
    config = yaml.safe_load(tiny.read_text())
    config["report"]["examples_per_dataset"] += 1
    tiny.write_text(yaml.safe_dump(config))
    jobs = planned_jobs(workdir)
    assert jobs, "a parameter change must rerun something"
    assert not DATA_RULES & set(jobs), jobs
    assert {"summarize_dataset", "report"} <= set(jobs), jobs


def test_dataset_parameter_reruns_that_dataset_only(tiny_run, copy_of):
    workdir = copy_of(tiny_run)
    tiny = workdir / "config" / "tiny.yaml"
    config = yaml.safe_load(tiny.read_text())
    config["datasets"]["radio_sim"]["transmitters"] += 1
    tiny.write_text(yaml.safe_dump(config))
    jobs = planned_jobs(workdir)
    assert set(jobs) & DATA_RULES == {"render_dataset"} and jobs["render_dataset"] == 1, jobs
    assert jobs["summarize_dataset"] == 1, jobs


def test_editing_a_module_reruns_only_the_rules_that_run_it(tiny_run, copy_of):
    workdir = copy_of(tiny_run)
    module = workdir / "src" / "genex" / "studies" / "radio" / "render.py"
    later = time.time() + 5
    module.write_text(module.read_text() + "\n# edited\n")
    os.utime(module, (later, later))
    jobs = planned_jobs(workdir)
    assert set(jobs) & DATA_RULES == {"render_dataset"} and jobs["render_dataset"] == 1, jobs
    assert jobs.get("summarize_dataset") == 1, jobs


TRAINING_RULES = {"nsynth_train_classifier", "nsynth_train_inpainter", "piano_train_inn", "piano_train_cnn",
                  "vocal_train_detector", "vocal_train_gan", "radio_train"}


def _edit(workdir, rel: str) -> None:
    module = workdir / "src" / "genex" / rel
    later = time.time() + 5
    module.write_text(module.read_text() + "\n# edited\n")
    os.utime(module, (later, later))


def test_editing_the_torch_step_helper_reruns_every_torch_step_and_no_data_rule(tiny_run, copy_of):
    """pipeline/steps.py (seeding, threads, device of every torch step; studies/__init__.py
    before) was in no rule's hand-typed code list: editing it reran nothing."""
    workdir = copy_of(tiny_run)
    _edit(workdir, "pipeline/steps.py")
    jobs = planned_jobs(workdir)
    assert TRAINING_RULES <= set(jobs), jobs
    assert not DATA_RULES & set(jobs) and "summarize_dataset" not in jobs, jobs


def test_editing_the_figure_helpers_reruns_the_figures_and_no_training(tiny_run, copy_of):
    """pipeline/report/figures.py was in no rule's hand-typed code list either."""
    workdir = copy_of(tiny_run)
    _edit(workdir, "pipeline/report/figures.py")
    jobs = planned_jobs(workdir)
    assert jobs.get("summarize_dataset") == 4 and "vocal_report" in jobs, jobs
    assert not (TRAINING_RULES | DATA_RULES) & set(jobs), jobs
