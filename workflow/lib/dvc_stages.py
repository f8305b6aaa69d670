"""dvc.yaml, generated from the study registry (genex.studies): write it with

    PYTHONPATH=src python workflow/lib/dvc_stages.py > dvc.yaml
    PYTHONPATH=src python workflow/lib/dvc_stages.py --profile paper > runs/paper/dvc.yaml  (make repro PROFILE=paper)

and tests/pipeline/test_share.py fails while the committed dvc.yaml differs. One stage renders each
embedded dataset, one summarises it, one per study runs its rule file's targets, one builds
the report. A study's stage is ``workflow/dvc/<study>.yaml`` where the study needs more than
the usual (its outputs and plots for DVC to track); else the usual: the study's metrics and
report section, its default dataset, the package, its rule file and its config section.

Another profile (``config/<profile>.yaml``) runs in its own folder ``runs/<profile>/`` with its
own ``dvc.yaml``: Snakemake works there (``--directory``), so the two runs' outputs never
overlap, which DVC requires of every stage in a repository. Its stages are the default ones
moved there: code and config paths point back to the checkout, the profile's config file joins
the params, and a study depends on the summary of the dataset the profile's ``sources`` pick
(real datasets are up to 101 GB and read in place: DVC versions their summaries, not them).
``make repro PROFILE=<profile>`` writes it from the config before it runs; the repository ships
none, because DVC commands without targets (``dvc checkout``, ``dvc push``) act on every
dvc.yaml in the repository and would fail on the stages of a profile that never ran.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

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


PROFILES = ("tiny", "paper")  # the profiles that may run through DVC in runs/<profile>/


def deep_merge(base: dict, overlay: dict) -> dict:
    """Snakemake's --configfile semantics: nested mappings merge, everything else replaces."""
    out = dict(base)
    for key, value in overlay.items():
        both = isinstance(value, dict) and isinstance(base.get(key), dict)
        out[key] = deep_merge(base[key], value) if both else value
    return out


def profile_config(root: Path, profile: str) -> dict:
    config = yaml.safe_load((root / "config" / "config.yaml").read_text())
    return deep_merge(config, yaml.safe_load((root / "config" / f"{profile}.yaml").read_text()) or {})


def profile_sources(root: Path, profile: str) -> dict[str, str]:
    """Study -> the dataset the profile reads, as the workflow's ``source()`` decides (a
    dataset whose ``path`` is unset reads its ``fallback``)."""
    sys.path.insert(0, str(root / "src"))
    from genex import studies

    config = profile_config(root, profile)
    chosen = {}
    for study in studies.studies():
        name = config.get("sources", {}).get(study.name, study.datasets[0].name)
        node = config
        for key in studies.datasets()[name].config:
            node = node.get(key, {})
        chosen[study.name] = node["fallback"] if not node.get("path") and node.get("fallback") else name
    return chosen


def _moved_stage(stage: dict, up: str, run: str, params, dataset: tuple[str, str], study: str) -> dict:
    """A default-profile study stage, moved into runs/<profile>/: ``dataset`` is (the default
    dataset, the profile's), ``params(*keys)`` the profile's params entries for config keys."""
    default, chosen = dataset
    deps = []
    for dep in stage["deps"]:
        if dep == f"resources/{default}":
            deps.append(f"results/datasets/{chosen}")
        elif dep.startswith(("src/", "workflow/", "config/")):
            deps.append(up + dep)
        else:
            raise ValueError(f"{study}: dvc stage dependency {dep!r} has no place in a profile run")
    keys = [key for entry in stage["params"] for file, keys in entry.items()
            if file == "config/config.yaml" for key in keys]
    if len(keys) != sum(len(keys) for entry in stage["params"] for keys in entry.values()):
        raise ValueError(f"{study}: a dvc stage's params must come from config/config.yaml")
    return {**stage, "cmd": stage["cmd"].replace(RUN, run + " --"), "deps": deps, "params": params(*keys)}


def profile_dvc_yaml(root: Path, profile: str) -> str:
    """runs/<profile>/dvc.yaml: the default stages, run by Snakemake in runs/<profile>/ with
    config/<profile>.yaml laid over config/config.yaml."""
    sys.path.insert(0, str(root / "src"))
    from genex import studies

    up = "../../"
    run = (f"snakemake --snakefile {up}Snakefile --profile {up}workflow/profiles/default "
           f"--configfile {up}config/{profile}.yaml")
    sources = profile_sources(root, profile)
    used = sorted(set(sources.values()))
    overlay = yaml.safe_load((root / "config" / f"{profile}.yaml").read_text()) or {}

    def params(*keys):
        entries = [{f"{up}config/config.yaml": list(keys)}]
        own = [k for k in keys if k in overlay]
        if own:
            entries.append({f"{up}config/{profile}.yaml": own})
        return entries

    stages = {"datasets": {
        "foreach": used,
        "do": {"cmd": f"{run} -- results/datasets/${{item}}",
               "deps": [f"{up}src/genex"],
               "params": params("seed", "datasets", "report"),
               "outs": [{"results/datasets/${item}": {"persist": True}}]}}}
    for study in studies.studies():
        fragment = root / "workflow" / "dvc" / f"{study.name}.yaml"
        text = fragment.read_text() if fragment.is_file() else usual_stage(study.name, study.datasets[0].name)
        (name, stage), = yaml.safe_load(text).items()
        dataset = (study.datasets[0].name, sources[study.name])
        stages[name] = _moved_stage(stage, up, run, params, dataset, study.name)
    stages["report"] = {
        "cmd": f"{run} -- all",
        "deps": [f"results/datasets/{n}" for n in used]
                + [f"results/{s}/section" for s in studies.names()] + [f"{up}src/genex"],
        "params": params("report"),
        "outs": [{"results/report": {"persist": True}}],
        "metrics": [{"results/datasets/metrics.json": {"cache": False}}]}
    header = (f"# GENERATED by workflow/lib/dvc_stages.py --profile {profile}: do not edit.\n"
              f"# The {profile} profile through DVC, run from this folder: dvc repro {Path('runs', profile, 'dvc.yaml')}\n"
              f"# (make repro PROFILE={profile}). Snakemake works here, so its outputs never overlap the\n"
              f"# default run's; code and config are the checkout's (../../).\n")
    return header + yaml.safe_dump({"stages": stages}, sort_keys=False, width=120)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=PROFILES, help="write runs/<profile>/dvc.yaml's text instead of dvc.yaml's")
    args = parser.parse_args()
    sys.stdout.write(profile_dvc_yaml(ROOT, args.profile) if args.profile else dvc_yaml())
