"""CLI reliability: one-line errors, outputs that follow the umask, a killed render's leftovers."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers.workflow import BIN, REPO, run
from snakemake.utils import update_config, validate

GENEX = str(BIN / "genex")


def tiny_section(*keys: str) -> dict:
    """A config section of the tiny profile, defaults filled in."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    update_config(config, yaml.safe_load((REPO / "config" / "tiny.yaml").read_text()))
    validate(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    for key in keys:
        config = config[key]
    return config


def genex(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return run([GENEX, *args], cwd=cwd, check=False)


def assert_one_line(proc: subprocess.CompletedProcess, prefix: str, *words: str) -> str:
    """rc 1, no traceback, and the last stderr line is ``prefix: ...`` naming ``words``."""
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith(prefix + ": "), line
    for word in words:
        assert word in line, line
    return line


# ----------------------------------------------------------------------- case 14: CLI errors

def test_missing_params_key_names_params_and_the_key(tmp_path):
    proc = genex("radio", "features", "--root", "maps", "--params", '{"resolution": 32}',
                 "--out", "out", cwd=tmp_path)
    assert_one_line(proc, "genex radio features", "--params: missing key 'simulator'")
    assert not any(tmp_path.iterdir())  # nothing half-written


def test_oserror_names_the_path(tmp_path):
    (tmp_path / "a.json").write_text('{"x": 1}')
    (tmp_path / "afile").write_text("a file, not a folder")
    proc = genex("collect-metrics", "a.json", "--out", "afile/metrics.json", cwd=tmp_path)
    assert_one_line(proc, "genex collect-metrics", "afile")


def _radio_layout(root: Path, maps: int = 8) -> None:
    """A minimal RadioMapSeer layout: a 32x32 city per map, one transmitter."""
    from PIL import Image

    for folder in ("png/buildings_complete", "png/antennas", "gain/DPM", "antenna"):
        (root / folder).mkdir(parents=True)
    for m in range(maps):
        city = np.zeros((32, 32), np.uint8)
        city[2:6, 2:6] = 255
        Image.fromarray(city).save(root / "png" / "buildings_complete" / f"{m}.png")
        antenna = np.zeros((32, 32), np.uint8)
        antenna[20, 20] = 255
        Image.fromarray(antenna).save(root / "png" / "antennas" / f"{m}_0.png")
        Image.fromarray(np.full((32, 32), 128, np.uint8)).save(root / "gain" / "DPM" / f"{m}_0.png")
        (root / "antenna" / f"{m}.json").write_text("[[20, 20]]")


# a measurement range of one number: draw_measurements indexes counts[1]
RADIO_PARAMS = json.dumps({"resolution": 32, "simulator": "DPM", "missing_levels": [],
                           "measurements": [5], "transmitters_per_map": None, "max_maps": None})


def test_indexerror_is_one_line_naming_the_input(tmp_path):
    _radio_layout(tmp_path / "maps")
    proc = genex("radio", "features", "--root", "maps", "--params", RADIO_PARAMS, "--out", "f",
                 cwd=tmp_path)
    assert_one_line(proc, "genex radio features", "--root maps", "index out of range")


def test_debug_prints_the_traceback(tmp_path):
    _radio_layout(tmp_path / "maps")
    proc = genex("--debug", "radio", "features", "--root", "maps", "--params", RADIO_PARAMS,
                 "--out", "f", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback (most recent call last)" in proc.stderr
    assert "IndexError" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("genex radio features: --root maps: ")


def test_garbled_pickle_is_one_line_naming_the_file(tmp_path):
    (tmp_path / "feats").mkdir()
    (tmp_path / "feats" / "features.pt").write_bytes(bytes(range(7, 107)))  # not a torch file
    proc = genex("nsynth", "train-classifier", "--features", "feats", "--params", "{}",
                 "--out", "m.pt", cwd=tmp_path)
    assert_one_line(proc, "genex nsynth train-classifier", "feats/features.pt")


# ------------------------------------------------------------- case 15: outputs follow umask

def _render(out: Path, umask: int, **popen) -> subprocess.Popen:
    params = json.dumps(tiny_section("datasets", "radio_sim"))
    env = {**os.environ, "GENEX_NO_PROGRESS": "1", "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.Popen([GENEX, "render", "radio-sim", "--params", params, "--out", str(out)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: os.umask(umask), **popen)


@pytest.mark.parametrize("umask, file_mode, dir_mode", [(0o002, 0o664, 0o775), (0o022, 0o644, 0o755)])
def test_outputs_follow_the_umask(tmp_path, umask, file_mode, dir_mode):
    out = tmp_path / "radio-sim"
    proc = _render(out, umask)
    _, err = proc.communicate()
    assert proc.returncode == 0, err[-3000:]
    (tmp_path / "a.json").write_text('{"x": 1}')
    metrics = subprocess.run([GENEX, "collect-metrics", "a.json", "--out", "metrics.json"], cwd=tmp_path,
                             preexec_fn=lambda: os.umask(umask), capture_output=True, text=True)
    assert metrics.returncode == 0, metrics.stderr
    wrong = []
    paths = [out, *out.rglob("*"), tmp_path / "metrics.json"]
    assert any(p.parent != out and p.is_file() for p in paths)  # nested files are checked too
    for path in paths:
        want = dir_mode if path.is_dir() else file_mode
        if stat.S_IMODE(path.stat().st_mode) != want:
            wrong.append(f"{path.relative_to(tmp_path)}: {stat.S_IMODE(path.stat().st_mode):o}")
    assert not wrong, wrong[:10]


# -------------------------------------------------- case 4: a killed render leaves nothing

def test_killed_render_leftover_is_removed_by_the_next_render(tmp_path):
    out = tmp_path / "radio-sim"
    proc = _render(out, 0o022, start_new_session=True)  # its own group: the workers die with it
    try:
        while proc.poll() is None and not list(tmp_path.glob(".radio-sim.*.partial")):
            time.sleep(0.005)
        assert proc.poll() is None, "the render finished before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert list(tmp_path.glob(".radio-sim.*.partial")), "a killed render leaves its .partial folder"
    assert not out.exists()

    proc = _render(out, 0o022)
    _, err = proc.communicate()
    assert proc.returncode == 0, err[-3000:]
    assert not list(tmp_path.glob(".radio-sim.*")), sorted(p.name for p in tmp_path.iterdir())
    from genex.studies.radio.data import RadioMapSeer

    assert json.loads((out / "genex.json").read_text())["dataset"] == "radio-sim"
    reader = RadioMapSeer(out)
    assert len(reader.maps) == 6 and all(len(reader.transmitters(m)) == 3 for m in reader.maps)
