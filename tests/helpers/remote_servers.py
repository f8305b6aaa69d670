"""Servers for the remote tests, started on 127.0.0.1 by the tests themselves.

* :class:`SSHServer`: Debian's OpenSSH ``sshd`` with its own config, host key and
  authorized key in a temporary folder; clients log in by key as the user running the tests
  (sshd started by that user can only log that user in) and the store is a temporary folder.
* :class:`S3Server`: moto's server mode, an *emulator* of the S3 API (not AWS), with
  credentials the tests pass to DVC by environment only.
* :class:`Gate`: a TCP forwarder between DVC and a server. It counts the bytes it passes
  and can hold the flow once a budget is spent, so a test can kill a transfer, or the
  server, at a point that depends on progress rather than on time.
"""

from __future__ import annotations

import getpass
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

BIN = Path(sys.executable).parent
SSHD = Path("/usr/sbin/sshd")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, what: str, log: Path) -> None:
    """Until ``port`` accepts a connection; fails with the server's log if it exits first."""
    for _ in range(600):
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited ({proc.returncode}) before listening on {port}: "
                               f"{log.read_text(errors='replace')[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} does not listen on 127.0.0.1:{port}; log: {log}")


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (sshd forks a process per connection)."""
    tree, out, todo = _children(), [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += tree.get(p, [])
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")  # a zombie has stopped; its parent reaps it


def kill_tree(proc: subprocess.Popen) -> list[int]:
    """SIGKILL a server and every process it forked; returns the pids that were killed."""
    pids = process_tree(proc.pid) if proc.poll() is None else []
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()
    for _ in range(100):
        if not any(alive(p) for p in pids):
            break
        time.sleep(0.05)
    return pids


class Gate:
    """Forwards 127.0.0.1:``port`` to 127.0.0.1:``upstream``, holding the flow on request."""

    def __init__(self, upstream: int):
        self.upstream = upstream
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.cond = threading.Condition()
        self.passed = 0
        self.limit: int | None = None
        self.held = threading.Event()
        self.closed = False
        self.connections: dict[tuple, int] = {}  # (client, upstream) -> its pumps still running
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.server.accept()
            except OSError:
                if self.closed:
                    return
                time.sleep(0.05)  # e.g. out of descriptors for a moment: keep serving
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream), timeout=10)
                upstream.settimeout(None)
                for s in (client, upstream):  # SFTP is many small round trips: no Nagle delay
                    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:  # server gone, or a killed client's connection: drop it, keep accepting
                client.close()
                continue
            pair = (client, upstream)
            with self.cond:
                self.connections[pair] = 2
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst, pair), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, pair: tuple) -> None:
        try:
            while data := src.recv(65536):
                with self.cond:
                    while self.limit is not None and self.passed >= self.limit and not self.closed:
                        self.held.set()
                        self.cond.wait()
                    self.passed += len(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            with self.cond:  # the second pump of a connection closes it: S3 clients open
                self.connections[pair] -= 1  # thousands, and leaked descriptors stop accept()
                done = self.connections[pair] == 0
                if done:
                    del self.connections[pair]
            if done:
                for s in pair:
                    s.close()

    def hold_after(self, nbytes: int) -> None:
        """Stop forwarding once ``nbytes`` more have passed (``held`` is set then)."""
        with self.cond:
            self.held.clear()
            self.limit = self.passed + nbytes

    def release(self) -> None:
        with self.cond:
            self.limit = None
            self.cond.notify_all()

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()
            socks = [s for pair in self.connections for s in pair]
        self.server.close()
        for s in socks:
            try:
                s.close()
            except OSError:
                pass


class SSHServer:
    """``sshd -D`` on 127.0.0.1, key authentication only, config and keys in ``root``."""

    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.user = getpass.getuser()
        self.port = free_port()
        self.host_key = root / "ssh_host_ed25519_key"
        self.client_key = root / "id_ed25519"
        for key in (self.host_key, self.client_key):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "genex-test",
                            "-f", str(key)], check=True)
        shutil.copy(f"{self.client_key}.pub", root / "authorized_keys")
        self.config = root / "sshd_config"
        self.config.write_text(
            f"ListenAddress 127.0.0.1\nHostKey {self.host_key}\n"
            f"AuthorizedKeysFile {root / 'authorized_keys'}\nPidFile {root / 'sshd.pid'}\n"
            "PubkeyAuthentication yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\n"
            "Subsystem sftp internal-sftp\nMaxSessions 64\nMaxStartups 64\n")
        self.log = root / "sshd.log"
        self.proc: subprocess.Popen | None = None
        self.pids: set[int] = set()

    def start(self) -> None:
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation dir
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(self.config), "-p", str(self.port)],
                                         stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.pids.add(self.proc.pid)
        wait_for_port(self.port, self.proc, "sshd", self.log)

    def stop(self) -> None:
        """The listener and every session it forked (a session outlives a stopped listener)."""
        if self.proc is not None:
            self.pids |= set(kill_tree(self.proc))
            self.proc = None

    def known_hosts_line(self, port: int) -> str:
        key = Path(f"{self.host_key}.pub").read_text().split()
        return f"[127.0.0.1]:{port} {key[0]} {key[1]}\n"

    def secrets(self) -> list[str]:
        """Strings that must never reach a tracked file: the key material."""
        private = [line for line in self.client_key.read_text().splitlines() if "PRIVATE KEY" not in line]
        return [*private, Path(f"{self.client_key}.pub").read_text().split()[1]]


class S3Server:
    """moto's S3 API emulator (``moto_server``) on 127.0.0.1; credentials made up per session."""

    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.access_key = "AKIA" + secrets.token_hex(8).upper()
        self.secret_key = secrets.token_urlsafe(30)
        self.log = root / "moto.log"
        self.proc: subprocess.Popen | None = None
        self.pids: set[int] = set()

    @property
    def env(self) -> dict[str, str]:
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key,
                "AWS_DEFAULT_REGION": "us-east-1",
                # nobody's ~/.aws may leak in, nor a real endpoint be used
                "AWS_CONFIG_FILE": str(self.root / "no-aws-config"),
                "AWS_SHARED_CREDENTIALS_FILE": str(self.root / "no-aws-credentials"),
                "AWS_EC2_METADATA_DISABLED": "true"}

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(self.port)],
                                         stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.pids.add(self.proc.pid)
        wait_for_port(self.port, self.proc, "moto_server", self.log)

    def stop(self) -> None:
        if self.proc is not None:
            self.pids |= set(kill_tree(self.proc))
            self.proc = None

    def client(self):
        import boto3  # dvc-s3 brings it

        return boto3.client("s3", endpoint_url=f"http://127.0.0.1:{self.port}", region_name="us-east-1",
                            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key)

    def secrets(self) -> list[str]:
        return [self.access_key, self.secret_key]
