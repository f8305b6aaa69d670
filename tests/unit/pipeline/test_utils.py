"""Atomic outputs, seeding and the CLI's contract."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from genex.cli import build_parser, main
from genex.pipeline import atomic_dir, atomic_file, read_json, seed_everything, write_json


def test_atomic_dir_replaces_target_on_success(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with atomic_dir(target) as tmp:
        (tmp / "new.txt").write_text("new")
        assert not (target / "new.txt").exists()
    assert (target / "new.txt").read_text() == "new"
    assert not (target / "old.txt").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_atomic_dir_leaves_nothing_after_a_failure(tmp_path):
    target = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as tmp:
            (tmp / "half.txt").write_text("half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_atomic_file_keeps_old_content_after_a_failure(tmp_path):
    target = tmp_path / "x.json"
    write_json(target, {"a": 1})
    with pytest.raises(KeyError):
        with atomic_file(target) as tmp:
            tmp.write_text("{broken")
            raise KeyError("boom")
    assert read_json(target) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_read_json_names_the_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(ValueError, match="bad.json"):
        read_json(bad)


def test_seed_everything_is_reproducible():
    a = seed_everything(7).normal(size=5)
    b = seed_everything(7).normal(size=5)
    assert np.array_equal(a, b)


def test_seed_everything_makes_torch_kernels_deterministic_without_loading_inductor():
    """Every torch step seeds: deterministic kernels (warn only), as torch's public call sets
    them, but without the 1.3 s import of TorchInductor that call makes (torch 2.13)."""
    code = ("import sys, torch; from genex.pipeline import seed_everything; seed_everything(0); "
            "print(torch.are_deterministic_algorithms_enabled(), "
            "torch.is_deterministic_algorithms_warn_only_enabled(), 'torch._inductor' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "True", "False"]


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for command in ("render", "download", "summarize", "report", "collect-metrics"):
        assert command in out


def test_bad_params_json_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="--params is not valid JSON"):
        main(["render", "radio-sim", "--params", "{oops", "--out", str(tmp_path / "x")])
    assert not (tmp_path / "x").exists()


def test_collect_metrics_keys_by_folder(tmp_path):
    for name, n in (("a", 1), ("b", 2)):
        write_json(tmp_path / name / "stats.json", {"n": n})
    out = tmp_path / "metrics.json"
    assert main(["collect-metrics", str(tmp_path / "a" / "stats.json"),
                 str(tmp_path / "b" / "stats.json"), "--out", str(out)]) == 0
    assert json.loads(out.read_text()) == {"a": {"n": 1}, "b": {"n": 2}}
