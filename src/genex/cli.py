"""`genex` command line: the one entry point every Snakemake rule calls.

Each subcommand takes the config section it needs as JSON (``--params``), so a rule
passes only what it uses, and writes its output atomically: a failed or killed command
leaves no half-written result behind.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import logging
import os
import pickle
import sys
import time
import traceback
from pathlib import Path

from genex import studies as registry
from genex.pipeline.io import parse_params

log = logging.getLogger("genex")

# OpenMP threads that sleep instead of spinning while they wait: with other jobs on the same
# cores (Snakemake runs two at once on 2 cores), spinning torch threads made training steps
# up to 80 times slower. Results do not change. Set before any command loads torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# The studies and their datasets come from the registry (genex.studies): each study package
# describes its datasets (renderer or downloader, summariser) and brings its subcommands
# (`genex <study> <step> ...`) through ``register(subparsers)`` in its steps.py, which must
# import torch and friends inside the commands, not at module level, so that `genex --help`
# stays fast.


def renderers(only: tuple[str, ...] | None = None) -> dict[str, str]:
    """Embedded dataset name -> "module:function"; functions take (out_dir, params, seed) and
    write into out_dir, which the CLI then renames onto the target."""
    return {name: d.render for name, d in registry.datasets(only).items() if d.render}


def downloaders(only: tuple[str, ...] | None = None) -> dict[str, str]:
    """Real dataset name -> "module:function"; functions take (out_dir, params) and download,
    verify and extract into out_dir."""
    return {name: d.download for name, d in registry.datasets(only).items() if d.download}


def _cmd_render(args: argparse.Namespace) -> None:
    from genex.pipeline import atomic_dir, provenance, seed_everything, write_json

    params = parse_params(args.params)
    render = registry.load(renderers()[args.dataset])
    seed_everything(args.seed)
    t0 = time.perf_counter()
    with atomic_dir(args.out) as tmp:
        summary = render(tmp, params, args.seed) or {}
        summary["render_seconds"] = round(time.perf_counter() - t0, 2)
        write_json(tmp / "genex.json", {"dataset": args.dataset, "summary": summary,
                                        "provenance": provenance(params, args.seed)})
    log.info("%s written to %s in %.1f s", args.dataset, args.out, time.perf_counter() - t0)


def _cmd_download(args: argparse.Namespace) -> None:
    params = parse_params(args.params)
    registry.load(downloaders()[args.dataset])(Path(args.out), params)


def _cmd_summarize(args: argparse.Namespace) -> None:
    from genex.pipeline.report.datasets import summarize

    summarize(registry.dataset(args.dataset), Path(args.root), Path(args.out), parse_params(args.params),
              args.seed)


def _cmd_report(args: argparse.Namespace) -> None:
    from genex.pipeline.report.html import build_report

    build_report([Path(p) for p in args.sections], Path(args.out), parse_params(args.params))


def _cmd_collect_metrics(args: argparse.Namespace) -> None:
    """Merge per-part JSON files into one metrics file keyed by part name."""
    from genex.pipeline import read_json, write_json

    merged = {}
    for path in map(Path, args.inputs):
        key = path.parent.name if path.name in ("stats.json", "metrics.json") else path.stem
        merged[key] = read_json(path)
    write_json(args.out, merged)


# `genex explain` and `genex fit-infiller` (genex.audio): for users' models, never run by a rule
FRONT_DOOR = ("explain", "fit-infiller")


def build_parser(studies: tuple[str, ...] | None = None, datasets_of: tuple[str, ...] | None = None,
                 front_door: bool = True) -> argparse.ArgumentParser:
    """The parser of every command, with the subcommands of ``studies`` (all by default), the
    datasets of ``datasets_of`` (all by default) as the choices of render and download, and
    the front door's commands unless ``front_door`` is False."""
    studies = tuple(registry.names()) if studies is None else studies
    parser = argparse.ArgumentParser(
        prog="genex",
        description="Generative explanations of audio and radio-map networks. "
                    "Snakemake rules call these commands; you can too.",
        epilog="Run `snakemake --profile workflow/profiles/default` for the whole pipeline.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--debug", action="store_true",
                        help="debug logging, and the full traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("render", help="render an embedded dataset from soundfonts or the simulator",
                       description="Render an embedded dataset deterministically for a seed.")
    p.add_argument("dataset", choices=sorted(renderers(datasets_of)))
    p.add_argument("--params", required=True,
                   help="the dataset's config section as JSON, or @file.json")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--out", required=True, help="output folder (replaced atomically)")
    p.set_defaults(func=_cmd_render)

    p = sub.add_parser("download", help="download, verify and extract a real dataset",
                       description="Resumable, retried, checksum-verified download and safe "
                                   "extraction of a real dataset.")
    p.add_argument("dataset", choices=sorted(downloaders(datasets_of)))
    p.add_argument("--params", required=True, help="the dataset's config section as JSON")
    p.add_argument("--out", required=True, help="output folder (replaced atomically)")
    p.set_defaults(func=_cmd_download)

    p = sub.add_parser("summarize", help="statistics, a spectrogram and audio examples of a dataset")
    p.add_argument("dataset", choices=sorted(registry.datasets(datasets_of)))
    p.add_argument("--root", required=True, help="the dataset's folder")
    p.add_argument("--params", default="{}", help="report options as JSON")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output folder for summary.json, figures, audio")
    p.set_defaults(func=_cmd_summarize)

    p = sub.add_parser("report", help="assemble the HTML report from section folders")
    p.add_argument("sections", nargs="+", help="section folders written by summarize or a study")
    p.add_argument("--params", default="{}", help="report options as JSON")
    p.add_argument("--out", required=True, help="report folder (index.html inside)")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("collect-metrics", help="merge JSON files into one metrics file")
    p.add_argument("inputs", nargs="+", help="JSON files; each is keyed by its folder name")
    p.add_argument("--out", required=True, help="merged metrics file")
    p.set_defaults(func=_cmd_collect_metrics)

    if front_door:
        importlib.import_module("genex.audio.cli").register(sub)

    for study in studies:
        importlib.import_module(registry.study(study).steps).register(sub)
    return parser


@functools.lru_cache(maxsize=1)
def _full_parser() -> argparse.ArgumentParser:
    """Every command's parser, built once: the workflow asks for one rule's entry points at a time."""
    return build_parser()


def entry_points(words: list[str]) -> list[str]:
    """The functions (``module:function``) that `genex <words>` runs, e.g. ``["render",
    "radio-sim"]`` -> the render command and the radio-sim renderer. The workflow derives each
    rule's code inputs from these (``workflow/lib/code_inputs.py``)."""
    node, path = _full_parser(), []
    for word in words:
        subs = _subcommands(node)
        if not subs:
            break
        if word not in subs:
            raise ValueError(f"genex {' '.join(path + [word])}: no such command")
        node, path = subs[word], path + [word]
    func = node.get_default("func")
    if func is None:
        raise ValueError(f"genex {' '.join(words)}: names a group of commands, not one")
    # the study descriptors the parser read (imported by name, so not seen in the code)
    entries = [f"{func.__module__}:{func.__name__}",
               *(f"{registry.__name__}.{name}" for name in _registry_read(words))]
    rest = words[len(path):]
    if path[0] in ("render", "download", "summarize") and rest:  # the dataset's own code
        described = registry.datasets().get(rest[0])
        ref = described and {"render": described.render, "download": described.download,
                             "summarize": described.summarize}[path[0]]
        if ref:
            entries.append(ref)
    return entries


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """A parser's subcommands by name ({} when it has none)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _command(args: argparse.Namespace) -> str:
    """`genex <command> [<step>]`, as the user typed it."""
    return " ".join(["genex", args.command, *([args.step] if getattr(args, "step", None) else [])])


def _file_in_traceback(tb) -> str | None:
    """The innermost file a failed frame was reading (a path or an open file among its locals)."""
    for frame, _ in reversed(list(traceback.walk_tb(tb))):
        for value in frame.f_locals.values():
            name = getattr(value, "name", None) if hasattr(value, "read") else value
            if isinstance(name, (str, os.PathLike)):
                try:
                    if os.path.isfile(name):
                        return os.fspath(name)
                except (TypeError, ValueError):
                    continue
    return None


# arguments that are not inputs read by the command
_NOT_INPUTS = {"command", "step", "func", "out", "params", "seed", "threads", "device", "checkpoints",
               "verbose", "debug", "metrics", "section", "curve", "curves"}


def _inputs(args: argparse.Namespace) -> str | None:
    """The command's input arguments that exist on disk, e.g. ``--root resources/radio-sim``."""
    found = []
    for key, value in vars(args).items():
        values = value if isinstance(value, list) else [value]
        paths = [v for v in values if isinstance(v, str) and os.path.exists(v)]
        if key not in _NOT_INPUTS and paths:
            found.append(f"--{key.replace('_', '-')} {' '.join(paths)}" if key != "inputs"
                         and key != "sections" else " ".join(paths))
    return ", ".join(found) or None


def _in_params(key, node) -> bool:
    if isinstance(node, dict):
        return key in node or any(_in_params(key, v) for v in node.values())
    if isinstance(node, list):
        return any(_in_params(key, v) for v in node)
    return False


def _describe(err: BaseException, args: argparse.Namespace) -> str:
    """``<input>: <problem>`` in one line."""
    if isinstance(err, KeyError):
        key = err.args[0] if err.args else "?"
        params = getattr(args, "params", None)
        try:
            parsed = parse_params(params) if isinstance(params, str) else None
        except SystemExit:
            parsed = None
        if parsed is not None and not _in_params(key, parsed):
            return f"--params: missing key {key!r}"
        where = _file_in_traceback(err.__traceback__)
        return f"{where or 'input'}: missing key {key!r}"
    if isinstance(err, OSError) and err.filename is not None:
        names = " -> ".join(os.fspath(f) for f in (err.filename, err.filename2) if f is not None)
        return f"{names}: {err.strerror or err}"
    if isinstance(err, pickle.UnpicklingError):
        where = _file_in_traceback(err.__traceback__) or _inputs(args) or "input"
        return f"{where}: not a readable pickle/torch file ({err})"
    if isinstance(err, IndexError):
        where = _file_in_traceback(err.__traceback__) or _inputs(args)
        frame = traceback.extract_tb(err.__traceback__)[-1]
        at = Path(frame.filename)
        at = at.relative_to(Path(__file__).parent) if at.is_relative_to(Path(__file__).parent) else at.name
        problem = f"index out of range ({err}) at {at}:{frame.lineno}"
        return f"{where}: {problem}" if where else problem
    text = str(err) or type(err).__name__
    return " ".join(text.split()) if "\n" in text else text


# errors of the inputs or the machine, not bugs: one line; a bug keeps its traceback
USER_ERRORS = (OSError, ValueError, KeyError, IndexError, RuntimeError, pickle.UnpicklingError)


def _registry_read(argv: list[str]) -> tuple[str, ...]:
    """The studies whose descriptors `genex <argv>` reads: a study's command its own only, the
    others all of them (for the dataset choices)."""
    words = [a for a in argv if not a.startswith("-")]
    first = words[0] if words else None
    return (first,) if first in registry.names() else tuple(registry.names())


def _parser_for(argv: list[str]) -> argparse.ArgumentParser:
    """A study's command loads that study's package only, the others none; a core command no
    study's steps: a command imports just the code it runs, which is what the workflow derives
    as the rule's code inputs."""
    words = [a for a in argv if not a.startswith("-")]
    first = words[0] if words else None
    if first in registry.names():
        return build_parser((first,), datasets_of=(first,), front_door=False)
    if first in FRONT_DOOR:  # the front door imports no study and no pipeline command
        return build_parser((), front_door=True)
    core = build_parser((), front_door=False)
    return core if first in _subcommands(core) else build_parser()  # --help or a typo: all


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = _parser_for(argv).parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose or args.debug else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        args.func(args)
    except USER_ERRORS as err:
        # the traceback at debug level (shown with --debug or -v), the error as one line
        log.debug("%s failed", _command(args), exc_info=True)
        print(f"{_command(args)}: {_describe(err, args)}", file=sys.stderr)
        return 1
    finally:
        _record_imports(argv)
    return 0


def _record_imports(argv: list[str]) -> None:
    """With ``GENEX_RECORD_IMPORTS=DIR``, write the genex modules this command imported to
    DIR/<pid>.json: the tests check them against the code inputs the workflow derives."""
    folder = os.environ.get("GENEX_RECORD_IMPORTS")
    if not folder:
        return
    import json

    modules = sorted(m for m in sys.modules if m == "genex" or m.startswith("genex."))
    Path(folder).mkdir(parents=True, exist_ok=True)
    tmp = Path(folder) / f".{os.getpid()}.json.tmp"
    tmp.write_text(json.dumps({"argv": list(argv), "modules": modules}))
    os.replace(tmp, Path(folder) / f"{os.getpid()}.json")


if __name__ == "__main__":
    raise SystemExit(main())
