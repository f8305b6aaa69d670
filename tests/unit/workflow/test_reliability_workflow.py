"""Workflow reliability: quoted shell paths, bounded config, short config errors, README forms."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import jsonschema
import pytest
import yaml
from helpers.workflow import REPO, run, snakemake_cmd, workflow_copy
from snakemake.utils import validate

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
TINY = REPO / "config" / "tiny.yaml"
BOUNDS = ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum")


# --------------------------------------------------------------------- case 6: quoted paths

def _shell_strings(text: str) -> list[str]:
    """The shell command of every rule: the string literals after each `shell:`."""
    out = []
    for block in re.findall(r"^    shell:\n((?:        \".*\"\n?)+)", text, flags=re.M):
        out.append("".join(re.findall(r"\"(.*)\"", block)))
    return out


def test_every_shell_path_is_quoted():
    # numbers and fixed words (seed, threads, device) need no quoting; every path does
    unquoted = []
    shells = 0
    for smk in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        for shell in _shell_strings(smk.read_text()):
            shells += 1
            for field in re.findall(r"\{([^{}]+)\}", shell):
                if field in ("threads", "params.seed", "params.device"):
                    continue
                if not field.endswith(":q"):
                    unquoted.append(f"{smk.name}: {{{field}}}")
    assert shells >= 30, shells  # every rule file was read
    assert not unquoted, unquoted


def _maps_folder(root: Path) -> None:
    """A minimal MAPS layout: one train piece, one Disklavier (test) piece."""
    import numpy as np
    import pandas as pd

    from genex.studies.piano.data import write_midi
    from genex.pipeline.io import write_wav

    for instrument, piece in (("AkPnBcht", "alb_esp2"), ("ENSTDkCl", "bk_xmas1")):
        stem = root / instrument / "MUS" / f"MAPS_MUS-{piece}_{instrument}"
        stem.parent.mkdir(parents=True)
        notes = pd.DataFrame({"start": [0.0], "end": [0.25], "pitch": [60], "velocity": [64]})
        write_midi(stem.parent / f"{stem.name}.mid", notes, pd.DataFrame({"time": [0.1], "value": [127]}))
        write_wav(stem.parent / f"{stem.name}.wav", np.zeros(22050, np.float32), 44100)


def test_maps_path_with_space_and_backtick_runs_nothing(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    maps = tmp_path / "MAPS data `touch pwned`"
    _maps_folder(maps)
    overlay = tmp_path / "maps.yaml"
    overlay.write_text(yaml.safe_dump({"sources": {"piano": "maps"}, "datasets": {"maps": {"path": str(maps)}}}))
    target = "results/datasets/maps"

    def snakemake(*options):
        return snakemake_cmd(work, *options, "--configfile", str(TINY), str(overlay), "--", target,
                             profile="default")

    dry = run(snakemake("-n", "-p"))
    assert f"--root {shlex.quote(str(maps))} " in dry.stdout, dry.stdout[-3000:]
    run(snakemake())
    assert not (work / "pwned").exists(), "the backtick in the path ran a command"
    assert (work / target / "section.json").is_file()  # the summary ran on the MAPS folder


# ------------------------------------------------------------------ case 13: config bounds

def _numeric_leaves(node, path=()):
    if not isinstance(node, dict):
        return
    types = node.get("type", [])
    types = [types] if isinstance(types, str) else types
    if "number" in types or "integer" in types:
        yield ".".join(path), node
    if isinstance(node.get("items"), dict):
        yield from _numeric_leaves(node["items"], (*path, "[]"))
    for key, sub in node.get("properties", {}).items():
        yield from _numeric_leaves(sub, (*path, key))
    if isinstance(node.get("additionalProperties"), dict):
        yield from _numeric_leaves(node["additionalProperties"], (*path, "*"))
    for key in ("oneOf", "anyOf", "allOf"):
        for sub in node.get(key, []):
            yield from _numeric_leaves(sub, path)


def test_every_numeric_key_is_bounded():
    schema = yaml.safe_load(SCHEMA.read_text())
    leaves = list(_numeric_leaves(schema))
    assert len(leaves) > 200  # the walk reaches every study
    unbounded = [path for path, node in leaves if not any(b in node for b in BOUNDS)]
    assert not unbounded, unbounded


@pytest.mark.parametrize("section, key", [
    (("nsynth", "classifier"), "epochs"), (("nsynth", "inpainter"), "epochs"),
    (("datasets", "piano_sf"), "sample_rate"), (("datasets", "vocal_sf"), "sample_rate"),
    (("nsynth", "rde"), "steps"), (("nsynth", "classifier"), "lr"),
    (("datasets", "vocal_sf"), "song_seconds"), (("nsynth", "features"), "n_fft"),
])
def test_zero_is_rejected_naming_the_key(section, key):
    config = {section[0]: {section[1]: {key: 0}}}
    with pytest.raises(jsonschema.ValidationError) as err:
        jsonschema.validate(config, yaml.safe_load(SCHEMA.read_text()))
    assert list(err.value.absolute_path) == [*section, key]
    with pytest.raises(Exception, match=key):  # Snakemake's validate refuses it too
        validate(config, str(SCHEMA))


@pytest.mark.parametrize("text, named", [
    ("nsynth_classifer: {epochs: 2}\n", ["'nsynth_classifer'", "datasets", "nsynth", "report", "seed"]),
    ("nsynth: {classifier: {epochs: 0}}\n", ["nsynth.classifier.epochs", "minimum of 1"]),
    ("datasets: {piano_sf: {sample_rate: 0}}\n", ["datasets.piano_sf.sample_rate"]),
])
def test_config_error_is_short_and_names_the_key(tmp_path, text, named):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    proc = run(snakemake_cmd(tmp_path, "--dry-run", f"--configfile={bad}", profile="default"), check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert len(output.splitlines()) < 20, output[:2000]
    for word in named:
        assert word in output, output[:2000]


# ------------------------------------------------------------ case 16: README forms that work

def test_readme_snakemake_forms_work(tmp_path):
    readme = (REPO / "README.md").read_text()
    readme_flat = " ".join(readme.split())
    work = workflow_copy(tmp_path / "repo")
    snakemake = str(Path(snakemake_cmd(work)[0]))
    seed = tmp_path / "seed.yaml"
    seed.write_text("seed: 7\n")
    forms = {  # as in the README, with a concrete target
        "snakemake --profile workflow/profiles/default --unlock": [],
        "snakemake --profile workflow/profiles/default --configfile=config/tiny.yaml [target]":
            ["results/radio/metrics.json"],
        "--configfile config/tiny.yaml my.yaml -- [target]": ["resources/radio-sim"],
    }
    for form in forms:
        assert form.replace("snakemake ", "", 1) in readme_flat, form
    run([snakemake, "--profile", "workflow/profiles/default", "--unlock"], cwd=work)
    proc = run([snakemake, "--profile", "workflow/profiles/default", "--configfile=config/tiny.yaml",
                "-n", "results/radio/metrics.json"], cwd=work)
    assert "radio_metrics" in proc.stdout and "resources/nsynth-sf" not in proc.stdout
    proc = run([snakemake, "--profile", "workflow/profiles/default", "-n", "-p", "--configfile",
                "config/tiny.yaml", str(seed), "--", "resources/radio-sim"], cwd=work)
    assert '"maps":6' in proc.stdout and "--seed 7" in proc.stdout  # both overlays applied


def test_repeated_configfile_is_refused_naming_the_dropped_file(tmp_path):
    seed = tmp_path / "seed.yaml"
    seed.write_text("seed: 7\n")
    proc = run(snakemake_cmd(tmp_path, f"--configfile={seed}", "-n", "resources/radio-sim"), check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, "Snakemake would have dropped config/tiny.yaml silently"
    assert "tiny.yaml" in output and "--configfile given 2 times" in output, output[-2000:]
