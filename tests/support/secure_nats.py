"""A secured hub nats-server and edge leaf servers on free ports, as in production
(docs/architecture.md §4.1), for every test that needs real NATS: the hub's
CA, users file and system account (through NatsAccess), and per edge its enrolment (leaf
credentials and client certificate), its leaf server and its agent's login."""
from __future__ import annotations

from pathlib import Path

import nats

from hub.nats_access import EdgeLeafUser
from edge.leaf_credentials import EdgeNatsAuth
from provisioning.secure_nats import HubNatsAuth, enrol_by_hand
from shared.nats_server import NatsServer, NatsUser, ensure_password_file, hash_password
from shared.process import free_port

HOST = "127.0.0.1"
#: A user of each site's server with no limits: the maintenance login some tests play a hostile
#: local client with (creating streams on the edge's own JetStream).
SITE_ADMIN = "site-admin"


class Site:
    """One edge's leaf server and its NATS credentials."""

    def __init__(self, auth: EdgeNatsAuth, server: NatsServer, leaf_user: EdgeLeafUser) -> None:
        self.auth = auth
        self.server = server
        self.leaf_user = leaf_user
        self.started = False

    @property
    def edge_id(self) -> str:
        return self.auth.edge_id

    def admin_password(self) -> str:
        return ensure_password_file(self.auth.directory / "site-admin.password")


class SecureNats:
    """The hub's server and its edges' sites under `root`; `start` before use, `stop` after."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.auth = HubNatsAuth(root / "hub-nats-auth")
        self.auth.prepare(["localhost"], [HOST])
        self.hub = NatsServer(self.auth.server_config("hub-nats", HOST, free_port(), free_port(), free_port(),
                                                      root / "hub-js"), root / "run")
        self.access = self.auth.access(self.hub.url)
        self.sites: dict[str, Site] = {}

    async def start(self) -> None:
        await self.hub.start()
        await self.access.start()

    async def stop(self) -> None:
        for site in self.sites.values():
            site.server.stop()
        await self.access.close()
        self.hub.stop()

    def leaf_users(self) -> list[EdgeLeafUser]:
        """Every enrolled site's leaf user: what the hub applies."""
        return [s.leaf_user for s in self.sites.values()]

    def site(self, edge_id: str, leaf_port: int | None = None, domain: str | None = None) -> Site:
        """The edge's site, enrolled with the hub's CA, its server not started yet (ensure_site);
        `leaf_port` (default: the hub's leaf port) lets it go through a proxy."""
        if edge_id not in self.sites:
            auth = EdgeNatsAuth(self.root / "edge-nats" / edge_id, edge_id)
            leaf_user = enrol_by_hand(auth, self.auth, f"tls://{HOST}:{leaf_port or self.hub.config.leaf_port}")
            admin_password = ensure_password_file(auth.directory / "site-admin.password")
            admin = NatsUser(SITE_ADMIN, hash_password(admin_password))
            server = NatsServer(auth.server_config(f"{edge_id}-nats", HOST, free_port(), free_port(),
                                                   self.root / "edge-js" / edge_id, domain or f"edge-{edge_id}",
                                                   extra_users=(admin,)), self.root / "run")
            self.sites[edge_id] = Site(auth, server, leaf_user)
        return self.sites[edge_id]

    async def ensure_site(self, edge_id: str) -> Site:
        """The edge's site with its leaf server running and linked, its leaf user applied at the
        hub first (as enrolment does)."""
        site = self.site(edge_id)
        if not site.started:
            await self.access.apply(self.leaf_users())
            await site.server.start()
            site.started = True
            await site.server.wait_leaf()
        return site

    async def connect_hub(self, **options: object) -> nats.NATS:
        """A client of the hub's server as the hub's own user (any subject)."""
        return await nats.connect(self.hub.url, **self.auth.login(), **options)  # type: ignore[arg-type]

    async def connect_agent(self, edge_id: str, **options: object) -> nats.NATS:
        """A client of the edge's leaf server as its agent (own subjects and inbox only)."""
        site = await self.ensure_site(edge_id)
        return await nats.connect(site.server.url, **site.auth.agent_login(), **options)  # type: ignore[arg-type]

    async def connect_site_admin(self, edge_id: str, **options: object) -> nats.NATS:
        """A client of the edge's leaf server with no limits, as a maintenance login would be, or
        an intruder who owns the box (its server's config is theirs, only the hub's is not)."""
        site = await self.ensure_site(edge_id)
        return await nats.connect(site.server.url, user=SITE_ADMIN, password=site.admin_password(),
                                  **options)  # type: ignore[arg-type]

