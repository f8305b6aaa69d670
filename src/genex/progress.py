"""Progress bars on long optimisations: tqdm when it is installed, silent otherwise.

genex.xai depends on torch, numpy and scipy only; tqdm is optional.
"""

from __future__ import annotations

import os
from typing import Iterable, TypeVar

T = TypeVar("T")


def progress(iterable: Iterable[T], desc: str, total: int | None = None, unit: str = "it") -> Iterable[T]:
    """A tqdm progress bar on stderr; quiet when GENEX_NO_PROGRESS is set or tqdm is missing."""
    if os.environ.get("GENEX_NO_PROGRESS"):
        return iterable
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return iterable
    return tqdm(iterable, desc=desc, total=total, unit=unit, mininterval=1.0, dynamic_ncols=True)
