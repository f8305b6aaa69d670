"""benchmarks/gpu_paper_burst.py on CPU (--device cpu --quick): the JSON it writes has the
shape the README promises (per-model seconds, steps/s, host RSS; per-rule hours at the paper
schedule), and a missing paper-smoke profile is a stated skip, not a crash. Real numbers
come only from a GPU run; these check the script."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "benchmarks" / "gpu_paper_burst.py"


def _load(name: str, path: Path):
    sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def burst_module():
    return _load("gpu_paper_burst", SCRIPT)


def _run(tmp_path: Path, *extra: str) -> dict:
    out = tmp_path / "burst.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--quick", "--skip-dag",
                           "--out", str(out), *extra], capture_output=True, text=True, timeout=600,
                          env={"PYTHONPATH": str(REPO / "src"), "GENEX_NO_PROGRESS": "1",
                               "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return json.loads(out.read_text())


def test_quick_cpu_burst_writes_per_model_and_per_rule_figures(tmp_path):
    result = _run(tmp_path, "--only", "nsynth_classifier", "piano_cnn")
    assert result["device"] == "cpu" and result["quick"] is True
    assert result["dag"] == {"skipped": "--skip-dag"}
    assert set(result["bursts"]) == {"nsynth_classifier", "piano_cnn"}
    for name, burst in result["bursts"].items():
        assert "error" not in burst, (name, burst)
        assert burst["steps"] == 3 and burst["seconds"] > 0
        assert burst["steps_per_s"] == pytest.approx(burst["steps"] / burst["seconds"])
        assert burst["rss_mb"] > 0 and burst["peak_rss_mb"] >= burst["rss_mb"] * 0.99
        assert "peak_gpu_mb" not in burst  # only measured on CUDA
    for schedule in ("paper_rde_1e6", "converging_rde"):
        rules = result["paper_schedule"][schedule]["rules"]
        # rules whose every model ran are extrapolated; the others are left out, not guessed
        assert set(rules) == {"nsynth_train_classifier", "nsynth_train_classifier[ablation]",
                              "piano_train_cnn"}
        assert all(r["hours"] > 0 for r in rules.values())
        assert result["paper_schedule"][schedule]["total_hours"] == pytest.approx(
            sum(r["hours"] for r in rules.values()))
    # the CNN's 100 epochs of the (assumed) MAPS training frames at the measured rate
    cnn = result["paper_schedule"]["converging_rde"]["rules"]["piano_train_cnn"]
    steps = cnn["steps"]["piano_cnn"]
    assert steps == 100 * -(-burst_module().DATASET_SIZES["maps_train_frames"] // 256)
    assert cnn["hours"] == pytest.approx(steps / result["bursts"]["piano_cnn"]["steps_per_s"] / 3600)


def test_every_rule_workload_exists_and_a_failing_model_is_recorded(monkeypatch):
    burst = burst_module()
    for parts in burst.rule_steps(2000, 400).values():
        for name, steps in parts:
            assert name in burst.WORKLOADS and steps > 0
    boom = burst.WORKLOADS["piano_cnn"]
    monkeypatch.setattr(boom, "make", lambda *a: (_ for _ in ()).throw(RuntimeError("CUDA out of memory")))
    out = burst.bursts(["piano_cnn"], __import__("torch").device("cpu"), 2, 1.0, True)
    assert out["piano_cnn"] == {"error": "RuntimeError: CUDA out of memory"}
    assert burst.extrapolate(out, 2000, 400)["rules"]["piano_train_cnn"] is None


def test_missing_paper_smoke_profile_is_a_stated_skip(monkeypatch, tmp_path):
    burst = burst_module()
    monkeypatch.setattr(burst, "SMOKE_OVERLAY", burst.REPO / "config" / "no-such-paper-smoke.yaml")
    result = burst.smoke_dag("cpu", 10, 1, None)
    assert "skipped" in result and "config/no-such-paper-smoke.yaml not found" in result["skipped"]
