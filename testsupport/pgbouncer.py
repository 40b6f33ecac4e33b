"""A private pgbouncer (Debian's package) in front of a PostgreSQL server, for a `with` block.

Its own configuration file, a spare loopback port, transaction pooling and a small pool, so that
a test can prove the project works when every transaction may get a different server connection.
pgbouncer refuses to run as root: under root it runs as the `postgres` OS user (`runuser`).

    with Pgbouncer(upstream_port=5432, database="energy", pool_size=2) as bouncer:
        url = bouncer.url()     # postgres://postgres@127.0.0.1:<port>/energy
"""

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from testsupport.servers import free_port, stop_process_group, wait_for_port

OS_USER = "postgres"


def pgbouncer_binary() -> str:
    """`pgbouncer` on the PATH, else Debian's /usr/sbin/pgbouncer."""
    found = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not Path(found).exists():
        raise RuntimeError("No pgbouncer found: `apt-get install pgbouncer` (scripts/test does).")
    return found


class Pgbouncer:
    """pgbouncer in transaction pooling mode; clients connect to `database` at `url()`."""

    def __init__(
        self,
        *,
        upstream_port: int,
        database: str,
        upstream_database: str | None = None,
        pool_size: int = 2,
        max_client_conn: int = 100,
    ) -> None:
        self.port = free_port()
        self.database = database
        self.pool_size = pool_size
        self.root = Path(tempfile.mkdtemp(prefix="energy-pgbouncer-"))
        self.log_path = self.root / "pgbouncer.log"
        self.config_path = self.root / "pgbouncer.ini"
        self._as_postgres = os.geteuid() == 0
        (self.root / "userlist.txt").write_text('"postgres" ""\n')
        upstream = upstream_database or database
        self.config_path.write_text(
            "[databases]\n"
            f"{database} = host=127.0.0.1 port={upstream_port} dbname={upstream}\n"
            "[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {self.port}\n"
            "unix_socket_dir =\n"
            "auth_type = trust\n"
            f"auth_file = {self.root / 'userlist.txt'}\n"
            "admin_users = postgres\n"
            "pool_mode = transaction\n"
            f"default_pool_size = {pool_size}\n"
            "min_pool_size = 0\n"
            "reserve_pool_size = 0\n"
            f"max_client_conn = {max_client_conn}\n"
            f"logfile = {self.log_path}\n"
            f"pidfile = {self.root / 'pgbouncer.pid'}\n"
            "log_connections = 0\n"
            "log_disconnections = 0\n"
        )
        if self._as_postgres:
            for path in (self.root, *self.root.iterdir()):
                shutil.chown(path, user=OS_USER, group=OS_USER)
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> "Pgbouncer":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{self.database}"

    def start(self) -> None:
        command = [pgbouncer_binary(), str(self.config_path)]
        if self._as_postgres:
            command = ["runuser", "-u", OS_USER, "--", *command]
        self.process = subprocess.Popen(
            command,
            cwd=self.root,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_for_port(self.port)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"pgbouncer did not start:\n{self.log()}") from None

    def stop(self) -> None:
        stop_process_group(self.process, signal.SIGINT)  # immediate shutdown

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
