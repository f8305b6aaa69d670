"""dvc.yaml, generated from the study registry (genex.studies): write it with

    PYTHONPATH=src python workflow/lib/dvc_stages.py > dvc.yaml

and tests/pipeline/test_share.py fails while the committed dvc.yaml differs. One stage renders each
embedded dataset, one summarises it, one per study runs its rule file's targets, one builds
the report. A study's stage is ``workflow/dvc/<study>.yaml`` where the study needs more than
the usual (its outputs and plots for DVC to track); else the usual: the study's metrics and
report section, its default dataset, the package, its rule file and its config section.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUN = "snakemake --profile workflow/profiles/default"

HEADER = """\
# GENERATED from the study registry by workflow/lib/dvc_stages.py: do not edit; a study's stage
# beyond the usual lives in workflow/dvc/<study>.yaml.
# DVC versions what Snakemake builds: each stage runs one Snakemake target; Snakemake
# decides what is out of date, DVC records params, hashes and metrics and shares them.
# Outputs persist (DVC must not delete them before Snakemake looks at them). A stage depends on
# the whole package: Snakemake, run by the stage, reruns only the rules whose code inputs
# (derived in workflow/rules/common.smk) changed.
stages:
"""


def usual_stage(name: str, dataset: str) -> str:
    return f"""\
  # --- study {name} ---
  {name}:
    cmd: {RUN} results/{name}/metrics.json results/{name}/section
    deps:
      - resources/{dataset}
      - src/genex
      - workflow/rules/{name}.smk
    params:
      - config/config.yaml:
          - seed
          - {name}
    outs:
      - results/{name}/section:
          persist: true
    metrics:
      - results/{name}/metrics.json:
          cache: false
  # --- end of study {name} ---
"""


def dvc_yaml(root: Path = ROOT) -> str:
    sys.path.insert(0, str(root / "src"))
    from genex import studies

    embedded = {name: ".".join(d.config) for name, d in studies.datasets().items() if d.render}
    text = HEADER
    text += "  render:\n    foreach:\n" + "".join(f"      {n}: {c}\n" for n, c in embedded.items())
    text += f"""\
    do:
      cmd: {RUN} resources/${{key}}
      deps:
        - src/genex
      params:
        - config/config.yaml:
            - seed
            - ${{item}}
      outs:
        - resources/${{key}}:
            persist: true

  summarize:
    foreach:
""" + "".join(f"      - {n}\n" for n in embedded) + f"""\
    do:
      cmd: {RUN} results/datasets/${{item}}
      deps:
        - resources/${{item}}
        - src/genex
      params:
        - config/config.yaml:
            - seed
            - report
      outs:
        - results/datasets/${{item}}:
            persist: true
"""
    for study in studies.studies():
        fragment = root / "workflow" / "dvc" / f"{study.name}.yaml"
        stage = fragment.read_text() if fragment.is_file() else usual_stage(study.name, study.datasets[0].name)
        text += "\n\n" + stage
    text += f"""
  report:
    cmd: {RUN} all
    deps:
""" + "".join(f"      - results/datasets/{n}\n" for n in embedded) \
        + "".join(f"      - results/{s}/section\n" for s in studies.names()) + """\
      - src/genex
    params:
      - config/config.yaml:
          - report
    outs:
      - results/report:
          persist: true
    metrics:
      - results/datasets/metrics.json:
          cache: false
"""
    return text


if __name__ == "__main__":
    sys.stdout.write(dvc_yaml())
