# Shared helpers: code inputs, config sections as params, dataset sources.
import json
from pathlib import Path

GENEX = Path(workflow.basedir) / "src" / "genex"

# Embedded datasets are rendered here; real ones are downloaded (MAPS is read in place).
EMBEDDED = {"nsynth-sf": "nsynth_sf", "piano-sf": "piano_sf", "vocal-sf": "vocal_sf", "radio-sim": "radio_sim"}
DOWNLOADED = {"nsynth": "nsynth", "maestro": "maestro", "jamendo": "jamendo", "radiomapseer": "radiomapseer"}
# the modules a dataset's reader runs (summaries and studies read datasets through them)
READERS = {
    "nsynth-sf": ["data/nsynth.py"], "nsynth": ["data/nsynth.py"],
    "piano-sf": ["data/piano.py"], "maps": ["data/piano.py"], "maestro": ["data/piano.py"],
    "vocal-sf": ["data/vocal.py"], "jamendo": ["data/vocal.py"],
    "radio-sim": ["data/radio.py"], "radiomapseer": ["data/radio.py"],
}


def code(*modules):
    """The src/genex files a rule runs, as inputs, so that editing one reruns the rule."""
    files = [GENEX / m for m in ("__init__.py", "cli.py", "utils/io.py", "utils/runtime.py", *modules)]
    here = Path.cwd()
    return sorted({os.path.relpath(f, here) if f.is_relative_to(here) else str(f) for f in files})


def section(*keys):
    """A config section as compact JSON: rules receive only what they use."""
    node = config
    for key in keys:
        node = node[key]
    return json.dumps(node, sort_keys=True, separators=(",", ":"))


def active_datasets():
    """The datasets the configured sources need (one per study)."""
    return sorted(set(config["sources"].values()))


def dataset_root(name):
    """Where a dataset lives: resources/<name>, or the configured folder for MAPS."""
    if name == "maps":
        path = config["datasets"]["maps"]["path"]
        if not path:
            raise ValueError("sources names maps, but datasets.maps.path is not set in the config")
        return path
    return f"resources/{name}"


# study name -> {"metrics": path, "section": folder}; each workflow/rules/<study>.smk adds itself
STUDIES = {}


def study_outputs(kind):
    """The metrics files or report sections of the registered studies."""
    return [STUDIES[name][kind] for name in sorted(STUDIES)]


def study_dataset(study):
    """The dataset a study reads (config sources), and its folder."""
    name = config["sources"][study]
    return name, dataset_root(name)
