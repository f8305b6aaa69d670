"""Downloaders of the real datasets: NSynth, MAESTRO v3, the Jamendo corpus, RadioMapSeer.

Each ``download_<dataset>(out_dir, params)`` takes the dataset's config section:

- ``base_url``: where the files without their own ``url`` live (tests point it at a local
  server);
- ``files``: ``[{name, url?, sha256?, md5?, size?}, ...]``, the archives and their checks;
- ``retries``, ``backoff``, ``timeout``, ``deadline`` (seconds per file, retries included):
  passed to :func:`genex.data.download.download_file`;
- ``max_extract_bytes``, ``max_compression_ratio``, ``max_members``: limits on what one
  archive may unpack to (see :class:`genex.data.download.Limits`);
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
import json
import logging
import os
import re
import shutil
import tempfile
import urllib.parse
from pathlib import Path
from typing import Callable, Iterator

from genex.data.download import (
    CorruptArchive,
    Limits,
    discard,
    download_file,
    extract_archive,
    file_lock,
    recorded_sha256,
)
from genex.utils import provenance, write_json
from genex.utils.io import follow_umask, remove_stale

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


def _entries(params: dict, dataset: str) -> list[dict]:
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


def _install(dataset: str, out_dir: Path, params: dict, entries: list[dict],
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


def _extract_root(archive: Path, into: Path, has: Callable[[Path], bool], what: str,
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


def _move_children(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for child in sorted(src.iterdir()):
        if (dst / child.name).exists():
            raise ValueError(f"{child.name}: occurs twice while merging {src} into {dst}")
        os.replace(child, dst / child.name)


def _select(entries: list[dict], pattern: re.Pattern) -> dict[str, dict]:
    """Entries whose name matches ``pattern``, keyed by its first group."""
    return {m.group(1): e for e in entries if (m := pattern.match(e["name"]))}


# --------------------------------------------------------------------------- NSynth

NSYNTH_ARCHIVE = re.compile(r"^nsynth-(train|valid|test)\.jsonwav\.tar\.gz$")


def download_nsynth(out_dir: Path, params: dict) -> None:
    """NSynth json/wav archives -> ``out_dir/nsynth-{split}/examples.json`` + ``audio/*.wav``."""
    splits = list(params.get("splits") or ["train", "valid", "test"])
    by_split = _select(_entries(params, "nsynth"), NSYNTH_ARCHIVE)
    missing = [s for s in splits if s not in by_split]
    if missing:
        raise ValueError(f"datasets.nsynth.files has no nsynth-<split>.jsonwav.tar.gz for {missing}")
    wanted = [by_split[s] for s in splits]

    def build(staging: Path, archives: dict[str, Path]) -> dict:
        counts = {}
        for split in splits:
            name = by_split[split]["name"]
            root = _extract_root(archives[name], staging / f".x-{split}",
                                 lambda p: (p / "examples.json").is_file(), "examples.json",
                                 Limits.of(params))
            dest = staging / f"nsynth-{split}"
            os.replace(root, dest)
            shutil.rmtree(staging / f".x-{split}", ignore_errors=True)
            examples = json.loads((dest / "examples.json").read_text())
            wavs = sum(1 for _ in (dest / "audio").glob("*.wav")) if (dest / "audio").is_dir() else 0
            if wavs != len(examples):
                log.warning("%s: %d examples but %d wav files", dest, len(examples), wavs)
            counts[split] = {"examples": len(examples), "wav_files": wavs}
        return {"splits": counts}

    _install("nsynth", Path(out_dir), params, wanted, build)


# --------------------------------------------------------------------------- MAESTRO

MAESTRO_ARCHIVE = re.compile(r"^(maestro-v[\d.]+?)(-midi)?\.zip$")


def download_maestro(out_dir: Path, params: dict) -> None:
    """MAESTRO v3 zip (``variant`` midi or full) -> ``out_dir/maestro-v3.0.0/`` (csv, json, files)."""
    variant = params.get("variant", "midi")
    entries = [e for e in _entries(params, "maestro")
               if (m := MAESTRO_ARCHIVE.match(e["name"])) and bool(m.group(2)) == (variant == "midi")]
    if len(entries) != 1:
        raise ValueError(f"datasets.maestro.files needs exactly one archive for variant "
                         f"{variant!r} (maestro-vX-midi.zip or maestro-vX.zip), found {len(entries)}")
    entry = entries[0]
    version = MAESTRO_ARCHIVE.match(entry["name"]).group(1)

    def build(staging: Path, archives: dict[str, Path]) -> dict:
        root = _extract_root(archives[entry["name"]], staging / ".x",
                             lambda p: (p / f"{version}.csv").is_file(), f"{version}.csv",
                             Limits.of(params))
        os.replace(root, staging / version)
        shutil.rmtree(staging / ".x", ignore_errors=True)
        dest = staging / version
        return {"variant": variant, "version": version,
                "midi_files": sum(1 for _ in dest.rglob("*.mid*")),
                "wav_files": sum(1 for _ in dest.rglob("*.wav"))}

    _install("maestro", Path(out_dir), params, [entry], build)


# --------------------------------------------------------------------------- Jamendo

JAMENDO_AUDIO = re.compile(r"^jam_(train|valid|test)_audio\.tar\.gz$")
JAMENDO_LIST = re.compile(r"^jam_(train|valid|test)_list\.txt$")
JAMENDO_LABELS = re.compile(r"^(jam_annote)\.tar\.gz$")
AUDIO_SUFFIXES = (".ogg", ".mp3", ".wav", ".flac")


def _has_audio(folder: Path) -> bool:
    return any(p.suffix.lower() in AUDIO_SUFFIXES for p in folder.iterdir() if p.is_file())


def _write_filelist(listing: Path, audio: Path, dest: Path) -> int:
    """Turn a ``jam_<split>_list.txt`` (names ending .trs) into the audio file names."""
    names = []
    for line in listing.read_text().splitlines():
        stem = line.strip().removesuffix(".trs")
        if not stem:
            continue
        found = [stem + s for s in AUDIO_SUFFIXES if (audio / (stem + s)).is_file()]
        if not found:
            raise ValueError(f"{listing.name}: no audio file for {stem!r} in the audio archives")
        names.append(found[0])
    dest.write_text("".join(n + "\n" for n in names))
    return len(names)


def download_jamendo(out_dir: Path, params: dict) -> None:
    """Jamendo corpus (Ramona et al. 2008) -> ``audio/``, ``labels/*.lab``, ``filelists/<split>``."""
    entries = _entries(params, "jamendo")
    audio_files, lists = _select(entries, JAMENDO_AUDIO), _select(entries, JAMENDO_LIST)
    labels = _select(entries, JAMENDO_LABELS)
    splits = ["train", "valid", "test"]
    missing = ([f"jam_{s}_audio.tar.gz" for s in splits if s not in audio_files]
               + [f"jam_{s}_list.txt" for s in splits if s not in lists]
               + ([] if labels else ["jam_annote.tar.gz"]))
    if missing:
        raise ValueError(f"datasets.jamendo.files lacks {missing}")
    wanted = [audio_files[s] for s in splits] + [labels["jam_annote"]] + [lists[s] for s in splits]

    def build(staging: Path, archives: dict[str, Path]) -> dict:
        audio = staging / "audio"
        audio.mkdir()
        counts = {}
        for split in splits:
            tmp = staging / f".x-{split}"
            root = _extract_root(archives[audio_files[split]["name"]], tmp, _has_audio, "audio files",
                                 Limits.of(params))
            before = sum(1 for _ in audio.iterdir())
            _move_children(root, audio)
            shutil.rmtree(tmp, ignore_errors=True)
            counts[f"{split}_audio"] = sum(1 for _ in audio.iterdir()) - before
        root = _extract_root(archives[labels["jam_annote"]["name"]], staging / ".x-labels",
                             lambda p: any(p.glob("*.lab")), ".lab files", Limits.of(params))
        os.replace(root, staging / "labels")
        shutil.rmtree(staging / ".x-labels", ignore_errors=True)
        (staging / "filelists").mkdir()
        for split in splits:
            counts[f"{split}_list"] = _write_filelist(archives[lists[split]["name"]], audio,
                                                      staging / "filelists" / split)
        counts["labels"] = sum(1 for _ in (staging / "labels").glob("*.lab"))
        return counts

    _install("jamendo", Path(out_dir), params, wanted, build)


# --------------------------------------------------------------------------- RadioMapSeer


def download_radiomapseer(out_dir: Path, params: dict) -> None:
    """RadioMapSeer zip -> ``out_dir/png/...``, ``out_dir/gain/...`` (+ antenna, polygon, csv)."""
    entries = _entries(params, "radiomapseer")
    if len(entries) != 1:
        raise ValueError(f"datasets.radiomapseer.files needs exactly one archive, found {len(entries)}")
    entry = entries[0]

    def build(staging: Path, archives: dict[str, Path]) -> dict:
        root = _extract_root(archives[entry["name"]], staging / ".x",
                             lambda p: (p / "png").is_dir() and (p / "gain").is_dir(), "png/ and gain/",
                             Limits.of(params))
        for child in sorted(root.iterdir()):
            os.replace(child, staging / child.name)
        shutil.rmtree(staging / ".x", ignore_errors=True)
        return {"png_files": sum(1 for _ in (staging / "png").rglob("*.png")),
                "gain_files": sum(1 for _ in (staging / "gain").rglob("*.png")),
                "gain_simulations": sorted(p.name for p in (staging / "gain").iterdir() if p.is_dir())}

    _install("radiomapseer", Path(out_dir), params, [entry], build)
