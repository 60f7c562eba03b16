"""`python -m edge enroll`: join this box to a hub with the one-time token an ADMIN created.

Step by step, each printed as it happens so an installer on a ladder sees where it stopped:
make the box's Ed25519 key (it never leaves the box) and a TLS key with its certificate request,
present them with the token to the hub over HTTPS (the hub's certificate pinned by the
fingerprint printed with the token, or verified against a CA file), then write what the hub sent:
the agent's config, the leaf nats-server's config with its credentials, the hub CA and the
client certificate, the first site admin account, and the service units.

Nothing is written in the config folder before the hub has said yes, so a refused token leaves the
box as it was (the keys made for the attempt are reused by the next one).
"""
from __future__ import annotations

import hashlib
import http.client
import json
import secrets
import socket
import ssl
import sys
import time
import tomllib
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from edge.config import EdgeConfig
from edge.discovery import hardware_id
from edge.install.units import UnitSpec, write_units
from edge.site_accounts import AccountExists, create_account
from edge.leaf_credentials import EdgeNatsAuth, SiteServerParams, write_site_nats_config
from shared import enrolment as wire
from shared.config import dump_toml
from shared.nats_server import nats_server_binary
from shared.pki import make_csr
from shared.private_file import create_private_file, write_private_file
from shared.signing import b64url, create_key_file, load_key_file

TIMEOUT_S = 20.0


class EnrolFailed(Exception):
    """Enrolment stopped; the message says what went wrong and what to do."""


@dataclass(frozen=True)
class HubTrust:
    """How the box checks it talks to the right hub: a pinned certificate fingerprint
    (`SHA256:<hex>`, printed with the token) or the hub's CA certificate file."""

    fingerprint: str | None = None
    ca_file: Path | None = None

    def __post_init__(self) -> None:
        if (self.fingerprint is None) == (self.ca_file is None):
            raise EnrolFailed("give either --fingerprint (printed with the token) or --ca-file, to check the hub")
        if self.fingerprint is not None and not _valid_fingerprint(self.fingerprint):
            raise EnrolFailed(f"--fingerprint {self.fingerprint!r} is not SHA256:<64 hex digits>")


def _valid_fingerprint(text: str) -> bool:
    digest = text.removeprefix("SHA256:").replace(":", "").lower()
    return text.startswith("SHA256:") and len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)


def _normal_fingerprint(text: str) -> str:
    return "SHA256:" + text.removeprefix("SHA256:").replace(":", "").lower()


def _connection(url: str, trust: HubTrust) -> http.client.HTTPSConnection:
    """An HTTPS connection to the hub, the hub's identity checked before a byte is sent."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise EnrolFailed(f"--hub {url!r} must be the hub's https:// URL (enrolment never runs over plain HTTP)")
    if trust.ca_file is not None:
        try:
            context = ssl.create_default_context(cafile=str(trust.ca_file))
        except (OSError, ssl.SSLError) as exc:
            raise EnrolFailed(f"cannot read the hub CA file {trust.ca_file}: {exc}") from None
    else:
        # Pinned: the certificate's own digest is the check, so the chain and name are not.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    conn = http.client.HTTPSConnection(parts.hostname, parts.port or 443, timeout=TIMEOUT_S, context=context)
    try:
        conn.connect()
    except ssl.SSLCertVerificationError as exc:
        raise EnrolFailed(f"the hub at {url} is not certified by {trust.ca_file}: {exc.verify_message}") from None
    except (OSError, ssl.SSLError) as exc:
        raise EnrolFailed(f"cannot reach the hub at {url}: {exc}; check the address, the port and the WAN link") from None
    if trust.fingerprint is not None:
        der = conn.sock.getpeercert(binary_form=True) or b""
        seen = "SHA256:" + hashlib.sha256(der).hexdigest()
        if seen != _normal_fingerprint(trust.fingerprint):
            conn.close()
            raise EnrolFailed(f"the server at {url} is not the hub you were given: its certificate is {seen}, "
                              f"expected {trust.fingerprint}. Stop and check the address with the hub admin.")
    return conn


def request_enrolment(hub_url: str, trust: HubTrust, request: wire.EnrolRequest) -> wire.EnrolResponse:
    """Present the token and keys to the hub; the hub's answer, or EnrolFailed with its reason."""
    conn = _connection(hub_url, trust)
    try:
        path = urllib.parse.urlsplit(hub_url).path.rstrip("/") + wire.PATH
        conn.request("POST", path, body=msgspec.json.encode(request), headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        body = response.read()
    except (OSError, http.client.HTTPException) as exc:
        raise EnrolFailed(f"the hub at {hub_url} stopped answering: {exc}") from None
    finally:
        conn.close()
    if response.status != 200:
        try:
            error = json.loads(body)["error"]
            reason = f"{error['message']} ({error['code']})"
        except (ValueError, KeyError, TypeError):
            reason = f"HTTP {response.status} {response.reason}"
        raise EnrolFailed(f"the hub refused: {reason}")
    try:
        return msgspec.json.decode(body, type=wire.EnrolResponse)
    except msgspec.ValidationError as exc:
        raise EnrolFailed(f"the hub's answer is not an enrolment: {exc}") from None


@dataclass(frozen=True)
class EnrolOptions:
    """What `python -m edge enroll` was told: the hub, the token, and where things go on this box."""

    hub_url: str
    token: str
    trust: HubTrust
    config_dir: Path  # edge.toml, nats.conf and the leaf credential (0600 where secret)
    data_dir: Path  # journal, Ed25519 key, site accounts, JetStream store
    units_dir: Path | None  # systemd units; None: not written
    http_host: str = "127.0.0.1"
    http_port: int = 8081
    nats_port: int = 4223
    nats_http_port: int = 8223
    site_admin: str = "admin"
    site_admin_password_file: Path | None = None  # None: generated and printed once
    service_user: str = "vigil"
    replace: bool = False

    @property
    def config_path(self) -> Path:
        return self.config_dir / "edge.toml"

    @property
    def nats_config_path(self) -> Path:
        return self.config_dir / "nats.conf"

    @property
    def key_path(self) -> Path:
        return self.data_dir / "edge.key"  # where EdgeConfig.key_path looks


@dataclass(frozen=True)
class Enrolled:
    """What enrolment produced, for the summary (and for `make run`, which starts it all)."""

    edge_id: str
    key_id: str
    config_path: Path
    nats_config_path: Path
    units: list[Path]
    site_admin: str
    site_admin_password: str | None  # None when it came from a file


def _set_aside(path: Path, stamp: str) -> None:
    if path.exists():
        path.rename(path.with_name(f"{path.name}.replaced-{stamp}"))


def _previous_edge(options: EnrolOptions) -> str | None:
    if not options.config_path.exists():
        return None
    try:
        return str(tomllib.loads(options.config_path.read_text()).get("edge_id", "?"))
    except (OSError, tomllib.TOMLDecodeError):
        return "?"


def _agent_config(options: EnrolOptions, answer: wire.EnrolResponse, auth: EdgeNatsAuth) -> dict[str, Any]:
    s = answer.settings
    return {
        "edge_id": answer.edge_id,
        "data_dir": str(options.data_dir.resolve()),
        "nats_url": f"nats://127.0.0.1:{options.nats_port}",
        **auth.edge_settings(),
        "http_host": options.http_host,
        "http_port": options.http_port,
        "journal": {"max_bytes": s.journal_max_bytes, "retention_hours": s.journal_retention_hours},
        "forwarder": {"window": s.forwarder_window, "segment_max_events": s.segment_max_events},
        "hub": {"url": options.hub_url, "ca_file": str(auth.ca.resolve()),
                "credentials_dir": str(options.config_dir.resolve()),
                "nats_config_file": str(options.nats_config_path.resolve())},
        # The journal's replica goes to the hub unless the installer points it elsewhere.
        "replication": {"enabled": True, "kind": "hub"},
        "probe": {"enabled": s.probe},
    }


def enrol(options: EnrolOptions, say: Callable[[str], None]) -> Enrolled:
    """Enrol this box; `say` shows each step. Raises EnrolFailed with what to do."""
    previous = _previous_edge(options)
    if previous is not None and not options.replace:
        raise EnrolFailed(f"this box is already enrolled as edge {previous!r} ({options.config_path}). To enrol it "
                          "again (a new key, e.g. after the hub revoked it), run with --replace")
    options.config_dir.mkdir(parents=True, exist_ok=True, mode=0o750)
    options.data_dir.mkdir(parents=True, exist_ok=True, mode=0o750)
    if previous is not None:
        stamp = time.strftime("%Y%m%dT%H%M%S")
        say(f"[1/7] setting aside the key and config of edge {previous!r} (*.replaced-{stamp})")
        for path in (options.config_path, options.key_path):
            _set_aside(path, stamp)
    else:
        say("[1/7] this box is not enrolled yet")

    say(f"[2/7] making this box's keys (the private keys never leave {options.data_dir} and {options.config_dir})")
    public = create_key_file(options.key_path).public_raw if not options.key_path.exists() \
        else load_key_file(options.key_path).public_raw
    # The hub names the certificate; the CN asked for here is only a hint.
    auth = EdgeNatsAuth(options.config_dir, "pending")
    csr = make_csr(auth.key, "vigil-edge")

    say(f"[3/7] presenting the token to the hub at {options.hub_url} "
        f"({'certificate pinned ' + options.trust.fingerprint if options.trust.fingerprint else 'CA ' + str(options.trust.ca_file)})")
    answer = request_enrolment(options.hub_url, options.trust, wire.EnrolRequest(
        token=options.token, public_key=b64url(public), csr_pem=csr, hardware_id=hardware_id(options.data_dir),
        hostname=socket.gethostname()))
    say(f"      the hub enrolled this box as edge {answer.edge_id!r} (key {answer.key_id})")

    say("[4/7] keeping the leaf credential, the client certificate and the hub CA")
    auth = EdgeNatsAuth(options.config_dir, answer.edge_id)
    auth.store(answer.leaf, answer.ca_pem, answer.client_cert_pem)

    say(f"[5/7] writing the leaf nats-server config {options.nats_config_path}")
    # The server's parameters are kept beside its config: adding a robot later renders the same server.
    write_site_nats_config(auth, options.nats_config_path, SiteServerParams(
        name=f"vigil-edge-{answer.edge_id}", host="127.0.0.1", port=options.nats_port,
        http_port=options.nats_http_port, store_dir=str((options.data_dir / "jetstream").resolve()),
        domain=f"edge-{answer.edge_id}", pid_file=str((options.data_dir / "nats-server.pid").resolve())))
    say(f"      and the agent config {options.config_path}")
    write_private_file(options.config_path, dump_toml(_agent_config(options, answer, auth)))

    say(f"[6/7] creating the site admin account {options.site_admin!r} for the local page")
    shown: str | None = None
    if options.site_admin_password_file is not None:
        if not options.site_admin_password_file.exists():
            create_private_file(options.site_admin_password_file, secrets.token_urlsafe(12) + "\n")
        password = options.site_admin_password_file.read_text().strip()
    else:
        password = shown = secrets.token_urlsafe(12)
    try:
        create_account(options.data_dir, options.site_admin, password, "admin")
    except AccountExists:
        say(f"      {options.site_admin!r} exists already on this box: kept as it is")
        shown = None

    units: list[Path] = []
    if options.units_dir is not None:
        say(f"[7/7] writing the service units in {options.units_dir}")
        try:
            units = write_units(_spec(options.config_path, options.data_dir, options.nats_config_path,
                                      options.service_user, options.http_port), options.units_dir)
        except (ValueError, OSError) as exc:
            # The box is enrolled by now (the token is spent): say what to fix, do not undo it.
            say(f"      units NOT written: {exc}; start the services by hand or fix this and re-run "
                "`python -m edge units`")
    else:
        say("[7/7] no service units (--units-dir not given)")
    return Enrolled(answer.edge_id, answer.key_id, options.config_path, options.nats_config_path, units,
                    options.site_admin, shown)


def _spec(config_path: Path, data_dir: Path, nats_config_path: Path, service_user: str, http_port: int) -> UnitSpec:
    return UnitSpec(service_user=service_user, python=sys.executable, config_path=str(config_path.resolve()),
                    data_dir=str(data_dir.resolve()), nats_binary=nats_server_binary(),
                    nats_config_path=str(nats_config_path.resolve()), working_dir=str(data_dir.resolve()),
                    advertise_port=http_port)


def unit_spec(config_path: Path, config: EdgeConfig, service_user: str) -> UnitSpec:
    """The units for an enrolled box's config (`python -m edge units`). Raises ValueError when the
    config has no leaf nats-server config (not enrolled)."""
    if not config.hub.nats_config_file:
        raise ValueError(f"{config_path} names no hub.nats_config_file: enrol the box first")
    return _spec(config_path, Path(config.data_dir), Path(config.hub.nats_config_file), service_user, config.http_port)


def next_steps(result: Enrolled) -> str:
    """What the installer does now, printed after a successful enrolment."""
    lines = [f"Enrolled: this box is edge {result.edge_id!r}.", ""]
    if result.site_admin_password is not None:
        lines += [f"Site admin for the local page: {result.site_admin} / {result.site_admin_password}",
                  "(shown only now: write it down; add more with `python -m edge accounts add`)", ""]
    lines.append("Next:")
    if result.units:
        services = " ".join(p.name for p in result.units if "discovery" not in p.name)
        lines += [f"  install the units: sudo cp {' '.join(str(p) for p in result.units)} /etc/systemd/system/",
                  "  sudo systemctl daemon-reload",
                  f"  sudo systemctl enable --now {services}"]
    else:
        lines += [f"  nats-server -c {result.nats_config_path}",
                  f"  python -m edge --config {result.config_path} run"]
    lines += [f"  python -m edge --config {result.config_path} check   (every row green?)",
              f"  then add the site's panels to {result.config_path} ([[satel.panels]]) and restart the agent"]
    return "\n".join(lines)
