"""Shared fixtures and tiers: a tiny-profile pipeline run in a temporary folder, the markers.

What tests import (runners, tiny models, servers) lives in ``tests/helpers/``."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from filelock import FileLock
from helpers.workflow import imports_of, run, snakemake_cmd, workflow_copy


# modules whose tests take minutes: started first, so that none starts last on a busy worker
LONG_FIRST = ("test_paper_smoke", "test_determinism", "test_remotes", "test_share",
              "test_reliability_training_pipeline", "test_resume")


def work_unit(nodeid: str) -> str:
    """What one parallel worker (``pytest -n``) runs together: a module, so that its fixtures
    are built once; but each resume case on its own, and the reliability cases by study (a
    study's rules share one rerun; each case works on its own copies)."""
    module, _, rest = nodeid.partition("::")
    if module.endswith("test_resume.py"):
        return nodeid
    if module.endswith("test_reliability_training_pipeline.py"):
        return f"{module}::{rest.partition('[')[2].split('_')[0]}"  # nsynth, piano, radio, vocal
    return module


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """pytest-xdist's loadscope scheduling with :func:`work_unit` as the scope."""
    from xdist.scheduler import LoadScopeScheduling

    class ByWorkUnit(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    return ByWorkUnit(config, log)


def pytest_collection_modifyitems(config, items):
    """Tiers: a test that needs the tiny DAG run is a ``pipeline`` test; ``gpu`` tests skip
    without CUDA (they test the CUDA and autocast paths, never needed for a green run). The
    long modules go first (the order parallel workers take them in)."""
    rank = {name: i for i, name in enumerate(LONG_FIRST)}
    items.sort(key=lambda item: rank.get(item.module.__name__, len(rank)))
    cuda = None
    for item in items:
        if "tiny_run" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.pipeline)
        if item.get_closest_marker("gpu"):
            if cuda is None:
                import torch

                cuda = torch.cuda.is_available()
            if not cuda:
                item.add_marker(pytest.mark.skip(reason="needs a CUDA device"))


def pytest_configure(config):
    """A parallel worker (``pytest -n``, pytest-xdist) runs torch on one thread: the workers
    share the cores, and tiny networks run fastest on one thread anyway."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)


def _run_tiny_dag(folder: Path) -> Path:
    workdir = workflow_copy(folder)
    # every command records the genex modules it imported (checked in test_code_inputs.py)
    run(snakemake_cmd(workdir), env={"GENEX_RECORD_IMPORTS": str(imports_of(workdir))})
    return workdir


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """The whole DAG on the tiny profile, once per test session; returns its folder.

    Parallel workers share one run: the first that needs it runs it under a file lock, the
    others wait for it. Tests read it, or change a copy (``copy_of``)."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return _run_tiny_dag(tmp_path_factory.mktemp("tiny-run"))
    shared = tmp_path_factory.getbasetemp().parent / "tiny-run"  # the workers' common folder
    done = shared.with_name("tiny-run.done")
    with FileLock(str(shared.with_name("tiny-run.lock"))):
        if not done.exists():
            for stale in (shared, imports_of(shared)):  # a worker's failed attempt
                shutil.rmtree(stale, ignore_errors=True)
            _run_tiny_dag(shared)
            done.touch()
    return shared


@pytest.fixture()
def copy_of(tmp_path):
    """Copy a finished run to a fresh folder (tests that change things work on a copy)."""
    def _copy(src: Path) -> Path:
        dst = tmp_path / "run"
        shutil.copytree(src, dst, symlinks=True)
        return dst
    return _copy


@pytest.fixture()
def one_torch_thread():
    """Tiny networks run fastest on one thread (and do not spin against other processes)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
