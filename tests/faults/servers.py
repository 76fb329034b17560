"""Private database servers for fault tests: started on free loopback ports, killed,
frozen and restarted by the tests, never the shared servers.

PostgreSQL runs as the ``postgres`` user (``initdb``/``pg_ctl`` refuse root);
MariaDB runs ``mariadbd --no-defaults`` on a data directory of its own.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

__all__ = ["MariaDBServer", "PostgresServer", "free_port", "missing_binaries"]

PG_BIN = Path(
    subprocess.run(
        ["pg_config", "--bindir"], capture_output=True, text=True, check=False
    ).stdout.strip()
    or "/usr/lib/postgresql/15/bin"
)


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def missing_binaries() -> list[str]:
    """Server programs the fault tests need that this machine lacks."""
    needed = [PG_BIN / "initdb", PG_BIN / "pg_ctl", Path("/usr/sbin/mariadbd")]
    found = [p for p in needed if p.exists()]
    missing = [str(p) for p in needed if p not in found]
    if shutil.which("mariadb-install-db") is None:
        missing.append("mariadb-install-db")
    return missing


def _wait_port(port: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {seconds} s")


def _tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True)
    children: dict[int, list[int]] = {}
    for line in out.stdout.splitlines():
        child, parent = (int(x) for x in line.split())
        children.setdefault(parent, []).append(child)
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(children.get(p, []))
    return found


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


class _Server:
    port: int
    pid: int | None = None

    def _pids(self) -> list[int]:
        return _tree(self.pid) if self.pid else []

    def kill(self) -> None:
        """kill -9 the server and every process it started (a crash)."""
        pids = self._pids()
        _signal_all(pids, signal.SIGKILL)
        for pid in pids:
            self._reap(pid)
        self.pid = None

    def _reap(self, pid: int) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.02)

    def freeze(self) -> None:
        """SIGSTOP the server and its processes: it accepts nothing, answers nothing."""
        _signal_all(self._pids(), signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT: the frozen server goes on."""
        _signal_all(self._pids(), signal.SIGCONT)


class PostgresServer(_Server):
    """A PostgreSQL cluster of its own under ``base``, trust auth, user ``postgres``."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.data = base / "pgdata"
        self.port = free_port()

    def _as_postgres(self, *cmd: str, timeout: float = 60) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", *cmd],
            check=True,
            capture_output=True,
            timeout=timeout,
        )

    def create(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        self.base.chmod(0o777)
        self._as_postgres(
            str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres"
        )
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"port = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.base}'\nfsync = on\n"
                "max_connections = 60\nshared_buffers = 32MB\n"
            )

    def start(self) -> None:
        log = self.base / "server.log"
        self._as_postgres(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(log), "-w", "-t", "60", "start"
        )
        self.pid = int((self.data / "postmaster.pid").read_text().split()[0])
        _wait_port(self.port, 30)

    def stop(self) -> None:
        if self.pid is None:
            return
        self.thaw()
        with contextlib.suppress(subprocess.SubprocessError):
            self._as_postgres(
                str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"
            )
        self.kill()

    def url(self, database: str = "postgres", query: str = "") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}" + (
            f"?{query}" if query else ""
        )


class MariaDBServer(_Server):
    """A MariaDB server of its own under ``base``, user ``root`` without a password."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.data = base / "data"
        self.port = free_port()
        self._proc: subprocess.Popen[bytes] | None = None

    def create(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                "mariadb-install-db",
                "--no-defaults",
                f"--datadir={self.data}",
                "--user=root",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )

    def start(self) -> None:
        self._proc = subprocess.Popen(
            [
                "/usr/sbin/mariadbd",
                "--no-defaults",
                f"--datadir={self.data}",
                f"--port={self.port}",
                f"--socket={self.base / 'mysqld.sock'}",
                f"--pid-file={self.base / 'mysqld.pid'}",
                f"--log-error={self.base / 'error.log'}",
                "--bind-address=127.0.0.1",
                "--user=root",
                "--skip-name-resolve",
                "--innodb-buffer-pool-size=32M",
                "--innodb-flush-log-at-trx-commit=1",
                "--max-connections=80",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.pid = self._proc.pid
        _wait_port(self.port, 60)

    def kill(self) -> None:
        super().kill()
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(10)
            self._proc = None

    def stop(self) -> None:
        if self.pid is None:
            return
        self.thaw()
        self.kill()

    def url(self, database: str = "mysql", query: str = "") -> str:
        return f"mysql://root@127.0.0.1:{self.port}/{database}" + (f"?{query}" if query else "")
