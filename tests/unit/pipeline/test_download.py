"""Downloads against a local HTTP server: resume, retry, verification, safe extraction.

The server runs in a thread on 127.0.0.1 (random port) and serves fixture archives the
tests build in tmp_path; its behaviour (503s, a cut connection, ignoring Range, no
Content-Length, trickling, stalling mid-body, changing a file) is set per test. Nothing here touches the network.
"""

from __future__ import annotations

import hashlib
import io
import json
import socket
import tarfile
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from genex.pipeline.download import DownloadError, download_file, extract_archive
from genex.studies.nsynth.download import download_nsynth
from genex.studies.piano.download import download_maestro
from genex.studies.radio.download import download_radiomapseer
from genex.studies.vocal.download import download_jamendo

FAST = {"retries": 3, "backoff": 0.0, "timeout": 5.0}


# --------------------------------------------------------------------------- server


class FixtureServer:
    """Files by URL path, plus switches for misbehaviour; records every request."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[dict] = []
        self.fail_503: dict[str, int] = {}     # path -> how many 503s before success
        self.cut_after: dict[str, int] = {}    # path -> bytes sent before the first cut
        self.ignore_range = False
        self.no_length: set[str] = set()       # paths served without Content-Length (read to close)
        self.trickle: dict[str, float] = {}    # path -> seconds between single bytes
        self.hold: dict[str, threading.Event] = {}  # path -> first answer stalls mid-body until set
        self.then: dict[str, bytes] = {}       # path -> what to serve after the first answer
        self.lock = threading.Lock()

    def url(self, name: str) -> str:
        return f"{self.base}/{name}"

    def add(self, name: str, data: bytes) -> dict:
        """Serve ``data`` at /name; return its config entry (name, sha256, size)."""
        self.files["/" + name] = data
        return {"name": name, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


def _handler(state: FixtureServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # keep pytest output clean
            pass

        def do_GET(self):  # noqa: N802 - http.server's name
            with state.lock:
                state.requests.append({"path": self.path, "range": self.headers.get("Range")})
                fails = state.fail_503.get(self.path, 0)
                if fails:
                    state.fail_503[self.path] = fails - 1
                cut = state.cut_after.pop(self.path, None)
                hold = state.hold.pop(self.path, None)
                data = state.files.get(self.path)
                if self.path in state.then and not fails:
                    state.files[self.path] = state.then.pop(self.path)
            if fails:
                self._send(503, b"busy")
                return
            if data is None:
                self._send(404, b"not found")
                return
            start = 0
            rng = self.headers.get("Range")
            if rng and not state.ignore_range:
                start = int(rng.removeprefix("bytes=").split("-")[0])
                if start >= len(data):
                    self._send(416, b"", {"Content-Range": f"bytes */{len(data)}"})
                    return
            body = data[start:]
            self.send_response(206 if start else 200)
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            if self.path in state.no_length:
                self.send_header("Connection", "close")
                self.close_connection = True
            else:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.path in state.trickle:
                try:
                    for i in range(len(body)):
                        self.wfile.write(body[i:i + 1])
                        self.wfile.flush()
                        time.sleep(state.trickle[self.path])
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client gave up
                return
            if hold is not None:
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                hold.wait(60)
                self.wfile.write(body[len(body) // 2:])
                return
            if cut is not None:
                # Promise the whole body, send part of it, drop the connection.
                self.wfile.write(body[:cut])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.wfile.write(body)

        def _send(self, code: int, body: bytes, headers: dict | None = None):
            self.send_response(code)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


@pytest.fixture()
def server():
    state = FixtureServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("GENEX_NO_PROGRESS", "1")


@pytest.fixture(params=["data_filter", "own_checks_only"])
def tar_filter(request, monkeypatch):
    """Run a tar test with tarfile's data filter and again as on a Python without it."""
    if request.param == "own_checks_only":
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    return request.param


# --------------------------------------------------------------------------- archives


def targz(members: dict[str, bytes], extra: list[tarfile.TarInfo] = ()) -> bytes:
    """A .tar.gz with regular files ``members`` and raw ``extra`` members (links, devices)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for info in extra:
            tf.addfile(info)
    return buf.getvalue()


def zipped(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name), data)
    return buf.getvalue()


def leftovers(folder: Path) -> list[str]:
    """Temporary or partial entries a failed step must not leave behind."""
    return sorted(p.name for p in folder.iterdir()
                  if p.name.endswith((".part", ".partial", ".extracting", ".old")))


BIG = bytes(range(256)) * 4096  # 1 MiB, so a cut lands mid-body


# --------------------------------------------------------------------------- download_file


def test_good_targz_downloads_verifies_and_extracts(server, tmp_path):
    entry = server.add("good.tar.gz", targz({"pkg/a.txt": b"alpha", "pkg/sub/b.txt": b"beta"}))
    dest = download_file(server.url(entry["name"]), tmp_path / "dl" / entry["name"],
                         sha256=entry["sha256"], size=entry["size"], **FAST)
    assert dest.read_bytes() == server.files["/good.tar.gz"]
    assert not dest.with_name(dest.name + ".part").exists()
    assert (tmp_path / "dl" / "good.tar.gz.sha256").read_text().split()[0] == entry["sha256"]

    target = extract_archive(dest, tmp_path / "out" / "pkg", subdir="pkg")
    assert (target / "a.txt").read_bytes() == b"alpha"
    assert (target / "sub" / "b.txt").read_bytes() == b"beta"
    assert leftovers(tmp_path / "out") == []


def test_verified_file_is_not_downloaded_again(server, tmp_path):
    entry = server.add("f.bin", b"x" * 1000)
    for _ in range(2):
        download_file(server.url("f.bin"), tmp_path / "f.bin", sha256=entry["sha256"], **FAST)
    assert len(server.requests) == 1


def test_interrupted_download_resumes_with_range(server, tmp_path):
    entry = server.add("big.bin", BIG)
    server.cut_after["/big.bin"] = 300_000
    dest = download_file(server.url("big.bin"), tmp_path / "big.bin", sha256=entry["sha256"],
                         size=entry["size"], **FAST)
    assert dest.read_bytes() == BIG
    assert [r["range"] for r in server.requests] == [None, "bytes=300000-"]


def test_existing_part_file_is_resumed(server, tmp_path):
    entry = server.add("big.bin", BIG)
    (tmp_path / "big.bin.part").write_bytes(BIG[:123_456])
    download_file(server.url("big.bin"), tmp_path / "big.bin", sha256=entry["sha256"], **FAST)
    assert server.requests == [{"path": "/big.bin", "range": "bytes=123456-"}]
    assert (tmp_path / "big.bin").read_bytes() == BIG


def test_server_ignoring_range_restarts_the_file(server, tmp_path):
    entry = server.add("big.bin", BIG)
    server.ignore_range = True
    (tmp_path / "big.bin.part").write_bytes(b"garbage that is not the file's prefix")
    download_file(server.url("big.bin"), tmp_path / "big.bin", sha256=entry["sha256"], **FAST)
    assert server.requests[0]["range"] is not None  # we asked for a resume ...
    assert (tmp_path / "big.bin").read_bytes() == BIG  # ... got 200 and started over


def test_transient_503_is_retried(server, tmp_path):
    entry = server.add("f.bin", b"payload")
    server.fail_503["/f.bin"] = 2
    download_file(server.url("f.bin"), tmp_path / "f.bin", sha256=entry["sha256"], **FAST)
    assert len(server.requests) == 3
    assert (tmp_path / "f.bin").read_bytes() == b"payload"


def test_retries_run_out(server, tmp_path):
    server.add("f.bin", b"payload")
    server.fail_503["/f.bin"] = 10
    with pytest.raises(DownloadError, match=r"f\.bin.*giving up after 3 attempts"):
        download_file(server.url("f.bin"), tmp_path / "f.bin", retries=2, backoff=0.0, timeout=5.0)
    assert len(server.requests) == 3
    assert not (tmp_path / "f.bin").exists()


def test_missing_file_fails_at_once(server, tmp_path):
    with pytest.raises(DownloadError, match="404"):
        download_file(server.url("nope.bin"), tmp_path / "nope.bin", **FAST)
    assert len(server.requests) == 1


def test_checksum_mismatch_names_url_and_hashes_and_leaves_nothing(server, tmp_path):
    server.add("corrupt.tar.gz", targz({"a.txt": b"alpha"}))
    actual = hashlib.sha256(server.files["/corrupt.tar.gz"]).hexdigest()
    wrong = "0" * 64
    url = server.url("corrupt.tar.gz")
    with pytest.raises(ValueError) as err:
        download_file(url, tmp_path / "corrupt.tar.gz", sha256=wrong, **FAST)
    assert url in str(err.value) and wrong in str(err.value) and actual in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_size_mismatch_is_refused(server, tmp_path):
    server.add("f.bin", b"12345")
    with pytest.raises(ValueError, match="expected 6 bytes, got 5"):
        download_file(server.url("f.bin"), tmp_path / "f.bin", size=6, **FAST)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- extraction


def _refused(archive_bytes: bytes, tmp_path: Path, name: str, match: str) -> None:
    """Extraction of the archive raises, and nothing appears anywhere under tmp_path."""
    archive = tmp_path / "in" / name
    archive.parent.mkdir()
    archive.write_bytes(archive_bytes)
    work = tmp_path / "work"
    work.mkdir()
    before = sorted(p for p in tmp_path.rglob("*"))
    with pytest.raises(ValueError, match=match):
        extract_archive(archive, work / "target")
    assert sorted(p for p in tmp_path.rglob("*")) == before
    assert not (work / "target").exists()


def test_tar_member_escaping_with_dotdot_is_refused(tmp_path, tar_filter):
    data = targz({"ok.txt": b"fine", "../evil.txt": b"pwned"})
    _refused(data, tmp_path, "evil.tar.gz", r"\.\./evil\.txt.*escapes")
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "work" / "evil.txt").exists()


def test_tar_absolute_member_is_refused(tmp_path, tar_filter):
    victim = tmp_path / "abs.txt"
    _refused(targz({str(victim): b"pwned"}), tmp_path, "abs.tar", "absolute path")
    assert not victim.exists()


def test_tar_links_pointing_outside_are_refused(tmp_path, tar_filter):
    link = tarfile.TarInfo("data/link")
    link.type, link.linkname = tarfile.SYMTYPE, "../../outside.txt"
    _refused(targz({"data/a.txt": b"a"}, [link]), tmp_path, "sym.tar.gz", "symlink pointing outside")
    hard = tarfile.TarInfo("hard")
    hard.type, hard.linkname = tarfile.LNKTYPE, "/etc/passwd"
    (tmp_path / "in" / "sym.tar.gz").unlink()
    (tmp_path / "in").rmdir()
    (tmp_path / "work").rmdir()
    _refused(targz({}, [hard]), tmp_path, "hard.tar.gz", "hard link pointing outside")


def test_tar_device_member_is_refused(tmp_path, tar_filter):
    dev = tarfile.TarInfo("dev/null")
    dev.type, dev.devmajor, dev.devminor = tarfile.CHRTYPE, 1, 3
    _refused(targz({}, [dev]), tmp_path, "dev.tar.gz", "device")


def test_tar_symlink_inside_the_target_is_kept(tmp_path, tar_filter):
    link = tarfile.TarInfo("pkg/alias.txt")
    link.type, link.linkname = tarfile.SYMTYPE, "real.txt"
    archive = tmp_path / "ok.tar.gz"
    archive.write_bytes(targz({"pkg/real.txt": b"real"}, [link]))
    target = extract_archive(archive, tmp_path / "t")
    assert (target / "pkg" / "alias.txt").read_bytes() == b"real"


def test_zip_with_traversal_or_absolute_member_is_refused(tmp_path):
    _refused(zipped({"fine.txt": b"ok", "../evil.txt": b"pwned"}), tmp_path, "evil.zip", "escapes")
    assert not (tmp_path / "evil.txt").exists()


def test_zip_absolute_member_is_refused(tmp_path):
    _refused(zipped({"/abs.txt": b"pwned"}), tmp_path, "abs.zip", "absolute path")


def test_truncated_archive_is_reported_and_leaves_nothing(tmp_path):
    data = targz({f"f{i}.bin": bytes(range(256)) * 64 for i in range(20)})
    _refused(data[: len(data) // 2], tmp_path, "cut.tar.gz", "corrupt or truncated")


def test_not_an_archive(tmp_path):
    _refused(b"just text", tmp_path, "x.tar.gz", "not a tar")


def test_zip_extracts_and_missing_subdir_is_an_error(tmp_path):
    archive = tmp_path / "a.zip"
    archive.write_bytes(zipped({"top/x.txt": b"x"}))
    assert (extract_archive(archive, tmp_path / "t", subdir="top") / "x.txt").read_bytes() == b"x"
    with pytest.raises(ValueError, match="expected a top-level folder 'other'"):
        extract_archive(archive, tmp_path / "u", subdir="other")
    assert not (tmp_path / "u").exists() and leftovers(tmp_path) == []


# --------------------------------------------------------------------------- datasets


def nsynth_archive(split: str, notes: list[str]) -> bytes:
    examples = {n: {"note_str": n, "pitch": 60, "instrument_family": 0} for n in notes}
    members = {f"nsynth-{split}/examples.json": json.dumps(examples).encode()}
    members.update({f"nsynth-{split}/audio/{n}.wav": b"RIFF....WAVE" for n in notes})
    return targz(members)


def test_download_nsynth_end_to_end(server, tmp_path):
    entry = server.add("nsynth-test.jsonwav.tar.gz",
                       nsynth_archive("test", ["bass_synthetic_033-022-050", "organ_electronic_001-060-127"]))
    params = {"splits": ["test"], "base_url": server.base, "files": [entry], **FAST}
    out = tmp_path / "resources" / "nsynth"
    download_nsynth(out, params)

    assert set(json.loads((out / "nsynth-test" / "examples.json").read_text())) == {
        "bass_synthetic_033-022-050", "organ_electronic_001-060-127"}
    assert sorted(p.name for p in (out / "nsynth-test" / "audio").iterdir()) == [
        "bass_synthetic_033-022-050.wav", "organ_electronic_001-060-127.wav"]
    record = json.loads((out / "genex.json").read_text())
    assert record["summary"]["splits"]["test"] == {"examples": 2, "wav_files": 2}
    assert record["summary"]["files"][0]["sha256"] == entry["sha256"]
    # the cache sits beside the output, so a failed job's cleanup cannot delete it
    assert (out.parent / ".downloads" / "nsynth" / entry["name"]).is_file()
    assert sorted(p.name for p in out.iterdir()) == ["genex.json", "nsynth-test"]
    assert leftovers(out.parent) == []

    download_nsynth(out, params)  # a rerun reuses the verified archive
    assert len(server.requests) == 1 and (out / "nsynth-test" / "examples.json").is_file()


def test_download_nsynth_corrupt_archive_leaves_no_output(server, tmp_path):
    entry = server.add("nsynth-test.jsonwav.tar.gz", nsynth_archive("test", ["a-060-100"]))
    entry["sha256"] = "f" * 64
    out = tmp_path / "nsynth"
    with pytest.raises(ValueError, match="nsynth-test.jsonwav.tar.gz.*sha256 mismatch"):
        download_nsynth(out, {"splits": ["test"], "base_url": server.base, "files": [entry], **FAST})
    assert not (out / "nsynth-test").exists() and not (out / "genex.json").exists()
    assert list((tmp_path / ".downloads" / "nsynth").iterdir()) == []
    assert leftovers(tmp_path) == []


def test_failed_reinstall_keeps_the_previous_dataset(server, tmp_path):
    good = server.add("nsynth-test.jsonwav.tar.gz", nsynth_archive("test", ["a-060-100"]))
    out = tmp_path / "nsynth"
    params = {"splits": ["test"], "base_url": server.base, "files": [good], **FAST}
    download_nsynth(out, params)
    # Same archive name, but the new one lacks examples.json: the build fails.
    bad = server.add("nsynth-test.jsonwav.tar.gz", targz({"nsynth-test/audio/x.wav": b"x"}))
    (tmp_path / ".downloads" / "nsynth" / good["name"]).unlink()
    with pytest.raises(ValueError, match="no folder with examples.json"):
        download_nsynth(out, {**params, "files": [bad]})
    assert json.loads((out / "nsynth-test" / "examples.json").read_text()) == {
        "a-060-100": {"note_str": "a-060-100", "pitch": 60, "instrument_family": 0}}
    assert leftovers(tmp_path) == []


def test_download_nsynth_needs_an_archive_per_split(tmp_path):
    with pytest.raises(ValueError, match=r"\['valid'\]"):
        download_nsynth(tmp_path / "n", {"splits": ["test", "valid"], "base_url": "http://x",
                                         "files": [{"name": "nsynth-test.jsonwav.tar.gz"}]})


def test_download_maestro_midi(server, tmp_path):
    entry = server.add("maestro-v3.0.0-midi.zip", zipped({
        "maestro-v3.0.0/maestro-v3.0.0.csv": b"canonical_composer,split,midi_filename\n",
        "maestro-v3.0.0/maestro-v3.0.0.json": b"{}",
        "maestro-v3.0.0/2004/piece.midi": b"MThd"}))
    full = {"name": "maestro-v3.0.0.zip", "sha256": "0" * 64}  # never fetched for variant midi
    out = tmp_path / "maestro"
    download_maestro(out, {"variant": "midi", "base_url": server.base, "files": [entry, full], **FAST})
    assert (out / "maestro-v3.0.0" / "2004" / "piece.midi").read_bytes() == b"MThd"
    assert json.loads((out / "genex.json").read_text())["summary"]["midi_files"] == 1
    assert [r["path"] for r in server.requests] == ["/maestro-v3.0.0-midi.zip"]


def test_download_jamendo_layout(server, tmp_path):
    files = [server.add(f"jam_{s}_audio.tar.gz", targz({f"{s}/{s}_song.ogg": b"OggS"}))
             for s in ("train", "valid", "test")]
    files.append(server.add("jam_annote.tar.gz", targz(
        {f"jamendo_lab/{s}_song.lab": b"0.0 1.0 sing\n" for s in ("train", "valid", "test")})))
    files += [server.add(f"jam_{s}_list.txt", f"{s}_song.trs\n".encode()) for s in ("train", "valid", "test")]
    out = tmp_path / "jamendo"
    download_jamendo(out, {"base_url": server.base, "files": files, **FAST})
    assert sorted(p.name for p in (out / "audio").iterdir()) == ["test_song.ogg", "train_song.ogg", "valid_song.ogg"]
    assert (out / "labels" / "train_song.lab").read_text() == "0.0 1.0 sing\n"
    assert (out / "filelists" / "valid").read_text() == "valid_song.ogg\n"


def test_download_radiomapseer_layout(server, tmp_path):
    entry = server.add("RadioMapSeer.zip", zipped({
        "RadioMapSeer/png/buildings_complete/0.png": b"png",
        "RadioMapSeer/gain/DPM/0_0.png": b"png",
        "RadioMapSeer/Dataset.csv": b"map\n"}))
    entry["url"] = server.url("RadioMapSeer.zip")  # its own url, as the Drive link in the config
    out = tmp_path / "radiomapseer"
    download_radiomapseer(out, {"base_url": None, "files": [entry], **FAST})
    assert (out / "png" / "buildings_complete" / "0.png").is_file()
    assert (out / "gain" / "DPM" / "0_0.png").is_file() and (out / "Dataset.csv").is_file()
    summary = json.loads((out / "genex.json").read_text())["summary"]
    assert summary["gain_simulations"] == ["DPM"] and summary["png_files"] == 1


def test_cli_download_reports_errors(server, tmp_path):
    from genex.cli import main

    entry = server.add("nsynth-test.jsonwav.tar.gz", nsynth_archive("test", ["a-060-100"]))
    params = {"splits": ["test"], "base_url": server.base, "files": [entry], **FAST}
    assert main(["download", "nsynth", "--params", json.dumps(params), "--out", str(tmp_path / "ok")]) == 0
    assert (tmp_path / "ok" / "nsynth-test" / "examples.json").is_file()
    params["files"] = [{**entry, "sha256": "1" * 64}]
    assert main(["download", "nsynth", "--params", json.dumps(params), "--out", str(tmp_path / "bad")]) == 1
    assert not (tmp_path / "bad" / "nsynth-test").exists()


def test_keep_downloads_false_removes_only_our_archives(server, tmp_path):
    entry = server.add("nsynth-test.jsonwav.tar.gz", nsynth_archive("test", ["a-060-100"]))
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "someone-elses.bin").write_bytes(b"keep me")
    out = tmp_path / "nsynth"
    download_nsynth(out, {"splits": ["test"], "base_url": server.base, "files": [entry],
                          "keep_downloads": False, "download_dir": str(cache), **FAST})
    assert (out / "nsynth-test" / "examples.json").is_file() and not (out / ".downloads").exists()
    assert sorted(p.name for p in cache.iterdir()) == ["someone-elses.bin"]
