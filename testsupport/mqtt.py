"""A private Mosquitto broker, the MQTT consumer as a real process, and a test publisher.

The broker listens on a spare loopback port with a configuration of its own (persistence on, so a
restart keeps the queued QoS 1 messages of persistent sessions); the Mosquitto on 1883 belongs to
the machine and is never touched.
"""

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from testsupport.servers import ROOT, free_port, wait_for_port


def mosquitto_binary() -> str:
    found = shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()), None
    )
    if not found:
        raise RuntimeError("mosquitto is not installed (scripts/test installs Debian's mosquitto)")
    return found


class Mosquitto:
    """A Mosquitto broker of the test's own; `stop()` and `start()` again keep its port and data.

    By default anonymous clients may connect. `shipped_config` (the project's
    mosquitto/mosquitto.conf) is used as written, with only its port, paths and log moved here,
    and the password and ACL files of `auth_dir` (as `mqtt_credentials --out` writes them).
    """

    def __init__(
        self, directory: Path, *, shipped_config: Path | None = None, auth_dir: Path | None = None
    ):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"mqtt://127.0.0.1:{self.port}"
        self.log_path = self.directory / "mosquitto.log"
        self.config_path = self.directory / "mosquitto.conf"
        run_as = ["user root"] if os.geteuid() == 0 else []  # else it drops to user mosquitto
        if shipped_config is not None:
            text = (
                shipped_config.read_text()
                .replace("listener 1883", f"listener {self.port} 127.0.0.1")
                .replace("/mosquitto/auth/", f"{auth_dir}/")
                .replace("/mosquitto/data/", f"{self.directory}/")
                .replace("log_dest stdout", f"log_dest file {self.log_path}")
            )
            self.config_path.write_text(text + "\n".join(run_as) + "\n")
        else:
            lines = [
                f"listener {self.port} 127.0.0.1",
                *run_as,
                "allow_anonymous true",
                "persistence true",
                f"persistence_location {self.directory}/",
                "autosave_interval 5",
                # As in the shipped config: room for the consumer's unacknowledged batches.
                "max_inflight_messages 0",
                "max_queued_messages 0",
                f"log_dest file {self.log_path}",
                "log_type error",
                "log_type warning",
                "log_type notice",
            ]
            self.config_path.write_text("\n".join(lines) + "\n")
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [mosquitto_binary(), "-c", str(self.config_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            wait_for_port(self.port)
        except TimeoutError:
            self.stop(signal.SIGKILL)
            raise RuntimeError(f"mosquitto did not start:\n{self.log()}") from None

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """SIGTERM: Mosquitto saves its persistent state and exits."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class IngestConsumer:
    """`manage.py ingest_mqtt` as a child process (its log kept for a failing test)."""

    def __init__(self, env: dict[str, str], *, broker: str, log_dir: Path, args: tuple = ()):
        self.metrics_port = free_port()
        self.log_path = Path(log_dir) / f"ingest_mqtt-{self.metrics_port}.log"
        self.command = [sys.executable, "manage.py", "ingest_mqtt", "--broker", broker, *args]
        self.env = {
            **os.environ,
            "SECRET_KEY": os.environ.get("SECRET_KEY", "test-only-secret-key"),
            "DEBUG": "false",
            "LOG_LEVEL": "INFO",
            "MQTT_METRICS_PORT": str(self.metrics_port),
            **env,
        }
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child process owns it
        self.process = subprocess.Popen(
            self.command,
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        try:
            wait_for_port(self.metrics_port, timeout=30)
        except TimeoutError:
            self.stop(signal.SIGKILL)
            raise RuntimeError(f"ingest_mqtt did not start:\n{self.log()}") from None

    def stop(self, sig: int = signal.SIGTERM, *, timeout: float = 30) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        return self.process.returncode

    def metric(self, name: str, labels: str = "") -> float:
        """One sample of the consumer's Prometheus endpoint (0 when absent)."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        text = urllib.request.urlopen(url, timeout=5).read().decode()
        pattern = re.escape(name + (f"{{{labels}}}" if labels else "")) + r" ([0-9.e+-]+)$"
        found = re.search(pattern, text, re.MULTILINE)
        return float(found.group(1)) if found else 0.0

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class Publisher:
    """A QoS 1 MQTT 5 client on a persistent session: messages published while the broker is away
    are resent when it is back. `collect(topic)` subscribes and keeps what arrives."""

    def __init__(self, url: str, *, client_id: str, username: str = "", password: str = ""):
        host_port = url.removeprefix("mqtt://")
        host, port = host_port.rsplit(":", 1)
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        if username:
            self.client.username_pw_set(username, password)
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.reconnect_delay_set(min_delay=1, max_delay=2)
        self.received: list[mqtt.MQTTMessage] = []
        self.connect_results: list[str] = []
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda client, userdata, message: self.received.append(message)
        self.client.on_subscribe = lambda *args: self._subscribed.set()
        self.acknowledged: set[int] = set()
        self.client.on_publish = lambda client, userdata, mid, *args: self.acknowledged.add(mid)
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = 300
        self.client.connect_async(host, int(port), clean_start=False, properties=properties)
        self.client.loop_start()

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        self.connect_results.append(str(reason_code))
        if not reason_code.is_failure:
            self._connected.set()

    def wait_connected(self, timeout: float = 10) -> bool:
        return self._connected.wait(timeout)

    def collect(self, topic: str) -> None:
        self._subscribed.clear()
        self.client.subscribe(topic, qos=1)
        if not self._subscribed.wait(10):
            raise TimeoutError(f"no SUBACK for {topic}")

    def publish(self, topic: str, payload: str | bytes) -> mqtt.MQTTMessageInfo:
        return self.client.publish(topic, payload, qos=1)

    def wait_published(self, infos: list, *, timeout: float = 60) -> None:
        """Until the broker has acknowledged each message (also those published while it was
        away, which paho resends after reconnecting: their `rc` stays "not connected")."""
        deadline = time.monotonic() + timeout
        pending = [info.mid for info in infos]
        while pending := [mid for mid in pending if mid not in self.acknowledged]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(pending)} of {len(infos)} messages not acknowledged")
            time.sleep(0.05)

    def close(self) -> None:
        self.client.disconnect()
        # The race `telemetry.mqtt.network_loop_stop` explains; not imported from there, so that
        # this module (and bench/mqtt.py) loads without Django's settings.
        with contextlib.suppress(AttributeError):
            self.client.loop_stop()
