"""Download mechanics for the real datasets: resumable, retried, verified, safely extracted.

Only the standard library is used (urllib, tarfile, zipfile), so the downloads work in any
environment that has genex installed. The two entry points:

- :func:`download_file` fetches one URL into ``dest`` through ``dest.part``: it resumes a
  partial file with an HTTP ``Range`` request, retries network errors and 5xx answers with
  exponential backoff, verifies size and checksums while streaming, and renames onto
  ``dest`` only when everything matches.
- :func:`extract_archive` unpacks a tar or zip archive into a temporary folder beside the
  target and renames it onto the target on success; a member that would land outside the
  target (absolute path, ``..``, a link pointing out, a device file) refuses the whole
  archive.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import shutil
import stat
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Callable

log = logging.getLogger(__name__)

CHUNK = 1 << 20
USER_AGENT = "genex-downloader/0.1 (+https://github.com/; research pipeline)"
# Status codes worth another try: the server is overloaded or briefly broken.
TRANSIENT_STATUS = {408, 425, 429, 500, 502, 503, 504}
# What tarfile's "data" filter raises on an unsafe member (absent before the backport).
_FILTER_ERRORS = (tarfile.FilterError,) if hasattr(tarfile, "FilterError") else ()


class DownloadError(RuntimeError):
    """A download that cannot succeed (a 4xx answer, or retries exhausted)."""


class _Transient(Exception):
    """A failure that another attempt may fix (network error, 5xx, short body).

    ``state`` is (bytes in the .part file, hashers over them) when bytes were written, so
    the next attempt resumes without hashing the partial file again.
    """

    def __init__(self, message: str, state: tuple[int, dict] | None = None) -> None:
        super().__init__(message)
        self.state = state


# --------------------------------------------------------------------------- hashing


def _hashers(sha256: str | None, md5: str | None) -> dict[str, "hashlib._Hash"]:
    """The hash objects to update while streaming (sha256 always: it is recorded)."""
    hashers = {"sha256": hashlib.sha256()}
    if md5:
        hashers["md5"] = hashlib.md5(usedforsecurity=False)
    return hashers


def _hash_prefix(path: Path, hashers: dict) -> int:
    """Feed an existing partial file into the hashers; return its size."""
    n = 0
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            for h in hashers.values():
                h.update(block)
            n += len(block)
    return n


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB blocks."""
    h = hashlib.new(algorithm)
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _check(url: str, path: Path, size: int | None, sha256: str | None, md5: str | None,
           actual_size: int, digests: dict[str, str]) -> None:
    """Raise ValueError naming the URL and the expected and actual values on a mismatch."""
    if size is not None and actual_size != int(size):
        raise ValueError(f"{url}: size mismatch for {path.name}: expected {int(size)} bytes, "
                         f"got {actual_size}")
    for name, expected in (("sha256", sha256), ("md5", md5)):
        if expected and digests[name] != expected.lower():
            raise ValueError(f"{url}: {name} mismatch for {path.name}: expected {expected.lower()}, "
                             f"got {digests[name]}")


def verify_file(path: str | os.PathLike, url: str = "", sha256: str | None = None,
                size: int | None = None, md5: str | None = None) -> str:
    """Check a finished file against size and checksums; return its sha256.

    Raises ValueError naming ``url`` (or the path) and the expected and actual values.
    """
    path = Path(path)
    hashers = _hashers(sha256, md5)
    n = _hash_prefix(path, hashers)
    digests = {k: h.hexdigest() for k, h in hashers.items()}
    _check(url or str(path), path, size, sha256, md5, n, digests)
    return digests["sha256"]


# --------------------------------------------------------------------------- download


def _progress_bar(name: str, total: int | None, initial: int):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=name, unit="B", unit_scale=True,
                unit_divisor=1024, disable=bool(os.environ.get("GENEX_NO_PROGRESS")),
                mininterval=1.0, dynamic_ncols=True)


def _content_range_start(header: str | None) -> int | None:
    """The first byte of a ``Content-Range: bytes a-b/n`` header, or None."""
    match = re.match(r"bytes\s+(\d+)-", header or "")
    return int(match.group(1)) if match else None


def _open(url: str, offset: int, timeout: float):
    """Open ``url``, asking for the bytes from ``offset`` on; classify failures."""
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as err:
        err.close()
        if err.code in TRANSIENT_STATUS:
            raise _Transient(f"HTTP {err.code} {err.reason}") from None
        if err.code == 416 and offset:
            # Range not satisfiable: the partial file is as long as (or longer than) the
            # resource; let the caller verify it or start over.
            raise
        raise DownloadError(f"{url}: HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError) as err:
        raise _Transient(f"{type(err).__name__}: {err}") from None


def _fetch_once(url: str, part: Path, size: int | None, hashers_factory: Callable[[], dict],
                timeout: float, state: tuple[int, dict] | None = None) -> dict:
    """One attempt: append to (or restart) ``part``; return the hashers of the whole file.

    ``state`` is what the previous attempt left (see :class:`_Transient`); it is used only
    if the partial file still has exactly that many bytes.
    """
    if state is not None and part.exists() and part.stat().st_size == state[0]:
        offset, hashers = state
    else:
        hashers = hashers_factory()
        offset = _hash_prefix(part, hashers) if part.exists() else 0
    if size is not None and offset > int(size):
        log.warning("%s: partial file longer than expected (%d > %d bytes); restarting",
                    part, offset, size)
        part.unlink()
        hashers, offset = hashers_factory(), 0
    if size is not None and offset == int(size) and offset > 0:
        return hashers  # already complete: nothing to ask for
    try:
        response = _open(url, offset, timeout)
    except urllib.error.HTTPError:  # 416 on a resume
        if size is None:
            return hashers  # the server says we have it all; verification decides
        part.unlink()
        raise _Transient("HTTP 416 on resume; restarting from scratch") from None
    with response:
        status = getattr(response, "status", 200)
        if offset and status == 206 and _content_range_start(response.headers.get("Content-Range")) == offset:
            mode = "ab"
            log.info("%s: resuming at byte %d", url, offset)
        else:
            if offset:
                log.info("%s: server ignored the Range request (HTTP %d); restarting", url, status)
            hashers, offset, mode = hashers_factory(), 0, "wb"
        length = response.headers.get("Content-Length")
        expected_body = int(length) if length and length.isdigit() else None
        total = int(size) if size is not None else (offset + expected_body if expected_body is not None else None)
        received = 0
        with part.open(mode) as out, _progress_bar(part.name.removesuffix(".part"), total, offset) as bar:
            try:
                for block in iter(lambda: response.read(CHUNK), b""):
                    out.write(block)
                    for h in hashers.values():
                        h.update(block)
                    received += len(block)
                    bar.update(len(block))
            except (http.client.HTTPException, ConnectionError, TimeoutError) as err:
                raise _Transient(f"connection broke after {offset + received} bytes ({err})",
                                 (offset + received, hashers)) from None
        if expected_body is not None and received < expected_body:
            raise _Transient(f"connection closed after {offset + received} of "
                             f"{offset + expected_body} bytes", (offset + received, hashers))
    return hashers


def download_file(url: str, dest: str | os.PathLike, sha256: str | None = None,
                  size: int | None = None, retries: int = 5, backoff: float = 2.0,
                  timeout: float = 60.0, md5: str | None = None) -> Path:
    """Download ``url`` to ``dest``: resumable, retried, verified, renamed only when verified.

    Bytes go to ``dest.part``; an existing ``.part`` is resumed with an HTTP Range request
    (a server that ignores Range and answers 200 restarts it). Network errors, short
    bodies and 408/429/5xx answers are retried ``retries`` times, sleeping
    ``backoff * 2**attempt`` seconds between tries. Size, sha256 and md5 are checked where
    given (hashes are computed while streaming). An existing ``dest`` that verifies is
    kept without a request.

    Raises:
        ValueError: the finished file does not match (the ``.part`` is deleted; the
            message names the URL, the expected and the actual value).
        DownloadError: a 4xx answer, or every attempt failed.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        try:
            _write_digest(dest, verify_file(dest, url, sha256=sha256, size=size, md5=md5))
            log.info("%s: already downloaded and verified", dest)
            return dest
        except ValueError as err:
            log.warning("%s; downloading it again", err)
            dest.unlink()
    if not (sha256 or md5 or size is not None):
        log.warning("%s: no checksum or size configured; the download is NOT verified", url)

    part = dest.with_name(dest.name + ".part")
    attempts = max(0, int(retries)) + 1
    state = None
    for attempt in range(attempts):
        try:
            hashers = _fetch_once(url, part, size, lambda: _hashers(sha256, md5), timeout, state)
            break
        except _Transient as err:
            state = err.state
            if attempt == attempts - 1:
                raise DownloadError(f"{url}: giving up after {attempts} attempts ({err}); "
                                    f"the partial file {part} is kept for a later resume") from None
            wait = backoff * 2**attempt
            log.warning("%s: %s; retry %d/%d in %.1f s", url, err, attempt + 1, attempts - 1, wait)
            time.sleep(wait)

    actual = part.stat().st_size if part.exists() else 0
    digests = {k: h.hexdigest() for k, h in hashers.items()}
    try:
        _check(url, dest, size, sha256, md5, actual, digests)
    except ValueError:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, dest)
    _write_digest(dest, digests["sha256"])
    log.info("%s: %d bytes, sha256 %s", dest, actual, digests["sha256"])
    return dest


def digest_sidecar(dest: str | os.PathLike) -> Path:
    """``<dest>.sha256``: the sha256 computed while downloading (sha256sum format)."""
    dest = Path(dest)
    return dest.with_name(dest.name + ".sha256")


def _write_digest(dest: Path, sha256: str) -> None:
    digest_sidecar(dest).write_text(f"{sha256}  {dest.name}\n")


def recorded_sha256(dest: str | os.PathLike) -> str:
    """The sha256 of a downloaded file: from its sidecar when present, else computed."""
    sidecar = digest_sidecar(dest)
    if sidecar.is_file():
        text = sidecar.read_text().split()
        if text and re.fullmatch(r"[0-9a-f]{64}", text[0]):
            return text[0]
    return file_digest(dest)


# --------------------------------------------------------------------------- extraction


def _unsafe_name(name: str) -> str | None:
    """Why an archive member name is unsafe, or None when it stays inside the target."""
    if not name:
        return "empty name"
    if "\x00" in name:
        return "NUL byte in name"
    posix = name.replace("\\", "/")
    if posix.startswith("/") or re.match(r"^[A-Za-z]:", posix):
        return "absolute path"
    if ".." in PurePosixPath(posix).parts:
        return "'..' escapes the target"
    return None


def _inside(root: PurePosixPath, link: str) -> bool:
    """Whether ``link`` (a relative posix path, possibly with ..) stays under ``root``."""
    parts: list[str] = list(root.parts)
    for part in PurePosixPath(link).parts:
        if part == "..":
            if not parts:
                return False
            parts.pop()
        elif part not in ("", "."):
            parts.append(part)
    return True


def _check_tar_member(member: tarfile.TarInfo) -> None:
    reason = _unsafe_name(member.name)
    if reason is None and (member.ischr() or member.isblk() or member.isfifo() or member.isdev()):
        reason = "device or fifo"
    if reason is None and member.issym():
        target = member.linkname
        if target.startswith("/") or not _inside(PurePosixPath(member.name).parent, target):
            reason = f"symlink pointing outside the target ({target})"
    if reason is None and member.islnk():
        target = member.linkname
        if target.startswith("/") or not _inside(PurePosixPath(), target):
            reason = f"hard link pointing outside the target ({target})"
    if reason:
        raise ValueError(f"unsafe member {member.name!r}: {reason}")


def _check_zip_member(info: zipfile.ZipInfo) -> None:
    reason = _unsafe_name(info.filename)
    mode = info.external_attr >> 16
    if reason is None and mode and (stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode)):
        reason = "device or fifo"
    if reason:
        raise ValueError(f"unsafe member {info.filename!r}: {reason}")


def _checked_members(tf: tarfile.TarFile, seen: list[int]):
    """Yield the members of ``tf`` in order, each checked before it is extracted."""
    for member in tf:
        _check_tar_member(member)
        seen[0] += 1
        yield member


def _extract_tar(archive: Path, into: Path) -> int:
    """Extract a tar in one streaming pass, checking each member before it is written."""
    seen = [0]
    with tarfile.open(archive, "r:*") as tf:
        if hasattr(tarfile, "data_filter"):
            # Python >= 3.12 (and 3.11.4+ backports): the stdlib's own safety net on top of ours.
            tf.extractall(into, members=_checked_members(tf, seen), filter="data")
        else:  # pragma: no cover - older Pythons
            tf.extractall(into, members=_checked_members(tf, seen))
    return seen[0]


def _extract_zip(archive: Path, into: Path) -> int:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        for info in infos:  # zip has a central directory: check everything first, it is cheap
            _check_zip_member(info)
        for info in infos:
            zf.extract(info, into)  # zipfile verifies each member's CRC while reading
    return len(infos)


def archive_kind(archive: str | os.PathLike) -> str:
    """'zip' or 'tar' from the file's content (not its name); ValueError otherwise."""
    archive = Path(archive)
    if zipfile.is_zipfile(archive):
        return "zip"
    try:
        if tarfile.is_tarfile(archive):
            return "tar"
    except (OSError, EOFError, zlib.error) as err:
        raise ValueError(f"{archive}: cannot read the archive ({err})") from None
    raise ValueError(f"{archive}: not a tar (.tar, .tar.gz, .tgz, .tar.bz2) or zip archive")


def extract_archive(archive: str | os.PathLike, target_dir: str | os.PathLike,
                    subdir: str | None = None) -> Path:
    """Safely extract ``archive`` (tar, tar.gz, tgz, tar.bz2 or zip) onto ``target_dir``.

    Members are written to a temporary folder beside ``target_dir``, which is renamed onto
    ``target_dir`` (replacing it) only when the whole archive extracted. With ``subdir``,
    only that top-level folder of the archive becomes ``target_dir`` (for archives that
    wrap everything in one folder, e.g. ``nsynth-test/``).

    Raises:
        ValueError: the archive is corrupt, not an archive, has an unsafe member (absolute
            path, ``..``, a link pointing outside, a device file), or lacks ``subdir``.
            Nothing is left behind: neither the target nor the temporary folder.
    """
    archive, target = Path(archive), Path(target_dir)
    kind = archive_kind(archive)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".extracting", dir=target.parent))
    try:
        try:
            count = _extract_zip(archive, tmp) if kind == "zip" else _extract_tar(archive, tmp)
        except (ValueError, *_FILTER_ERRORS) as err:
            raise ValueError(f"{archive}: {err}; extraction refused") from None
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, OSError) as err:
            raise ValueError(f"{archive}: corrupt or truncated archive ({type(err).__name__}: {err})") from None
        source = tmp
        if subdir:
            source = tmp / subdir
            if not source.is_dir():
                found = sorted(p.name for p in tmp.iterdir())[:10]
                raise ValueError(f"{archive}: expected a top-level folder {subdir!r}, found {found}")
        if target.exists():
            shutil.rmtree(target) if target.is_dir() and not target.is_symlink() else target.unlink()
        os.replace(source, target)
        log.info("%s: %d members extracted to %s", archive.name, count, target)
        return target
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
