"""Running the workflow from tests: the repository, a copy of the workflow, snakemake commands."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "workflow" / "lib"))
from dvc_stages import deep_merge  # noqa: E402,F401  Snakemake's --configfile merge, for tests
BIN = Path(sys.executable).parent
GIT = ["git", "-c", "user.name=genex-test", "-c", "user.email=test@genex.invalid"]


# with every .gitignore of resources/ and results/: what git must not track is DVC's to share
WORKFLOW_FILES = ("Snakefile", "workflow", "config", "src", "scripts", "dvc.yaml", ".dvc", ".dvcignore",
                  "resources/.gitignore", "results/.gitignore",
                  *sorted(str(p.relative_to(REPO)) for p in REPO.glob("results/*/.gitignore")),
                  "runs/.gitignore", *sorted(str(p.relative_to(REPO)) for p in REPO.glob("runs/*/dvc.yaml")))

# caches, local DVC settings and bytecode stay behind
COPY_IGNORE = shutil.ignore_patterns("__pycache__", "tmp", "cache", "config.local")


def snakemake_cmd(workdir: Path, *args: str, profile: str = "tiny") -> list[str]:
    """A snakemake command run in ``workdir`` on a profile.

    The workflow is ``workdir``'s own copy when it has one (see :func:`workflow_copy`), so a
    test may edit its sources without touching the repository; else the repository's.
    """
    base = workdir if (workdir / "Snakefile").exists() else REPO
    cmd = [str(BIN / "snakemake"), "--snakefile", str(base / "Snakefile"),
           "--directory", str(workdir), "--cores", "2"]
    if profile != "default":
        cmd += [f"--configfile={base / 'config' / f'{profile}.yaml'}"]  # "=": a target may follow
    return cmd + list(args)


def rule_blocks() -> dict[str, str]:
    """rule name -> its text, from every rule file of the repository's workflow."""
    blocks = {}
    for smk in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        for block in re.split(r"(?m)^(?=rule \w+:)", smk.read_text()):
            if name := re.match(r"rule (\w+):", block):
                blocks[name.group(1)] = block
    return blocks


def workflow_copy(dst: Path) -> Path:
    """Copy the workflow (Snakefile, rules, config, sources, DVC files) into ``dst``."""
    dst.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dst / name, ignore=COPY_IGNORE)
        elif src.exists():
            (dst / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / name)
    return dst


def run(cmd: list[str], cwd: Path | None = None, check: bool = True, env: dict | None = None,
        **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           "GENEX_NO_PROGRESS": "1", **(env or {})}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n"
                             f"{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


def imports_of(run_folder: Path) -> Path:
    """Where the tiny run's commands recorded their imports (beside the run, not in it)."""
    return run_folder.with_name(run_folder.name + "-imports")


def planned_jobs(workdir, *args) -> dict[str, int]:
    """Rule -> job count of a dry run (Snakemake's job-stats table)."""
    proc = run(snakemake_cmd(workdir, "--dry-run", *args))
    text = proc.stdout + proc.stderr
    if "Nothing to be done" in text:
        return {}
    table = text.split("Job stats:")[1].split("Reasons:")[0]
    jobs = {}
    for line in table.splitlines():
        match = re.match(r"^(\w+)\s+(\d+)\s*$", line.strip())
        if match and match.group(1) != "total":
            jobs[match.group(1)] = int(match.group(2))
    return jobs
