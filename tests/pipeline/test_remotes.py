"""Versioned results shared through real remotes: SSH (OpenSSH's sshd) and S3 (moto).

Both servers are started by these tests on 127.0.0.1 and stopped by them (see
tests/helpers/remote_servers.py). The S3 server is moto's server mode: an emulator of the S3 API,
not AWS. The finished run is the session's tiny run, made a git + DVC repository as in
tests/pipeline/test_share.py; each remote is configured in ``.dvc/config.local`` only (as a user
would), and the credentials reach DVC by environment (S3) or a key file named in
config.local (SSH), never a committed file.

Faults: a :class:`Gate` between DVC and the server holds the transfer once a third of the
data has passed, so a push or a pull is killed, or the server stopped, mid-transfer at a
point that depends on progress, not on time.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from helpers.workflow import BIN, REPO
from helpers.remote_servers import SSHD, Gate, S3Server, SSHServer, alive
from test_share import GIT, deep_merge

pytestmark = [pytest.mark.slow, pytest.mark.remote, pytest.mark.pipeline]

OBJECT = re.compile(r"^files/md5/[0-9a-f]{2}/[0-9a-f]{30}(\.dir)?$")
VENV = BIN.parent
MAKE = ["make", "-o", "setup", f"VENV={VENV}"]  # the Makefile's targets, with this .venv as set up
REPOS: list[Path] = []  # every repository the tests made: scanned for credentials at the end

_spec = importlib.util.spec_from_file_location("verify_cache", REPO / "scripts/verify-cache.py")
verify_cache = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(verify_cache)


def sh(cmd: list[str], cwd: Path, env: dict[str, str] | None = None, check: bool = True,
       **kw) -> subprocess.CompletedProcess:
    kw.setdefault("timeout", 900)  # a hung transfer fails the test instead of the session
    proc = subprocess.run(cmd, cwd=cwd, env=environment(env), capture_output=True, text=True, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}) in {cwd}:\n"
                             f"{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


def environment(extra: dict[str, str] | None) -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "GENEX_NO_PROGRESS": "1", "DVC_NO_ANALYTICS": "1", **(extra or {})}


def cache_objects(repo: Path) -> dict[str, Path]:
    root = repo / ".dvc/cache"
    return {p.relative_to(root).as_posix(): p for p in root.glob("files/md5/??/*")
            if OBJECT.match(p.relative_to(root).as_posix())}


def md5_name(rel: str) -> str:
    return rel.removeprefix("files/md5/").replace("/", "").removesuffix(".dir")


def cached_outputs(repo: Path) -> list[str]:
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    return sorted(out["path"] for stage in lock["stages"].values() for out in stage.get("outs", []))


def output_files(repo: Path) -> dict[str, bytes]:
    files = {}
    for out in cached_outputs(repo):
        path = repo / out
        for f in ([path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())):
            files[f.relative_to(repo).as_posix()] = f.read_bytes()
    return files


class Remote:
    """One fresh store on a server, configured as the default DVC remote ``shared``."""

    def __init__(self, kind: str, server, gate: Gate, name: str, home: Path, new: bool = True):
        self.kind, self.server, self.gate = kind, server, gate
        if kind == "ssh":
            self.store = server.root / "stores" / name
            self.store.mkdir(parents=True, exist_ok=not new)
            self.url = f"ssh://127.0.0.1{self.store}"
            self.options = {"port": str(gate.port), "user": server.user, "keyfile": str(server.client_key)}
            (home / ".ssh").mkdir(parents=True, exist_ok=True)
            (home / ".ssh/known_hosts").write_text(server.known_hosts_line(gate.port))
            self.env = {"HOME": str(home)}  # asyncssh checks the host key in ~/.ssh/known_hosts
        else:
            self.bucket = name
            if new:
                self.make_bucket()
            self.url = f"s3://{name}/genex"
            self.options = {"endpointurl": f"http://127.0.0.1:{gate.port}"}
            self.env = {"HOME": str(home), **server.env}

    def make_bucket(self) -> None:
        self.server.client().create_bucket(Bucket=self.bucket)

    def configure(self, repo: Path) -> None:
        sh(["dvc", "remote", "add", "--local", "-f", "-d", "shared", self.url], cwd=repo)
        for key, value in self.options.items():
            sh(["dvc", "remote", "modify", "--local", "shared", key, value], cwd=repo)

    def objects(self) -> dict:
        """The complete objects in the store, by name (files/md5/xx/...)."""
        if self.kind == "ssh":
            return {p.relative_to(self.store).as_posix(): p for p in self.store.rglob("*")
                    if p.is_file() and OBJECT.match(p.relative_to(self.store).as_posix())}
        client, out = self.server.client(), {}
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix="genex/"):
            for item in page.get("Contents", []):
                rel = item["Key"].removeprefix("genex/")
                if OBJECT.match(rel):
                    out[rel] = item["Key"]
        return out

    def read(self, rel: str) -> bytes:
        if self.kind == "ssh":
            return (self.store / rel).read_bytes()
        return self.server.client().get_object(Bucket=self.bucket, Key=f"genex/{rel}")["Body"].read()

    def write(self, rel: str, data: bytes) -> None:
        if self.kind == "ssh":
            path = self.store / rel
            path.chmod(0o644)
            path.write_bytes(data)
        else:
            self.server.client().put_object(Bucket=self.bucket, Key=f"genex/{rel}", Body=data)


@pytest.fixture(scope="module")
def origin(tiny_run, tmp_path_factory):
    """The finished tiny run as a git + DVC repository, its outputs recorded in dvc.lock.

    `dvc commit` records what `make repro` would (hashes, params, the cache) without running
    each stage's Snakemake target again only to find it current.
    """
    repo = tmp_path_factory.mktemp("remotes") / "origin"
    shutil.copytree(tiny_run, repo, symlinks=True)
    for name in ("Makefile", ".gitignore"):  # as in the repository: .snakemake/ and logs/ stay out of git
        shutil.copy2(REPO / name, repo / name)
    config = deep_merge(yaml.safe_load((REPO / "config/config.yaml").read_text()),
                        yaml.safe_load((REPO / "config/tiny.yaml").read_text()))
    (repo / "config/config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    sh(GIT + ["init", "-q", "-b", "main"], cwd=repo)
    sh(["dvc", "commit", "-f", "-q"], cwd=repo)
    assert "up to date" in sh(["dvc", "status"], cwd=repo).stdout
    sh(GIT + ["add", "-A"], cwd=repo)
    sh(GIT + ["commit", "-q", "-m", "tiny run"], cwd=repo)
    REPOS.append(repo)
    return repo


def _serve(server):
    server.start()
    gate = Gate(server.port)
    try:
        yield server, gate
        for _ in range(100):  # every client has exited: each forwarded connection is closed
            if not gate.connections:
                break
            time.sleep(0.05)
        assert not gate.connections, f"{len(gate.connections)} forwarded connections still open"
    finally:
        gate.close()
        server.stop()
        left = [pid for pid in server.pids if alive(pid)]
        assert not left, f"{type(server).__name__} processes left behind: {left}"


@pytest.fixture(scope="module")
def ssh_server(tmp_path_factory):
    if not SSHD.exists():
        pytest.skip("no /usr/sbin/sshd: apt-get install openssh-server (scripts/install-system-packages.sh)")
    pytest.importorskip("dvc_ssh", reason="pip install -e '.[ssh]'")
    yield from _serve(SSHServer(tmp_path_factory.mktemp("sshd")))


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory):
    pytest.importorskip("dvc_s3", reason="pip install -e '.[s3]'")
    pytest.importorskip("moto.server", reason="pip install -e '.[remotes-test]'")
    yield from _serve(S3Server(tmp_path_factory.mktemp("moto")))


_stores = iter(range(1000))


@pytest.fixture(params=["ssh", "s3"])
def remote(request, tmp_path) -> Remote:
    server, gate = request.getfixturevalue(f"{request.param}_server")
    gate.release()
    return Remote(request.param, server, gate, f"genex-{request.param}-{next(_stores)}", tmp_path / "home")


_PUSHED: set[str] = set()  # the kinds whose store "genex-<kind>-pushed" holds every object of origin


@pytest.fixture(params=["ssh", "s3"])
def pushed(request, origin, tmp_path) -> Remote:
    """A store that holds every object of ``origin``, origin configured to it: pushed once per
    kind, shared by the tests that pull (a whole push of the tiny run costs 5-10 s). A test
    that changes the store restores it."""
    server, gate = request.getfixturevalue(f"{request.param}_server")
    gate.release()
    kind, home = request.param, tmp_path / "home"
    remote = Remote(kind, server, gate, f"genex-{kind}-pushed", home, new=kind not in _PUSHED)
    if kind in _PUSHED:
        remote.configure(origin)
    else:
        push_all(origin, remote)
        _PUSHED.add(kind)
    return remote


def clone_of(origin: Path, remote: Remote, dst: Path) -> Path:
    sh(GIT + ["clone", "-q", str(origin), str(dst)], cwd=dst.parent)
    remote.configure(dst)
    REPOS.append(dst)
    return dst


def make(target: str, repo: Path, remote: Remote, check: bool = True) -> subprocess.CompletedProcess:
    return sh(MAKE + [target], cwd=repo, env=remote.env, check=check)


def push_all(origin: Path, remote: Remote) -> None:
    remote.configure(origin)
    make("push", origin, remote)
    assert set(remote.objects()) == set(cache_objects(origin))


def assert_same_outputs(clone: Path, origin: Path, remote: Remote) -> None:
    """Pulled outputs byte-identical, metrics too, and Snakemake has nothing to do."""
    assert output_files(clone) == output_files(origin)
    for metrics in origin.glob("results/**/metrics.json"):
        assert (clone / metrics.relative_to(origin)).read_bytes() == metrics.read_bytes()
    dry = sh(["snakemake", "-n", "--profile", "workflow/profiles/default"], cwd=clone, env=remote.env).stdout
    assert "Nothing to be done" in dry, dry


def assert_nothing_marked_current(clone: Path, remote: Remote) -> None:
    """No output checked out, nothing touched: Snakemake still sees work to do."""
    tracked = set(sh(["git", "ls-files"], cwd=clone).stdout.split())  # metrics: in git, not the cache
    present = [out for out in cached_outputs(clone) if (clone / out).exists() and out not in tracked]
    assert not present, f"checked out after a failed pull: {present}"
    assert not list(clone.glob(".snakemake/metadata/*")), "Snakemake metadata written after a failed pull"
    dry = sh(["snakemake", "-n", "--profile", "workflow/profiles/default"], cwd=clone, env=remote.env).stdout
    assert "Nothing to be done" not in dry
    for rel, path in cache_objects(clone).items():  # what did arrive is whole
        assert hashlib.md5(path.read_bytes()).hexdigest() == md5_name(rel), rel


def start_held(cmd: list[str], cwd: Path, remote: Remote, nbytes: int) -> subprocess.Popen:
    """Start ``cmd`` with the gate holding the transfer after ``nbytes``; return once held."""
    remote.gate.hold_after(nbytes)
    proc = subprocess.Popen(cmd, cwd=cwd, env=environment(remote.env), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    while not remote.gate.held.wait(0.2):
        if proc.poll() is not None:
            remote.gate.release()
            raise AssertionError(f"{' '.join(cmd)} ended ({proc.returncode}) before the transfer was held:\n"
                                 f"{proc.stdout.read()[-4000:]}")
    return proc


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the command and everything it started (make, pull.sh, dvc and its workers)."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    for _ in range(200):  # a member forked just before the signal gets one too
        group = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _pgid(p) == proc.pid
                 and alive(int(p.name))]
        if not group:
            return
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"processes of the killed command left: {group}")


def _pgid(proc_dir: Path) -> int | None:
    try:
        return int((proc_dir / "stat").read_text().rsplit(")", 1)[1].split()[2])
    except (OSError, IndexError, ValueError):
        return None


def third_of_the_data(repo: Path) -> int:
    return sum(p.stat().st_size for p in cache_objects(repo).values()) // 3


# --- round trips ---------------------------------------------------------------------------

def test_round_trip_push_fresh_clone_pull_nothing_to_do(origin, pushed, tmp_path):
    remote = pushed
    for rel in remote.objects():  # what the remote holds is what was cached
        assert remote.read(rel) == (origin / ".dvc/cache" / rel).read_bytes(), rel
    clone = clone_of(origin, remote, tmp_path / "clone")
    assert not list(clone.glob("results/*/section")), "outputs must come from the remote, not git"
    make("pull", clone, remote)
    assert_same_outputs(clone, origin, remote)
    assert "in sync" in sh(["dvc", "status", "-c"], cwd=clone, env=remote.env).stdout
    tracked = sh(GIT + ["ls-files"], cwd=clone).stdout.split()
    assert ".dvc/config.local" not in tracked and "shared" not in (clone / ".dvc/config").read_text()


# --- faults --------------------------------------------------------------------------------

def test_push_killed_mid_transfer_then_rerun_completes(origin, remote):
    remote.configure(origin)
    n = len(cache_objects(origin))
    proc = start_held(MAKE + ["push"], origin, remote, third_of_the_data(origin))
    arrived = len(remote.objects())
    kill_group(proc)
    remote.gate.release()
    assert 0 < arrived < n, f"{arrived} of {n} objects in the remote when the push was killed"
    make("push", origin, remote)
    assert "in sync" in sh(["dvc", "status", "-c"], cwd=origin, env=remote.env).stdout
    stored = remote.objects()
    assert set(stored) == set(cache_objects(origin))
    for rel in stored:
        assert remote.read(rel) == (origin / ".dvc/cache" / rel).read_bytes(), rel


def test_pull_killed_mid_transfer_then_rerun_completes(origin, pushed, tmp_path):
    remote = pushed
    clone = clone_of(origin, remote, tmp_path / "clone")
    n = len(cache_objects(origin))
    proc = start_held(MAKE + ["pull"], clone, remote, third_of_the_data(origin))
    arrived = len(cache_objects(clone))
    kill_group(proc)
    remote.gate.release()
    assert 0 < arrived < n, f"{arrived} of {n} objects in the clone's cache when the pull was killed"
    make("pull", clone, remote)
    assert_same_outputs(clone, origin, remote)
    assert "in sync" in sh(["dvc", "status", "-c"], cwd=clone, env=remote.env).stdout


def test_object_tampered_in_the_remote_is_named_and_nothing_marked_current(origin, pushed, tmp_path):
    remote = pushed
    owners = verify_cache.owners(origin / ".dvc/cache/files/md5", origin / "dvc.lock")
    rel = next(r for r in sorted(remote.objects()) if not r.endswith(".dir")
               and any(p.startswith("results/") for p in owners.get(md5_name(r), [])))
    data = remote.read(rel)
    remote.write(rel, bytes([data[0] ^ 0xFF]) + data[1:])  # same size, other content
    try:
        clone = clone_of(origin, remote, tmp_path / "clone")
        pulled = make("pull", clone, remote, check=False)
        err = pulled.stdout + pulled.stderr
        assert pulled.returncode != 0, err
        line = next((x for x in err.splitlines() if rel in x), None)
        assert line and "damaged" in line and owners[md5_name(rel)][0] in line, err
        assert_nothing_marked_current(clone, remote)
        again = make("pull", clone, remote, check=False)  # fetched again, refused again
        assert again.returncode != 0 and rel in again.stderr, again.stdout + again.stderr
    finally:
        remote.write(rel, data)  # the store is shared with the other pulls


# moto killed mid-pull leaves the S3 client retrying for many minutes without a word:
# pull.sh gives up when no byte has arrived for GENEX_PULL_STALL seconds (600 by default)
def test_server_gone_mid_pull_is_a_clear_error_and_the_workspace_stays_consistent(origin, pushed, tmp_path):
    remote = pushed
    clone = clone_of(origin, remote, tmp_path / "clone")
    # 20 s: with 12 a loaded machine's pull stalled while DVC listed the remote, before any transfer
    remote.env["GENEX_PULL_STALL"] = "20"
    proc = start_held(MAKE + ["pull"], clone, remote, third_of_the_data(origin))
    del remote.env["GENEX_PULL_STALL"]  # the pulls below run with the default
    try:
        remote.server.stop()  # the listener and its sessions
        remote.gate.release()
        t0 = time.monotonic()
        out = proc.communicate(timeout=600)[0]
        print(f"{remote.kind}: the pull failed {time.monotonic() - t0:.0f} s after the server went away")
        assert proc.returncode != 0, out
        assert "pull.sh: error: dvc fetch from remote 'shared' " in out, out
        assert "nothing was checked out or marked current" in out, out
        assert_nothing_marked_current(clone, remote)
    finally:
        remote.gate.release()
        if remote.server.proc is None:
            remote.server.start()  # same port: the configuration stays valid
    if remote.kind == "s3":  # moto keeps its objects in memory: the store is empty again
        remote.make_bucket()
        make("push", origin, remote)
    make("pull", clone, remote)
    assert_same_outputs(clone, origin, remote)


# --- experiments ---------------------------------------------------------------------------

def find_exp(table, name: str) -> dict:
    """The ``data`` of the experiment called ``name`` in `dvc exp show --json`."""
    if isinstance(table, dict):
        if table.get("name") == name and "data" in table:
            return table["data"]
        table = list(table.values())
    if isinstance(table, list):
        for item in table:
            if isinstance(item, (dict, list)) and (found := find_exp(item, name)):
                return found
    return {}


@pytest.mark.parametrize("kind", ["s3"])
def test_experiment_pushed_and_pulled_by_a_colleague_shows_the_same_numbers(origin, kind, tmp_path, request):
    server, gate = request.getfixturevalue(f"{kind}_server")
    gate.release()
    remote = Remote(kind, server, gate, "genex-exp", tmp_path / "home")
    bare = tmp_path / "shared.git"
    sh(["git", "init", "-q", "--bare", "-b", "main", str(bare)], cwd=tmp_path)
    REPOS.append(bare)
    sh(GIT + ["remote", "add", "lab", str(bare)], cwd=origin)
    sh(GIT + ["push", "-q", "lab", "main"], cwd=origin)
    remote.configure(origin)
    # a post-processing parameter: the experiment reruns two rules, its outputs still go through the remote
    sh(["dvc", "exp", "run", "-n", "median9", "-S", "config/config.yaml:vocal.evaluate.median_frames=9"],
       cwd=origin, env=remote.env)
    sh(["dvc", "exp", "push", "lab", "median9"], cwd=origin, env=remote.env)
    colleague = tmp_path / "colleague"
    sh(GIT + ["clone", "-q", str(bare), str(colleague)], cwd=tmp_path)
    remote.configure(colleague)
    REPOS.append(colleague)
    sh(["dvc", "exp", "pull", "origin", "median9"], cwd=colleague, env=remote.env)
    ours, theirs = ({k: v for k, v in find_exp(json.loads(sh(["dvc", "exp", "show", "--json"], cwd=repo,
                                                                env=remote.env).stdout), "median9").items()
                     if k in ("metrics", "params")} for repo in (origin, colleague))
    assert ours["metrics"] and ours == theirs
    diffs = [json.loads(sh(["dvc", "metrics", "diff", "main", "median9", "--json"], cwd=repo,
                           env=remote.env).stdout) for repo in (origin, colleague)]
    assert diffs[0] and diffs[0] == diffs[1]
    assert any(c["old"] != c["new"] for m in diffs[0].values() for c in m.values()), diffs[0]
    # the experiment's outputs came through the DVC remote too
    sh(["dvc", "exp", "apply", "median9"], cwd=colleague, env=remote.env)
    sh(["dvc", "checkout"], cwd=colleague, env=remote.env)
    assert output_files(colleague) == output_files(origin)


# --- no credentials in the repositories ----------------------------------------------------

def test_no_credentials_in_tracked_files(request):
    """After the round trips: no key, secret or endpoint the tests used in any tracked file."""
    secrets = []
    for kind in ("ssh", "s3"):
        server, _ = request.getfixturevalue(f"{kind}_server")
        secrets += server.secrets()
    assert REPOS, "run with the round trips"
    for repo in REPOS + [REPO]:
        # every commit of the test repositories (experiments too); the project's own files
        revs = sh(["git", "rev-list", "--all"], cwd=repo).stdout.split() if repo != REPO else []
        hits = sh(["git", "grep", "-l", "-F", *sum((["-e", s] for s in secrets), []), *revs],
                  cwd=repo, check=False)
        assert hits.returncode == 1, f"credentials in {repo}: {hits.stdout}"
        assert ".dvc/config.local" not in sh(["git", "ls-files"], cwd=repo).stdout
        for rev in revs:
            config = sh(["git", "show", f"{rev}:.dvc/config"], cwd=repo, check=False).stdout
            assert not re.search(r"endpointurl|keyfile|127\.0\.0\.1", config), (repo, rev, config)
