"""Downloads of the real datasets (NSynth, MAESTRO v3, the Jamendo corpus, RadioMapSeer): shared steps.

The machinery the studies' downloaders (``genex.studies.<study>.download``) share. Each
``download_<dataset>(out_dir, params)`` takes the dataset's config section:

- ``base_url``: where the files without their own ``url`` live (tests point it at a local
  server);
- ``files``: ``[{name, url?, sha256?, md5?, size?}, ...]``, the archives and their checks;
- ``retries``, ``backoff``, ``timeout``, ``deadline`` (seconds per file, retries included):
  passed to :func:`genex.pipeline.download.download_file`;
- ``max_extract_bytes``, ``max_compression_ratio``, ``max_members``: limits on what one
  archive may unpack to (see :class:`genex.pipeline.download.Limits`);
- ``keep_downloads``: keep the verified archives in ``out_dir/.downloads`` (default true);
- ``download_dir``: another folder for the archives (default ``<out_dir's parent>/.downloads/
  <out_dir's name>``: outside the output, so a failed job that Snakemake cleans up keeps the
  partial downloads to resume from).

Archives are downloaded (resumably) into the download folder, then extracted into a
temporary folder beside ``out_dir`` and arranged in the layout the readers expect; only
then is the temporary folder swapped onto ``out_dir``. A failure leaves the previous
``out_dir`` (or nothing but the download cache) in place; what a killed earlier run left
beside ``out_dir`` is removed when the step starts again. An archive that fails to extract
as corrupt is discarded and fetched once more (unless a checksum pins it: then fetching
again cannot help). Jobs sharing a download folder take turns (a lock file in it).
``out_dir/genex.json`` records what was installed, like the embedded renders' ``genex.json``.

MAPS is not downloaded: it needs registration, so its unpacked folder is read from the
path in ``datasets.maps.path``.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import re
import shutil
import tempfile
import urllib.parse
from pathlib import Path
from typing import Callable, Iterator

from genex.pipeline.download import (
    CorruptArchive,
    Limits,
    discard,
    download_file,
    extract_archive,
    file_lock,
    recorded_sha256,
)
from genex.pipeline import provenance, write_json
from genex.pipeline.io import follow_umask, remove_stale

log = logging.getLogger(__name__)

DOWNLOADS = ".downloads"
DEFAULTS = {"retries": 5, "backoff": 2.0, "timeout": 60.0, "keep_downloads": True,
            "deadline": 86400.0}  # a day per file: 101 GB of MAESTRO at 1.2 MB/s

# --------------------------------------------------------------------------- shared steps


def file_url(entry: dict, params: dict) -> str:
    """The URL of a file entry: its own ``url``, else ``base_url`` + its name."""
    if entry.get("url"):
        return entry["url"]
    base = params.get("base_url")
    if not base:
        raise ValueError(f"file {entry.get('name')!r} has no url and the config has no base_url")
    return base.rstrip("/") + "/" + urllib.parse.quote(entry["name"])


def file_entries(params: dict, dataset: str) -> list[dict]:
    files = params.get("files") or []
    if not files:
        raise ValueError(f"datasets.{dataset}.files is empty: nothing to download")
    for entry in files:
        if not entry.get("name") or "/" in entry["name"] or entry["name"].startswith("."):
            raise ValueError(f"datasets.{dataset}.files: bad file name {entry.get('name')!r}")
    return files


def fetch(entries: list[dict], params: dict, downloads: Path) -> dict[str, Path]:
    """Download and verify every entry into ``downloads``; return name -> local path."""
    opts = {**DEFAULTS, **params}
    paths = {}
    for entry in entries:
        paths[entry["name"]] = download_file(
            file_url(entry, params), downloads / entry["name"], sha256=entry.get("sha256"),
            size=entry.get("size"), md5=entry.get("md5"), retries=opts["retries"],
            backoff=opts["backoff"], timeout=opts["timeout"], deadline=opts["deadline"])
    return paths


def _download_dir(out_dir: Path, params: dict) -> Path:
    if params.get("download_dir"):
        return Path(params["download_dir"])
    return out_dir.parent / DOWNLOADS / out_dir.name


@contextlib.contextmanager
def _staged(out_dir: Path, keep: list[str]) -> Iterator[Path]:
    """Yield a temporary folder beside ``out_dir`` and swap it onto ``out_dir`` on success.

    The entries named in ``keep`` (the download cache) move from the old ``out_dir`` into
    the new one, so the cache survives and no half-built dataset is ever visible.
    """
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".partial", dir=out_dir.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    follow_umask(tmp, folder=True)  # mkdtemp made it 0700
    old = None
    if out_dir.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".old", dir=out_dir.parent))
        os.replace(out_dir, old)  # renaming onto an empty folder is atomic on POSIX
    os.replace(tmp, out_dir)
    if old is not None:
        for name in keep:
            if (old / name).exists():
                os.replace(old / name, out_dir / name)
        shutil.rmtree(old, ignore_errors=True)


def _restore_old(out_dir: Path) -> None:
    """A kill between the two renames of the swap leaves the previous (complete) dataset in
    a ``.old`` folder and no ``out_dir``: put it back."""
    olds = sorted(out_dir.parent.glob(f".{glob.escape(out_dir.name)}.*.old"),
                  key=lambda p: p.stat().st_mtime)
    if olds and not out_dir.exists():
        os.replace(olds[-1], out_dir)
        log.warning("%s: restored the previous dataset from %s", out_dir, olds[-1].name)


def _clean_stale(out_dir: Path) -> None:
    """Remove what a killed earlier install left beside ``out_dir``."""
    for suffix in (".partial", ".old"):
        for stale in remove_stale(out_dir, suffix):
            log.info("removed %s, left by a killed earlier run", stale)


def install(dataset: str, out_dir: Path, params: dict, entries: list[dict],
             build: Callable[[Path, dict[str, Path]], dict]) -> dict:
    """Fetch ``entries``, let ``build(staging, archives)`` lay the dataset out, swap it in."""
    out_dir = Path(out_dir)
    downloads = _download_dir(out_dir, params)
    if out_dir.parent.is_dir():
        _restore_old(out_dir)  # before the lock, which may create out_dir/.downloads
    with file_lock(downloads / ".genex.lock", str(downloads)):
        summary = _install_locked(dataset, out_dir, params, entries, build, downloads)
    if not {**DEFAULTS, **params}["keep_downloads"]:
        with contextlib.suppress(OSError):
            downloads.rmdir()  # only if now empty
    log.info("%s installed in %s", dataset, out_dir)
    return summary


def _install_locked(dataset: str, out_dir: Path, params: dict, entries: list[dict],
                    build: Callable[[Path, dict[str, Path]], dict], downloads: Path) -> dict:
    _clean_stale(out_dir)
    keep_cache = bool({**DEFAULTS, **params}["keep_downloads"])
    cache_inside = downloads.parent == out_dir
    refetched: set[Path] = set()
    while True:
        archives = fetch(entries, params, downloads)
        try:
            with _staged(out_dir, keep=[DOWNLOADS] if cache_inside and keep_cache else []) as staging:
                summary = build(staging, archives)
                summary["files"] = [_file_record(e, params, archives[e["name"]]) for e in entries]
                write_json(staging / "genex.json", {"dataset": dataset, "summary": summary,
                                                    "provenance": provenance(params)})
            break
        except CorruptArchive as err:
            entry = next((e for e in entries if archives[e["name"]] == err.path), None)
            if entry is None:
                raise
            if entry.get("sha256") or entry.get("md5"):
                raise CorruptArchive(f"{err}; it matches its configured checksum, so fetching "
                                     "it again cannot help", err.path) from None
            if err.path in refetched:
                raise CorruptArchive(f"{err} (fetched again, still corrupt)", err.path) from None
            log.warning("%s; discarding the cached file and fetching it again", err)
            discard(err.path)
            refetched.add(err.path)
    if not keep_cache:  # only our files: download_dir may be a shared folder
        for path in archives.values():
            discard(path)
    return summary


def _file_record(entry: dict, params: dict, path: Path) -> dict:
    """What was installed: the checks configured and the actual sha256 (to pin unverified files)."""
    return {"name": entry["name"], "url": file_url(entry, params), "bytes": path.stat().st_size,
            "sha256": recorded_sha256(path),
            "verified_by": [k for k in ("sha256", "md5", "size") if entry.get(k) is not None]}


def extract_root(archive: Path, into: Path, has: Callable[[Path], bool], what: str,
                  limits: Limits | None = None) -> Path:
    """Extract ``archive`` into ``into`` and return its folder that ``has`` the content.

    Archives wrap their content in zero, one or two folders; the root is the shallowest
    folder (depth <= 2) for which ``has`` holds.
    """
    extract_archive(archive, into, limits=limits)
    levels = [[into]]
    for _ in range(2):
        levels.append(sorted(c for p in levels[-1] for c in p.iterdir() if c.is_dir()))
    for level in levels:
        for folder in level:
            if has(folder):
                return folder
    top = sorted(p.name for p in into.iterdir())[:10]
    raise ValueError(f"{archive}: no folder with {what} inside (top level: {top})")


def move_children(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for child in sorted(src.iterdir()):
        if (dst / child.name).exists():
            raise ValueError(f"{child.name}: occurs twice while merging {src} into {dst}")
        os.replace(child, dst / child.name)


def select(entries: list[dict], pattern: re.Pattern) -> dict[str, dict]:
    """Entries whose name matches ``pattern``, keyed by its first group."""
    return {m.group(1): e for e in entries if (m := pattern.match(e["name"]))}
