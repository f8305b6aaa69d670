"""A training rule killed with SIGKILL resumes from its last checkpoint when rerun: every one.

The user's path after a crash or a cancelled cluster job: `snakemake --unlock`, then
`snakemake --rerun-incomplete`. Snakemake deletes the killed job's incomplete output and
runs the rule again; the trainer finds its checkpoint (kept outside the rule's outputs)
and continues. The final weights equal those of a run that was never interrupted, because
each epoch's data order and augmentation come from (seed, epoch) and the checkpoint holds
every RNG state. Parametrised over every training rule of the four studies (tiny profile,
with more epochs so that there is time to kill).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from helpers.workflow import BIN, run, snakemake_cmd
from test_reliability_training_pipeline import STEPS, _difference, _set, _weights, target

pytestmark = pytest.mark.pipeline

# epochs of the killed runs: long enough to kill after the first checkpoint
KILL_EPOCHS = {"nsynth_train_classifier": 20, "nsynth_train_inpainter": 10, "piano_train_inn": 10,
               "piano_train_smoother[gru]": 100, "piano_train_smoother[lstm]": 100,
               "piano_train_smoother[bigru]": 15, "piano_train_cnn": 10, "vocal_train_detector": 12,
               "vocal_train_gan": 10, "radio_train[phi]": 12, "radio_train[phi_gt]": 12}


def _epoch_of(checkpoint: Path) -> int:
    from genex.pipeline.io import load_tensors

    try:
        return int(load_tensors(checkpoint)["state"]["epoch"])
    except (ValueError, FileNotFoundError, KeyError):
        return 0


def _prepare(base: Path, dst: Path, step: str) -> Path:
    _, _, _, ckpt, epochs_key = STEPS[step]
    shutil.copytree(base, dst, symlinks=True)
    _set(dst, epochs_key, KILL_EPOCHS[step])
    shutil.rmtree(dst / ckpt, ignore_errors=True)
    return dst


def _kill_after_first_checkpoint(workdir: Path, target: str, checkpoint: Path, timeout: float = 600) -> int:
    """Run the rule; SIGKILL Snakemake and its job as soon as a checkpoint exists."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "GENEX_NO_PROGRESS": "1"}
    proc = subprocess.Popen(snakemake_cmd(workdir, target), env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    try:
        while not checkpoint.exists():
            assert proc.poll() is None, "the rule ended before it wrote a checkpoint"
            assert time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.005)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return _epoch_of(checkpoint)


@pytest.mark.slow
@pytest.mark.parametrize("step", list(STEPS))
def test_a_killed_training_rule_resumes_to_the_weights_of_an_uninterrupted_run(step, tiny_run, tmp_path):
    _, model, log, ckpt, _ = STEPS[step]
    whole = _prepare(tiny_run, tmp_path / "whole", step)
    run(snakemake_cmd(whole, target(step)))

    killed = _prepare(tiny_run, tmp_path / "killed", step)
    saved = _kill_after_first_checkpoint(killed, target(step), killed / ckpt / "last.pt")
    assert 1 <= saved < KILL_EPOCHS[step], f"killed after epoch {saved}"
    run(snakemake_cmd(killed, "--unlock"))
    run(snakemake_cmd(killed, "--rerun-incomplete", target(step)))

    text = (killed / log).read_text()
    resumed = re.search(r"resumed from checkpoint \S+ at epoch (\d+) \(step (\d+)\)", text)
    assert resumed and int(resumed.group(1)) == saved, text[-3000:]
    assert _epoch_of(killed / ckpt / "last.pt") == KILL_EPOCHS[step]
    gap = _difference(_weights(whole / model), _weights(killed / model))
    assert not gap, f"{step}: the resumed model differs from an uninterrupted run's: {gap}"
