"""`genex explain` on the command line: outputs, several files, bad input, no pipeline needed."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from helpers.audio_tiny_models import BANDS, HOP, N_FFT, RATE, save_torchscript, tone
from genex.cli import main

TESTS = Path(__file__).resolve().parents[2]
FAST = ["--steps", "10", "--n-samples", "2", "--n-fft", str(N_FFT), "--hop", str(HOP),
        "--no-in-distribution"]
OUTPUTS = {"masks.npz", "explanation.json", "mask.png", "original.wav", "kept.wav", "removed.wav",
           "index.html"}

# TorchScript is a SPEC users have, even though torch 2.13 deprecates it
pytestmark = pytest.mark.filterwarnings("ignore:.*torch.jit.* is deprecated:DeprecationWarning")

@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("GENEX_NO_PROGRESS", "1")


@pytest.fixture
def model(tmp_path) -> str:
    return str(save_torchscript(tmp_path / "bands.pt"))


def _wav(path: Path, wave=None, rate: int = RATE) -> str:
    sf.write(path, tone() if wave is None else wave, rate)
    return str(path)


def test_explain_writes_every_output(tmp_path, model):
    clip = _wav(tmp_path / "clip.wav")
    out = tmp_path / "out"
    assert main(["explain", "--model", model, "--audio", clip, "--components", "bands:8",
                 "--target", "low", "--out", str(out), *FAST]) == 0
    assert {p.name for p in out.iterdir()} == OUTPUTS
    info = json.loads((out / "explanation.json").read_text())
    assert info["model"] == model and info["input"] == "waveform" and info["method"] == "rde-concrete"
    assert info["infiller"] == "noise" and info["target"]["index"] == 0 and info["target"]["label"] == "low"
    assert len(info["scores"]) == 8 and set(info["binarised_distortion"]) == {"empty", "0.05", "0.1", "0.2", "0.5"}
    prov = info["provenance"]
    assert prov["seed"] == 0 and {"genex", "torch", "numpy"} <= set(prov["versions"])
    assert info["sha256"] == __import__("hashlib").sha256(Path(clip).read_bytes()).hexdigest()
    with np.load(out / "masks.npz", allow_pickle=False) as masks:
        assert masks["scores"].shape == (8,) and masks["mask"].shape == masks["spectrogram"].shape
        assert masks["mask"].shape == (N_FFT // 2 + 1, RATE // HOP + 1)
        np.testing.assert_allclose(masks["scores"], info["scores"], rtol=1e-6)
    for name in ("original", "kept", "removed"):
        wave, sr = sf.read(out / f"{name}.wav")
        assert sr == RATE and wave.shape == (RATE,)
    assert (out / "mask.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_several_files_get_one_folder_each_and_one_page(tmp_path, model):
    clips = [_wav(tmp_path / "a.wav"), _wav(tmp_path / "b.wav", tone({3000.0: 0.8})),
             _wav(tmp_path / "c.wav", tone(seconds=0.5))]
    out = tmp_path / "out"
    assert main(["explain", "--model", model, "--audio", *clips, "--components", "tiles:4x2",
                 "--method", "occlusion", "--out", str(out), *FAST]) == 0
    assert {p.name for p in out.iterdir()} == {"a", "b", "c", "index.html", "explanations.json"}
    for name in "abc":
        assert {p.name for p in (out / name).iterdir()} == OUTPUTS
    summary = json.loads((out / "explanations.json").read_text())
    assert [s["target"]["label"] for s in summary] == ["low", "high", "low"]
    page = (out / "index.html").read_text()
    assert all(f'src="{n}/mask.png"' in page and f'src="{n}/kept.wav"' in page for n in "abc")


def test_a_file_at_another_rate_is_resampled_with_a_notice(tmp_path, model, caplog):
    clip = _wav(tmp_path / "fast.wav", tone(rate=16000), rate=16000)
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING, logger="genex.audio"):
        assert main(["explain", "--model", model, "--audio", clip, "--components", "bands:4",
                     "--method", "saliency", "--out", str(out), *FAST]) == 0
    assert f"{clip}: resampling from 16000 Hz to the 8000 Hz the model takes" in caplog.text
    assert sf.info(str(out / "kept.wav")).samplerate == RATE


def _bad_input(tmp_path: Path, case: str, model: str) -> tuple[list[str], str]:
    """argv pieces and the expected start of the error line."""
    clip = tmp_path / "clip.wav"
    if case == "not audio":
        clip.write_text("hello\n")
        return ["--audio", str(clip)], f"genex explain: {clip}: not a readable audio file"
    if case == "empty":
        sf.write(clip, np.zeros(0, dtype=np.float32), RATE)
        return ["--audio", str(clip)], f"genex explain: {clip}: no samples (an empty audio file)"
    if case == "nan":
        wave = tone()
        wave[100:110] = np.nan
        sf.write(clip, wave, RATE, subtype="FLOAT")
        return ["--audio", str(clip)], f"genex explain: {clip}: 10 non-finite samples (NaN or inf)"
    _wav(clip)
    if case == "unknown target":
        return (["--audio", str(clip), "--target", "bird"],
                f"genex explain: {model}: unknown target 'bird'; the model's labels are: "
                f"{', '.join(BANDS)}")
    if case == "wrong shape":
        return (["--audio", str(clip), "--model", "helpers.audio_tiny_models:NeedsChannels"],
                f"genex explain: helpers.audio_tiny_models:NeedsChannels: the model failed on input of "
                f"shape [1, {RATE}] (waveform at {RATE} Hz)")
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["not audio", "empty", "nan", "unknown target", "wrong shape"])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, model, capsys, case):
    args, expected = _bad_input(tmp_path, case, model)
    out = tmp_path / "out"
    argv = ["explain", "--model", model, *args, "--out", str(out), *FAST]
    assert main(argv) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("genex explain")]
    assert len(err) == 1 and err[0].startswith(expected), err
    assert not out.exists() and not list(tmp_path.glob(".out.*"))


def test_a_failure_leaves_an_earlier_output_as_it_was(tmp_path, model, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "explanation.json").write_text("{}")  # an earlier run's
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    assert main(["explain", "--model", model, "--audio", str(bad), "--out", str(out), *FAST]) == 1
    assert [p.name for p in out.iterdir()] == ["explanation.json"]


def test_a_folder_that_is_not_an_earlier_output_is_never_replaced(tmp_path, model, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("months of work")
    clip = _wav(tmp_path / "clip.wav")
    assert main(["explain", "--model", model, "--audio", clip, "--out", str(mine), *FAST]) == 1
    assert f"genex explain: {mine}: not empty and not an earlier genex explain output" in capsys.readouterr().err
    assert [p.name for p in mine.iterdir()] == ["thesis.tex"]
    # an earlier output is replaced by the new run
    out = tmp_path / "out"
    args = ["explain", "--model", model, "--audio", clip, "--components", "bands:2", "--method",
            "saliency", "--out", str(out), *FAST]
    assert main(args) == 0 and main(args) == 0
    assert {p.name for p in out.iterdir()} == OUTPUTS


def test_help_teaches_with_an_example_and_the_methods(capsys):
    with pytest.raises(SystemExit):
        main(["explain", "--help"])
    text = capsys.readouterr().out
    for phrase in ("example:", "genex explain --model", "trusts", "genex fit-infiller",
                   "rde-concrete", "occlusion", "harmonics:N", "--span", "TorchScript"):
        assert phrase in text, phrase


def test_the_cli_choices_are_the_library_s():
    import importlib

    from genex.audio import cli

    library = importlib.import_module("genex.audio.explain")
    assert cli.METHODS == library.METHODS and cli.INFILLERS == library.INFILLERS


BLOCKED_RUN = """
import importlib.abc, sys
class Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("snakemake", "dvc", "pandas"):
            raise ImportError(f"{name} is blocked in this test")
sys.meta_path.insert(0, Blocked())
from genex.cli import main
rc = main(sys.argv[1:])
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("snakemake", "dvc", "pandas"))
assert not loaded, loaded
raise SystemExit(rc)
"""


def test_explain_runs_without_snakemake_dvc_or_pandas(tmp_path, model):
    clip = _wav(tmp_path / "clip.wav")
    out = tmp_path / "out"
    env = {"PYTHONPATH": f"{Path(__import__('genex').__file__).parents[1]}:{TESTS}",
           "GENEX_NO_PROGRESS": "1", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-c", BLOCKED_RUN, "explain", "--model", model, "--audio",
                           clip, "--components", "bands:4", "--method", "occlusion", "--out", str(out),
                           *FAST], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert {p.name for p in out.iterdir()} == OUTPUTS


@pytest.mark.slow  # ~30 s on 2 busy cores: a GAN fit plus RDE through it
def test_an_infiller_fitted_by_the_cli_serves_explain_and_refuses_other_settings(tmp_path, model, capsys):
    pytest.importorskip("genex.audio.infiller", reason="F2's fitted infiller is not in this tree")
    clips = tmp_path / "clips"
    clips.mkdir()
    for i in range(2):
        _wav(clips / f"c{i}.wav", tone({200.0 + 50 * i: 0.5, 2500.0: 0.3}, seed=i))
    fitted = tmp_path / "infiller"
    assert main(["fit-infiller", "--audio-dir", str(clips), "--sample-rate", str(RATE), "--n-fft",
                 str(N_FFT), "--hop", str(HOP), "--steps", "2", "--batch-size", "2",
                 "--crop-frames", "32", "--out", str(fitted)]) == 0
    out = tmp_path / "out"
    assert main(["explain", "--model", model, "--audio", str(clips / "c0.wav"), "--components",
                 "bands:4", "--infiller", str(fitted), "--out", str(out), *FAST, "--steps", "2"]) == 0
    info = json.loads((out / "explanation.json").read_text())
    assert info["infiller"] == str(fitted) and info["listening"]["rest"] == "infilled"
    # an infiller fitted at n_fft 256 cannot serve an explanation at 512
    other = [a if a != str(N_FFT) else "512" for a in FAST]
    assert main(["explain", "--model", model, "--audio", str(clips / "c0.wav"), "--infiller",
                 str(fitted), "--out", str(tmp_path / "other"), *other]) == 1
    assert "fitted for another representation" in capsys.readouterr().err
    assert not (tmp_path / "other").exists()


def test_fit_infiller_needs_audio_files(tmp_path, capsys):
    assert main(["fit-infiller", "--audio-dir", str(tmp_path), "--out", str(tmp_path / "inf")]) == 1
    assert f"genex fit-infiller: {tmp_path}: no audio files" in capsys.readouterr().err
