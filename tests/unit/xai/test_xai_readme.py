"""The README's library example runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

README = Path(__file__).resolve().parents[3] / "README.md"


@pytest.mark.slow
def test_readme_library_example_runs():
    text = README.read_text()
    section = text[text.index("## The library: `genex.xai`"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert len(code.strip().splitlines()) <= 16
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102 - our own README
    for name in ("keep", "keep_gan"):
        keep = scope[name]
        assert keep.shape == (8, 128) and bool(((keep >= 0) & (keep <= 1)).all())
    assert not torch.equal(scope["keep"], scope["keep_gan"])
