"""Versioned results shared through DVC: repro, push, pull into a fresh clone, experiments.

The repository's DVC stages run the default profile; here the tiny overlay is merged into a
copy's ``config/config.yaml`` (as a user would edit it), so DVC tracks exactly the params
that ran. The remote is a folder in the test's temporary directory.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest
import yaml
from helpers.workflow import BIN, GIT, REPO, deep_merge, run, workflow_copy



def dvc(*args, cwd, **kw):
    return run([shutil.which("dvc", path=os.environ["PATH"]) or "dvc", *args], cwd=cwd, **kw)


@pytest.fixture(scope="module")
def dvc_repo(tiny_run, tmp_path_factory):
    """A git + DVC repository of the tiny run, reproduced through DVC.

    As after `make run` then `make repro`: the finished run is copied, so DVC's stages find
    Snakemake's outputs current and only hash and cache them.
    """
    root = tmp_path_factory.mktemp("share")
    repo = root / "origin"
    shutil.copytree(tiny_run, repo, symlinks=True)
    config = deep_merge(yaml.safe_load((REPO / "config/config.yaml").read_text()),
                        yaml.safe_load((REPO / "config/tiny.yaml").read_text()))
    (repo / "config/config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    run(GIT + ["init", "-q", "-b", "main"], cwd=repo)
    dvc("remote", "modify", "local", "url", str(root / "remote"), cwd=repo)
    dvc("repro", cwd=repo)
    run(GIT + ["add", "-A"], cwd=repo)
    run(GIT + ["commit", "-q", "-m", "tiny run"], cwd=repo)
    return repo


def test_dvc_pipeline_is_valid_and_ends_in_the_report():
    """dvc.yaml parses and its outputs do not overlap (DVC refuses to run otherwise)."""
    dvc("dag", cwd=REPO)  # builds the graph: fails on overlapping or cyclic outputs
    stages = set(dvc("stage", "list", "--name-only", cwd=REPO).stdout.split())
    assert {"nsynth", "piano", "vocal", "radio", "report"} <= stages, stages


def test_dvc_yaml_is_generated_from_the_study_registry():
    """dvc.yaml is written by workflow/lib/dvc_stages.py from the registry: a stage per embedded
    dataset and per study. After adding a study or a dataset:
    PYTHONPATH=src python workflow/lib/dvc_stages.py > dvc.yaml"""
    import sys

    sys.path.insert(0, str(REPO / "workflow" / "lib"))
    import dvc_stages
    from genex.studies import datasets, names

    expected = dvc_stages.dvc_yaml(REPO)
    assert (REPO / "dvc.yaml").read_text() == expected, "dvc.yaml is stale: regenerate it (see above)"
    for name in names():
        assert f"\n  {name}:\n" in expected and f"results/{name}/section" in expected, name
    for name, described in datasets().items():
        assert (f"\n      {name}: " in expected) == bool(described.render), name


def write_profile_stages(repo, profile: str) -> None:
    """runs/<profile>/dvc.yaml, as `make repro PROFILE=<profile>` writes it before it runs."""
    stages = run([str(BIN / "python"), "workflow/lib/dvc_stages.py", "--profile", profile], cwd=repo,
                 env={"PYTHONPATH": str(repo / "src")}).stdout
    (repo / "runs" / profile).mkdir(parents=True, exist_ok=True)
    (repo / "runs" / profile / "dvc.yaml").write_text(stages)


def test_profile_stages_are_valid_beside_the_default_ones(tmp_path):
    """runs/<profile>/dvc.yaml (the paper and tiny profiles through DVC, each in its own
    folder): DVC accepts them beside dvc.yaml, no output declared twice; the repository ships
    none (DVC commands without targets would fail on a profile that never ran)."""
    import sys

    sys.path.insert(0, str(REPO / "workflow" / "lib"))
    import dvc_stages

    assert not list(REPO.glob("runs/*/dvc.yaml")), "commit a profile's dvc.yaml only with its dvc.lock"
    repo = workflow_copy(tmp_path / "repo")
    run(GIT + ["init", "-q", "-b", "main"], cwd=repo)
    for profile in dvc_stages.PROFILES:
        write_profile_stages(repo, profile)
        stages = yaml.safe_load((repo / "runs" / profile / "dvc.yaml").read_text())["stages"]
        assert {"datasets", "nsynth", "piano", "vocal", "radio", "report"} <= set(stages), stages
    dvc("dag", "--full", cwd=repo)  # every dvc.yaml of the repository in one graph: no overlap
    paper = yaml.safe_load((repo / "runs/paper/dvc.yaml").read_text())["stages"]
    assert "results/datasets/nsynth" in paper["nsynth"]["deps"]  # the real dataset's summary
    assert {"../../config/paper.yaml": ["nsynth"]} in paper["nsynth"]["params"]


@pytest.mark.pipeline
def test_a_profile_reproduces_through_dvc_in_its_own_folder(tmp_path):
    """`dvc repro runs/tiny/dvc.yaml:vocal` runs the tiny profile's vocal study (and its
    dataset) in runs/tiny/, records the profile's params, and a second repro does nothing."""
    repo = workflow_copy(tmp_path / "repo")
    run(GIT + ["init", "-q", "-b", "main"], cwd=repo)
    write_profile_stages(repo, "tiny")
    dvc("repro", "runs/tiny/dvc.yaml:vocal", cwd=repo)
    assert (repo / "runs/tiny/results/vocal/metrics.json").is_file()
    assert not (repo / "results/vocal/metrics.json").exists(), "a profile run must stay in its folder"
    lock = yaml.safe_load((repo / "runs/tiny/dvc.lock").read_text())["stages"]
    assert "vocal" in lock["vocal"]["params"]["../../config/tiny.yaml"]
    again = dvc("repro", "runs/tiny/dvc.yaml:vocal", cwd=repo).stdout
    assert "Running stage" not in again, again
    # shared: pushed to the copy's default remote (../genex-dvc-remote, in tmp_path), pulled into a clone
    dvc("push", "runs/tiny/dvc.yaml", cwd=repo)
    run(GIT + ["add", "-A"], cwd=repo)
    run(GIT + ["commit", "-q", "-m", "tiny vocal"], cwd=repo)
    clone = tmp_path / "clone"
    run(GIT + ["clone", "-q", str(repo), str(clone)])
    run([str(clone / "scripts/pull.sh"), "--profile", "tiny", "--stage", "vocal"], cwd=clone)
    metrics = "runs/tiny/results/vocal/metrics.json"
    assert (clone / metrics).read_bytes() == (repo / metrics).read_bytes()
    dry = run(["snakemake", "-n", "--snakefile", "../../Snakefile", "--configfile", "../../config/tiny.yaml",
               "--", "results/vocal/metrics.json"], cwd=clone / "runs/tiny").stdout
    assert "Nothing to be done" in dry, dry


def test_second_repro_does_nothing(dvc_repo):
    out = dvc("repro", cwd=dvc_repo).stdout
    assert "Data and pipelines are up to date" in out
    assert "Running stage" not in out


def test_push_then_pull_into_a_fresh_clone_leaves_nothing_to_do(dvc_repo, tmp_path):
    pushed = dvc("push", cwd=dvc_repo).stdout
    assert "pushed" in pushed
    clone = tmp_path / "clone"
    run(GIT + ["clone", "-q", str(dvc_repo), str(clone)])
    assert not (clone / "results/report/index.html").exists()
    assert not list(clone.glob("results/*/section")), "outputs must come from DVC, not git"
    run([str(clone / "scripts/pull.sh")], cwd=clone)
    assert (clone / "results/report/index.html").exists()
    for metrics in dvc_repo.glob("results/**/metrics.json"):
        assert (clone / metrics.relative_to(dvc_repo)).read_bytes() == metrics.read_bytes()
    dry = run([shutil.which("snakemake", path=os.environ["PATH"]) or "snakemake", "-n",
               "--profile", "workflow/profiles/default"], cwd=clone).stdout
    assert "Nothing to be done" in dry, dry
    assert "Data and pipelines are up to date" in dvc("status", cwd=clone).stdout


def test_experiment_changes_params_and_metrics_diff_shows_them(dvc_repo):
    """`dvc exp run -S` on a parameter of the vocal study's last steps (its median filter):
    DVC reruns the vocal stage, Snakemake only the rules that take the parameter."""
    base = json.loads((dvc_repo / "results/vocal/metrics.json").read_text())
    proc = dvc("exp", "run", "-S", "config/config.yaml:vocal.evaluate.median_frames=9", cwd=dvc_repo)
    jobs = proc.stdout + proc.stderr  # Snakemake logs its jobs on stderr
    assert "rule vocal_evaluate_detector" in jobs, jobs[-4000:]
    assert "vocal_train_detector" not in jobs, "the detector was retrained for a post-processing parameter"
    diff = json.loads(dvc("metrics", "diff", "--json", cwd=dvc_repo).stdout)
    changed = diff["results/vocal/metrics.json"]
    assert changed, diff
    assert all(c["old"] != c["new"] for c in changed.values()), changed
    assert any(key.endswith("median_frames") and c["new"] == 9 for key, c in changed.items()), changed
    params = json.loads(dvc("params", "diff", "--json", cwd=dvc_repo).stdout)
    assert params["config/config.yaml"]["vocal.evaluate.median_frames"]["new"] == 9
    assert base == json.loads(run(GIT + ["show", "HEAD:results/vocal/metrics.json"], cwd=dvc_repo).stdout)
