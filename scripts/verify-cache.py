#!/usr/bin/env python3
"""Check that every object in the DVC cache holds what its name (an md5) says.

DVC trusts a remote's content unless the remote sets ``verify = true``, so an object damaged
in the store would be checked out and marked current. scripts/pull.sh runs this between
``dvc fetch`` and ``dvc checkout``: a damaged object is removed from the cache (a later fetch
gets it again) and named, with the outputs it belongs to, one line each; exit status 1.
Objects already checked are remembered by size and mtime in .dvc/tmp, so a pull rehashes
only what it fetched.
Usage: scripts/verify-cache.py CACHE_DIR   (the output of `dvc cache dir`)
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from pathlib import Path

import yaml

OBJECT = re.compile(r"^[0-9a-f]{2}/[0-9a-f]{30}(\.dir)?$")
LEDGER = Path(".dvc/tmp/genex-verified-objects")


def md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def owners(cache: Path, lock_file: Path = Path("dvc.lock")) -> dict[str, list[str]]:
    """Object hash -> workspace paths, from dvc.lock's outputs and the cached .dir listings."""
    out: dict[str, list[str]] = {}
    try:
        lock = yaml.safe_load(lock_file.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return out
    for stage in (lock.get("stages") or {}).values():
        for item in stage.get("outs") or []:
            digest, path = str(item.get("md5", "")), str(item.get("path", ""))
            out.setdefault(digest, []).append(path)
            if digest.endswith(".dir"):
                try:
                    listing = json.loads((cache / digest[:2] / digest[2:]).read_text())
                except (OSError, ValueError):
                    continue
                for entry in listing:
                    out.setdefault(entry["md5"], []).append(f"{path}/{entry['relpath']}")
    return out


def main(cache_dir: str) -> int:
    cache = Path(cache_dir) / "files" / "md5"
    if not cache.is_dir():
        return 0
    known: set[str] = set(LEDGER.read_text().splitlines()) if LEDGER.exists() else set()
    good, bad = [], []
    for path in sorted(cache.glob("??/*")):
        rel = path.relative_to(cache).as_posix()
        if not path.is_file() or not OBJECT.match(rel):
            continue  # DVC's own temporary files
        st = path.stat()
        stamp = f"{rel} {st.st_size} {st.st_mtime_ns}"
        if stamp in known:
            good.append(stamp)
            continue
        expected = rel.replace("/", "").removesuffix(".dir")
        actual = md5(path)
        if actual == expected:
            good.append(stamp)
        else:
            bad.append((rel, actual))
    LEDGER.parent.mkdir(parents=True, exist_ok=True)
    tmp = LEDGER.with_name(f".{LEDGER.name}.{os.getpid()}.partial")
    tmp.write_text("".join(f"{s}\n" for s in good))
    os.replace(tmp, LEDGER)
    if bad:
        where = owners(cache)
        for rel, actual in bad:
            (cache / rel).unlink()
            name = rel.replace("/", "").removesuffix(".dir") + (".dir" if rel.endswith(".dir") else "")
            paths = ", ".join(where.get(name, [])) or "no output of dvc.lock"
            print(f"pull.sh: error: object files/md5/{rel} from the remote is damaged (its content has "
                  f"md5 {actual}); it belongs to {paths}; removed from the cache, nothing was checked "
                  "out or marked current", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else ".dvc/cache"))
