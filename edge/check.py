"""`python -m edge check`: test every link this box depends on and say how to fix each red row.

Rows: the box's key, the hub's HTTPS (reachable, certificate from the hub CA), the leaf-node
credential (TLS with the box's client certificate, then the leaf user and password, exactly as
the box's nats-server presents them), the local nats-server with the agent's credential, each
Satel panel (through the running agent when there is one: the ETHM-1 module serves one client,
so a second connection would knock the agent off), and the data folder's free space.
Each check is independent and has a deadline; the exit code is non-zero when any row is red.
"""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import nats
import nats.errors

from edge.config import EdgeConfig, SatelPanelSettings
from edge.links.satel.connection import Connection, LinkLost
from firmware_bridges.satel.protocol import ModuleVersionAnswer, ReadModuleVersion
from edge.leaf_credentials import EdgeNatsAuth
from shared.nats_server import LeafRemote, NatsConfigError
from shared.signing import KeyFileError, load_key_file

TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Row:
    """One line of the table: what was checked, whether it passed, what was seen, how to fix it."""

    name: str
    ok: bool
    detail: str
    fix: str = ""


def _check_key(config: EdgeConfig) -> Row:
    try:
        signer = load_key_file(config.key_path)
    except KeyFileError as exc:
        return Row("edge key", False, str(exc), "enrol the box (`python -m edge enroll`), or restore its key file")
    return Row("edge key", True, f"key id {signer.key_id}")


def _leaf_credential(config: EdgeConfig) -> LeafRemote:
    return EdgeNatsAuth(Path(config.hub.credentials_dir), config.edge_id).remote()


def _check_hub_https(config: EdgeConfig) -> Row:
    name = "hub HTTPS"
    if not config.hub.url:
        return Row(name, False, "no hub.url configured", "enrol the box (`python -m edge enroll`)")
    try:
        context = ssl.create_default_context(cafile=config.hub.ca_file)
        with urllib.request.urlopen(config.hub.url.rstrip("/") + "/healthz", timeout=TIMEOUT_S,
                                    context=context) as response:
            body = json.loads(response.read())
    except ssl.SSLCertVerificationError as exc:
        return Row(name, False, f"{config.hub.url}: certificate not from the hub CA: {exc.verify_message}",
                   f"check hub.url points at your hub; the hub CA is {config.hub.ca_file}")
    except urllib.error.HTTPError as exc:
        return Row(name, False, f"{config.hub.url} answered HTTP {exc.code}", "the hub is up but unhealthy: call the hub admin")
    except (OSError, ValueError, ssl.SSLError) as exc:
        reason = getattr(exc, "reason", exc)
        return Row(name, False, f"{config.hub.url}: {reason}", "check the WAN link, DNS and firewall (outbound HTTPS)")
    return Row(name, True, f"{config.hub.url} answers, TLS verified ({body.get('status', '?')})")


def _leaf_probe(remote: LeafRemote) -> str | None:
    """Speak the first lines of the leaf-node protocol as the box's nats-server does: read the
    server's INFO, upgrade to TLS with the client certificate, CONNECT with the leaf user. Returns
    None when the hub accepts, else the refusal."""
    parts = urllib.parse.urlsplit(remote.url)
    host, port = parts.hostname or "", parts.port or 7422
    context = ssl.create_default_context(cafile=str(remote.tls.ca))
    context.load_cert_chain(remote.tls.cert, remote.tls.key)
    with socket.create_connection((host, port), timeout=TIMEOUT_S) as raw:
        raw.settimeout(TIMEOUT_S)
        info = raw.recv(16384)
        if not info.startswith(b"INFO "):
            return f"{host}:{port} is not a NATS leaf-node port (it said {info[:40]!r})"
        with context.wrap_socket(raw, server_hostname=host) as tls:
            connect = {"user": remote.user, "pass": remote.password, "name": "vigil-edge-check", "headers": True}
            tls.sendall(b"CONNECT " + json.dumps(connect).encode() + b"\r\nPING\r\n")
            answer = tls.recv(16384)
    if answer.startswith(b"-ERR"):
        return answer.decode(errors="replace").strip()
    return None


def _check_leaf(config: EdgeConfig) -> Row:
    name = "hub leaf credential"
    if not config.hub.credentials_dir:
        return Row(name, False, "no hub leaf credential configured", "enrol the box (`python -m edge enroll`)")
    try:
        remote = _leaf_credential(config)
        refused = _leaf_probe(remote)
    except NatsConfigError as exc:
        return Row(name, False, str(exc), "enrol the box again (`python -m edge enroll --replace`)")
    except ssl.SSLCertVerificationError as exc:
        return Row(name, False, f"{remote.url}: certificate not from the hub CA: {exc.verify_message}",
                   "check the leaf URL points at your hub")
    except (OSError, ssl.SSLError) as exc:
        return Row(name, False, f"{remote.url}: {exc}",
                   "check the WAN link and that outbound TCP to the leaf port is allowed")
    if refused is not None:
        return Row(name, False, f"the hub refused user {remote.user}: {refused}",
                   "the edge may be revoked or re-keyed at the hub: ask the hub admin for a new token and enrol again")
    return Row(name, True, f"{remote.url} accepts {remote.user} (TLS, client certificate)")


async def _check_local_nats(config: EdgeConfig, password: str | None) -> Row:
    name = "local NATS (agent)"
    errors: list[Exception] = []

    async def keep(exc: Exception) -> None:
        errors.append(exc)

    try:
        # nats-py keeps retrying a refused first connect; the deadline is ours.
        nc = await asyncio.wait_for(nats.connect(
            config.nats_url, user=config.nats_user or None, password=password, connect_timeout=TIMEOUT_S,
            max_reconnect_attempts=0, allow_reconnect=False, error_cb=keep), TIMEOUT_S)
    except asyncio.TimeoutError:
        reason = errors[-1] if errors else "no answer"
        return Row(name, False, f"{config.nats_url}: {reason}",
                   "start the box's nats-server (`systemctl start vigil-edge-nats`) and check its log")
    except (OSError, nats.errors.Error) as exc:
        return Row(name, False, f"{config.nats_url}: {exc or type(exc).__name__}",
                   "start the box's nats-server (`systemctl start vigil-edge-nats`) and check its log")
    await nc.close()
    return Row(name, True, f"{config.nats_url} accepts user {config.nats_user or '(none)'}")


async def _probe_panel(panel: SatelPanelSettings) -> Row:
    name = f"Satel panel {panel.id}"
    try:
        conn = await Connection.open(panel.id, panel.host, panel.port, panel.integration_key, asyncio.Event(), TIMEOUT_S)
    except LinkLost as exc:
        return Row(name, False, str(exc), f"check the ETHM-1 module's address {panel.host}:{panel.port} and the LAN cable")
    try:
        answer = await conn.request(ReadModuleVersion(), TIMEOUT_S)
    except LinkLost as exc:
        return Row(name, False, f"{panel.host}:{panel.port}: {exc}",
                   "the integration key must match the module's (DLOADX: ETHM-1 settings), and integration must be on")
    finally:
        await conn.close()
    if not isinstance(answer, ModuleVersionAnswer):
        return Row(name, False, f"the module answered {type(answer).__name__}", "check the module's integration settings")
    return Row(name, True, f"{panel.host}:{panel.port} ETHM-1 {answer.version} answers with the configured key")


def _panel_rows_from_agent(links: list[dict]) -> list[Row]:
    rows = []
    for link in links:
        ok = link.get("state") == "up"
        rows.append(Row(f"Satel panel {link.get('panel')}", ok, f"through the running agent: {link.get('state')}"
                        + (f" ({link['last_error']})" if link.get("last_error") else ""),
                        "" if ok else "see `python -m edge diagnostics` and the agent's log for the cause"))
    return rows


def _check_disk(config: EdgeConfig) -> Row:
    data = Path(config.data_dir)
    try:
        usage = shutil.disk_usage(data)
        writable = os.access(data, os.W_OK)
    except OSError as exc:
        return Row("data folder", False, f"{data}: {exc}", "create it and give the service user write access")
    need = config.journal.max_bytes
    if not writable:
        return Row("data folder", False, f"{data} is not writable by this user", "run as the service user, or fix ownership")
    if usage.free < need:
        return Row("data folder", False, f"{usage.free // 2**20} MiB free, the journal may grow to {need // 2**20} MiB",
                   "free disk space or lower journal.max_bytes")
    return Row("data folder", True, f"{data}: {usage.free // 2**20} MiB free")


async def run_checks(config: EdgeConfig, agent_links: Callable[[], Awaitable[list[dict] | None]]) -> list[Row]:
    """Every check, in the order an installer would fix them. `agent_links` returns the running
    agent's Satel link states, or None when no agent answers (then the panels are probed)."""
    password = None
    if config.nats_password_file:
        try:
            password = Path(config.nats_password_file).read_text().strip()
        except OSError:
            password = None
    rows = [_check_key(config)]
    rows += await asyncio.gather(asyncio.to_thread(_check_hub_https, config), asyncio.to_thread(_check_leaf, config),
                                 _check_local_nats(config, password))
    links = await agent_links()
    if links is not None:
        rows += _panel_rows_from_agent(links)
    else:
        rows += await asyncio.gather(*(_probe_panel(p) for p in config.satel.panels))
    rows.append(_check_disk(config))
    return rows


def render(rows: list[Row], colour: bool) -> str:
    """The table: a coloured OK/FAIL (plain when not a terminal), the detail, and the fix below a red row."""
    green, red, reset = ("\033[32m", "\033[31m", "\033[0m") if colour else ("", "", "")
    width = max(len(r.name) for r in rows)
    lines = []
    for r in rows:
        mark = f"{green}OK  {reset}" if r.ok else f"{red}FAIL{reset}"
        lines.append(f"{mark}  {r.name.ljust(width)}  {r.detail}")
        if not r.ok and r.fix:
            lines.append(f"      {''.ljust(width)}  fix: {r.fix}")
    return "\n".join(lines)
