"""The studies, one package each, and the registry that finds them.

Each ``genex/studies/<name>/`` holds everything only that study uses (its datasets' renderer,
reader, downloader and summary, features, models, training, explanation, metrics, report
section and CLI steps in ``steps.py``) and describes itself in its ``__init__.py`` as
``STUDY = Study(...)``: a name and its datasets, with the code that makes and reads each named
as ``"module:function"`` strings, so reading the registry imports no study code. The CLI
(subcommands, render/download/summarize choices), the workflow (rule files, ``rule all``,
the config schema's source enum) and DVC read this registry: a new study is one package, one
rule file (``workflow/rules/<name>.smk``) and one config section.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Dataset:
    """One dataset a study can read; ``config`` is the path of its config section."""

    name: str                    # as on the command line and in resources/<name>
    config: tuple[str, ...]      # e.g. ("datasets", "nsynth_sf")
    title: str                   # heading of its section in the report
    description: str             # first paragraph of that section
    summarize: str               # "module:function" (root, out, params, rng) -> Summary
    order: int                   # place in the report's "Datasets" group
    render: str | None = None    # embedded: "module:function" (out_dir, params, seed)
    download: str | None = None  # real, downloadable: "module:function" (out_dir, params)

    @property
    def source(self) -> str:
        return "embedded" if self.render else "real"


@dataclass(frozen=True)
class Study:
    """A study: its CLI steps live in ``genex.studies.<name>.steps``; its first dataset is
    the default source (the embedded one)."""

    name: str
    datasets: tuple[Dataset, ...] = field(default_factory=tuple)

    @property
    def steps(self) -> str:
        return f"{__name__}.{self.name}.steps"


def names() -> list[str]:
    """The studies' names: the subpackages of this folder (found without importing them)."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if m.ispkg)


def study(name: str) -> Study:
    """A study's descriptor (imports its ``__init__.py`` only)."""
    if name not in names():
        raise ValueError(f"no study {name!r}; known: {', '.join(names())}")
    described = getattr(importlib.import_module(f"{__name__}.{name}"), "STUDY", None)
    if not isinstance(described, Study) or described.name != name:
        raise ValueError(f"genex/studies/{name}/__init__.py: STUDY must be Study(name={name!r}, ...)")
    return described


def studies(only: tuple[str, ...] | None = None) -> list[Study]:
    return [study(n) for n in (names() if only is None else only)]


def datasets(only: tuple[str, ...] | None = None) -> dict[str, Dataset]:
    """Dataset name -> descriptor, over the studies (all by default)."""
    found: dict[str, Dataset] = {}
    for s in studies(only):
        for d in s.datasets:
            if d.name in found:
                raise ValueError(f"dataset {d.name!r} is named by two studies")
            found[d.name] = d
    return found


def dataset(name: str) -> Dataset:
    known = datasets()
    if name not in known:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(sorted(known))}")
    return known[name]


def load(ref: str):
    """The function a ``"module:function"`` string names."""
    module, _, func = ref.partition(":")
    return getattr(importlib.import_module(module), func)
