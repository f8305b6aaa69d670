"""The Snakemake workflow: lint-clean, and the tiny profile runs the whole DAG."""

from __future__ import annotations

import json
import os
import time

import yaml
from helpers.workflow import rule_blocks, run, snakemake_cmd, workflow_copy

DATASETS = ("nsynth-sf", "piano-sf", "vocal-sf", "radio-sim")


def test_lint_is_clean(tmp_path):
    proc = run(snakemake_cmd(tmp_path, "--lint", profile="default"), check=False)
    assert "Congratulations" in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def test_default_profile_dag_builds(tmp_path):
    proc = run(snakemake_cmd(tmp_path, "--dry-run", "--quiet", "rules", profile="default"))
    for rule in ("render_dataset", "summarize_dataset", "report", "dataset_metrics"):
        assert rule in proc.stdout


def test_paper_profile_downloads_real_data(tmp_path):
    proc = run(snakemake_cmd(tmp_path, "--dry-run", "--quiet", "rules", profile="paper"))
    assert "download_dataset" in proc.stdout
    assert "render_dataset" not in proc.stdout


def test_tiny_dag_writes_report_metrics_logs_and_benchmarks(tiny_run):
    index = tiny_run / "results" / "report" / "index.html"
    assert index.is_file()
    html = index.read_text()
    metrics = json.loads((tiny_run / "results" / "datasets" / "metrics.json").read_text())
    assert sorted(metrics) == sorted(DATASETS)
    for name in DATASETS:
        assert (tiny_run / "resources" / name / "genex.json").is_file()
        assert name in html
        assert (tiny_run / "logs" / "render" / f"{name}.log").is_file()
        assert (tiny_run / "logs" / "benchmarks" / "render" / f"{name}.tsv").is_file()
    assert not list((tiny_run / "resources").glob(".*.partial"))


def test_second_run_has_nothing_to_do(tiny_run):
    proc = run(snakemake_cmd(tiny_run, "--dry-run"))
    assert "Nothing to be done" in proc.stdout + proc.stderr, proc.stdout


def test_every_rule_that_may_use_cuda_asks_for_a_gpu_and_follows_the_device_setting():
    """A rule that passes --device declares resources gpu=1 (the SLURM profile asks for one),
    and takes the device from the config: one convention, no hard-coded `--device cpu`."""
    blocks = rule_blocks()
    assert len(blocks) > 30
    for name, block in blocks.items():
        if "--device" not in block:
            continue
        assert "gpu=1" in block, f"rule {name} may run on CUDA without asking for a GPU"
        assert "--device {params.device}" in block and 'device=config["device"]' in block, name


def _real_nsynth(tmp_path, **nsynth) -> tuple:
    work = workflow_copy(tmp_path / "work")
    overlay = tmp_path / "real.yaml"
    overlay.write_text(yaml.safe_dump({"sources": {"nsynth": "nsynth"}, "datasets": {"nsynth": nsynth}}))
    return work, f"--configfile={overlay}"


def test_a_dataset_in_resources_is_not_deleted_by_a_code_edit(tmp_path):
    """A rerun deletes its output first: resources/nsynth (downloaded, or copied in by hand)
    older than the downloader's code must stay, not be downloaded again."""
    work, overlay = _real_nsynth(tmp_path)
    data = work / "resources" / "nsynth"
    (data / "nsynth-test").mkdir(parents=True)
    (data / "nsynth-test" / "examples.json").write_text("{}")
    old = time.time() - 86400
    for p in (data / "nsynth-test" / "examples.json", data / "nsynth-test", data):
        os.utime(p, (old, old))
    # no rule owns an existing resources/<name> (a real run with --forceall: test_paper_datasets.py)
    proc = run(snakemake_cmd(work, "--dry-run", "--forceall", overlay, "--", "results/datasets/nsynth",
                             profile="default"))
    assert "download_dataset" not in proc.stdout + proc.stderr, proc.stdout[-2000:]
    assert "summarize_dataset" in proc.stdout


def test_a_dataset_path_is_read_in_place_without_a_download(tmp_path):
    mine = tmp_path / "my nsynth"
    (mine / "nsynth-test").mkdir(parents=True)
    work, overlay = _real_nsynth(tmp_path, path=str(mine))
    proc = run(snakemake_cmd(work, "--dry-run", "--printshellcmds", overlay, "--", "results/nsynth/features",
                             profile="default"))
    out = proc.stdout + proc.stderr
    assert "download_dataset" not in out and "genex nsynth features" in out, out[-3000:]
    assert f"'{mine}'" in out, out[-3000:]
