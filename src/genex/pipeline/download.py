"""Download mechanics for the real datasets: resumable, retried, verified, safely extracted.

Only the standard library is used (urllib, tarfile, zipfile), so the downloads work in any
environment that has genex installed. The two entry points:

- :func:`download_file` fetches one URL into ``dest`` through ``dest.part``: it resumes a
  partial file with an HTTP ``Range`` request, retries network errors and 5xx answers with
  exponential backoff, verifies size and checksums while streaming, and renames onto
  ``dest`` only when everything matches.
- :func:`extract_archive` unpacks a tar or zip archive into a temporary folder beside the
  target and renames it onto the target on success; a member that would land outside the
  target (absolute path, ``..``, a link pointing out or through another link, a device
  file) or that breaks a size, ratio or member-count limit refuses the whole archive.

Files without a published checksum are still checked: the announced length, the magic bytes
of the archive type their name says, a compressed stream's end marker when the server gave
no length, and the URL they came from (a changed URL fetches again). One download of a
file at a time: a lock file beside it serialises concurrent jobs.
"""

from __future__ import annotations

import bz2
import contextlib
import errno
import fcntl
import gzip
import hashlib
import http.client
import logging
import lzma
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
from typing import Callable, Iterator, NamedTuple

from genex.pipeline.io import atomic_file, follow_umask, remove_stale

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


class NoSpaceError(RuntimeError):
    """Not enough free space for a download or an extraction (names the path and the bytes)."""


def _no_space(path: Path, needed: int | None, free: int | None = None) -> NoSpaceError:
    if free is None:
        with contextlib.suppress(OSError):
            free = shutil.disk_usage(_existing(path)).free
    need = f"needs {needed} more bytes" if needed is not None else "needs more space"
    have = f", {free} free" if free is not None else ""
    return NoSpaceError(f"{path}: not enough disk space: {need}{have}")


def _existing(path: Path) -> Path:
    """``path`` or its nearest existing parent (what disk_usage can ask about)."""
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def _ensure_space(path: Path, needed: int) -> None:
    """Raise NoSpaceError when the filesystem of ``path`` has less than ``needed`` bytes free."""
    free = shutil.disk_usage(_existing(path)).free
    if needed > free:
        raise _no_space(path, needed, free)


def _is_enospc(err: OSError) -> bool:
    return err.errno in (errno.ENOSPC, errno.EDQUOT)


# Magic bytes by archive suffix: an HTML error page served in place of an archive is refused.
_MAGIC = (
    ((".zip",), 0, (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")),
    ((".tar.gz", ".tgz", ".gz"), 0, (b"\x1f\x8b",)),
    ((".tar.bz2", ".tbz2", ".bz2"), 0, (b"BZh",)),
    ((".tar.xz", ".txz", ".xz"), 0, (b"\xfd7zXZ\x00",)),
    ((".tar",), 257, (b"ustar",)),
)


def expected_kind(name: str) -> tuple[str, int, tuple[bytes, ...]] | None:
    """(suffix, offset, magic bytes) of the archive type ``name`` says, or None."""
    lower = name.lower()
    for suffixes, offset, magics in _MAGIC:
        for suffix in suffixes:
            if lower.endswith(suffix):
                return suffix, offset, magics
    return None


def check_magic(path: Path, url: str, name: str | None = None) -> None:
    """ValueError naming ``url`` when ``path`` does not start like the archive its name says."""
    kind = expected_kind(name or path.name)
    if kind is None:
        return
    suffix, offset, magics = kind
    with path.open("rb") as fh:
        head = fh.read(max(512, offset + 8))
    if not any(head[offset:offset + len(m)] == m for m in magics):
        html = b"<html" in head.lower() or b"<!doctype" in head.lower()
        looks = "an HTML page" if html else repr(head[:16])
        raise ValueError(f"{url}: {name or path.name} is not a {suffix} file (it starts with {looks})")


def _stream_complete(path: Path, name: str) -> str | None:
    """Why a compressed file ``name`` is incomplete (no end-of-stream marker, no zip
    directory), or None."""
    kind = expected_kind(name)
    if kind is None or kind[0] == ".tar":
        return None
    if kind[0] == ".zip":
        return None if zipfile.is_zipfile(path) else "no zip central directory at the end"
    opener = {".tar.gz": gzip.open, ".tgz": gzip.open, ".gz": gzip.open, ".tar.bz2": bz2.open,
              ".tbz2": bz2.open, ".bz2": bz2.open}.get(kind[0], lzma.open)
    try:
        with opener(path, "rb") as fh:
            while fh.read(CHUNK):
                pass
    except (EOFError, OSError, zlib.error, lzma.LZMAError) as err:
        return f"the compressed stream is incomplete ({err})"
    return None


def url_sidecar(path: str | os.PathLike) -> Path:
    """``<path>.url``: the URL a downloaded (or partial) file came from."""
    path = Path(path)
    return path.with_name(path.name + ".url")


def _recorded_url(path: Path) -> str | None:
    sidecar = url_sidecar(path)
    return sidecar.read_text().strip() if sidecar.is_file() else None


def _write_text_atomic(path: Path, text: str) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(text)


def lock_path(dest: str | os.PathLike) -> Path:
    dest = Path(dest)
    return dest.with_name(f".{dest.name}.lock")


@contextlib.contextmanager
def file_lock(path: str | os.PathLike, what: str = "") -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path``; say which lock file when waiting for it.

    The lock file is removed on release; a waiter that then holds a removed file tries again,
    so two processes never both believe they hold the lock.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    waited = False
    while True:
        fh = path.open("a")
        try:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not waited:
                    log.warning("waiting for the lock %s: another job is using %s", path,
                                what or path.parent)
                    waited = True
                fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                same = os.stat(path).st_ino == os.fstat(fh.fileno()).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
        except BaseException:
            fh.close()
            raise
        fh.close()
    try:
        yield
    finally:
        path.unlink(missing_ok=True)
        fh.close()


def _progress_bar(name: str, total: int | None, initial: int):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=name, unit="B", unit_scale=True,
                unit_divisor=1024, disable=bool(os.environ.get("GENEX_NO_PROGRESS")),
                mininterval=1.0, dynamic_ncols=True)


def _content_range_start(header: str | None) -> int | None:
    """The first byte of a ``Content-Range: bytes a-b/n`` header, or None."""
    match = re.match(r"bytes\s+(\d+)-", header or "")
    return int(match.group(1)) if match else None


def _content_range_total(header: str | None) -> int | None:
    """The ``n`` of ``Content-Range: bytes a-b/n`` or ``bytes */n``, or None."""
    match = re.match(r"bytes\s+(?:\*|\d+-\d+)/(\d+)", header or "")
    return int(match.group(1)) if match else None


class _Range416(Exception):
    def __init__(self, total: int | None) -> None:
        super().__init__(total)
        self.total = total


def _open(url: str, offset: int, timeout: float):
    """Open ``url``, asking for the bytes from ``offset`` on; classify failures."""
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as err:
        total = _content_range_total(err.headers.get("Content-Range")) if err.headers else None
        err.close()
        if err.code in TRANSIENT_STATUS:
            raise _Transient(f"HTTP {err.code} {err.reason}") from None
        if err.code == 416 and offset:
            # Range not satisfiable: the partial file is as long as (or longer than) the
            # resource; the caller compares it with the total the server gives.
            raise _Range416(total) from None
        raise DownloadError(f"{url}: HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError) as err:
        raise _Transient(f"{type(err).__name__}: {err}") from None


def _fetch_once(url: str, part: Path, size: int | None, hashers_factory: Callable[[], dict],
                timeout: float, state: tuple[int, dict] | None = None,
                deadline_at: float | None = None, name: str | None = None) -> tuple[dict, bool]:
    """One attempt: append to (or restart) ``part``; return (hashers of the whole file,
    whether the server announced its length).

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
        return hashers, True  # already complete: nothing to ask for
    if deadline_at is not None:
        timeout = max(0.001, min(timeout, deadline_at - time.monotonic()))
    try:
        response = _open(url, offset, timeout)
    except _Range416 as err:  # 416 on a resume
        if err.total is not None and err.total == offset and size is None:
            return hashers, True  # the server says the partial file is the whole resource
        part.unlink()
        raise _Transient(f"HTTP 416 on resume at byte {offset} (resource: "
                         f"{err.total if err.total is not None else 'unknown'} bytes); "
                         "restarting from scratch") from None
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
        announced = _content_range_total(response.headers.get("Content-Range")) if mode == "ab" else None
        if announced is None and expected_body is not None:
            announced = offset + expected_body
        if size is not None and announced is not None and announced != int(size):
            part.unlink(missing_ok=True)
            raise ValueError(f"{url}: size mismatch for {name or part.name}: expected {int(size)} "
                             f"bytes, got {announced} (announced by the server)")
        total = int(size) if size is not None else announced
        if total is not None:
            _ensure_space(part, total - offset)
        received = 0
        with part.open(mode) as out, _progress_bar(part.name.removesuffix(".part"), total, offset) as bar:
            try:
                # read1: return what has arrived, so a trickling server meets the deadline
                for block in iter(lambda: response.read1(CHUNK), b""):
                    try:
                        out.write(block)
                    except OSError as err:
                        if _is_enospc(err):
                            raise _no_space(part, (total - offset - received) if total else None) from None
                        raise
                    for h in hashers.values():
                        h.update(block)
                    received += len(block)
                    bar.update(len(block))
                    if deadline_at is not None and time.monotonic() > deadline_at:
                        raise _Deadline(offset + received, hashers)
            except (http.client.HTTPException, ConnectionError, TimeoutError) as err:
                raise _Transient(f"connection broke after {offset + received} bytes ({err})",
                                 (offset + received, hashers)) from None
        if expected_body is not None and received < expected_body:
            raise _Transient(f"connection closed after {offset + received} of "
                             f"{offset + expected_body} bytes", (offset + received, hashers))
    return hashers, announced is not None


class _Deadline(Exception):
    def __init__(self, received: int, hashers: dict) -> None:
        super().__init__(received)
        self.received, self.hashers = received, hashers


def _cached_ok(url: str, dest: Path, sha256: str | None, size: int | None, md5: str | None) -> bool:
    """Whether an existing ``dest`` can be kept: it verifies, starts like its archive type,
    and (without a checksum pinning its content) came from this ``url``."""
    try:
        digest = verify_file(dest, url, sha256=sha256, size=size, md5=md5)
        check_magic(dest, url)
        if not (sha256 or md5):
            recorded = _recorded_url(dest)
            if recorded != url:
                raise ValueError(f"{dest} came from {recorded or 'an unrecorded URL'}, not {url}")
    except ValueError as err:
        log.warning("%s; downloading it again", err)
        discard(dest)
        return False
    _write_digest(dest, digest)
    return True


def discard(dest: str | os.PathLike) -> None:
    """Remove a downloaded file and its sidecars (digest, URL)."""
    dest = Path(dest)
    for path in (dest, digest_sidecar(dest), url_sidecar(dest)):
        path.unlink(missing_ok=True)


def download_file(url: str, dest: str | os.PathLike, sha256: str | None = None,
                  size: int | None = None, retries: int = 5, backoff: float = 2.0,
                  timeout: float = 60.0, md5: str | None = None,
                  deadline: float | None = None) -> Path:
    """Download ``url`` to ``dest``: resumable, retried, verified, renamed only when verified.

    Bytes go to ``dest.part``; an existing ``.part`` of the same URL is resumed with an HTTP
    Range request (a server that ignores Range and answers 200 restarts it). Network
    errors, short bodies and 408/429/5xx answers are retried ``retries`` times, sleeping
    ``backoff * 2**attempt`` seconds between tries. Size, sha256 and md5 are checked where
    given (hashes are computed while streaming); always checked: the length the server
    announces, the magic bytes of an archive (by its name) and, when the server gave no
    length, a compressed archive's end marker. An existing ``dest`` that verifies (and,
    without a checksum, came from ``url``) is kept without a request. ``deadline`` bounds
    the seconds for the whole file, retries included. A lock file ``.<name>.lock`` beside
    ``dest`` lets one process at a time download it.

    Raises:
        ValueError: the finished file does not match (the ``.part`` is deleted; the
            message names the URL, the expected and the actual value).
        DownloadError: a 4xx answer, every attempt failed, or the deadline passed.
        NoSpaceError: the disk has too little space for the file.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    deadline_at = time.monotonic() + float(deadline) if deadline else None
    with file_lock(lock_path(dest), str(dest)):
        if dest.exists() and _cached_ok(url, dest, sha256, size, md5):
            log.info("%s: already downloaded and verified", dest)
            return dest
        return _download_locked(url, dest, sha256, size, md5, retries, backoff, timeout,
                                deadline, deadline_at)


def _download_locked(url, dest, sha256, size, md5, retries, backoff, timeout, deadline,
                     deadline_at) -> Path:
    if not (sha256 or md5 or size is not None):
        log.warning("%s: no checksum or size configured; the download is NOT verified", url)
    part = dest.with_name(dest.name + ".part")
    try:
        return _download_to(url, dest, part, sha256, size, md5, retries, backoff, timeout,
                            deadline, deadline_at)
    except ValueError:  # the partial file cannot become the file: nothing of it is kept
        part.unlink(missing_ok=True)
        url_sidecar(part).unlink(missing_ok=True)
        raise


def _download_to(url, dest, part, sha256, size, md5, retries, backoff, timeout, deadline,
                 deadline_at) -> Path:
    recorded = _recorded_url(part)
    # Resume only the same URL's bytes (or, with no record, bytes a checksum will judge).
    if part.exists() and (recorded != url if recorded or not (sha256 or md5) else False):
        log.info("%s: partial file of %s, not %s; starting over", part, recorded or "an unrecorded URL", url)
        part.unlink()
    _write_text_atomic(url_sidecar(part), url + "\n")
    attempts = max(0, int(retries)) + 1
    state = None
    for attempt in range(attempts):
        try:
            hashers, announced = _fetch_once(url, part, size, lambda: _hashers(sha256, md5),
                                             timeout, state, deadline_at, dest.name)
            if part.exists() and not announced and size is None:
                reason = _stream_complete(part, dest.name)
                if reason:  # the body ended without saying how long it was: a cut connection
                    raise _Transient(f"{reason} after {part.stat().st_size} bytes",
                                     (part.stat().st_size, hashers))
            break
        except _Deadline as err:
            raise DownloadError(f"{url}: deadline of {deadline:g} s for the file passed after "
                                f"{err.received} bytes; the partial file {part} is kept for a "
                                f"later resume") from None
        except _Transient as err:
            state = err.state
            if attempt == attempts - 1:
                raise DownloadError(f"{url}: giving up after {attempts} attempts ({err}); "
                                    f"the partial file {part} is kept for a later resume") from None
            wait = backoff * 2**attempt
            if deadline_at is not None and time.monotonic() + wait > deadline_at:
                raise DownloadError(f"{url}: deadline of {deadline:g} s for the file passes "
                                    f"before the next retry ({err}); the partial file {part} "
                                    "is kept for a later resume") from None
            log.warning("%s: %s; retry %d/%d in %.1f s", url, err, attempt + 1, attempts - 1, wait)
            time.sleep(wait)

    if not part.exists():
        part.touch()  # an empty resource
    actual = part.stat().st_size
    digests = {k: h.hexdigest() for k, h in hashers.items()}
    _check(url, dest, size, sha256, md5, actual, digests)
    check_magic(part, url, dest.name)
    os.replace(part, dest)
    _write_text_atomic(url_sidecar(dest), url + "\n")
    url_sidecar(part).unlink(missing_ok=True)
    _write_digest(dest, digests["sha256"])
    log.info("%s: %d bytes, sha256 %s", dest, actual, digests["sha256"])
    return dest


def digest_sidecar(dest: str | os.PathLike) -> Path:
    """``<dest>.sha256``: the sha256 computed while downloading (sha256sum format)."""
    dest = Path(dest)
    return dest.with_name(dest.name + ".sha256")


def _write_digest(dest: Path, sha256: str) -> None:
    _write_text_atomic(digest_sidecar(dest), f"{sha256}  {dest.name}\n")


def recorded_sha256(dest: str | os.PathLike) -> str:
    """The sha256 of a downloaded file: from its sidecar when present, else computed."""
    sidecar = digest_sidecar(dest)
    if sidecar.is_file():
        text = sidecar.read_text().split()
        if text and re.fullmatch(r"[0-9a-f]{64}", text[0]):
            return text[0]
    return file_digest(dest)


# --------------------------------------------------------------------------- extraction


class CorruptArchive(ValueError):
    """An archive that cannot be read (truncated, garbled, not an archive); ``path`` is it."""

    def __init__(self, message: str, path: Path) -> None:
        super().__init__(message)
        self.path = Path(path)


class Limits(NamedTuple):
    """Bounds on what one archive may unpack to (zip bombs, inode floods).

    The defaults admit the real datasets with room: MAESTRO v3 full (~120 GB of wav in a
    101 GB zip), NSynth train (~290k members, ~37 GB from a 22 GB tar.gz), RadioMapSeer
    (a few hundred thousand PNGs, ratio ~1).
    """

    max_bytes: int = 500 * 10**9      # total uncompressed bytes
    max_ratio: float = 100.0          # uncompressed bytes / archive bytes
    max_members: int = 2_000_000
    ratio_from: int = 1 << 30         # the ratio counts from here: tar padding alone gives tiny archives high ratios

    @classmethod
    def of(cls, params: dict | None) -> "Limits":
        params = params or {}
        keys = {"max_bytes": "max_extract_bytes", "max_ratio": "max_compression_ratio",
                "max_members": "max_members"}
        return cls(**{f: params[k] for f, k in keys.items() if params.get(k) is not None})


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


def _resolve(root: PurePosixPath, link: str) -> PurePosixPath | None:
    """``link`` (relative, possibly with ..) joined onto ``root`` and normalised; None if it escapes."""
    parts: list[str] = list(root.parts)
    for part in PurePosixPath(link).parts:
        if part == "..":
            if not parts:
                return None
            parts.pop()
        elif part not in ("", "."):
            parts.append(part)
    return PurePosixPath(*parts)


def _norm(name: str) -> PurePosixPath:
    return _resolve(PurePosixPath(), name) or PurePosixPath()


class _LinkGuard:
    """genex's own link checks, independent of tarfile's ``data`` filter.

    A symlink or hard link must point inside the target, and no path may go through a
    symlink: no member below a symlink, no link to a link or through one, no member
    replacing a symlink. The lexical checks alone miss chains like ``a -> .`` followed by
    ``a/b -> ..`` (whose ``..`` is taken from the target itself, not from ``a``).
    """

    def __init__(self) -> None:
        self.symlinks: set[PurePosixPath] = set()
        self.links: set[PurePosixPath] = set()     # symlinks and hard links
        self.pointed: set[PurePosixPath] = set()   # what links point at
        self.files: set[PurePosixPath] = set()     # regular files so far

    def _through_symlink(self, path: PurePosixPath) -> bool:
        return any(p in self.symlinks for p in path.parents)

    def check(self, member: tarfile.TarInfo) -> str | None:
        name = _norm(member.name)
        if self._through_symlink(name):
            return "path goes through a symlink in the archive"
        if name in self.symlinks:
            return "replaces a symlink in the archive"
        if (member.issym() or member.islnk()) and name in self.pointed:
            return "a link points at it: link to a link"
        if member.issym():
            target = member.linkname
            resolved = None if target.startswith("/") else _resolve(name.parent, target)
            if resolved is None:
                return f"symlink pointing outside the target ({target})"
            if resolved in self.links or self._through_symlink(resolved):
                return f"symlink to a link ({target}): link chains are refused"
            self.symlinks.add(name)
        elif member.islnk():
            target = member.linkname
            resolved = None if target.startswith("/") else _resolve(PurePosixPath(), target)
            if resolved is None:
                return f"hard link pointing outside the target ({target})"
            if resolved in self.links or self._through_symlink(resolved):
                return f"hard link to a link ({target}): link chains are refused"
            if resolved not in self.files:
                return f"hard link to {target}, which is no earlier file of the archive"
        elif member.isfile():
            self.files.add(name)
        if member.issym() or member.islnk():
            self.links.add(name)
            self.pointed.add(resolved)
        return None


def _check_tar_member(member: tarfile.TarInfo, guard: _LinkGuard) -> None:
    reason = _unsafe_name(member.name)
    if reason is None and (member.ischr() or member.isblk() or member.isfifo() or member.isdev()):
        reason = "device or fifo"
    if reason is None and not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
        reason = "unsupported member type"
    if reason is None:
        reason = guard.check(member)
    if reason:
        raise ValueError(f"unsafe member {member.name!r}: {reason}")


def _check_zip_member(info: zipfile.ZipInfo) -> None:
    reason = _unsafe_name(info.filename)
    mode = info.external_attr >> 16
    if reason is None and mode and (stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode)):
        reason = "device or fifo"
    if reason:
        raise ValueError(f"unsafe member {info.filename!r}: {reason}")


class _Budget:
    """Running totals against the limits and the free disk space of ``into``."""

    def __init__(self, archive: Path, into: Path, limits: Limits) -> None:
        self.archive, self.into, self.limits = archive, into, limits
        self.archive_bytes = max(1, archive.stat().st_size)
        self.members = self.total = 0
        self.free = shutil.disk_usage(into).free

    def add(self, name: str, size: int, space: bool = True) -> None:
        self.members += 1
        self.total += max(0, int(size))
        lim = self.limits
        if self.members > lim.max_members:
            raise ValueError(f"more than {lim.max_members} members (limit max_members)")
        if self.total > lim.max_bytes:
            raise ValueError(f"unpacks to more than {lim.max_bytes} bytes at {name!r} "
                             "(limit max_extract_bytes)")
        if self.total > max(lim.ratio_from, lim.max_ratio * self.archive_bytes):
            raise ValueError(f"unpacks to more than {lim.max_ratio:g} times its "
                             f"{self.archive_bytes} bytes at {name!r} (limit max_compression_ratio)")
        if space and size > self.free:  # ask again: the estimate only counts what we wrote
            self.free = shutil.disk_usage(self.into).free
            if size > self.free:
                raise _no_space(self.into, size, self.free)
        self.free -= size


def _checked_members(tf: tarfile.TarFile, budget: _Budget):
    """Yield the members of ``tf`` in order, each checked before it is extracted."""
    guard = _LinkGuard()
    for member in tf:
        _check_tar_member(member, guard)
        budget.add(member.name, member.size if member.isfile() else 0)
        yield member


def _extract_tar(archive: Path, into: Path, limits: Limits) -> int:
    """Extract a tar in one streaming pass, checking each member before it is written."""
    budget = _Budget(archive, into, limits)
    with tarfile.open(archive, "r:*") as tf:
        if hasattr(tarfile, "data_filter"):
            # Python >= 3.12 (and 3.11.4+ backports): the stdlib's own safety net on top of ours.
            tf.extractall(into, members=_checked_members(tf, budget), filter="data")
        else:  # older Pythons: our checks alone
            tf.extractall(into, members=_checked_members(tf, budget))
    return budget.members


def _extract_zip(archive: Path, into: Path, limits: Limits) -> int:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        budget = _Budget(archive, into, limits)
        for info in infos:  # zip has a central directory: check everything first, it is cheap
            _check_zip_member(info)
            budget.add(info.filename, info.file_size, space=False)
        free = shutil.disk_usage(into).free
        if budget.total > free:
            raise _no_space(into, budget.total, free)
        for info in infos:
            zf.extract(info, into)  # zipfile verifies each member's CRC while reading
    return len(infos)


def archive_kind(archive: str | os.PathLike) -> str:
    """'zip' or 'tar' from the file's content (not its name); CorruptArchive otherwise."""
    archive = Path(archive)
    if zipfile.is_zipfile(archive):
        return "zip"
    try:
        if tarfile.is_tarfile(archive):
            return "tar"
    except (OSError, EOFError, zlib.error) as err:
        raise CorruptArchive(f"{archive}: cannot read the archive ({err})", archive) from None
    raise CorruptArchive(f"{archive}: not a tar (.tar, .tar.gz, .tgz, .tar.bz2) or zip archive",
                         archive)


def extract_archive(archive: str | os.PathLike, target_dir: str | os.PathLike,
                    subdir: str | None = None, limits: Limits | None = None) -> Path:
    """Safely extract ``archive`` (tar, tar.gz, tgz, tar.bz2 or zip) onto ``target_dir``.

    Members are written to a temporary folder beside ``target_dir``, which is renamed onto
    ``target_dir`` (replacing it) only when the whole archive extracted; the temporary
    folders of a killed earlier extraction (``.<target>.*.extracting``) are removed first.
    With ``subdir``, only that top-level folder of the archive becomes ``target_dir`` (for
    archives that wrap everything in one folder, e.g. ``nsynth-test/``). ``limits`` bound
    the total size, the compression ratio and the member count.

    Raises:
        CorruptArchive: (a ValueError) the archive is corrupt, truncated or not an archive.
        ValueError: an unsafe member (absolute path, ``..``, a link pointing outside or
            through another link, a device file), a limit broken, or no ``subdir``.
        NoSpaceError: the disk cannot hold what the archive unpacks to (names the path
            and the bytes needed).
        Nothing is left behind: neither the target nor the temporary folder.
    """

    archive, target = Path(archive), Path(target_dir)
    limits = limits or Limits()
    kind = archive_kind(archive)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(target, ".extracting")
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".extracting", dir=target.parent))
    try:
        try:
            count = _extract_zip(archive, tmp, limits) if kind == "zip" else _extract_tar(archive, tmp, limits)
        except NoSpaceError as err:  # name the target, not our temporary folder
            raise NoSpaceError(f"{archive}: extracting into {str(err).replace(str(tmp), str(target))}") from None
        except (ValueError, *_FILTER_ERRORS) as err:
            raise ValueError(f"{archive}: {err}; extraction refused") from None
        except OSError as err:
            if _is_enospc(err):
                raise NoSpaceError(f"{archive}: extracting into {_no_space(target.parent, None)}") from None
            if err.errno is None:  # gzip.BadGzipFile and the like
                raise CorruptArchive(f"{archive}: corrupt or truncated archive "
                                     f"({type(err).__name__}: {err})", archive) from None
            raise ValueError(f"{archive}: cannot extract into {tmp} ({err})") from None
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error) as err:
            raise CorruptArchive(f"{archive}: corrupt or truncated archive "
                                 f"({type(err).__name__}: {err})", archive) from None
        source = tmp
        if subdir:
            source = tmp / subdir
            if not source.is_dir():
                found = sorted(p.name for p in tmp.iterdir())[:10]
                raise ValueError(f"{archive}: expected a top-level folder {subdir!r}, found {found}")
        if target.exists():
            shutil.rmtree(target) if target.is_dir() and not target.is_symlink() else target.unlink()
        follow_umask(source, folder=True)  # mkdtemp made it 0700
        os.replace(source, target)
        log.info("%s: %d members extracted to %s", archive.name, count, target)
        return target
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
