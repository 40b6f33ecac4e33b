"""A throwaway PostgreSQL cluster that a test may break: terminate its backends, stop, restart.

The machine's own PostgreSQL (5432) is shared by everybody and must never be broken; this one is
`initdb`-ed into a temporary directory, listens on a spare loopback port and its socket lives in
that directory too. `initdb` and the server refuse to run as root, so when the tests run as root
they run as the `postgres` OS user (`runuser`), which owns the directory.

    with ThrowawayPostgres() as pg:
        pg.create_database("energy")
        url = pg.url("energy")          # postgres://postgres@127.0.0.1:<port>/energy
        pg.terminate_backends("energy") # every client connection of that database is cut
        pg.stop(); pg.start()           # the server is down in between
        with pg.replica() as standby:   # a streaming replica (`pg_basebackup -R`) of it
            standby.wait_for_replay()   # everything committed on pg so far is readable there
"""

import glob
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from testsupport.servers import free_port

OS_USER = "postgres"


def postgres_bindir() -> Path:
    """The directory of `initdb` and `pg_ctl`: `pg_config --bindir`, else Debian's newest."""
    try:
        found = subprocess.run(
            ["pg_config", "--bindir"], capture_output=True, text=True, check=True
        ).stdout.strip()
        if (Path(found) / "initdb").exists():
            return Path(found)
    except (OSError, subprocess.CalledProcessError):
        pass
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version_key)
    if candidates:
        return Path(candidates[-1]).parent
    if shutil.which("initdb"):
        return Path(shutil.which("initdb")).parent
    raise RuntimeError("No initdb found: install PostgreSQL's server (scripts/test does).")


def _version_key(path: str) -> int:
    version = Path(path).parent.parent.name
    return int(version) if version.isdigit() else 0


class ThrowawayPostgres:
    """A private PostgreSQL server for one test (or one benchmark run), for a `with` block."""

    def __init__(self, *, primary: "ThrowawayPostgres | None" = None) -> None:
        """A new cluster; with `primary` (running), a streaming replica of it instead."""
        self.bindir = postgres_bindir()
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="energy-throwaway-pg-"))
        self.data = self.root / "data"
        self.log_path = self.root / "server.log"
        self.primary = primary
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.root, user=OS_USER, group=OS_USER)
        if primary is None:
            self._run(
                "initdb",
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-sync",
            )
        else:
            # A copy of the running primary; -R writes standby.signal and primary_conninfo.
            self._run(
                "pg_basebackup",
                "-D",
                str(self.data),
                "-h",
                "127.0.0.1",
                "-p",
                str(primary.port),
                "-U",
                "postgres",
                "-R",
                "-X",
                "stream",
                "--checkpoint=fast",
                "--no-sync",
            )
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.root}'",
            "max_connections": "60",
            "shared_buffers": "32MB",
            # Acknowledged means durable here too: a restart must not lose a committed reading.
            "fsync": "on",
            "synchronous_commit": "on",
            "log_min_messages": "warning",
            # A primary feeds replicas (tests of read routing): a few WAL senders, and a replica
            # answers reads while it replays.
            "wal_level": "replica",
            "max_wal_senders": "5",
            "hot_standby": "on",
            "wal_receiver_status_interval": "1s",
        }
        if primary is not None:
            settings["fsync"] = "off"  # a copy: nothing is acknowledged from it
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write("\n# testsupport.postgres.ThrowawayPostgres\n")
            conf.writelines(f"{name} = {value}\n" for name, value in settings.items())

    def __enter__(self) -> "ThrowawayPostgres":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.destroy()

    def url(self, database: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        self._pg_ctl("start", "-l", str(self.log_path))

    def stop(self) -> None:
        """A fast shutdown: open transactions roll back, clients are disconnected."""
        self._pg_ctl("stop", "-m", "fast")

    def restart(self) -> None:
        self._pg_ctl("restart", "-m", "fast", "-l", str(self.log_path))

    def is_running(self) -> bool:
        status = self._run("pg_ctl", "status", "-D", str(self.data), check=False)
        return status.returncode == 0

    def create_database(self, name: str) -> None:
        with self.connect() as admin:
            admin.execute(f'CREATE DATABASE "{name}"')

    def connect(self, database: str = "postgres") -> psycopg.Connection:
        """A superuser connection in autocommit mode (the caller closes it)."""
        return psycopg.connect(self.url(database), autocommit=True, connect_timeout=5)

    def terminate_backends(self, database: str) -> int:
        """Cut every client connection to `database` (as an operator's `pg_terminate_backend`)."""
        with self.connect() as admin:
            row = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                [database],
            ).fetchone()
        return row[0]

    def replica(self) -> "ThrowawayPostgres":
        """A new streaming replica of this (running) server, not started yet; `with` starts it."""
        return ThrowawayPostgres(primary=self)

    def wait_for_replay(self, *, timeout: float = 20.0) -> None:
        """Return once this replica has replayed everything its primary has written so far."""
        if self.primary is None:
            raise RuntimeError("wait_for_replay() is for a replica")
        with self.primary.connect() as primary:
            target = primary.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
        deadline = time.monotonic() + timeout
        with self.connect() as standby:
            while True:
                caught_up = standby.execute(
                    "SELECT pg_wal_lsn_diff(pg_last_wal_replay_lsn(), %s::pg_lsn) >= 0",
                    [target],
                ).fetchone()[0]
                if caught_up:
                    return
                if time.monotonic() > deadline:
                    raise TimeoutError(f"replica on {self.port} did not replay {target}")
                time.sleep(0.05)

    def pause_replay(self) -> None:
        """Stop applying WAL (it is still received): the replica falls behind its primary."""
        with self.connect() as standby:
            standby.execute("SELECT pg_wal_replay_pause()")

    def resume_replay(self) -> None:
        with self.connect() as standby:
            standby.execute("SELECT pg_wal_replay_resume()")

    def scan_counts(self, database: str) -> dict[str, int]:
        """seq_scan + idx_scan of each user table of `database` on this server (its own counters).

        The statistics are flushed by each backend at the end of a transaction (at most once a
        second while busy); call after the reads of interest, and compare two calls.
        """
        with self.connect(database) as connection:
            connection.execute("SELECT pg_stat_clear_snapshot()")
            rows = connection.execute(
                "SELECT relname, coalesce(seq_scan, 0) + coalesce(idx_scan, 0) "
                "FROM pg_stat_user_tables"
            ).fetchall()
        return dict(rows)

    def destroy(self) -> None:
        if self.data.exists() and self.is_running():
            self._pg_ctl("stop", "-m", "immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _pg_ctl(self, action: str, *options: str) -> None:
        self._run("pg_ctl", action, "-D", str(self.data), "-w", "-t", "60", *options)

    def _run(self, program: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = [str(self.bindir / program), *args]
        if self._as_postgres:
            command = ["runuser", "-u", OS_USER, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, cwd=self.root)
        if check and result.returncode != 0:
            raise RuntimeError(
                f"{program} {' '.join(args)} failed ({result.returncode}):\n"
                f"{result.stdout}{result.stderr}\n{self.log()}"
            )
        return result
