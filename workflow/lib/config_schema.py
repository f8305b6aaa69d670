"""The config schema with what the study registry adds: validation and defaults in one place.

``workflow/schemas/config.schema.yaml`` documents every key but leaves two things to the
registry (:mod:`genex.studies`), so that a new study needs no edit there:

- ``sources``: one key per study, ``enum`` = that study's datasets, default = its first one;
- a study's own config section, when its package ships ``schema.yaml`` (the schema of
  ``config[<study>]``) and the file has no section of that name.

Errors are one line that names the key; defaults are filled like Snakemake's ``validate``.
"""

from __future__ import annotations

import copy
import importlib
import sys
from pathlib import Path

import jsonschema
import yaml


def _load(path: Path):
    """A YAML file, parsed by libyaml where PyYAML has it: the schema is read at every Snakemake
    start (each job, DVC stage and SLURM job), and the pure-Python parser takes 0.45 s on it."""
    return yaml.load(Path(path).read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def registry(src: Path):
    """``genex.studies`` of the source tree ``src`` (the checkout the workflow runs)."""
    if str(src) not in sys.path:
        sys.path.insert(0, str(src))
    return importlib.import_module("genex.studies")


def schema(schema_path: Path, src: Path) -> dict:
    """The schema file, its ``sources`` and study sections filled from the registry in ``src``."""
    full = _load(schema_path)
    studies = registry(src)
    props = full["properties"]
    sources = props["sources"]
    sources["properties"] = {}
    sources["additionalProperties"] = False
    for name in studies.names():
        study = studies.study(name)
        choices = [d.name for d in study.datasets]
        sources["properties"][name] = {
            "type": "string", "enum": choices, "default": choices[0],
            "description": f"Source of the {name} study."}
        fragment = Path(studies.__file__).parent / name / "schema.yaml"
        if name not in props and fragment.is_file():
            props[name] = _load(fragment)
    return full


def _with_defaults(cls):
    validate_properties = cls.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, spec):
        if isinstance(instance, dict):
            for key, sub in properties.items():
                if "default" in sub:
                    instance.setdefault(key, copy.deepcopy(sub["default"]))
        yield from validate_properties(validator, properties, instance, spec)

    return jsonschema.validators.extend(cls, {"properties": set_defaults})


def validate(config: dict, schema_path: Path, src: Path) -> dict:
    """Check ``config`` against the full schema (ValueError naming the key and why) and fill
    its defaults in place; returns the schema used."""
    full = schema(schema_path, src)
    cls = jsonschema.validators.validator_for(full)
    error = jsonschema.exceptions.best_match(cls(full).iter_errors(config))
    if error is not None:
        where = ".".join(str(p) for p in error.absolute_path) or "the top level"
        if error.validator == "additionalProperties":
            allowed = sorted(error.schema.get("properties", {}))
            unknown = sorted(set(error.instance) - set(allowed))
            message = (f"unknown key {', '.join(map(repr, unknown))} in {where}; "
                       f"allowed: {', '.join(allowed)}")
        else:
            message = f"{where}: {error.message}"
        raise ValueError(f"invalid config ({schema_path}): {message}")
    _with_defaults(cls)(full).validate(config)
    return full
