"""The package layout: imports run one way, with no circles (read from the code, nothing imported).

Layers, bottom up: ``genex`` itself and ``genex.progress`` (a leaf the library shares), the
library ``genex.xai``, the shared ``genex.pipeline``, the studies ``genex.studies`` (the registry
and one package per study), and ``genex.cli`` on top. A module may import its own layer or
lower ones; a study never another study; a ``_private`` name stays in its package.
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

from helpers.workflow import REPO

LAYERS = {"genex": 0, "genex.progress": 0, "genex.xai": 1, "genex.pipeline": 2, "genex.studies": 3,
          "genex.audio": 3,  # the front door: the library and the atomic I/O of the pipeline
          "genex.cli": 4}


def modules(src: Path) -> dict[str, Path]:
    """Module name -> file, for every module of the ``genex`` package under ``src``."""
    found = {}
    for path in sorted((src / "genex").rglob("*.py")):
        parts = path.relative_to(src).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(src: Path) -> list[tuple[str, str, str | None]]:
    """(importer, imported module, name taken from it or None) for every genex import."""
    known = modules(src)
    edges = []
    for name, path in known.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                edges += [(name, a.name, None) for a in node.names if a.name in known]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                if base not in known:
                    continue
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    edges.append((name, sub, None) if sub in known else (name, base, alias.name))
    return edges


_PACKAGES: set[str] = set()  # the packages (folders with __init__.py) of the tree being checked


def unit(module: str) -> str:
    """The package a module belongs to; the top package's own modules (cli, progress) stand alone."""
    if module in _PACKAGES:
        return module
    parent = module.rpartition(".")[0]
    return module if parent == "genex" else parent


def layer(module: str) -> int | None:
    """The module's layer; None for a package the layers do not name (a breach of its own)."""
    for prefix in sorted(LAYERS, key=len, reverse=True):
        if module == prefix or (prefix != "genex" and module.startswith(prefix + ".")):
            return LAYERS[prefix]
    return None


def study_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[2] if len(parts) > 2 and parts[:2] == ["genex", "studies"] else None


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The circles of a directed graph (Tarjan's strongly connected components of 2 or more)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def problems(src: Path) -> list[str]:
    """Every breach of the layout under ``src``, one line each."""
    known = modules(src)
    _PACKAGES.clear()
    _PACKAGES.update(name for name, path in known.items() if path.name == "__init__.py")
    edges = imports(src)
    found = []
    module_graph: dict[str, set[str]] = {}
    package_graph: dict[str, set[str]] = {}
    for importer, target, name in edges:
        module_graph.setdefault(importer, set()).add(target)
        if unit(importer) != unit(target):
            package_graph.setdefault(unit(importer), set()).add(unit(target))
        for module in (importer, target):
            if layer(module) is None:
                found.append(f"in no layer (add its package to LAYERS in tests/unit/workflow/test_layout.py): {module}")
        if None not in (layer(importer), layer(target)) and layer(target) > layer(importer):
            found.append(f"upward import: {importer} imports {target}")
        if importer.startswith("genex.xai") and not (target.startswith("genex.xai") or target == "genex.progress"):
            found.append(f"the library imports outside itself: {importer} imports {target}")
        if importer.startswith("genex.pipeline") and target.startswith("genex.studies"):
            found.append(f"the pipeline imports a study: {importer} imports {target}")
        if study_of(importer) and study_of(target) and study_of(importer) != study_of(target):
            found.append(f"one study imports another: {importer} imports {target}")
        if name and name.startswith("_") and not name.startswith("__") and unit(importer) != unit(target):
            found.append(f"private name from another package: {importer} imports {target}.{name}")
    found += [f"circle of modules: {' -> '.join(c)}" for c in cycles(module_graph)]
    found += [f"circle of packages: {' -> '.join(c)}" for c in cycles(package_graph)]
    return list(dict.fromkeys(found))  # once each


def test_the_layout_of_genex_holds():
    assert not problems(REPO / "src"), "\n".join(problems(REPO / "src"))


def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in {"genex/__init__.py": "", "genex/xai/__init__.py": "", "genex/pipeline/__init__.py": "",
                      "genex/studies/__init__.py": "", "genex/studies/a/__init__.py": "",
                      "genex/studies/b/__init__.py": "", **files}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(textwrap.dedent(text))
    return root


def test_each_kind_of_breach_is_found(tmp_path):
    """The checker itself: a made-up tree with one breach of each kind."""
    src = _tree(tmp_path, {
        "genex/xai/core.py": "from genex.pipeline import io\n",
        "genex/pipeline/io.py": "from genex.studies.a import steps\n",
        "genex/studies/a/steps.py": "from genex.studies.b.model import _hidden\nfrom genex.studies.a import report\n",
        "genex/studies/a/report.py": "import genex.studies.a.steps\n",
        "genex/studies/b/model.py": "_hidden = 1\n",
        "genex/pipeline/report/__init__.py": "",
        "genex/pipeline/report/html.py": "from genex.pipeline.figures import draw\n",
        "genex/pipeline/figures.py": "def draw():\n    pass\n",
        "genex/pipeline/tables.py": "from genex.pipeline.report import html\n",
    })
    text = "\n".join(problems(src))
    assert "upward import: genex.xai.core imports genex.pipeline.io" in text
    assert "the library imports outside itself: genex.xai.core" in text
    assert "the pipeline imports a study: genex.pipeline.io imports genex.studies.a.steps" in text
    assert "one study imports another: genex.studies.a.steps imports genex.studies.b.model" in text
    assert "private name from another package: genex.studies.a.steps imports genex.studies.b.model._hidden" in text
    assert "circle of modules: genex.studies.a.report -> genex.studies.a.steps" in text
    assert "circle of packages: genex.pipeline -> genex.pipeline.report" in text  # no module circle
    clean = _tree(tmp_path / "clean", {"genex/xai/core.py": "from genex.progress import progress\n",
                                        "genex/progress.py": "def progress(x):\n    return x\n",
                                        "genex/pipeline/io.py": "from genex.xai.core import progress\n"})
    assert problems(clean) == []
