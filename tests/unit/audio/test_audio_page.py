"""`genex explain`'s index.html in headless Chromium: every image and audio element loads."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from helpers.audio_tiny_models import HOP, N_FFT, RATE, BandEnergy, tone
from genex.audio import explain, explain_many
from genex.audio.page import write_outputs

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium is not installed (Debian: apt-get install "
                             "--no-install-recommends chromium; scripts/install-system-packages.sh)")
FAST = dict(steps=10, n_samples=2, in_distribution=False, n_fft=N_FFT, hop=HOP)


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("GENEX_NO_PROGRESS", "1")


def load_check(page: Path) -> dict:
    """What the page's own script recorded after loading in headless Chromium."""
    cmd = [CHROMIUM, "--headless", "--disable-gpu", "--no-first-run", "--mute-audio",
           "--allow-file-access-from-files", "--virtual-time-budget=10000", "--dump-dom",
           page.resolve().as_uri()]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.insert(1, "--no-sandbox")  # Chromium's sandbox refuses to run as root
    home = page.parent / ".chromium-home"  # a profile of its own, never the user's
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HOME": str(home)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    found = re.search(r'data-load-check="([^"]*)"', proc.stdout)
    assert found, f"the page's load check never finished:\n{proc.stdout[-2000:]}"
    return json.loads(html.unescape(found.group(1)))


@pytest.fixture(scope="module")
def one_clip(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("page") / "out"
    explain(BandEnergy(), tone(), RATE, components="bands:4", method="occlusion", **FAST).save(out)
    return out


@needs_chromium
def test_every_image_and_audio_element_loads(one_clip):
    assert load_check(one_clip / "index.html") == {"images": 1, "audio": 3, "failed": []}


@needs_chromium
def test_the_check_sees_a_missing_file(one_clip, tmp_path):
    """The check can fail: a page whose kept.wav and mask.png are gone reports both."""
    broken = tmp_path / "broken"
    shutil.copytree(one_clip, broken)
    (broken / "kept.wav").unlink()
    (broken / "mask.png").unlink()
    result = load_check(broken / "index.html")
    assert result["images"] == 0 and result["audio"] == 2
    assert sorted(result["failed"]) == ["kept.wav", "mask.png"]


@needs_chromium
def test_the_page_of_several_clips_loads_everything(tmp_path):
    clips = [tone(), tone({3000.0: 0.8}, seconds=0.5)]
    out = write_outputs(tmp_path / "out", explain_many(BandEnergy(), clips, RATE, components="bands:4",
                                                        method="saliency", **FAST))
    assert load_check(out / "index.html") == {"images": 2, "audio": 6, "failed": []}
    assert load_check(out / "clip1" / "index.html") == {"images": 1, "audio": 3, "failed": []}


def test_the_page_shows_the_numbers(one_clip):
    page = (one_clip / "index.html").read_text()
    info = json.loads((one_clip / "explanation.json").read_text())
    assert "occlusion" in page and "Binarised distortion" in page and "Top components" in page
    assert f"{info['binarised_distortion']['0.5']:.4g}" in page


def test_plot_returns_a_figure_of_the_spectrogram_and_the_mask():
    e = explain(BandEnergy(), tone(), RATE, components="bands:4", method="saliency", **FAST)
    fig = e.plot()
    assert len(fig.axes) == 3  # spectrogram, mask, colour bar
    mesh = fig.axes[1].collections[-1].get_array()
    assert np.isclose(float(mesh.max()), 1.0)  # the mask is normalised to [0, 1]


def test_a_failure_while_writing_leaves_nothing(tmp_path, monkeypatch):
    import genex.audio.page as page

    e = explain(BandEnergy(), tone(), RATE, components="bands:4", method="saliency", **FAST)

    def broken_plot(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(page, "plot_explanation", broken_plot)
    with pytest.raises(RuntimeError, match="disk full"):
        e.save(tmp_path / "out")
    assert list(tmp_path.iterdir()) == []  # neither the folder nor a half-written copy
