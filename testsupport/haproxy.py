"""HAProxy (Debian's package) in front of several web instances, on a spare loopback port.

    with HAProxy([a.port, b.port], log_dir=tmp_path) as proxy:
        proxy.url                       # http://127.0.0.1:<port>
        # every answer names the instance that served it: X-Served-By: web-<port>

The configuration is generated per run: round robin over the instances, a health check of
`/healthz` every 250 ms (two failures take an instance out, two successes put it back), and a
connection refused by a dead instance is redispatched to a live one (`retries` + `redispatch`).
A request already sent to an instance that dies gets a 502: the client retries it, which is safe
because ingestion is idempotent (a reading already stored is answered as a duplicate).
"""

import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from testsupport.servers import free_port, stop_process_group, wait_for_port

CONFIG = """\
global
    maxconn 2000

defaults
    mode http
    option http-keep-alive
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    timeout http-request 10s
    # A connection refused by a dead instance is tried again on another one.
    retries 3
    option redispatch 1

frontend web
    bind 127.0.0.1:{port}
    default_backend instances

backend instances
    balance roundrobin
    option httpchk GET /healthz
    http-check expect status 200
    default-server inter 250ms fastinter 250ms downinter 500ms fall 2 rise 2
    http-response set-header X-Served-By %[srv_name]
{servers}
"""


def haproxy_binary() -> str:
    """Debian installs it in /usr/sbin, which is not always on a non-root PATH."""
    found = shutil.which("haproxy") or (
        "/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None
    )
    if found is None:
        raise RuntimeError("haproxy is not installed: apt-get install haproxy (scripts/test does).")
    return found


def server_name(port: int) -> str:
    """The name an instance on `port` has in the configuration and in `X-Served-By`."""
    return f"web-{port}"


class HAProxy:
    """A private HAProxy balancing over the instances on `ports`, for a `with` block."""

    def __init__(self, ports: list[int], *, log_dir: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.directory = Path(tempfile.mkdtemp(prefix="energy-haproxy-", dir=log_dir))
        self.config_path = self.directory / "haproxy.cfg"
        self.log_path = self.directory / "haproxy.log"
        servers = "\n".join(
            f"    server {server_name(port)} 127.0.0.1:{port} check" for port in ports
        )
        self.config_path.write_text(CONFIG.format(port=self.port, servers=servers))
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> "HAProxy":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        binary = haproxy_binary()
        check = subprocess.run(
            [binary, "-c", "-f", str(self.config_path)], capture_output=True, text=True
        )
        if check.returncode != 0:
            raise RuntimeError(f"haproxy refused its configuration:\n{check.stdout}{check.stderr}")
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child process owns it
        # -db: stay in the foreground (the test owns the process); -W: master-worker mode.
        self.process = subprocess.Popen(
            [binary, "-db", "-W", "-f", str(self.config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        try:
            wait_for_port(self.port)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"haproxy did not start:\n{self.log()}") from None

    def stop(self) -> None:
        stop_process_group(self.process, signal.SIGTERM)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
