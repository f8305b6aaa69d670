"""genex.xai is a library of its own: importing it pulls in no pipeline or audio module, and
its wheel installs and runs where only torch, numpy and scipy are."""

from __future__ import annotations

import importlib.metadata as md
import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
CORE = {"torch", "numpy", "scipy"}
# what a user of the library must not pay for (nor genex's own pipeline packages)
FORBIDDEN = ("snakemake", "dvc", "fluidsynth", "music21", "librosa", "captum", "soundfile",
             "pandas", "matplotlib", "pretty_midi", "FrEIA", "jinja2", "yaml", "tqdm",
             "genex.studies", "genex.pipeline", "genex.cli")

EXAMPLE = """
import torch, genex.xai as xai
model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(2 * 8, 3))
cmap = xai.ComponentMap.identity((2, 8))
x = torch.randn(4, 2, 8)
for e in (xai.RDEConcrete(model, xai.NoiseInfiller(), cmap, steps=3, n_samples=2),
          xai.RDEL1(model, xai.ZeroInfiller(), cmap, steps=3),
          xai.MatchingPursuit(model, xai.ZeroInfiller(), cmap, k=2), xai.Random(model, cmap)):
    assert e.attribute(x, target=0).shape == (4, 16)
print("ok")
"""


def _modules_after(imports: str) -> set[str]:
    code = f"import sys, json; {imports}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout))


def test_importing_the_library_imports_no_pipeline_or_audio_module():
    # what torch, numpy and scipy import by themselves (torch takes tqdm when it is there)
    baseline = _modules_after("import torch, numpy, scipy.linalg, scipy.stats")
    loaded = _modules_after("import genex.xai") - baseline
    bad = sorted(m for m in loaded if any(m == f or m.startswith(f + ".") for f in FORBIDDEN))
    assert not bad, bad
    assert "genex.xai" in loaded


def test_the_core_requires_only_torch_numpy_scipy():
    requires = md.requires("genex") or []
    core = {re.split(r"[ <>=!~;\[]", r, maxsplit=1)[0].lower() for r in requires if "extra ==" not in r}
    assert core == CORE


def _closure(names: set[str]) -> set[str]:
    """The distributions ``names`` need, with theirs (markers as this machine evaluates them)."""
    from packaging.requirements import Requirement

    seen, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name.lower() in seen:
            continue
        seen.add(name.lower())
        for req in md.requires(name) or []:
            r = Requirement(req)
            if r.marker is None or r.marker.evaluate({"extra": ""}):
                try:
                    md.distribution(r.name)
                except md.PackageNotFoundError:
                    continue
                todo.append(r.name)
    return seen


@pytest.mark.slow
def test_the_wheel_installs_and_runs_with_only_the_core_dependencies(tmp_path):
    """Build the wheel, unpack it into a bare venv whose site-packages hold only the core
    dependencies (and theirs), and run the library there: nothing else can be imported."""
    # build from a copy: setuptools writes build/ and *.egg-info into the source tree
    source = tmp_path / "source"
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path / "dist"), str(source)], check=True, capture_output=True, text=True)
    wheel = next((tmp_path / "dist").glob("genex-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next(venv.glob("lib/python*/site-packages"))
    linked = set()
    for dist_name in _closure(CORE):
        dist = md.distribution(dist_name)
        for f in dist.files or []:
            top = Path(str(f)).parts[0]
            src = Path(dist.locate_file(top))
            if top not in linked and top != ".." and src.exists() and not (site / top).exists():
                (site / top).symlink_to(src)
                linked.add(top)
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)
    py = venv / "bin" / "python"
    out = subprocess.run([str(py), "-c", EXAMPLE], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-3000:]
    # the pipeline really is absent there, and it says what to install
    absent = subprocess.run([str(py), "-c", "import snakemake"], capture_output=True, text=True)
    assert absent.returncode != 0
    meta = subprocess.run([str(py), "-c", "import importlib.metadata as m; print(m.requires('genex'))"],
                          capture_output=True, text=True, check=True).stdout
    assert "extra == \"pipeline\"" in meta


def test_the_cli_parser_imports_no_torch():
    """`genex --help` stays fast: commands import torch when they run, not when they register."""
    loaded = _modules_after("import genex.cli; genex.cli.build_parser()")
    assert "torch" not in loaded
