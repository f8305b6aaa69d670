"""Bugs the paper-smoke DAG found (tests/pipeline/test_paper_smoke.py, issue 16): each step on
a fake dataset in the real layout (tests/helpers/paper_format.py), at unit level."""

from __future__ import annotations

import numpy as np

from helpers import paper_format
from helpers.radio_models import Flat


def test_radio_building_sensitivity_is_skipped_with_its_reason_on_radiomapseer(tmp_path):
    """The shadows are genex's simulator's: on RadioMapSeer (another simulator's gain) the step
    stopped the run with 'the stored gain differs from this simulator's'; now it says why it
    measured nothing, and the report section says so too."""
    from genex.studies.radio.report import _physics_blocks
    from genex.studies.radio.sensitivity import building_sensitivity

    root = paper_format.radiomapseer(tmp_path / "rms", maps=3, transmitters=1, size=32)
    ids = np.array([[1, 0, 1, 1], [2, 0, 1, 1]])
    result = building_sensitivity(root, "DPM", ids, 32, Flat(), Flat(), {"maps": 2}, seed=0)
    summary = result["summary"]
    assert summary["buildings"] == 0 and result["buildings"] == []
    assert "not this simulator's" in summary["skipped"]
    blocks = _physics_blocks({"building_sensitivity": {**summary, "threshold": 0.1, "min_pixels": 4, "k": 2}})
    assert [b["type"] for b in blocks] == ["text"] and "skipped" in blocks[0]["text"]


def test_fake_jamendo_is_read_in_its_real_layout_and_its_features_resampled(tmp_path):
    """Jamendo as `genex download jamendo` unpacks it: ogg and mp3 at 44.1 kHz stereo, names with
    spaces; the vocal features resample to 22.05 kHz and label every frame from the .lab files."""
    from pathlib import Path

    from genex.studies.vocal.data import read_vocal
    from genex.studies.vocal.features import extract

    root = paper_format.jamendo(tmp_path / "jamendo")
    corpus = read_vocal(root)
    assert {Path(p).suffix for p in corpus["audio_path"]} == {".ogg", ".mp3"}
    assert any(" " in song for song in corpus["song"]) and list(corpus["split"]).count("test") == 1
    out = tmp_path / "features"
    out.mkdir()
    summary = extract(root, out, {})
    frames = summary["splits"]["test"]["frames"]
    assert abs(frames - 4.0 * 70) <= 2, frames  # 4 s at 70 fps, whatever the file's rate
    for split in ("train", "valid", "test"):
        assert 0 < summary["splits"][split]["sing_share"] < 1
