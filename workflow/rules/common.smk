# Shared helpers: code inputs, config sections as params, dataset sources.
import functools
import json
import os
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

GENEX = Path(workflow.basedir) / "src" / "genex"

sys.path.insert(0, str(Path(workflow.basedir) / "workflow" / "lib"))
import code_inputs  # noqa: E402
import config_schema  # noqa: E402

# The study registry of this checkout (genex.studies): the studies, their rule files and
# datasets. Embedded datasets are rendered here; real ones are downloaded (MAPS is read in place).
REGISTRY = config_schema.registry(GENEX.parent)
STUDY_NAMES = REGISTRY.names()
DATASETS = REGISTRY.datasets()
EMBEDDED = sorted(name for name, d in DATASETS.items() if d.render)
DOWNLOADED = sorted(name for name, d in DATASETS.items() if d.download)


def not_downloaded_pattern():
    """The download rule's wildcard pattern: the real datasets whose resources/<name> is not
    there yet (relative to the working directory, which Snakemake sets before reading rules).
    A folder that exists is never a download job's output, so Snakemake never deletes it."""
    missing = [name for name in DOWNLOADED if not os.path.exists(os.path.join("resources", name))]
    return "|".join(missing) if missing else "(?!)"  # (?!) matches nothing


def check_configfile_args(argv):
    """Refuse repeated --configfile options: Snakemake keeps only the last one and silently
    drops the others (`--configfile=A --configfile=B` runs without A)."""
    groups = []
    for i, arg in enumerate(argv):
        name, eq, value = arg.partition("=")
        if name in ("--configfile", "--configfiles"):
            rest = []
            for a in argv[i + 1:]:
                if a.startswith("-"):
                    break
                rest.append(a)
            groups.append([value] if eq else rest)
    if len(groups) > 1:
        every = [f for group in groups for f in group]
        raise WorkflowError(
            f"--configfile given {len(groups)} times: Snakemake would use only the last "
            f"({' '.join(groups[-1])}) and ignore {' '.join(every[:-len(groups[-1])])}; "
            f"give all in one option, in order: --configfile {' '.join(every)} -- [targets]")


def validate_config(config, schema_path):
    """Validate (and fill defaults) against the schema and what the study registry adds (the
    sources' choices, a study's own schema.yaml), saying in one line which key is wrong and
    why: Snakemake's own message prints the whole schema and config (4,000 lines)."""
    try:
        config_schema.validate(config, schema_path, GENEX.parent)
    except ValueError as err:
        raise WorkflowError(str(err)) from None


CLI_ENTRY = "genex.cli:main"  # argument parsing, logging and errors: every command runs it
_SOURCE = code_inputs.Source(GENEX.parent)


def _relative(files):
    here = Path.cwd()
    return sorted({os.path.relpath(f, here) if f.is_relative_to(here) else str(f) for f in files})


def _entry_points(words):
    try:
        from genex.cli import entry_points
    except ImportError:  # Snakemake runs outside the genex environment: read this checkout's
        sys.path.append(str(GENEX.parent))
        try:
            from genex.cli import entry_points
        except ImportError as err:
            raise WorkflowError(f"the code inputs of `genex {' '.join(words)}` need genex and its "
                                f"dependencies importable where Snakemake runs (make setup): {err}")
    return entry_points(list(words))


# read again only when src/genex changed: kept in the working directory's .snakemake/
_COMMAND_FILES = code_inputs.CommandFiles(_SOURCE, Path(".snakemake", "genex", "code-inputs.json"),
                                          lambda words: [CLI_ENTRY, *_entry_points(words)])


@functools.lru_cache(maxsize=None)
def _command_code(words):
    return _relative(_COMMAND_FILES(words))


def genex_code(command):
    """The src/genex files that `genex <command>` runs (``command`` as in the rule's shell line,
    e.g. "nsynth train-classifier" or "download {dataset}"), as inputs: editing any of them
    reruns the rule. Derived from the code by workflow/lib/code_inputs.py, never typed."""
    if "{" in command:
        return lambda wildcards: _command_code(tuple(command.format(**wildcards).split()))
    return _command_code(tuple(command.split()))


def logs(name):
    """A rule's log file: logs/<name>."""
    return f"logs/{name}"


def benchmarks(name):
    """A rule's benchmark (Snakemake's time and memory record): logs/benchmarks/<name>."""
    return f"logs/benchmarks/{name}"


def section(*keys):
    """A config section as compact JSON: rules receive only what they use."""
    node = config
    for key in keys:
        node = node[key]
    return json.dumps(node, sort_keys=True, separators=(",", ":"))


def section_variant(keys, overlay_keys, overlaid):
    """A config section as JSON, with the section at ``overlay_keys`` laid over it when
    ``overlaid`` (one rule, two variants: e.g. nsynth's classifier and its ablation)."""
    node = config
    for key in keys:
        node = node[key]
    params = dict(node)
    if overlaid:
        overlay = config
        for key in overlay_keys:
            overlay = overlay.get(key, {})
        params.update(overlay)
    return json.dumps(params, sort_keys=True, separators=(",", ":"))


def dataset_section(name):
    """A dataset's config section as JSON (where its registry entry says it lives)."""
    return section(*DATASETS[name].config)


def source(study):
    """The dataset a study reads: config sources.<study>, or that dataset's ``fallback`` while
    its ``path`` is unset (MAPS cannot be downloaded: the paper profile reads MAPS where the
    user has it, else MAESTRO)."""
    name = config["sources"][study]
    node = _dataset_config(name)
    if not node.get("path") and node.get("fallback"):
        return node["fallback"]
    return name


def _dataset_config(name):
    node = config
    for key in DATASETS[name].config:
        node = node.get(key, {})
    return node


def active_datasets():
    """The datasets the configured sources need (one per study)."""
    return sorted({source(study) for study in config["sources"]})


def dataset_root(name):
    """Where a dataset lives: its configured ``path`` (read in place, never written), else
    resources/<name> (rendered or downloaded). A dataset with neither a renderer nor a
    downloader in the registry (MAPS) needs its path."""
    described = DATASETS[name]
    path = _dataset_config(name).get("path")
    if path:
        return path
    if not (described.render or described.download):
        raise ValueError(f"sources names {name}, but {'.'.join(described.config)}.path is not set in the config")
    return f"resources/{name}"


def study_outputs(kind):
    """The metrics files or report sections of the registered studies: each study's rule file
    (workflow/rules/<study>.smk) writes results/<study>/metrics.json and results/<study>/section."""
    return [f"results/{name}/metrics.json" if kind == "metrics" else f"results/{name}/section"
            for name in STUDY_NAMES]


def study_dataset(study):
    """The dataset a study reads (config sources), and its folder."""
    name = source(study)
    return name, dataset_root(name)


# ---- what each job asks for (config `resources`) ---------------------------------------------

_RESOURCE_RULES = set()  # rules that asked, so that a misspelled rule in the config is an error


def job_resources(rule_name):
    """mem_mb and runtime of a rule's jobs: config resources.rules.<rule_name>, else the
    defaults resources.mem_mb / .runtime. The SLURM profile passes them to sbatch (--mem, -t);
    locally they are only recorded. Write ``**job_resources("<the rule's own name>")`` in its
    ``resources:`` (tests/test_slurm.py checks the name)."""
    _RESOURCE_RULES.add(rule_name)
    settings = config["resources"]
    own = settings["rules"].get(rule_name, {})
    return {"mem_mb": int(own.get("mem_mb", settings["mem_mb"])),
            "runtime": int(own.get("runtime", settings["runtime"]))}


def job_threads(rule_name, gpu=False):
    """Threads of a rule's jobs: resources.rules.<rule_name>.threads, else for a rule that may
    use CUDA resources.gpu_threads (0: every core), else 1. A GPU job that takes every core
    would keep CPU jobs from running beside it on a GPU box."""
    _RESOURCE_RULES.add(rule_name)
    settings = config["resources"]
    own = settings["rules"].get(rule_name, {})
    if "threads" in own:
        return int(own["threads"])
    if gpu:
        # workflow.cores is None under a cluster executor run without --cores: then 4
        return int(settings["gpu_threads"]) or workflow.cores or 4
    return 1


def check_resource_rules():
    """Called after the last rule file; every name in resources.rules must be a rule that asks for them."""
    unknown = sorted(set(config["resources"]["rules"]) - _RESOURCE_RULES)
    if unknown:
        raise WorkflowError(f"config resources.rules names {', '.join(unknown)}: no such rule takes its "
                            f"resources from the config (known: {', '.join(sorted(_RESOURCE_RULES))})")
