"""Applies the hub's NATS users to its running server, and drops leaf nodes that lost their right.

`apply` writes the users include file, asks the server to reload it through the system account
(`$SYS.REQ.SERVER.<id>.RELOAD`, which answers only once the new users are in force, or with the
server's reason for refusing the file), then drops every leaf-node connection whose user is no
longer allowed or whose password changed: a reload alone keeps existing connections. Which
connection is whose comes from the server's connection list (CONNZ with `auth`, which names each
leaf connection's authenticated user); a leaf connection that list does not name is dropped too,
so a server that stopped naming users fails closed. A dropped edge that is still allowed
reconnects within about a second.
"""
from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import nats
import nats.errors
from nats.aio.client import Client as NatsClient
from prometheus_client import Counter

from hub.config import HubConfig
from hub.nats_access.users import DEFAULT_REPLICA_MAX_BYTES, EdgeLeafUser, render_users, write_users_file
from shared.config import ConfigError
from shared.nats_server import hash_password
from shared.private_file import read_private_file

log = logging.getLogger("vigil.hub.nats_access")

KICKED = Counter("vigil_nats_leaf_kicked_total", "Leaf-node connections the hub dropped", ["why"])

_REQUEST_TIMEOUT_S = 5.0
_CONNZ_PAGE = 1024


class NatsAccessError(Exception):
    """The hub's NATS server did not take the users, or could not be asked; the message says why."""


class NatsRefused(NatsAccessError):
    """The server answered, with an error (a users file it will not load, a connection it does
    not have)."""


def hub_nats_login(config: HubConfig) -> dict[str, str]:
    """`nats.connect` keyword arguments for the hub's service user; none when no password file is
    set (an open development server). Raises ConfigError when the file cannot be read."""
    if not config.nats_password_file:
        return {}
    password = read_private_file(Path(config.nats_password_file), "hub NATS password file", ConfigError)
    return {"user": config.nats_user, "password": password}


class NatsAccess:
    """The hub's hold on who may connect to its NATS server: one system-account connection, and
    the users file. `start` before use, `close` after."""

    def __init__(self, users_file: Path, nats_url: str, *, hub_user: str, hub_password: str,
                 system_user: str, system_password: str, replica_max_bytes: int = DEFAULT_REPLICA_MAX_BYTES) -> None:
        self.users_file = users_file
        self.replica_max_bytes = replica_max_bytes
        self.nats_url = nats_url
        self.hub_user = hub_user
        self.system_user = system_user
        self._system_password = system_password
        # Hashed once: every apply renders the same service users.
        self._hub_hash = hash_password(hub_password)
        self._system_hash = hash_password(system_password)
        self._nc: NatsClient | None = None
        self._server_id = ""
        self._lock = asyncio.Lock()
        # What this process last applied per edge: a changed hash means a new password, and the
        # connection made with the old one must go.
        self._applied: dict[str, str] = {}

    @classmethod
    def from_config(cls, config: HubConfig) -> "NatsAccess | None":
        """The hub's NatsAccess as configured, or None when this process does not manage NATS users."""
        settings = config.nats_access
        if not settings.users_file:
            return None
        system_password = read_private_file(Path(settings.system_password_file), "NATS system password file", ConfigError)
        return cls(Path(settings.users_file), config.nats_url, hub_user=config.nats_user,
                   hub_password=hub_nats_login(config)["password"], system_user=settings.system_user,
                   system_password=system_password, replica_max_bytes=settings.replica_max_bytes)

    async def start(self) -> None:
        """Connect as the system user to the server (raises NatsAccessError when it refuses)."""
        try:
            self._nc = await nats.connect(
                self.nats_url, user=self.system_user, password=self._system_password, name="vigil-hub-nats-access",
                max_reconnect_attempts=-1, reconnect_time_wait=0.5, connect_timeout=5,
                error_cb=_log_error)
        except (OSError, nats.errors.Error, asyncio.TimeoutError) as exc:
            raise NatsAccessError(f"cannot connect to {self.nats_url} as the system user {self.system_user!r}: {exc}") from exc
        try:
            await self._locate()
        except NatsAccessError:
            await self.close()
            raise

    async def _locate(self) -> None:
        """Ask the server its id, which the system API addresses it by. The hub manages one server
        (the one its users file belongs to); a restarted server has a new id, so every use asks."""
        assert self._nc is not None
        try:
            msg = await self._nc.request("$SYS.REQ.SERVER.PING.IDZ", b"", timeout=_REQUEST_TIMEOUT_S)
            self._server_id = json.loads(msg.data)["id"]
        except (nats.errors.Error, asyncio.TimeoutError, ValueError, KeyError) as exc:
            raise NatsAccessError(f"the NATS server at {self.nats_url} did not say its id: {exc}") from exc

    async def close(self) -> None:
        if self._nc is not None:
            await self._nc.close()
            self._nc = None

    async def _request(self, verb: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """A request to this server's system API; its `data`, or NatsAccessError with its error."""
        assert self._nc is not None, "NatsAccess is not started"
        subject = f"$SYS.REQ.SERVER.{self._server_id}.{verb}"
        try:
            msg = await self._nc.request(subject, json.dumps(body or {}).encode(), timeout=_REQUEST_TIMEOUT_S)
        except (nats.errors.Error, asyncio.TimeoutError) as exc:
            raise NatsAccessError(f"NATS server did not answer {verb}: {exc}") from exc
        answer = json.loads(msg.data)
        if "error" in answer:
            raise NatsRefused(f"NATS server refused {verb}: {answer['error'].get('description', answer['error'])}")
        return answer.get("data") or {}

    async def apply(self, edges: list[EdgeLeafUser]) -> None:
        """Make `edges` exactly the edges allowed a leaf connection, now: write the users file,
        reload it, and drop every leaf connection of any other user or of a changed password.

        If the server refuses the new file, the previous one is put back (so a restart still
        finds a file it takes) and NatsRefused says why. If the server cannot be asked, the new
        file stays (a restart loads it) and NatsAccessError says so: call again."""
        text = render_users(self.hub_user, self._hub_hash, self.system_user, self._system_hash, edges,
                            self.replica_max_bytes)
        async with self._lock:
            previous = self.users_file.read_text() if self.users_file.exists() else None
            write_users_file(self.users_file, text)
            try:
                await self._locate()
                await self._request("RELOAD")
            except NatsRefused:
                if previous is not None:
                    write_users_file(self.users_file, previous)
                raise
            wanted = {user: hashed for e in edges for user, hashed in e.leaf_users().items()}
            changed = {user for user, hashed in wanted.items()
                       if user in self._applied and self._applied[user] != hashed}
            kicked = await self._drop_leaves(set(wanted) - changed, changed)
            self._applied = wanted
        log.info("NATS users applied: %d edges, %d leaf connections dropped", len(edges), kicked,
                 extra={"edges": len(edges), "dropped": kicked})

    async def revoke(self, edge_id: str, remaining_edges: list[EdgeLeafUser]) -> None:
        """Take `edge_id`'s right to a leaf connection away and drop its connection at once;
        `remaining_edges` are every other edge still allowed (the whole list is applied)."""
        if any(e.edge_id == edge_id for e in remaining_edges):
            raise ValueError(f"edge {edge_id!r} is revoked, so it cannot be among the remaining edges")
        await self.apply(remaining_edges)
        log.info("edge %s: leaf access revoked", edge_id, extra={"edge": edge_id})

    async def leaf_users(self) -> dict[int, str | None]:
        """Every leaf-node connection of the server (its connection id) with the user it
        authenticated as, or None when the server does not say."""
        await self._locate()
        leafz = await self._request("LEAFZ")
        cids = [leaf["id"] for leaf in leafz.get("leafs") or []]
        users: dict[int, str] = {}
        offset = 0
        while True:
            page = await self._request("CONNZ", {"auth": True, "offset": offset, "limit": _CONNZ_PAGE})
            conns = page.get("connections") or []
            for conn in conns:
                if conn.get("kind") == "Leafnode" and conn.get("authorized_user"):
                    users[conn["cid"]] = conn["authorized_user"]
            offset += len(conns)
            if not conns or offset >= page.get("total", 0):
                break
        return {cid: users.get(cid) for cid in cids}

    async def _drop_leaves(self, allowed: set[str], changed: set[str]) -> int:
        """Drop every leaf connection whose user is not in `allowed` (or is not known); `changed`
        are the users among the others whose password changed, for the log."""
        kicked = 0
        for cid, user in (await self.leaf_users()).items():
            if user in allowed:
                continue
            why = "unknown_user" if user is None else "password_changed" if user in changed else "not_allowed"
            try:
                await self._request("KICK", {"cid": cid})
            except NatsRefused as exc:
                # Gone between the listing and the kick: nothing left to drop.
                log.info("leaf connection %d (%s) not dropped: %s", cid, user, exc)
                continue
            KICKED.labels(why).inc()
            kicked += 1
            log.warning("dropped leaf connection %d of %s (%s)", cid, user or "an unnamed user", why,
                        extra={"cid": cid, "nats_user": user})
        return kicked


async def _log_error(exc: Exception) -> None:
    log.warning("NATS system connection: %s", exc)
