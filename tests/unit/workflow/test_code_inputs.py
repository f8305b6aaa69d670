"""Each rule's code inputs are derived from the command it runs (workflow/lib/code_inputs.py).

Fast: the analysis on a small made-up package (what it follows, what it leaves out), and every
rule asks for the code of the very command its shell line runs. Pipeline: every command of a
tiny run imported only modules that are among its rule's inputs.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
import textwrap
from pathlib import Path

import pytest
from helpers.workflow import REPO, imports_of, rule_blocks

sys.path.insert(0, str(REPO / "workflow" / "lib"))
import code_inputs  # noqa: E402


def _package(root: Path, files: dict[str, str]) -> code_inputs.Source:
    for rel, text in files.items():
        path = root / "genex" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return code_inputs.Source(root)


def _names(modules) -> set[str]:
    return {m.removeprefix("genex.") for m in modules}


@pytest.fixture()
def made_up(tmp_path):
    return _package(tmp_path, {
        "__init__.py": "",
        "cli.py": """
            import argparse
            from genex.util import helper

            def build_parser():
                p = argparse.ArgumentParser()
                p.set_defaults(func=cmd_heavy)  # named, not run

            def main():
                build_parser()
                helper()

            def cmd_light():
                from genex.light import work
                return work()

            def cmd_heavy():
                import genex.heavy as heavy
                return heavy.Model()
            """,
        "util/__init__.py": "from genex.util.impl import helper\n",
        "util/impl.py": "def helper():\n    return 1\n\ndef unused():\n    from genex import heavy\n",
        "light.py": """
            from genex import shared

            def work():
                return shared.VALUE + _local()

            def _local():
                from genex.deep.leaf import leaf
                return leaf()

            def never_called():
                from genex import heavy
            """,
        "shared.py": "VALUE = 1\n",
        "deep/__init__.py": "",
        "deep/leaf.py": "def leaf():\n    return 2\n",
        "heavy.py": "class Model:\n    def fit(self):\n        from genex import fitter\n",
        "fitter.py": "",
        "report/__init__.py": "",
        "report/html.py": "def page():\n    return 1\n",
        "report/templates/index.html": "<html></html>",
    })


def test_a_command_depends_on_the_functions_it_reaches_and_the_modules_they_import(made_up):
    got = _names(code_inputs.closure(made_up, ["genex.cli:main", "genex.cli:cmd_light"]))
    assert got == {"genex", "cli", "util", "util.impl", "light", "shared", "deep", "deep.leaf"}


def test_functions_only_named_or_never_called_are_left_out(made_up):
    got = _names(code_inputs.closure(made_up, ["genex.cli:main", "genex.cli:cmd_light"]))
    assert "heavy" not in got  # set_defaults(func=cmd_heavy), light.never_called, impl.unused


def test_a_class_counts_whole_and_a_module_alias_is_followed(made_up):
    got = _names(code_inputs.closure(made_up, ["genex.cli:cmd_heavy"]))
    assert {"heavy", "fitter"} <= got


def test_data_files_beside_a_module_that_runs_are_inputs(made_up):
    files = code_inputs.files(made_up, ["genex.report.html:page"])
    assert made_up.root / "genex/report/templates/index.html" in files
    assert made_up.root / "genex/report/html.py" in files


def test_command_files_are_kept_until_the_source_changes(made_up, tmp_path):
    """Snakemake keeps each command's files between runs (.snakemake/genex/code-inputs.json):
    read back while the package is unchanged, computed again after any edit."""
    store, asked = tmp_path / "store" / "code-inputs.json", []

    def entries(words):
        asked.append(words)
        return {("light",): ["genex.cli:main", "genex.cli:cmd_light"], ("heavy",): ["genex.cli:cmd_heavy"]}[words]

    first = code_inputs.CommandFiles(made_up, store, entries)
    light = first(("light",))
    assert light == code_inputs.files(made_up, ["genex.cli:main", "genex.cli:cmd_light"])
    first(("heavy",))
    again = code_inputs.CommandFiles(made_up, store, entries)
    assert again(("light",)) == light and again(("heavy",)) and len(asked) == 2  # from the store
    (made_up.root / "genex/shared.py").write_text("from genex import fitter\nVALUE = 1\n")
    edited = code_inputs.CommandFiles(code_inputs.Source(made_up.root), store, entries)  # a new run
    assert made_up.root / "genex/fitter.py" in edited(("light",)) and len(asked) == 3
    store.write_text("{not json")  # a damaged store is read again from the source
    assert code_inputs.CommandFiles(made_up, store, entries)(("heavy",)) and len(asked) == 4


# a rerun deletes the output first: a downloaded dataset (or one copied in by hand) must not go
# because the downloader's code changed (tests/pipeline/test_workflow.py)
WITHOUT_CODE_INPUTS = {"download_dataset"}


def _shell_words(block: str) -> str:
    shell = "".join(re.findall(r'"(.*?)"', block.split("shell:")[1]))
    words = []
    for token in shell.split()[1:]:
        if token.startswith(("-", "{input", "{params", ">")):
            break
        words.append(re.sub(r"\{wildcards\.(\w+)(:q)?\}", r"{\1}", token))
    return " ".join(words)


def test_every_rule_derives_its_code_inputs_from_its_own_command():
    rules = rule_blocks()
    assert len(rules) > 30
    for name, block in rules.items():
        if "shell:" not in block or '"genex ' not in block.split("shell:")[1]:
            continue
        derived = re.findall(r'genex_code\("([^"]*)"\)', block)
        if name in WITHOUT_CODE_INPUTS:
            assert not derived, name
            continue
        assert derived == [_shell_words(block)], f"rule {name}: code inputs {derived}, runs {_shell_words(block)!r}"
    text = "".join(rules.values())
    assert "code(" not in text.replace("genex_code(", ""), "a hand-typed code list is back"


def test_the_helpers_every_torch_step_and_report_use_are_inputs():
    """The modules the hand-typed lists missed (editing them reran nothing)."""
    from genex.cli import entry_points

    source = code_inputs.Source(REPO / "src")
    torch_steps = ["nsynth train-classifier", "piano train-inn", "vocal train-gan", "radio train"]
    for words in torch_steps:
        assert "genex.pipeline.steps" in code_inputs.closure(source, entry_points(words.split())), words
    for words in ["vocal report", "piano inspect", "summarize vocal-sf"]:
        assert "genex.pipeline.report.figures" in code_inputs.closure(source, entry_points(words.split())), words


@pytest.mark.pipeline
def test_every_command_of_a_tiny_run_imported_only_its_rules_inputs(tiny_run):
    records = [json.loads(p.read_text()) for p in sorted(imports_of(tiny_run).glob("*.json"))]
    jobs = {}
    for meta in (tiny_run / ".snakemake" / "metadata").iterdir():
        record = json.loads(meta.read_text())
        if record.get("shellcmd", "").startswith("genex "):
            argv = shlex.split(record["shellcmd"].split(" > ")[0])[1:]
            jobs[tuple(argv)] = (record["rule"], set(record["input"]))
    assert len(records) >= len(jobs) >= 30, (len(records), len(jobs))
    missing = {}
    for rec in records:
        rule, inputs = jobs[tuple(rec["argv"])]
        for module in rec["modules"]:
            rel = Path("src", *module.split("."))
            path = rel.with_suffix(".py") if (tiny_run / rel.with_suffix(".py")).exists() else rel / "__init__.py"
            if str(path) not in inputs:
                missing.setdefault(rule, set()).add(str(path))
    assert not missing, f"imported but not a code input: {missing}"


def test_a_core_command_builds_a_parser_without_the_studies():
    """`genex render ...` must not import the study modules nor the front door (genex.audio):
    they are not its inputs; `genex explain` imports no study."""
    import subprocess
    import sys

    from genex.cli import FRONT_DOOR, _parser_for, _subcommands, build_parser
    from genex.studies import names

    STUDIES = names()

    core = {"render", "download", "summarize", "report", "collect-metrics"}
    front = set(FRONT_DOOR)
    assert set(_subcommands(build_parser(()))) == core | front
    assert set(_subcommands(build_parser())) == core | front | set(STUDIES)
    assert set(_subcommands(_parser_for(["-v", "radio", "train"]))) == core | {"radio"}
    assert set(_subcommands(_parser_for(["render", "radio-sim"]))) == core
    assert set(_subcommands(_parser_for(["explain", "--help"]))) == core | front
    assert set(_subcommands(_parser_for(["bogus"]))) == core | front | set(STUDIES)
    # in a fresh interpreter: building a pipeline command's parser loads no genex.audio module
    code = ("import sys; from genex.cli import _parser_for; _parser_for(['render', 'radio-sim']); "
            "_parser_for(['nsynth', 'features']); "
            "print(sorted(m for m in sys.modules if m.startswith('genex.audio')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
