"""The SLURM profile: the tiny DAG on a one-node SLURM cluster started on localhost.

The cluster test is marked ``slurm`` (deselect with ``-m 'not slurm'``): it needs root, Debian's
``slurm-wlm`` and ``munge`` (installed with apt when missing, so then network to Debian), and
takes a few minutes. The profile checks at the top run everywhere.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from helpers.workflow import REPO, run, snakemake_cmd, workflow_copy

pytestmark = pytest.mark.pipeline

PROFILE = REPO / "workflow" / "profiles" / "slurm"
SCRIPT = REPO / "scripts" / "slurm-local.sh"

# A GPU rule added to the test's copy of the workflow: it records what SLURM gave the job.
GPU_PROBE_RULE = '''

rule slurm_gpu_probe:
    output:
        "slurm-gpu-probe.txt",
    resources:
        gpu=1,
    shell:
        "echo SLURM_JOB_ID=${{SLURM_JOB_ID:-none}} > {output}"
'''

# What the one-node test cluster cannot give and the profile asks for on a real cluster: the
# node has 2 CPUs and no accounting database (so no accounts, and `sacct` cannot answer).
TARGETS = ("all", "slurm-gpu-probe.txt")  # `all` is a local rule: snakemake runs it, not SLURM
# memory and runtime come from the config's resources section: small ones through an overlay
LOCAL_RESOURCES = {"resources": {"mem_mb": 1000, "runtime": 30, "gpu_threads": 1}}
LOCAL_OVERRIDES = (
    "--default-resources", "cpus_per_task=1",
    "--slurm-no-account",
    "--slurm-status-command", "squeue",
    "--slurm-init-seconds-before-status-checks", "5",
    "--slurm-keep-successful-logs",
    "--jobs", "4",
)


def test_profile_uses_the_slurm_executor():
    cfg = yaml.safe_load((PROFILE / "config.yaml").read_text())
    assert cfg["executor"] == "slurm"
    defaults = cfg.get("default-resources") or {}
    # memory, runtime and threads come from the config per rule (tests/test_paper_datasets.py)
    assert not {"mem_mb", "runtime", "cpus_per_task"} & set(defaults)
    # CPU rules must not ask for GPUs: no gpu/gres default, no global GPU pool that would
    # serialise GPU jobs across the cluster (as the local profile does)
    assert not {"gpu", "gres", "gpus"} & set(defaults)
    assert "resources" not in cfg
    assert "--gres" not in str(defaults.get("slurm_extra", ""))


def test_gpu_rules_ask_slurm_for_a_gpu():
    """The plugin turns a rule's ``resources: gpu=1`` into ``sbatch --gpus=1``, and only then."""
    utils = pytest.importorskip("snakemake_executor_plugin_slurm.utils")

    class Resources(dict):
        __getattr__ = dict.get

    class Job:
        def __init__(self, **resources):
            self.resources = Resources(resources)

    assert utils.set_gres_string(Job(gpu=1)).strip() == "--gpus=1"
    assert utils.set_gres_string(Job(mem_mb=1000)).strip() == ""


# ---- the one-node cluster ------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _debian_reachable() -> bool:
    try:
        socket.create_connection(("deb.debian.org", 80), timeout=5).close()
        return True
    except OSError:
        return False


def _skip_reason() -> str | None:
    """Why this machine cannot run the local cluster, or None."""
    if os.name != "posix" or os.geteuid() != 0:
        return "needs root (slurmd and munged run as root)"
    system_conf = Path("/etc/slurm/slurm.conf")
    if system_conf.exists() and not system_conf.is_symlink():
        return f"{system_conf} belongs to a real SLURM install; the test cluster would replace it"
    if shutil.which("slurmctld") and shutil.which("munged"):
        return None
    if not shutil.which("apt-get"):
        return "slurm-wlm/munge missing and no apt-get (not Debian/Ubuntu) to install them"
    if not _debian_reachable():
        return "slurm-wlm/munge missing and deb.debian.org unreachable to install them"
    return None


@pytest.fixture(scope="module")
def slurm_cluster():
    """Start a one-node SLURM cluster on localhost; yield the environment that reaches it."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    # short path: the munge socket path must fit in a unix socket name (108 bytes)
    root = Path(tempfile.mkdtemp(prefix="genex-slurm-"))
    env = {**os.environ, "GENEX_SLURMCTLD_PORT": str(_free_port()),
           "GENEX_SLURMD_PORT": str(_free_port()), "GENEX_SLURM_FAKE_GPUS": "1"}
    start = subprocess.run([str(SCRIPT), "start", str(root)], env=env, capture_output=True, text=True)
    if start.returncode != 0:
        subprocess.run([str(SCRIPT), "stop", str(root)], env=env, capture_output=True)
        logs = "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in (root / "log").glob("*.log"))
        pytest.fail(f"{SCRIPT} start failed ({start.returncode}):\n{start.stderr[-3000:]}\n{logs}")
    env["SLURM_CONF"] = str(root / "etc" / "slurm.conf")
    try:
        yield env
    finally:
        subprocess.run([str(SCRIPT), "stop", str(root)], env=env, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def _slurm_jobs(env: dict) -> list[dict[str, str]]:
    """The jobs slurmctld remembers (finished ones for MinJobAge), as scontrol's key=value."""
    out = subprocess.run(["scontrol", "show", "job", "--oneliner"], env=env, capture_output=True,
                         text=True, check=True).stdout
    return [dict(f.split("=", 1) for f in line.split() if "=" in f) for line in out.splitlines()
            if line.startswith("JobId=")]


@pytest.mark.slurm
@pytest.mark.slow
def test_tiny_dag_runs_through_the_slurm_profile(slurm_cluster, tmp_path, monkeypatch):
    env = slurm_cluster
    sinfo = subprocess.run(["sinfo", "--noheader", "--format=%T %G"], env=env,
                           capture_output=True, text=True, check=True).stdout.split()
    assert sinfo[0] == "idle", f"node not idle before the run: {sinfo}"

    workdir = workflow_copy(tmp_path / "wf")
    with open(workdir / "Snakefile", "a") as f:
        f.write(GPU_PROBE_RULE)
    overlay = tmp_path / "local-resources.yaml"
    overlay.write_text(yaml.safe_dump(LOCAL_RESOURCES))
    # the tiny profile and the overlay in one --configfile option (a second would drop the first)
    cmd = snakemake_cmd(workdir, "--profile", str(PROFILE), *LOCAL_OVERRIDES, "--configfile",
                        str(workdir / "config" / "tiny.yaml"), str(overlay), "--", *TARGETS,
                        profile="default")
    # sbatch, squeue and the jobs' own srun find the test cluster through SLURM_CONF, which
    # run() passes on from os.environ (and sbatch --export=ALL on to the jobs)
    monkeypatch.setenv("SLURM_CONF", env["SLURM_CONF"])
    start = time.monotonic()
    proc = run(cmd, cwd=workdir)
    wall = time.monotonic() - start
    print(f"SLURM run of the tiny DAG: {wall:.0f} s")

    # every job went through sbatch: one finished SLURM job per snakemake job
    jobs = _slurm_jobs(env)
    n_jobs = _submitted_jobs(proc.stdout + proc.stderr)
    assert {job["JobState"] for job in jobs} == {"COMPLETED"}, jobs
    assert len(jobs) == n_jobs > 2, (jobs, n_jobs)
    assert (workdir / "results" / "report" / "index.html").exists()
    assert (workdir / "results" / "datasets" / "metrics.json").exists()
    assert "SLURM_JOB_ID=none" not in (workdir / "slurm-gpu-probe.txt").read_text()
    # the GPU rules (the probe and the studies' training/explanation rules) asked SLURM for a
    # GPU, and no other rule did
    gpu_rules = {job["Comment"].split("_wildcards_")[0] for job in jobs
                 if "gpu" in job.get("TresPerJob", "")}
    expected = {f"rule_{name}" for name in ("slurm_gpu_probe", *declared_gpu_rules())}
    assert len(expected) > 1 and gpu_rules == expected, jobs
    assert list((workdir / ".snakemake" / "slurm_logs").rglob("*.log"))


def declared_gpu_rules() -> list[str]:
    """The rules whose ``resources:`` declare ``gpu=1`` in workflow/rules/*.smk."""
    rules = []
    for path in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        for match in re.finditer(r"^rule (\w+):\n(.*?)(?=^rule |\Z)", path.read_text(), re.S | re.M):
            if re.search(r"^\s+gpu\s*=\s*1,?$", match.group(2), re.M):
                rules.append(match.group(1))
    return rules


def _submitted_jobs(log: str) -> int:
    """The jobs snakemake sent to SLURM: its 'Job stats' table less the local rule ``all``."""
    counts = {}
    for line in log.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            counts.setdefault(parts[0], int(parts[1]))  # the first table: what was planned
    if "total" not in counts:
        raise AssertionError(f"no job stats in snakemake's log:\n{log[-3000:]}")
    return counts["total"] - counts.get("all", 0)
