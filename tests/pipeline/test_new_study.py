"""A sixth study is one package, one rule file and one config section.

In a copy of the workflow, a throwaway study "toy" (a rendered dataset of random numbers and
their mean as its metric) is added as ``src/genex/studies/toy/``, ``workflow/rules/toy.smk``
and a ``toy:`` section appended to ``config/config.yaml``; no other file is touched. The study
registry then brings it into the CLI, the DAG (``rule all`` wants its metrics) and the report.
Dry runs only: fast.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

from helpers.workflow import BIN, run, snakemake_cmd, workflow_copy

TOY_PACKAGE = {
    "__init__.py": '''
        """A throwaway study: the mean of random numbers."""

        from genex.studies import Dataset, Study

        STUDY = Study(
            name="toy",
            datasets=(
                Dataset("toy-sim", config=("toy", "data"), title="Toy-Sim (random numbers)", order=90,
                        summarize="genex.studies.toy.summary:summarize",
                        render="genex.studies.toy.render:render",
                        description="Random numbers drawn from the seed."),
            ),
        )
    ''',
    "render.py": '''
        import numpy as np


        def render(out_dir, params, seed):
            values = np.random.default_rng(seed).normal(size=int(params["size"]))
            np.save(out_dir / "values.npy", values, allow_pickle=False)
            return {"size": len(values)}
    ''',
    "summary.py": '''
        import numpy as np

        from genex.pipeline.report.datasets import Summary


        def summarize(root, out, params, rng):
            values = np.load(root / "values.npy", allow_pickle=False)
            return Summary({"values": len(values)})
    ''',
    "steps.py": '''
        """`genex toy <step>`: the toy study."""

        from pathlib import Path

        from genex.pipeline.io import parse_params
        from genex.pipeline.steps import step_arguments


        def cmd_metrics(args):
            import numpy as np

            from genex.pipeline import write_json

            values = np.load(Path(args.root) / "values.npy", allow_pickle=False)
            write_json(args.out, {"mean": round(float(values.mean()), parse_params(args.params)["digits"])})


        def cmd_section(args):
            from genex.pipeline import atomic_dir, read_json, write_json

            with atomic_dir(args.out) as tmp:
                write_json(tmp / "metrics.json", read_json(args.metrics))
                write_json(tmp / "section.json", {"id": "toy", "title": "Toy study", "group": "Studies",
                                                  "blocks": [{"type": "metrics", "path": "metrics.json"}]})


        def register(subparsers):
            toy = subparsers.add_parser("toy", help="the toy study: the mean of random numbers")
            steps = toy.add_subparsers(dest="step", required=True, metavar="STEP")
            p = steps.add_parser("metrics", help="the mean of the toy dataset")
            p.add_argument("--root", required=True, help="the toy-sim folder")
            step_arguments(p)
            p.set_defaults(func=cmd_metrics)
            p = steps.add_parser("section", help="the toy study's report section")
            p.add_argument("--metrics", required=True, help="metrics.json of `genex toy metrics`")
            step_arguments(p, params=False, seed=False)
            p.set_defaults(func=cmd_section)
    ''',
    "schema.yaml": '''
        type: object
        additionalProperties: false
        description: The toy study.
        default: {}
        properties:
          data:
            type: object
            additionalProperties: false
            description: The toy-sim dataset.
            default: {}
            properties:
              size: {type: integer, minimum: 1, default: 8, description: Random numbers drawn.}
              path: {type: [string, "null"], default: null, description: Read in place instead.}
          metrics:
            type: object
            additionalProperties: false
            description: The metrics step.
            default: {}
            properties:
              digits: {type: integer, minimum: 0, default: 3, description: Digits kept.}
    ''',
}

TOY_RULES = '''
# Study toy: render -> metrics -> section.

TOY_DATA = study_dataset("toy")[1]


rule toy_metrics:
    output:
        "results/toy/metrics.json",
    input:
        data=TOY_DATA,
        code=genex_code("toy metrics"),
    params:
        cfg=section("toy", "metrics"),
        seed=config["seed"],
    log:
        logs("toy/metrics.log"),
    shell:
        "genex toy metrics --root {input.data:q} --params {params.cfg:q} --seed {params.seed} --out {output:q} > {log:q} 2>&1"


rule toy_section:
    output:
        directory("results/toy/section"),
    input:
        metrics=rules.toy_metrics.output[0],
        code=genex_code("toy section"),
    log:
        logs("toy/section.log"),
    shell:
        "genex toy section --metrics {input.metrics:q} --out {output:q} > {log:q} 2>&1"
'''

TOY_CONFIG = """
# the toy study (one section: its dataset and its steps)
toy:
  data:
    size: 16
  metrics:
    digits: 4
"""


def add_toy_study(root: Path) -> list[Path]:
    """The three additions; returns the files written."""
    package = root / "src" / "genex" / "studies" / "toy"
    package.mkdir()
    written = []
    for name, text in TOY_PACKAGE.items():
        (package / name).write_text(textwrap.dedent(text).lstrip())
        written.append(package / name)
    (root / "workflow" / "rules" / "toy.smk").write_text(TOY_RULES.lstrip())
    config = root / "config" / "config.yaml"
    config.write_text(config.read_text() + TOY_CONFIG)
    return written + [root / "workflow" / "rules" / "toy.smk", config]


def _snapshot(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


def test_a_sixth_study_is_one_package_one_rule_file_and_one_config_section(tmp_path):
    root = workflow_copy(tmp_path / "wf")
    before = _snapshot(root)
    written = add_toy_study(root)
    after = _snapshot(root)
    changed = {p for p in after if before.get(p) != after[p]}
    assert changed == set(written), sorted(map(str, changed - set(written)))
    env = {"PYTHONPATH": str(root / "src"), "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}

    # the CLI: its subcommands, and its dataset among the renderable ones
    cli = run([str(BIN / "python"), "-m", "genex.cli", "toy", "--help"], env=env).stdout
    assert "metrics" in cli and "section" in cli, cli
    assert "toy-sim" in run([str(BIN / "python"), "-m", "genex.cli", "render", "--help"], env=env).stdout

    # the DAG: its rules run, rule all wants its metrics, the report its dataset and section
    dry = run(snakemake_cmd(root, "--dry-run", "--printshellcmds"), env=env).stdout
    assert "genex toy metrics" in dry and "genex toy section" in dry, dry[-3000:]
    jobs = _jobs(dry)
    assert {"toy_metrics", "toy_section"} <= set(jobs["rules"]), jobs["rules"]
    assert "results/toy/metrics.json" in jobs["all"], jobs["all"]
    assert "results/toy/section" in jobs["report"] and "results/datasets/toy-sim" in jobs["report"], jobs["report"]
    assert "genex render toy-sim" in dry and "genex summarize toy-sim" in dry


def _jobs(dry: str) -> dict:
    """From a dry run's log: the rules it plans, and the input lines of the `all` and `report` jobs."""
    rules, inputs, current = [], {"all": "", "report": ""}, None
    for line in dry.splitlines():
        stripped = line.strip()
        if stripped.startswith(("rule ", "localrule ")) and stripped.endswith(":"):
            current = stripped.split()[1].rstrip(":")
            rules.append(current)
        elif stripped.startswith("input:") and current in inputs:
            inputs[current] = stripped
    return {"rules": rules, **inputs}
