"""The hub's enrolment desk put together from its config: the HTTPS listener's TLS, the CA that
signs edges' client certificates, and the NATS users kept in step with the edges table."""
from __future__ import annotations

import asyncio
import logging
import ssl
from datetime import timedelta
from pathlib import Path

import asyncpg

from hub.config import HubConfig
from hub.db.errors import DB_ERRORS
from hub.edges.registry import leaf_users
from hub.edges.service import EnrolmentService
from hub.nats_access import EdgeLeafUser, NatsAccess, NatsAccessError, edge_leaf_users
from shared.backoff import sleep_or_stop
from shared import pki
from shared.enrolment import EdgeSettings
from shared.nats_server import hash_password

log = logging.getLogger("vigil.hub.edges")


def https_context(config: HubConfig) -> ssl.SSLContext | None:
    """The HTTPS listener's TLS (modern protocols only), or None when there is no HTTPS port."""
    if not config.https_port:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(config.https_cert_file, config.https_key_file)
    return context


def public_url(config: HubConfig) -> str:
    """The https:// URL printed with every token."""
    if config.enrolment.public_url:
        return config.enrolment.public_url.rstrip("/")
    host = "127.0.0.1" if config.https_host in ("0.0.0.0", "::", "") else config.https_host
    return f"https://{host}:{config.https_port}"


def build_enrolment(config: HubConfig, pool: asyncpg.Pool, access: NatsAccess | None) -> EnrolmentService | None:
    """The enrolment service, or None when this hub cannot enrol (no HTTPS listener, no CA, no
    leaf URL, or it does not manage the NATS users): the routes then say so (503)."""
    settings = config.nats_access
    if not (config.https_port and settings.ca_dir and settings.leaf_url and access is not None):
        return None
    ca = pki.ensure_ca(Path(settings.ca_dir))
    enrolment = config.enrolment
    nats_access = access

    async def access_changed() -> None:
        await nats_access.apply(edge_leaf_users(await leaf_users(pool)))

    return EnrolmentService(
        hub_url=public_url(config), leaf_url=settings.leaf_url, ca_pem=ca.cert_pem(),
        fingerprint=pki.fingerprint(Path(config.https_cert_file).read_text()),
        settings=EdgeSettings(enrolment.journal_max_bytes, enrolment.journal_retention_hours,
                              enrolment.forwarder_window, enrolment.segment_max_events),
        sign_csr=lambda csr, cn: pki.sign_csr(ca, csr, cn), hash_password=hash_password,
        access_changed=access_changed, ttl=timedelta(hours=enrolment.token_ttl_h))


async def keep_access_in_step(pool: asyncpg.Pool, access: NatsAccess, stop: asyncio.Event,
                              interval_s: float = 3.0) -> None:
    """Apply the edges table's leaf users whenever they differ from what was last applied: a
    revocation made elsewhere (`python -m hub edge revoke`, another hub process) drops the edge's
    leaf link within `interval_s`, and a failed apply is retried."""
    applied: list[EdgeLeafUser] | None = None
    while not await sleep_or_stop(interval_s, stop):
        try:
            wanted = edge_leaf_users(await leaf_users(pool))
            if applied is None or wanted != applied:
                await access.apply(wanted)
                applied = wanted
        except (NatsAccessError, *DB_ERRORS) as exc:
            log.warning("NATS users not applied, retrying: %s", exc)
