"""Reliability of downloads and extraction (issue cases 4, 7, 8, 9, 10), on 127.0.0.1 only.

Uses the local fixture server of test_download.py; nothing here touches the network.
"""

from __future__ import annotations

import errno
import io
import logging
import subprocess
import tarfile
import threading
import zipfile
from pathlib import Path

import pytest

import genex.pipeline.download as dl
from genex.pipeline.download import DownloadError, download_file, extract_archive
from genex.pipeline.real import fetch
from genex.studies.nsynth.download import download_nsynth
from genex.studies.radio.download import download_radiomapseer
from test_download import (  # noqa: F401 - fixtures
    BIG,
    FAST,
    _quiet,
    leftovers,
    nsynth_archive,
    server,
    tar_filter,
    targz,
    zipped,
)

REPO = Path(__file__).resolve().parents[3]


def _tar(members: list[tarfile.TarInfo], data: dict[str, bytes] | None = None) -> bytes:
    """A plain tar of raw members, in this order (regular ones get ``data``)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for info in members:
            payload = (data or {}).get(info.name)
            if payload is not None:
                info.size = len(payload)
            tf.addfile(info, io.BytesIO(payload) if payload is not None else None)
    return buf.getvalue()


def _link(name: str, target: str, kind=tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


# --------------------------------------------------------------------------- case 4: leftovers


def test_killed_install_and_extraction_leftovers_are_removed_at_next_start(server, tmp_path):
    entry = server.add("nsynth-test.jsonwav.tar.gz", nsynth_archive("test", ["a-060-100"]))
    params = {"splits": ["test"], "base_url": server.base, "files": [entry], **FAST}
    out = tmp_path / "resources" / "nsynth"
    download_nsynth(out, params)
    # what killed runs left: a staging folder, a swapped-out old folder, an extraction folder
    for stale in (".nsynth.k1ll3d.partial", ".nsynth.k1ll3d.old", ".t.k1ll3d.extracting"):
        (out.parent / stale).mkdir()
        (out.parent / stale / "junk.wav").write_bytes(b"\0" * 1000)
    download_nsynth(out, params)
    extract_archive(out.parent / ".downloads" / "nsynth" / entry["name"], out.parent / "t")
    assert leftovers(out.parent) == []
    # and git ignores them wherever a step leaves them
    names = ["resources/.nsynth.abc123.partial", "resources/.nsynth.abc123.extracting",
             "resources/.nsynth.abc123.old", "results/nsynth/.model.pt.x1.partial"]
    ignored = subprocess.run(["git", "check-ignore", "--no-index", *names], cwd=REPO,
                             capture_output=True, text=True).stdout.split()
    assert ignored == names


def test_install_killed_between_the_renames_restores_the_previous_dataset(server, tmp_path):
    entry = server.add("nsynth-test.jsonwav.tar.gz", nsynth_archive("test", ["a-060-100"]))
    out = tmp_path / "nsynth"
    params = {"splits": ["test"], "base_url": server.base, "files": [entry], **FAST}
    download_nsynth(out, params)
    out.rename(tmp_path / ".nsynth.x9.old")  # killed after moving it away
    server.files.clear()  # the rerun may not depend on the server: the cache is there
    download_nsynth(out, params)
    assert (out / "nsynth-test" / "examples.json").is_file() and leftovers(tmp_path) == []


# --------------------------------------------------------------------------- case 7: no checksum


def test_html_page_served_for_an_archive_is_refused(server, tmp_path):
    server.add("RadioMapSeer.zip", b"<!DOCTYPE html><html><body>Quota exceeded</body></html>")
    with pytest.raises(ValueError, match=r"RadioMapSeer\.zip is not a \.zip file .*HTML page"):
        download_file(server.url("RadioMapSeer.zip"), tmp_path / "RadioMapSeer.zip", **FAST)
    assert list(tmp_path.iterdir()) == []


def test_416_with_a_garbage_part_restarts(server, tmp_path):
    server.add("a.zip", zipped({"old.txt": b"o" * 5000}))
    server.cut_after["/a.zip"] = 3000
    with pytest.raises(DownloadError):
        download_file(server.url("a.zip"), tmp_path / "a.zip", retries=0, backoff=0.0, timeout=5.0)
    new = server.add("a.zip", zipped({"a.txt": b"alpha"}))  # now shorter than the partial file
    download_file(server.url("a.zip"), tmp_path / "a.zip", **FAST)
    assert (tmp_path / "a.zip").read_bytes() == server.files["/a.zip"] and new["size"] < 3000
    assert [r["range"] for r in server.requests] == [None, "bytes=3000-", None]


def test_a_changed_url_fetches_again(server, tmp_path):
    old, new = targz({"x/a.txt": b"old"}), targz({"x/a.txt": b"new"})
    server.add("old/jam.tar.gz", old)
    server.add("new/jam.tar.gz", new)
    download_file(server.url("old/jam.tar.gz"), tmp_path / "jam.tar.gz", **FAST)
    download_file(server.url("new/jam.tar.gz"), tmp_path / "jam.tar.gz", **FAST)
    assert (tmp_path / "jam.tar.gz").read_bytes() == new


def test_body_cut_short_without_content_length_is_resumed(server, tmp_path):
    data = targz({f"f{i}.bin": bytes(range(256)) * 64 * (i + 1) for i in range(8)})
    server.add("jam.tar.gz", data)
    server.no_length.add("/jam.tar.gz")
    server.cut_after["/jam.tar.gz"] = len(data) // 2
    download_file(server.url("jam.tar.gz"), tmp_path / "jam.tar.gz", **FAST)
    assert (tmp_path / "jam.tar.gz").read_bytes() == data
    assert server.requests[1]["range"] == f"bytes={len(data) // 2}-"


def test_cached_archive_that_fails_to_extract_is_fetched_again(server, tmp_path):
    good = zipped({"R/png/b/0.png": b"png", "R/gain/DPM/0_0.png": b"png"})
    server.add("RadioMapSeer.zip", good[:-30])  # cut, but served with a matching length
    server.then["/RadioMapSeer.zip"] = good
    out = tmp_path / "radiomapseer"
    download_radiomapseer(out, {"base_url": server.base, "files": [{"name": "RadioMapSeer.zip"}], **FAST})
    assert (out / "gain" / "DPM" / "0_0.png").is_file()
    assert len(server.requests) == 2


# --------------------------------------------------------------------------- case 8: lock


def test_concurrent_downloads_of_one_file_take_turns(server, tmp_path):
    data = BIG * 3
    server.add("big.tar.gz", b"\x1f\x8b" + data)
    server.hold["/big.tar.gz"] = release = threading.Event()
    dest = tmp_path / "dl" / "big.tar.gz"
    results: dict[str, object] = {}
    waiting = threading.Event()

    class Waiting(logging.Handler):
        def emit(self, record):
            if "waiting for the lock" in record.getMessage() and ".big.tar.gz.lock" in record.getMessage():
                waiting.set()

    def run(name):
        try:
            results[name] = download_file(server.url("big.tar.gz"), dest, **FAST).read_bytes()
        except Exception as err:  # noqa: BLE001 - reported by the assertion below
            results[name] = err

    handler = Waiting()
    logging.getLogger("genex").addHandler(handler)
    try:
        first = threading.Thread(target=run, args=("first",))
        first.start()
        while not dest.with_name("big.tar.gz.part").exists() and first.is_alive():
            first.join(0.01)
        second = threading.Thread(target=run, args=("second",))
        second.start()
        # the second either waits for the lock (fixed) or sends its own request (unfixed)
        while not (waiting.is_set() or len(server.requests) > 1 or not second.is_alive()):
            second.join(0.01)
        release.set()
        first.join(60)
        second.join(60)
    finally:
        release.set()
        logging.getLogger("genex").removeHandler(handler)
    assert results == {"first": b"\x1f\x8b" + data, "second": b"\x1f\x8b" + data}
    assert len(server.requests) == 1 and dest.read_bytes() == b"\x1f\x8b" + data
    assert waiting.is_set()  # the second said which lock file it waited for


# --------------------------------------------------------------------------- case 9: guards


def test_member_count_and_total_size_limits_come_from_the_config(server, tmp_path):
    entry = server.add("nsynth-test.jsonwav.tar.gz",
                       nsynth_archive("test", [f"n-060-{v:03d}" for v in range(10)]))
    params = {"splits": ["test"], "base_url": server.base, "files": [entry], **FAST}
    with pytest.raises(ValueError, match=r"more than 5 members \(limit max_members\)"):
        download_nsynth(tmp_path / "a", {**params, "max_members": 5})
    with pytest.raises(ValueError, match=r"more than 100 bytes .*limit max_extract_bytes"):
        download_nsynth(tmp_path / "b", {**params, "max_extract_bytes": 100})
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    assert leftovers(tmp_path) == []


def test_compression_ratio_limit(tmp_path):
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.bin", b"\0" * (4 << 20))  # 4 MiB in ~4 KiB
    with pytest.raises(ValueError, match="limit max_compression_ratio"):
        extract_archive(archive, tmp_path / "t", limits=dl.Limits(max_ratio=10, ratio_from=0))
    assert not (tmp_path / "t").exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize("members, why", [
    # a -> . makes a/b land at b, so its .. leaves the target; b/evil.txt writes outside
    ([_link("a", "."), _link("a/b", ".."), tarfile.TarInfo("b/evil.txt")], "through a symlink"),
    ([tarfile.TarInfo("f"), _link("s1", "f"), _link("s2", "s1")], "link chains are refused"),
    ([tarfile.TarInfo("f"), _link("s1", "f"), _link("h", "s1", tarfile.LNKTYPE)], "link chains are refused"),
    ([_link("c", "d"), _link("d", "f")], "link to a link"),
])
def test_tar_link_chains_are_refused_by_our_own_check(tmp_path, tar_filter, members, why):
    data = _tar(members, {"b/evil.txt": b"pwned", "f": b"file"})
    archive = tmp_path / "in" / "chain.tar"
    archive.parent.mkdir()
    archive.write_bytes(data)
    (tmp_path / "work").mkdir()
    with pytest.raises(ValueError, match=why):
        extract_archive(archive, tmp_path / "work" / "target")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["chain.tar", "in", "work"]


def test_full_disk_names_the_path_and_the_bytes(tmp_path, monkeypatch):
    archive = tmp_path / "a.zip"
    archive.write_bytes(zipped({"x.bin": b"x" * 5000}))
    real_usage = dl.shutil.disk_usage
    monkeypatch.setattr(dl.shutil, "disk_usage", lambda p: real_usage(p)._replace(free=1000))
    with pytest.raises(dl.NoSpaceError, match=rf"a\.zip: extracting into {tmp_path / 't'}: not enough disk space: needs 5000 more bytes, 1000 free"):
        extract_archive(archive, tmp_path / "t")
    monkeypatch.undo()

    # a write that fails with ENOSPC is a full disk, not a "corrupt archive"
    tar = tmp_path / "b.tar.gz"
    tar.write_bytes(targz({"y.bin": b"y" * 5000}))

    def full(self, tarinfo, targetpath):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tarfile.TarFile, "makefile", full)
    with pytest.raises(dl.NoSpaceError, match=rf"b\.tar\.gz: extracting into {tmp_path}.*not enough disk space"):
        extract_archive(tar, tmp_path / "u")
    assert leftovers(tmp_path) == [] and not (tmp_path / "u").exists()


def test_download_checks_free_space_first(server, tmp_path, monkeypatch):
    entry = server.add("big.bin", BIG)
    real_usage = dl.shutil.disk_usage
    monkeypatch.setattr(dl.shutil, "disk_usage", lambda p: real_usage(p)._replace(free=1000))
    with pytest.raises(dl.NoSpaceError, match=rf"big\.bin\.part: not enough disk space: needs {len(BIG)} more bytes"):
        download_file(server.url("big.bin"), tmp_path / "big.bin", size=entry["size"], **FAST)


# --------------------------------------------------------------------------- case 10: deadline


def test_trickling_server_meets_the_deadline(server, tmp_path):
    entry = server.add("slow.bin", b"s" * 50)  # one byte per 0.2 s: 10 s in all
    server.trickle["/slow.bin"] = 0.2
    with pytest.raises(DownloadError, match=r"slow\.bin: deadline of 2 s .*slow\.bin\.part is kept"):
        fetch([entry], {"base_url": server.base, **FAST, "deadline": 2}, tmp_path)
    assert not (tmp_path / "slow.bin").exists()


# --------------------------------------------------------------------------- case 15: umask


@pytest.mark.parametrize("umask, dir_mode", [(0o022, 0o755), (0o002, 0o775)])
def test_installed_and_extracted_folders_follow_the_umask(server, tmp_path, umask, dir_mode):
    """mkdtemp makes 0700 folders; a group on a shared filesystem must be able to read a dataset."""
    import os
    import stat

    entry = server.add("nsynth-test.jsonwav.tar.gz", nsynth_archive("test", ["a-060-100"]))
    params = {"splits": ["test"], "base_url": server.base, "files": [entry], **FAST}
    old = os.umask(umask)
    try:
        out = tmp_path / "resources" / "nsynth"
        download_nsynth(out, params)
        extracted = extract_archive(out.parent / ".downloads" / "nsynth" / entry["name"], tmp_path / "t")
    finally:
        os.umask(old)
    for folder in (out, extracted):
        assert stat.S_IMODE(folder.stat().st_mode) == dir_mode, folder
