"""The source files a `genex` command runs, found by reading the code (no import, no run).

A rule's code inputs are what makes an edit rerun it. Typed by hand, the lists missed
modules (the seeding and device helpers every torch step calls, the figure helpers), so
editing them reran nothing. Here they follow from the command: start at the functions the
command runs and follow, function by function, every name they use that the package
defines, and every module that is imported on the way (its top level runs on import).

Precise where Python is static (functions, classes, ``from genex.x import y``, module
attributes ``x.y``); a class counts whole. Strings that name code (``"genex.studies.x.render:render"``)
are the caller's to pass as further entry points. ``tests/pipeline`` checks the result
against the modules each command of a tiny run really imported (tests/unit/workflow/test_code_inputs.py).
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

PACKAGE = "genex"


class Source:
    """The parsed modules of one source tree (``root`` holds the ``genex`` folder)."""

    def __init__(self, root: Path):
        self.root = Path(root)

    @functools.lru_cache(maxsize=None)
    def file(self, module: str) -> Path | None:
        base = self.root.joinpath(*module.split("."))
        for path in (base.with_suffix(".py"), base / "__init__.py"):
            if path.is_file():
                return path
        return None

    @functools.lru_cache(maxsize=None)
    def parsed(self, module: str) -> "_Module":
        return _Module(module, ast.parse(self.file(module).read_text(), str(self.file(module))),
                       self.file(module).name == "__init__.py")

    def is_module(self, name: str) -> bool:
        return (name == PACKAGE or name.startswith(PACKAGE + ".")) and self.file(name) is not None

    @functools.lru_cache(maxsize=None)
    def top_bindings(self, module: str) -> dict[str, tuple[str, str | None]]:
        """The names ``module``'s top level imports (see :func:`_bindings`)."""
        mod = self.parsed(module)
        return _bindings(mod, mod.top, self)

    def longest_module(self, dotted: str) -> tuple[str, str | None] | None:
        """``a.b.c.f`` -> (``a.b.c``, ``f``) when a.b.c is a module; (``a.b``, None) for a module."""
        parts = dotted.split(".")
        for i in range(len(parts), 0, -1):
            if self.is_module(".".join(parts[:i])):
                return ".".join(parts[:i]), (parts[i] if i < len(parts) else None)
        return None


class _Module:
    def __init__(self, name: str, tree: ast.Module, package: bool):
        self.name = name
        self.package = name if package else name.rpartition(".")[0]
        self.defs = {n.name: n for n in tree.body
                     if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
        self.top = [n for n in tree.body if not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                                ast.ClassDef))]

    def absolute(self, node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        base = self.package.split(".")
        base = base[:len(base) - (node.level - 1)]
        return ".".join(base + ([node.module] if node.module else []))


def _bindings(mod: _Module, nodes, source: Source) -> dict[str, tuple[str, str | None]]:
    """Names bound by imports in ``nodes``: name -> (module, attribute or None)."""
    out: dict[str, tuple[str, str | None]] = {}
    for stmt in nodes:
        for n in ast.walk(stmt):
            if isinstance(n, ast.Import):
                for alias in n.names:
                    if alias.name.startswith(PACKAGE):
                        # `import genex.a.b` binds `genex`; `import genex.a.b as c` binds c
                        out[alias.asname or alias.name.split(".")[0]] = (
                            alias.name if alias.asname else alias.name.split(".")[0], None)
            elif isinstance(n, ast.ImportFrom):
                target = mod.absolute(n)
                if target.startswith(PACKAGE):
                    for alias in n.names:
                        sub = f"{target}.{alias.name}"
                        out[alias.asname or alias.name] = (sub, None) if source.is_module(sub) \
                            else (target, alias.name)
    return out


def _imported_modules(mod: _Module, nodes, source: Source) -> set[str]:
    """Modules imported (hence run) by ``nodes``, with their parent packages."""
    found = set()
    for stmt in nodes:
        for n in ast.walk(stmt):
            names = []
            if isinstance(n, ast.Import):
                names = [a.name for a in n.names]
            elif isinstance(n, ast.ImportFrom):
                target = mod.absolute(n)
                names = [target] + [f"{target}.{a.name}" for a in n.names]
            for name in names:
                if source.is_module(name):
                    found.add(name)
    return found


def closure(source: Source, entries: list[str]) -> set[str]:
    """Modules whose code runs from ``entries`` ('module:function' or 'module')."""
    modules: set[str] = set()
    seen: set[tuple[str, str | None]] = set()
    todo: list[tuple[str, str | None]] = []
    for entry in entries:
        module, _, name = entry.partition(":")
        todo.append((module, name or None))
    while todo:
        node = todo.pop()
        if node in seen or not source.is_module(node[0]):
            continue
        seen.add(node)
        if node[1] is None:  # the module's top level: what runs on import
            modules.add(node[0])
        todo.extend(_runs_next(source, *node))
    return modules


@functools.lru_cache(maxsize=None)
def _runs_next(source: Source, module: str, name: str | None) -> tuple[tuple[str, str | None], ...]:
    """What running ``module``'s ``name`` (its top level when None) runs in turn. A function of
    the node alone, so it is read once per Snakemake run, not once per rule."""
    mod = source.parsed(module)
    out: list[tuple[str, str | None]] = []
    if name is None:
        body = mod.top
    elif name in mod.defs:
        body = [mod.defs[name]]
        out.append((module, None))
    else:  # a name the module imports: follow the import
        binding = source.top_bindings(module).get(name)
        return tuple([binding] if binding else []) + ((module, None),)
    for m in _imported_modules(mod, body, source):
        parts = m.split(".")
        for i in range(1, len(parts) + 1):  # importing a.b.c runs a, a.b and a.b.c
            if source.is_module(".".join(parts[:i])):
                out.append((".".join(parts[:i]), None))
    bound = source.top_bindings(module) | _bindings(mod, body, source)
    handlers = _handlers(body)
    for n in (x for stmt in body for x in ast.walk(stmt)):
        if isinstance(n, ast.Name) and n.id not in handlers:
            if n.id in mod.defs and n.id != name:
                out.append((module, n.id))
            elif n.id in bound:
                out.append(bound[n.id])
        elif isinstance(n, ast.Attribute) and (dotted := _dotted(n)):
            # genex.x.y / alias.y: the attribute of a module we know
            head, _, rest = dotted.partition(".")
            if head in bound and bound[head][1] is None:
                found = source.longest_module(f"{bound[head][0]}.{rest}")
                if found:
                    out.append(found)
    return tuple(dict.fromkeys(out))


def _handlers(body) -> set[str]:
    """Functions handed to argparse as ``set_defaults(func=...)``: the parser only names them;
    the command that is run is the entry point."""
    return {kw.value.id for stmt in body for n in ast.walk(stmt)
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "set_defaults"
            for kw in n.keywords if kw.arg == "func" and isinstance(kw.value, ast.Name)}


def _dotted(node: ast.Attribute) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return ".".join([node.id, *reversed(parts)])
    return None


def package_data(source: Source, modules: set[str]) -> set[Path]:
    """Data files shipped beside the modules that run: what a module's folder holds that is
    not Python (e.g. ``report/templates/index.html``), in it or in its non-package subfolders."""
    top = source.root / PACKAGE
    return set().union(*(_folder_data(folder) for folder in {source.file(m).parent for m in modules} - {top}))


@functools.lru_cache(maxsize=None)
def _folder_data(folder: Path) -> frozenset[Path]:
    found = set()
    for f in folder.rglob("*"):
        rel = f.relative_to(folder).parts
        if (f.is_file() and f.suffix not in (".py", ".pyc") and not any(p.startswith((".", "__")) for p in rel)
                and not any((folder.joinpath(*rel[:i]) / "__init__.py").exists() for i in range(1, len(rel)))):
            found.add(f)
    return frozenset(found)


def files(source: Source, entries: list[str]) -> list[Path]:
    """The source files of :func:`closure` and their package data, sorted."""
    modules = closure(source, entries)
    return sorted({source.file(m) for m in modules} | package_data(source, modules))


def tree_digest(root: Path) -> str:
    """A digest of every file of the package under ``root`` (code and data) and of this module."""
    h = hashlib.sha256(Path(__file__).read_bytes())
    for f in sorted((root / PACKAGE).rglob("*")):
        if f.is_file() and "__pycache__" not in f.parts and f.suffix != ".pyc":
            h.update(f"\0{f.relative_to(root)}\0".encode())
            h.update(f.read_bytes())
    return h.hexdigest()


class CommandFiles:
    """:func:`files` of each command, kept in ``store`` (JSON) while the source is unchanged.

    Every Snakemake start asks for every rule's code inputs; reading the source for each takes
    a second. The store is keyed by :func:`tree_digest`: any edit to the package (or to this
    module) recomputes everything.
    """

    def __init__(self, source: Source, store: Path, entries: Callable[[tuple[str, ...]], list[str]]):
        self.source, self.store, self.entries = source, Path(store), entries
        self.digest = tree_digest(source.root)
        self.known: dict[str, list[str]] = {}
        try:
            saved = json.loads(self.store.read_text())
            if saved.get("digest") == self.digest:
                self.known = dict(saved["commands"])
        except (OSError, ValueError, KeyError, TypeError):
            pass

    def __call__(self, words: tuple[str, ...]) -> list[Path]:
        key = " ".join(words)
        if key not in self.known:
            found = files(self.source, self.entries(words))
            self.known[key] = [f.relative_to(self.source.root).as_posix() for f in found]
            self._save()
        return [self.source.root / f for f in self.known[key]]

    def _save(self) -> None:
        """Written whole or not at all: Snakemake runs side by side may share the store."""
        try:
            self.store.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.store.with_name(f".{self.store.name}.{os.getpid()}")
            tmp.write_text(json.dumps({"digest": self.digest, "commands": self.known}, sort_keys=True))
            os.replace(tmp, self.store)
        except OSError:
            pass  # a read-only working directory only costs the next run the reading again
