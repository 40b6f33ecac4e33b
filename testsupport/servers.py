"""Real servers for tests that cross a process boundary: the project under gunicorn, on loopback.

Each server listens on a spare port of its own, so tests never touch the services that belong to
the machine (PostgreSQL on 5432, Redis on 6379, Mosquitto on 1883).
"""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port nobody listens on right now (the kernel's choice)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def database_url(settings_dict: dict) -> str:
    """The URL of a Django database (e.g. the test database) for a child process."""
    user = settings_dict.get("USER") or "postgres"
    password = f":{settings_dict['PASSWORD']}" if settings_dict.get("PASSWORD") else ""
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = settings_dict.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{settings_dict['NAME']}"


def _wait_until(probe: Callable[[], None], *, what: str, timeout: float) -> None:
    """Call `probe` until it stops raising OSError; TimeoutError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            probe()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} after {timeout} s") from None
            time.sleep(0.05)


def stop_process_group(
    process: subprocess.Popen | None, sig: int = signal.SIGTERM, *, timeout: float = 10.0
) -> None:
    """Send `sig` to a server started with `start_new_session=True` (its whole process group),
    wait up to `timeout`, then SIGKILL what is left. Nothing to do if it has already exited."""
    if process is None or process.poll() is not None:
        return
    os.killpg(process.pid, sig)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def wait_for_http(url: str, *, timeout: float = 30.0) -> None:
    """Return once `url` answers at all (any status); raise after `timeout` seconds."""

    def probe() -> None:
        try:
            urllib.request.urlopen(url, timeout=1).close()
        except urllib.error.HTTPError:
            return  # an answer, whatever its status

    _wait_until(probe, what=f"{url} did not answer", timeout=timeout)


def wait_for_port(port: int, *, timeout: float = 10.0) -> None:
    """Return once something accepts connections on 127.0.0.1:`port`."""
    _wait_until(
        lambda: socket.create_connection(("127.0.0.1", port), timeout=0.5).close(),
        what=f"nothing listens on port {port}",
        timeout=timeout,
    )


class Gunicorn:
    """The project served by gunicorn with its production config, for a `with` block.

    `env` is added to this process's environment (DATABASE_URL, settings under test). The log
    (gunicorn's and the app's) is kept in `log_path` so a failing test can show it.
    """

    def __init__(self, env: dict[str, str], *, workers: int = 2, threads: int = 4, log_dir: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(log_dir) / f"gunicorn-{self.port}.log"
        self.env = {
            **os.environ,
            "SECRET_KEY": os.environ.get("SECRET_KEY", "test-only-secret-key"),
            "DEBUG": "false",
            "GUNICORN_WORKERS": str(workers),
            "GUNICORN_THREADS": str(threads),
            **env,
        }
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> "Gunicorn":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        gunicorn = Path(sys.executable).parent / "gunicorn"
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child process owns it
        self.process = subprocess.Popen(
            [
                str(gunicorn),
                "energy.wsgi",
                "-c",
                str(ROOT / "gunicorn.conf.py"),
                "--bind",
                f"127.0.0.1:{self.port}",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        try:
            wait_for_http(f"{self.url}/healthz")
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"gunicorn did not start:\n{self.log()}") from None

    def stop(self, sig: int = signal.SIGTERM) -> None:
        stop_process_group(self.process, sig, timeout=30)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
