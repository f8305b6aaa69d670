"""The piano study in the tiny DAG: its metrics and section, and what a parameter reruns."""

from __future__ import annotations

import json
import re

import pytest
import yaml
from helpers.workflow import run, snakemake_cmd


MODELS = ("inn_threshold", "inn_gru", "inn_lstm", "inn_bigru", "cnn_baseline")



def test_tiny_run_writes_piano_metrics_and_section(tiny_run):
    from genex.pipeline.report.html import load_section

    metrics = json.loads((tiny_run / "results" / "piano" / "metrics.json").read_text())
    assert metrics["inn"]["reconstruction_max_abs_error"] <= 1e-4
    for model in MODELS:
        scores = metrics["framewise"][model]
        assert set(scores) == {"precision", "recall", "f1"}
        assert all(0.0 <= v <= 1.0 for v in scores.values())
    assert {"z_mean", "z_std", "ks_statistic"} <= set(metrics["latent"])
    # every key sounds in training (the chord sets), and F1 per register sits beside Table 1
    train_keys = metrics["data"]["keys"]["train"]
    assert train_keys["sounding"] == 88 and train_keys["silent"] == []
    assert len(train_keys["labelled_frames"]["per_key"]) == 88 and train_keys["labelled_frames"]["fewest"] > 0
    assert metrics["data"]["keys"]["test_chord_sets"]["sounding"] == 88
    registers = metrics["framewise_registers"]
    assert registers["keys"] == {"bass": [21, 47], "middle": [48, 71], "treble": [72, 108]}
    for material in ("pieces", "chord_sets"):
        for model in MODELS:
            for register, score in registers["scores"][material][model].items():
                assert score["support"] > 0 or material == "pieces", (material, register)
                assert score["f1"] is None or 0.0 <= score["f1"] <= 1.0
    assert metrics["evaluation"]["test_chord_sets"] == 4  # RAND and UCHO of 2 test instruments
    assert sorted(int(k) for k in metrics["concept"]) == list(range(24, 109, 4))  # isolated_key_step 4
    assert all(list(q) == ["q05", "q25", "q50", "q75", "q95"] and list(q.values()) == sorted(q.values())
               for q in metrics["concept"].values())
    section = load_section(tiny_run / "results" / "piano" / "section")
    kinds = [b["type"] for b in section.blocks]
    assert section.group == "Studies" and kinds.count("figure") == 5 and kinds.count("audio") >= 4
    assert "table" in kinds
    assert "piano" in (tiny_run / "results" / "report" / "index.html").read_text().lower()
    assert not list((tiny_run / "results" / "piano").glob(".*.partial"))
    assert (tiny_run / "results" / "piano" / "checkpoints" / "inn" / "last.pt").is_file()
    assert (tiny_run / "logs" / "benchmarks" / "piano" / "train_inn.tsv").is_file()


def piano_cmd(workdir, *args: str) -> list[str]:
    """snakemake_cmd with the piano target placed before --configfile (which takes nargs)."""
    cmd = snakemake_cmd(workdir, *args)
    at = cmd.index("--cores")
    return cmd[:at] + ["results/piano/metrics.json"] + cmd[at:]


def planned_jobs(workdir) -> set[str]:
    proc = run(piano_cmd(workdir, "--dry-run"))
    text = proc.stdout + proc.stderr
    if "Nothing to be done" in text:
        return set()
    table = text.split("Job stats:")[1].split("Reasons:")[0]
    return {m.group(1) for line in table.splitlines()
            if (m := re.match(r"^(\w+)\s+\d+\s*$", line.strip())) and m.group(1) != "total"}


@pytest.mark.parametrize("key,value,expected", [
    (("explanation", "concept_samples"), 4, {"piano_inspect", "piano_report"}),
    (("evaluation", "threshold"), 0.4, {"piano_evaluate", "piano_report"}),
    (("smoothers", "gru", "lr"), 0.02, {"piano_train_smoother", "piano_evaluate", "piano_report"}),
])
def test_a_piano_parameter_reruns_only_its_phase(tiny_run, copy_of, key, value, expected):
    workdir = copy_of(tiny_run)
    tiny = workdir / "config" / "tiny.yaml"
    config = yaml.safe_load(tiny.read_text())
    node = config.setdefault("piano", {})
    for k in key[:-1]:
        node = node.setdefault(k, {})
    node[key[-1]] = value
    tiny.write_text(yaml.safe_dump(config))
    assert planned_jobs(workdir) == expected
