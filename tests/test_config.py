"""The config: the schema accepts every profile, fills defaults, names misspelled keys."""

from __future__ import annotations

import copy

import jsonschema
import pytest
import yaml
from conftest import REPO, run, snakemake_cmd
from snakemake.utils import update_config, validate

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


def load(name: str) -> dict:
    return yaml.safe_load((REPO / "config" / name).read_text())


def profile(name: str) -> dict:
    config = load("config.yaml")
    if name != "config.yaml":
        update_config(config, load(name))
    return config


@pytest.mark.parametrize("name", ["config.yaml", "tiny.yaml", "paper.yaml"])
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


def test_config_yaml_states_every_key_once_and_the_schema_agrees():
    """config.yaml holds every key the schema knows, documented there; a default the schema
    also gives must be the same value (one default, not two that drift apart)."""
    config = load("config.yaml")
    schema = yaml.safe_load(SCHEMA.read_text())
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
