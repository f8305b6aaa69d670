"""A training rule killed with SIGKILL resumes from its last checkpoint when rerun.

The user's path after a crash or a cancelled cluster job: `snakemake --unlock`, then
`snakemake --rerun-incomplete`. Snakemake deletes the killed job's incomplete output and
runs the rule again; the trainer finds its checkpoint (kept outside the rule's outputs)
and continues. The final weights equal those of a run that was never interrupted, because
each epoch's data order and augmentation come from (seed, epoch) and the checkpoint holds
every RNG state.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time

import torch
import yaml
from conftest import BIN, run, snakemake_cmd

from genex.utils import load_tensors

TARGET = "results/nsynth/classifier"
CHECKPOINT = "results/nsynth/checkpoints/classifier/last.pt"
LOG = "logs/nsynth/train_classifier.log"
EPOCHS = 12


def _prepare(tiny_run, dst):
    """A copy of the tiny run whose classifier trains for longer (and from scratch)."""
    shutil.copytree(tiny_run, dst, symlinks=True)
    tiny = dst / "config" / "tiny.yaml"
    config = yaml.safe_load(tiny.read_text())
    config["nsynth"]["classifier"]["epochs"] = EPOCHS
    tiny.write_text(yaml.safe_dump(config))
    shutil.rmtree(dst / "results/nsynth/checkpoints/classifier", ignore_errors=True)
    return dst


def _epoch_of(checkpoint):
    try:
        return torch.load(checkpoint, map_location="cpu", weights_only=False)["state"]["epoch"]
    except (OSError, RuntimeError, EOFError, KeyError):
        return 0


def _kill_after_epoch(workdir, epoch, timeout=240):
    """Run the training rule and SIGKILL Snakemake and its job once ``epoch`` is saved."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           "GENEX_NO_PROGRESS": "1"}
    proc = subprocess.Popen(snakemake_cmd(workdir, TARGET), env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    try:
        while _epoch_of(workdir / CHECKPOINT) < epoch:
            assert proc.poll() is None, "training ended before it could be killed"
            assert time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return _epoch_of(workdir / CHECKPOINT)


def _weights(folder):
    return load_tensors(folder / "model.pt")["state_dict"]


def test_killed_training_rule_resumes_and_ends_where_an_uninterrupted_one_does(tiny_run, tmp_path):
    whole = _prepare(tiny_run, tmp_path / "whole")
    run(snakemake_cmd(whole, TARGET))

    killed = _prepare(tiny_run, tmp_path / "killed")
    saved = _kill_after_epoch(killed, epoch=2)
    assert 2 <= saved < EPOCHS
    run(snakemake_cmd(killed, "--unlock"))
    run(snakemake_cmd(killed, "--rerun-incomplete", TARGET))

    log = (killed / LOG).read_text()
    resumed = re.search(r"resumed from checkpoint \S+ at epoch (\d+) \(step (\d+)\)", log)
    assert resumed, log[-3000:]
    assert int(resumed.group(1)) == saved and int(resumed.group(2)) > 0
    assert f"classifier epoch {saved + 1}:" in log and "classifier epoch 1:" not in log
    assert _epoch_of(killed / CHECKPOINT) == EPOCHS

    a, b = _weights(whole / TARGET), _weights(killed / TARGET)
    assert a.keys() == b.keys() and a
    for key in a:
        assert torch.equal(a[key], b[key]), key
