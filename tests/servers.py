"""Database servers of the tests' own, on loopback only: single servers for the fault
suite, a PostgreSQL primary with a synchronous standby, and a 3-node MariaDB Galera
cluster. Never the shared servers on 5432/3306.

PostgreSQL runs as the ``postgres`` user (``initdb``/``pg_ctl`` refuse root);
MariaDB runs ``mariadbd`` on data directories of its own. As a command it starts
and stops the shared cluster targets of the test suite (see ``tests/clusters/``)::

    python tests/servers.py galera|pg-ha start|stop|status
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

__all__ = [
    "GaleraCluster",
    "MariaDBServer",
    "PgHaCluster",
    "PostgresServer",
    "free_port",
    "missing_binaries",
]

PG_BIN = Path(
    subprocess.run(
        ["pg_config", "--bindir"], capture_output=True, text=True, check=False
    ).stdout.strip()
    or "/usr/lib/postgresql/15/bin"
)
GALERA = Path("/usr/lib/galera/libgalera_smm.so")
#: Where the shared cluster targets live, and their SQL ports.
CLUSTERS = Path(os.environ.get("TEST_CLUSTERS_DIR", "/tmp/kaizen-test-clusters"))
GALERA_PORTS = (4401, 4402, 4403)
PG_HA_PORTS = (5501, 5502)  # primary, standby


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    """Terminate ``proc`` and reap it (killed when it does not end within ``timeout``)."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def missing_binaries(*, galera: bool = False) -> list[str]:
    """Server programs the tests need that this machine lacks."""
    needed = [PG_BIN / "initdb", PG_BIN / "pg_ctl", Path("/usr/sbin/mariadbd")]
    if galera:
        needed += [GALERA, PG_BIN / "pg_basebackup"]
    missing = [str(p) for p in needed if not p.exists()]
    for program in ("mariadb-install-db", "mariadb", *(("rsync",) if galera else ())):
        if shutil.which(program) is None:
            missing.append(program)
    return missing


def _listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
        return True
    return False


def _wait_port(port: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not _listening(port):
        if time.monotonic() > deadline:
            raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {seconds} s")
        time.sleep(0.05)


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


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


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
        while time.monotonic() < deadline and _alive(pid):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.02)

    def freeze(self) -> None:
        """SIGSTOP the server and its processes: it accepts nothing, answers nothing."""
        _signal_all(self._pids(), signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT: the frozen server goes on."""
        _signal_all(self._pids(), signal.SIGCONT)


def _as_postgres(*cmd: str, timeout: float = 120) -> str:
    done = subprocess.run(
        ["runuser", "-u", "postgres", "--", *cmd],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode:
        raise RuntimeError(f"{cmd[0]} failed: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


class PostgresServer(_Server):
    """A PostgreSQL cluster of its own under ``base``, trust auth, user ``postgres``."""

    def __init__(self, base: Path, port: int | None = None) -> None:
        self.base = base
        self.data = base / "pgdata"
        self.port = port or free_port()

    def create(self, settings: str = "") -> None:
        """initdb, listening on 127.0.0.1 only; ``settings`` go into postgresql.conf."""
        self.base.mkdir(parents=True, exist_ok=True)
        self.base.chmod(0o777)
        _as_postgres(str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"port = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.base}'\nfsync = on\n"
                f"max_connections = 80\nshared_buffers = 32MB\n{settings}"
            )

    def start(self) -> None:
        log = self.base / "server.log"
        _as_postgres(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(log), "-w", "-t", "60", "start"
        )
        self.adopt()
        _wait_port(self.port, 30)

    def adopt(self) -> bool:
        """Find the running postmaster from its pid file; False if none runs."""
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int((self.data / "postmaster.pid").read_text().split()[0])
            if _alive(pid):
                self.pid = pid
                return True
        return False

    def sql(self, statement: str) -> str:
        """Run one statement with psql; its output, tuples only."""
        return _as_postgres(
            "psql",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "-At",
            "-c",
            statement,
        ).strip()

    def stop(self) -> None:
        if self.pid is None and not self.adopt():
            return
        self.thaw()
        with contextlib.suppress(RuntimeError, subprocess.SubprocessError):
            _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        self.kill()

    def url(self, database: str = "postgres", query: str = "") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}" + (
            f"?{query}" if query else ""
        )


class PgHaCluster:
    """A PostgreSQL primary and a synchronous standby (``standby1``) streaming from it."""

    def __init__(self, base: Path, ports: tuple[int, int] | None = None) -> None:
        primary, standby = ports or (free_port(), free_port())
        self.base = base
        self.primary = PostgresServer(base / "primary", primary)
        self.standby = PostgresServer(base / "standby", standby)

    def create(self) -> None:
        """The primary (started: the standby is a base backup of it) and the standby."""
        self.base.mkdir(parents=True, exist_ok=True)
        self.base.chmod(0o777)
        self.primary.create(
            "wal_level = replica\nmax_wal_senders = 10\nhot_standby = on\n"
            "synchronous_standby_names = 'standby1'\n"
        )
        with (self.primary.data / "pg_hba.conf").open("a") as hba:
            hba.write("host replication postgres 127.0.0.1/32 trust\n")
        self.primary.start()
        standby = self.standby
        standby.base.mkdir(parents=True, exist_ok=True)
        standby.base.chmod(0o777)
        _as_postgres(
            str(PG_BIN / "pg_basebackup"),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.primary.port),
            "-U",
            "postgres",
            "-D",
            str(standby.data),
            "-R",
            "-X",
            "stream",
        )
        # -R writes primary_conninfo into postgresql.auto.conf, which overrides
        # postgresql.conf: the standby's own settings go there, after it.
        with (standby.data / "postgresql.auto.conf").open("a") as auto:
            auto.write(
                f"port = {standby.port}\nunix_socket_directories = '{standby.base}'\n"
                f"primary_conninfo = 'host=127.0.0.1 port={self.primary.port} user=postgres "
                "application_name=standby1'\n"
            )

    def start(self) -> None:
        if not self.primary.adopt():
            self.primary.start()
        self.standby.start()
        self.wait_synchronous()

    def wait_synchronous(self, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while self.primary.sql("SELECT sync_state FROM pg_stat_replication") != "sync":
            if time.monotonic() > deadline:
                raise RuntimeError("the standby did not become synchronous")
            time.sleep(0.1)

    def create_database(self, name: str, seconds: float = 30) -> None:
        """CREATE DATABASE on the primary, and wait until the standby has replayed it (a
        multi-host URL lists the standby first: a host without it is an error)."""
        self.primary.sql(f'CREATE DATABASE "{name}"')
        deadline = time.monotonic() + seconds
        while self.standby.sql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'") != "1":
            if time.monotonic() > deadline:
                raise RuntimeError(f"the standby never replayed CREATE DATABASE {name}")
            time.sleep(0.05)

    def running(self) -> bool:
        return all(s.adopt() and _listening(s.port) for s in (self.primary, self.standby))

    def failover(self) -> None:
        """The primary crashes (its whole process tree), the standby is promoted."""
        self.primary.kill()
        _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.standby.data), "-w", "promote")
        # Its copy of the primary's settings still waits for a synchronous standby of
        # its own, which it has not: an HA manager clears it on promotion.
        self.standby.sql("ALTER SYSTEM SET synchronous_standby_names = ''")
        self.standby.sql("SELECT pg_reload_conf()")

    def stop(self) -> None:
        self.standby.stop()
        self.primary.stop()

    def url(self, database: str = "postgres", query: str = "") -> str:
        """The multi-host URL, standby first: only the read-write server is taken."""
        hosts = f"127.0.0.1:{self.standby.port},127.0.0.1:{self.primary.port}"
        attrs = "target_session_attrs=read-write"
        return f"postgresql://postgres@{hosts}/{database}?{attrs}" + (f"&{query}" if query else "")


class MariaDBServer(_Server):
    """A MariaDB server of its own under ``base``, user ``root`` without a password.

    Args:
        base: Its directory.
        port: Its SQL port (a free one by default).
        settings: ``[mysqld]`` lines for a defaults file (a Galera node); without
            them it runs with ``--no-defaults`` and command-line settings.
    """

    def __init__(self, base: Path, port: int | None = None, settings: str = "") -> None:
        self.base = base
        self.data = base / "data"
        self.port = port or free_port()
        self.settings = settings
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
        if self.settings:
            cnf = self.base / "my.cnf"  # ignored by mariadbd if world-writable
            cnf.write_text("[mysqld]\n" + self._common() + self.settings)
            cnf.chmod(0o644)

    def _common(self) -> str:
        return (
            f"datadir={self.data}\nport={self.port}\nsocket={self.base / 'mysqld.sock'}\n"
            f"pid-file={self.base / 'mysqld.pid'}\nlog-error={self.base / 'error.log'}\n"
            "bind-address=127.0.0.1\nuser=root\nskip-name-resolve\n"
            "innodb-buffer-pool-size=32M\ninnodb-flush-log-at-trx-commit=1\n"
            "max-connections=120\n"
        )

    def start(self, *extra: str, wait: bool = True) -> None:
        if self.settings:
            command = ["/usr/sbin/mariadbd", f"--defaults-file={self.base / 'my.cnf'}", *extra]
        else:
            settings = [f"--{line}" for line in self._common().splitlines()]
            command = ["/usr/sbin/mariadbd", "--no-defaults", *settings, *extra]
        # rsync state transfer runs as nobody: files it reads or writes must let it.
        env = {**os.environ, "UMASK": "0666", "UMASK_DIR": "0777"}
        self._proc = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # outlives the command that started it
        )
        self.pid = self._proc.pid
        if wait:
            _wait_port(self.port, 120)

    def adopt(self) -> bool:
        with contextlib.suppress(OSError, ValueError):
            pid = int((self.base / "mysqld.pid").read_text().strip())
            if _alive(pid):
                self.pid = pid
                return True
        return False

    def sql(self, statement: str) -> str:
        done = subprocess.run(
            [
                "mariadb",
                "-h",
                "127.0.0.1",
                "-P",
                str(self.port),
                "-uroot",
                "-N",
                "-B",
                "-e",
                statement,
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if done.returncode:
            raise RuntimeError(done.stderr.strip())
        return done.stdout.strip()

    def kill(self) -> None:
        super().kill()
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(10)
            self._proc = None

    def stop(self) -> None:
        if self.pid is None and not self.adopt():
            return
        self.thaw()
        self.kill()

    def url(self, database: str = "mysql", query: str = "") -> str:
        return f"mysql://root@127.0.0.1:{self.port}/{database}" + (f"?{query}" if query else "")


class GaleraCluster:
    """Three MariaDB Galera nodes on loopback (multi-primary, synchronous replication)."""

    def __init__(self, base: Path, ports: tuple[int, ...] | None = None) -> None:
        ports = ports or tuple(free_port() for _ in range(3))
        self.base = base
        group = [(free_port(), free_port(), free_port()) for _ in ports]
        if ports == GALERA_PORTS:  # the shared cluster: fixed ports, next to its SQL ports
            group = [(p + 10, p + 20, p + 30) for p in ports]
        members = ",".join(f"127.0.0.1:{g[0]}" for g in group)
        self.nodes = [
            MariaDBServer(
                base / f"node{i + 1}",
                port,
                "wsrep_on=ON\n"
                f"wsrep_provider={GALERA}\n"
                f"wsrep_cluster_address=gcomm://{members}\n"
                f"wsrep_node_address=127.0.0.1:{gcomm}\n"
                f'wsrep_provider_options="gmcast.listen_addr=tcp://127.0.0.1:{gcomm};'
                f'ist.recv_addr=127.0.0.1:{ist}"\n'
                f"wsrep_sst_method=rsync\nwsrep_sst_receive_address=127.0.0.1:{sst}\n"
                "wsrep_cluster_name=kaizen_test\nbinlog_format=ROW\n"
                "innodb_autoinc_lock_mode=2\ndefault_storage_engine=InnoDB\n",
            )
            for i, (port, (gcomm, ist, sst)) in enumerate(zip(ports, group, strict=True))
        ]

    def create(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        for node in self.nodes:
            node.create()
        subprocess.run(["chmod", "-R", "a+rwX", str(self.base)], check=True)
        for node in self.nodes:  # mariadbd ignores a world-writable defaults file
            (node.base / "my.cnf").chmod(0o644)

    def start(self) -> None:
        """Bootstrap the first node, then join the others one at a time."""
        for i, node in enumerate(self.nodes):
            node.start(*(["--wsrep-new-cluster"] if i == 0 else []))
            self.wait_synced(node)

    def wait_synced(self, node: MariaDBServer, seconds: float = 120) -> None:
        deadline = time.monotonic() + seconds
        while True:
            with contextlib.suppress(RuntimeError):
                state = node.sql("SHOW STATUS LIKE 'wsrep_local_state_comment'")
                if state.split()[-1:] == ["Synced"]:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"Galera node on {node.port} did not sync")
            time.sleep(0.2)

    def running(self) -> bool:
        return all(n.adopt() and _listening(n.port) for n in self.nodes)

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.stop()

    def url(self, node: int = 0, database: str = "mysql", query: str = "") -> str:
        return self.nodes[node].url(database, query)


def _shared(kind: str) -> PgHaCluster | GaleraCluster:
    if kind == "galera":
        return GaleraCluster(CLUSTERS / "galera", GALERA_PORTS)
    return PgHaCluster(CLUSTERS / "pg-ha", PG_HA_PORTS)


def main(argv: list[str]) -> int:
    """``servers.py galera|pg-ha start|stop|status``: the shared cluster targets."""
    if (
        len(argv) != 2
        or argv[0] not in ("galera", "pg-ha")
        or argv[1]
        not in (
            "start",
            "stop",
            "status",
        )
    ):
        print("usage: servers.py galera|pg-ha start|stop|status", file=sys.stderr)
        return 2
    kind, action = argv
    cluster = _shared(kind)
    if action == "status":
        up = cluster.running()
        print(f"{kind}: {'running' if up else 'down'}")
        return 0 if up else 1
    if action == "stop" or not cluster.running():
        # A stopped cluster is simplest started afresh (Galera's bootstrap rules, a
        # standby's state): its data is test data.
        cluster.stop()
        shutil.rmtree(cluster.base, ignore_errors=True)
    if action == "start" and not cluster.running():
        cluster.create()
        cluster.start()
        print(f"{kind}: started")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
