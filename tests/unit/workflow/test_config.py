"""The config: the schema accepts every profile, fills defaults, names misspelled keys."""

from __future__ import annotations

import copy

import jsonschema
import pytest
import yaml
import sys

from helpers.workflow import REPO, run, snakemake_cmd
from snakemake.utils import update_config

sys.path.insert(0, str(REPO / "workflow" / "lib"))
import config_schema  # noqa: E402

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


def validate(config: dict, schema: str = str(SCHEMA)) -> None:
    """Validate and fill defaults as the workflow does: the schema file plus the registry."""
    config_schema.validate(config, schema, REPO / "src")


def full_schema() -> dict:
    return config_schema.schema(SCHEMA, REPO / "src")


def load(name: str) -> dict:
    return yaml.safe_load((REPO / "config" / name).read_text())


def profile(name: str) -> dict:
    """config.yaml with the overlays ``name`` lists, in order (``paper.yaml+paper-smoke.yaml``)."""
    config = load("config.yaml")
    for overlay in name.split("+"):
        if overlay != "config.yaml":
            update_config(config, load(overlay))
    return config


@pytest.mark.parametrize("name", ["config.yaml", "tiny.yaml", "paper.yaml", "paper.yaml+paper-smoke.yaml"])
def test_every_profile_validates(name):
    validate(profile(name), str(SCHEMA))


def test_schema_fills_defaults():
    config = {"datasets": {"nsynth_sf": {}}}
    validate(config, str(SCHEMA))
    assert config["seed"] == 1234
    assert config["datasets"]["nsynth_sf"]["sample_rate"] == 16000
    assert config["sources"]["nsynth"] == "nsynth-sf"


def test_tiny_overlays_and_keeps_the_rest():
    default, tiny = profile("config.yaml"), profile("tiny.yaml")
    assert tiny["seed"] == default["seed"]
    assert tiny["report"]["examples_per_dataset"] < default["report"]["examples_per_dataset"]


def test_misspelled_key_is_named_by_the_schema():
    config = copy.deepcopy(profile("config.yaml"))
    config["datasets"]["nsynth_sf"]["programs_per_famly"] = 2
    with pytest.raises(Exception) as err:
        validate(config, str(SCHEMA))
    assert "programs_per_famly" in str(err.value)


def test_misspelled_key_fails_the_workflow_with_its_name(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("datasets:\n  radio_sim:\n    transmiters: 3\n")
    proc = run(snakemake_cmd(tmp_path, "--dry-run", "--configfile", str(bad), profile="default"),
               check=False)
    assert proc.returncode != 0
    assert "transmiters" in proc.stdout + proc.stderr


def test_wrong_type_is_rejected():
    config = copy.deepcopy(profile("config.yaml"))
    config["seed"] = "one"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(config, yaml.safe_load(SCHEMA.read_text()))


@pytest.mark.parametrize("name", ["config.yaml", "tiny.yaml", "paper.yaml", "paper.yaml+paper-smoke.yaml"])
def test_defaults_are_filled_as_snakemake_fills_them(name):
    """The workflow fills defaults itself (the schema is completed from the registry first):
    every key but the registry's sources comes out as Snakemake's validate makes it."""
    from snakemake.utils import validate as snakemake_validate

    ours, theirs = profile(name), profile(name)
    validate(ours)
    snakemake_validate(theirs, str(SCHEMA))
    assert ours.pop("sources") == {"nsynth": "nsynth-sf", "piano": "piano-sf", "vocal": "vocal-sf",
                                   "radio": "radio-sim", **theirs.pop("sources")}
    assert ours == theirs


def test_the_sources_choices_come_from_the_registry():
    from genex.studies import studies

    sources = full_schema()["properties"]["sources"]["properties"]
    assert sources == {s.name: {"type": "string", "enum": [d.name for d in s.datasets],
                                "default": s.datasets[0].name,
                                "description": f"Source of the {s.name} study."} for s in studies()}
    config = profile("config.yaml")
    config["sources"]["piano"] = "radio-sim"
    with pytest.raises(ValueError, match="sources.piano: 'radio-sim' is not one of"):
        validate(config)


def test_config_yaml_states_every_key_once_and_the_schema_agrees():
    """config.yaml holds every key the schema knows, documented there; a default the schema
    also gives must be the same value (one default, not two that drift apart)."""
    config = load("config.yaml")
    schema = full_schema()
    problems = []

    def walk(node, spec, path):
        props = spec.get("properties", {})
        if set(node) != set(props):
            problems.append(f"{'.'.join(path) or 'top'}: only in config.yaml {sorted(set(node) - set(props))}, "
                            f"only in the schema {sorted(set(props) - set(node))}")
        for key in sorted(set(node) & set(props)):
            value, sub = node[key], props[key]
            where = ".".join(path + [key])
            if not (sub.get("description") and "type" in sub):
                problems.append(f"{where}: no description or type in the schema")
            if isinstance(value, dict) and "properties" in sub and value:
                walk(value, sub, path + [key])  # a section: its keys, one by one
            elif "default" in sub and sub["default"] != value:
                problems.append(f"{where}: config.yaml says {value!r}, the schema's default {sub['default']!r}")

    walk(config, schema, [])
    assert not problems, "\n".join(problems)
