"""The paper profile on the real datasets' layouts (issue 16): local datasets are read in place
and never deleted, MAESTRO's mixed sample rates, the piano source, what each job asks of a
cluster, and the radio reader's cross-checks. Fake datasets: tests/helpers/paper_format.py."""

from __future__ import annotations

import json
import os
import re
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers.workflow import REPO, rule_blocks, run, snakemake_cmd, workflow_copy
from helpers import paper_format


def _overlay(tmp_path: Path, name: str, content: dict) -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(content))
    return str(path)


# ---- item 2: a dataset in resources/ is never deleted -------------------------------------------

def _make_old(folder: Path) -> None:
    """Older than every source file, as a dataset copied in before a code edit."""
    old = time.time() - 30 * 86400
    for path in [*folder.rglob("*"), folder]:
        os.utime(path, (old, old))


def test_a_dataset_copied_into_resources_survives_a_forced_rerun(tmp_path):
    """resources/nsynth copied in by hand (older than the code): a real run with --forceall
    summarises it in place; before, Snakemake scheduled download_dataset and deleted it first."""
    work = workflow_copy(tmp_path / "work")
    data = paper_format.nsynth(work / "resources" / "nsynth", notes_per_split=1, seconds=1.0)
    _make_old(data)
    files = sorted(p.relative_to(data) for p in data.rglob("*"))
    overlay = _overlay(tmp_path, "real", {"sources": {"nsynth": "nsynth"}})
    proc = run(snakemake_cmd(work, "--forceall", "--configfile", str(work / "config" / "tiny.yaml"), overlay,
                             "--", "results/datasets/nsynth", profile="default"), check=False)
    out = proc.stdout + proc.stderr
    assert sorted(p.relative_to(data) for p in data.rglob("*")) == files, out[-3000:]
    assert proc.returncode == 0, out[-3000:]
    assert "download_dataset" not in out
    stats = json.loads((work / "results" / "datasets" / "nsynth" / "stats.json").read_text())
    assert stats["notes"] == 3  # one per split: the copied notes, read in place


def test_a_missing_real_dataset_is_still_downloaded(tmp_path):
    work = workflow_copy(tmp_path / "work")
    overlay = _overlay(tmp_path, "real", {"sources": {"nsynth": "nsynth"}})
    proc = run(snakemake_cmd(work, "--dry-run", f"--configfile={overlay}", "--", "results/datasets/nsynth",
                             profile="default"))
    assert "download_dataset" in proc.stdout


@pytest.mark.parametrize("name", ["nsynth", "maestro", "jamendo", "radiomapseer", "maps"])
def test_every_real_dataset_is_read_in_place_from_its_path(tmp_path, name):
    """datasets.<name>.path: the summary (and the study) read that folder; nothing downloads."""
    study = {"nsynth": "nsynth", "maestro": "piano", "maps": "piano", "jamendo": "vocal",
             "radiomapseer": "radio"}[name]
    mine = tmp_path / f"my {name}"
    mine.mkdir()
    overlay = _overlay(tmp_path, "real", {"sources": {study: name}, "datasets": {name: {"path": str(mine)}}})
    proc = run(snakemake_cmd(tmp_path, "--dry-run", "--printshellcmds", f"--configfile={overlay}", "--",
                             f"results/datasets/{name}", f"results/{study}/features", profile="default"))
    out = proc.stdout + proc.stderr
    assert "download_dataset" not in out
    assert out.count(f"--root '{mine}'") == 2, out[-3000:]


# ---- item 3: MAESTRO's mixed rates, the piano source and the concept test ------------------------

@pytest.fixture(scope="module")
def fake_maestro(tmp_path_factory) -> Path:
    return paper_format.maestro(tmp_path_factory.mktemp("maestro") / "maestro-v3.0.0", seconds=2.0)


def test_maestro_summary_reports_both_sample_rates(fake_maestro, tmp_path):
    from genex.studies.piano.summary import summarize

    summary = summarize(fake_maestro, tmp_path, {"examples_per_dataset": 1, "spectrogram_seconds": 1.0,
                                                 "example_seconds": 1.0}, np.random.default_rng(0))
    assert summary.stats["sample_rate"] == [44100, 48000]
    assert summary.stats["pieces"] == len(paper_format.MAESTRO_PIECES)


def test_maestro_features_resample_each_rate_to_the_same_frames(fake_maestro, tmp_path):
    from genex.studies.piano.features import FrameSet, build_feature_set

    meta = build_feature_set(fake_maestro, tmp_path, {"valid_pieces": 1}, seed=0)
    pieces = FrameSet.load(tmp_path / "pieces.npz")
    lengths = set(np.diff(pieces.offsets).tolist())
    assert len(lengths) == 1, f"2 s at 44.1 and 48 kHz gave {lengths} frames"
    assert meta["isolated_notes"] == 0


def test_maestro_inspect_skips_the_concept_test_with_a_stated_reason(fake_maestro, tmp_path):
    """MAESTRO has no isolated notes: inspect writes why instead of failing, and the report says it."""
    import torch
    from genex.studies.piano.evaluate import predict_all
    from genex.studies.piano.features import FrameSet, build_feature_set
    from genex.studies.piano.inspection import inspect
    from genex.studies.piano.report import build_metrics, section_blocks
    from genex.studies.piano.train import train_inn
    from helpers.trainers import INN_PARAMS

    features, preds, out = tmp_path / "features", tmp_path / "predictions", tmp_path / "inspection"
    for d in (features, preds, out):
        d.mkdir()
    build_feature_set(fake_maestro, features, {"valid_pieces": 1}, seed=0)
    cpu = torch.device("cpu")
    train_inn(FrameSet.load(features / "pieces.npz"), INN_PARAMS | {"epochs": 1}, 0, cpu,
              tmp_path / "ck", tmp_path / "inn.pt")
    predict_all(features, tmp_path / "inn.pt", preds, cpu)
    params = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["piano"]["explanation"]
    params |= {"excerpt_start": 0.0, "excerpt_seconds": 1.0, "griffin_lim_iterations": 1}
    result = inspect(features, preds, tmp_path / "inn.pt", out, params, seed=0)
    assert result["concept"] == {} and "no isolated notes" in result["concept_skipped"]
    assert not (out / "fig6_concept_quantiles.png").exists()
    (tmp_path / "evaluation").mkdir()
    (tmp_path / "evaluation" / "framewise.json").write_text(json.dumps(
        {"models": {}, "registers": {}, "threshold": 0.5, "pieces": 2, "chord_sets": 0,
         "implementation": "x"}))
    metrics = build_metrics(preds, tmp_path / "evaluation", out, features)
    assert "no isolated notes" in metrics["concept_skipped"]
    blocks = section_blocks.__globals__["concept_summary"](metrics)
    assert blocks["type"] == "text" and "skipped" in blocks["text"]


def test_maps_layout_gives_the_concept_test_its_isolated_notes(tmp_path):
    """MAPS, the paper's set: ISOL/NO notes of the Disklavier in the test split are the
    references the concept test needs (MAESTRO has none)."""
    from genex.studies.piano.data import read_piano

    frame = read_piano(paper_format.maps(tmp_path / "MAPS", seconds=1.5))
    isolated = frame[(frame["kind"] == "isolated") & (frame["split"] == "test")]
    assert sorted(isolated["pitch"]) == [60, 64, 67] and set(isolated["instrument"]) == {"ENSTDkCl"}
    assert set(frame["sample_rate"]) == {44100}


def _piano_root(tmp_path: Path, *configfiles: str) -> str:
    proc = run(snakemake_cmd(tmp_path, "--dry-run", "--printshellcmds", "--configfile",
                             str(REPO / "config" / "paper.yaml"), *configfiles, "--",
                             "results/piano/features", profile="default"))
    return re.search(r"genex piano features --root (\S+)", proc.stdout).group(1)


def test_paper_profile_reads_maps_when_its_path_is_set_else_maestro(tmp_path):
    assert _piano_root(tmp_path) == "resources/maestro"
    mine = tmp_path / "MAPS"
    mine.mkdir()
    overlay = _overlay(tmp_path, "maps", {"datasets": {"maps": {"path": str(mine)}}})
    assert _piano_root(tmp_path, overlay).strip("'") == str(mine)


# ---- item 5: devices, memory, runtime and threads per rule ---------------------------------------

def test_every_rule_takes_its_memory_and_runtime_from_the_config_under_its_own_name():
    blocks = rule_blocks()
    for name, block in blocks.items():
        asked = re.findall(r'\*\*job_resources\("(\w+)"\)', block)
        assert asked == [name], f"rule {name}: resources from {asked}"
        threads = re.findall(r'threads: job_threads\("(\w+)"', block)
        assert threads in ([], [name]), f"rule {name}: threads from {threads}"
        # a GPU job that takes every core keeps CPU jobs from running beside it
        assert "workflow.cores" not in block, f"rule {name} takes every core"


def test_slurm_profile_takes_per_rule_memory_runtime_and_gpu_threads_from_the_config(tmp_path):
    """What the SLURM plugin turns into sbatch --mem, -t and --cpus-per-task: the config's
    defaults, a rule's override, and fewer threads for GPU jobs than the node's cores."""
    profile = yaml.safe_load((REPO / "workflow" / "profiles" / "slurm" / "config.yaml").read_text())
    assert not {"mem_mb", "runtime", "cpus_per_task"} & set(profile.get("default-resources") or {})
    overlay = _overlay(tmp_path, "res", {"resources": {
        "mem_mb": 3000, "runtime": 45, "gpu_threads": 3,
        "rules": {"nsynth_train_classifier": {"mem_mb": 12345, "runtime": 678}}}})
    proc = run(snakemake_cmd(tmp_path, "--profile", str(REPO / "workflow" / "profiles" / "slurm"),
                             "--dry-run", "--cores", "16", "--configfile", str(REPO / "config" / "tiny.yaml"),
                             overlay, "--", "results/nsynth/classifier", "results/nsynth/features",
                             profile="default"))
    jobs = {m.group(1): m.group(2) for m in re.finditer(r"(?ms)^rule (\w+):\n(.*?)(?=^\S|\Z)", proc.stdout)}
    train, features = jobs["nsynth_train_classifier"], jobs["nsynth_features"]
    assert "mem_mb=12345" in train and "runtime=678" in train and "gpu=1" in train, train
    assert re.search(r"threads: 3\b", train), train
    assert "mem_mb=3000" in features and "runtime=45" in features and "gpu=1" not in features, features


def test_a_misspelled_rule_in_the_resources_config_is_an_error(tmp_path):
    overlay = _overlay(tmp_path, "res", {"resources": {"rules": {"nsynth_train_clasifier": {"mem_mb": 1}}}})
    proc = run(snakemake_cmd(tmp_path, "--dry-run", f"--configfile={overlay}", "--", "all", profile="default"),
               check=False)
    assert proc.returncode != 0
    assert "resources.rules names nsynth_train_clasifier" in proc.stdout + proc.stderr


def test_dvc_sees_the_paper_profile_stages(tmp_path):
    """`dvc stage list` parses the generated dvc.yaml (what `dvc repro` runs)."""
    work = workflow_copy(tmp_path / "work")
    run(["git", "init", "-q"], cwd=work)
    proc = run([str(Path(os.sys.executable).parent / "dvc"), "stage", "list"], cwd=work)
    for stage in ("nsynth", "piano", "vocal", "radio", "report"):
        assert re.search(rf"(?m)^{stage}\b", proc.stdout), proc.stdout


# ---- item 7: the radio reader's cross-checks -----------------------------------------------------

def test_radio_transmitter_json_is_checked_against_the_antenna_image(tmp_path):
    from genex.studies.radio.data import RadioMapSeer

    root = paper_format.radiomapseer(tmp_path / "rms", maps=3, transmitters=2)
    reader = RadioMapSeer(root)
    row, col = reader.tx_position(1, 0)
    assert reader.load(1, 0)["tx"][row, col] == 1
    positions = json.loads((root / "antenna" / "1.json").read_text())
    positions[0] = positions[0][::-1]  # [y, x]: a swapped order
    (root / "antenna" / "1.json").write_text(json.dumps(positions))
    with pytest.raises(ValueError, match=r"antenna/1\.json: transmitter 0 at row .* but .*1_0\.png has it at"):
        RadioMapSeer(root).tx_position(1, 0)


def test_radio_black_antenna_image_is_refused(tmp_path):
    from PIL import Image
    from genex.studies.radio.data import RadioMapSeer

    root = paper_format.radiomapseer(tmp_path / "rms", maps=3, transmitters=1)
    Image.fromarray(np.zeros((256, 256), np.uint8), mode="L").save(root / "png" / "antennas" / "2_0.png")
    with pytest.raises(ValueError, match=r"2_0\.png: no transmitter pixel"):
        RadioMapSeer(root).tx_position(2, 0)


def test_radio_split_is_radiounets_only_for_maps_numbered_1_to_700(tmp_path):
    from genex.studies.radio.data import RADIOMAPSEER_MAPS, RadioMapSeer

    root = paper_format.radiomapseer(tmp_path / "rms", maps=8, transmitters=1, size=32)
    with pytest.warns(UserWarning, match="not RadioMapSeer's 700 numbered 1..700"):
        RadioMapSeer(root).split(seed=42)
    # 700 maps numbered 0..699 would shift every map into another part: refused
    reader = RadioMapSeer(root)
    reader._maps = list(range(700))
    with pytest.raises(ValueError, match=r"700 maps numbered 0\.\.699 .* needs the maps 1\.\.700"):
        reader.split(seed=42)
    # RadioUNet's split: maps_inds = permutation of 0..699 with seed 42; map = index + 1
    reader._maps = list(RADIOMAPSEER_MAPS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        split = reader.split(seed=42)
    order = np.arange(700)
    np.random.RandomState(42).shuffle(order)
    assert split["train"] == (order[:501] + 1).tolist()
    assert split["valid"] == (order[501:601] + 1).tolist() and split["test"] == (order[601:] + 1).tolist()


def test_embedded_radio_sim_numbering_is_not_warned_about(tmp_path):
    from genex.studies.radio.data import RadioMapSeer

    root = paper_format.radiomapseer(tmp_path / "sim", maps=8, transmitters=1, size=32, first=0)
    (root / "genex.json").write_text(json.dumps({"dataset": "radio-sim"}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        RadioMapSeer(root).split(seed=42)
