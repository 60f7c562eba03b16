"""`python -m edge`: run the agent, create its key pair (once, at enrolment) or print its public
key, release a Satel panel for DLOADX (and resume it) through the running agent's local API, write
a support bundle, manage the site accounts that may log in to the local page and the site's
robots' logins on the box's nats-server (`robot`), restore the journal from its replica onto a
replacement box (`restore`), or show how an SMS text parses with the GSM
link's templates (`sms-test`).

The tools that call the running agent (release, resume, diagnostics) authenticate with the token
it writes to `<data_dir>/local-api.token` at every start (edge.local_auth), so they work for
whoever can read that file on the box (root, the service user) and for nobody else."""
from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import msgspec

from edge.agent import run_edge
from edge.check import render, run_checks
from edge.enrolment import EnrolFailed, EnrolOptions, HubTrust, enrol, next_steps, unit_spec
from edge.install.units import write_units
from edge.config import EdgeConfig, load_edge_config
from edge.discovery import UNENROLLED, Advertisement, Advertiser, DiscoveryError, hardware_id
from edge.journal import JournalError
from edge.links.gsm import DEFAULT_ZONE, TemplateError, load_templates
from edge.local_auth import TokenFileError, read_cli_token, token_path
from edge.replication import ReplicationError
from edge.restore import RestoreError, restore_journal
from edge.robot_admin import BoxFiles, RobotAdminError, add_robot, list_robots, remove_robot
from edge.site_accounts import (
    MIN_PASSWORD, AccountError, AccountStore, AccountStoreError, Role, disable_account, new_account,
)
from edge.support_bundle import write_bundle
from shared import eventloop
from shared.config import ConfigError
from shared.logs import setup_logging
from shared.nats_server import NatsConfigError
from shared.pki import PkiError
from shared.signing import KeyFileError, b64url, create_key_file, load_key_file

_API_TIMEOUT_S = 15.0  # a release waits for the link's request in flight (≤ request_timeout_s)


class ApiCallFailed(Exception):
    """The local API could not be reached or refused the call; the message says why."""


def _local_url(config: EdgeConfig) -> str:
    host = "127.0.0.1" if config.http_host in ("0.0.0.0", "::", "") else config.http_host
    return f"http://{host}:{config.http_port}"


def call_local_api(base_url: str, path: str, token: str, body: dict[str, Any] | None = None,
                   method: str = "POST") -> Any:
    """Call the agent's local API with its on-box `token` (edge.local_auth), `body` as JSON for a
    POST; returns the JSON answer or raises ApiCallFailed with the API's error message."""
    data = json.dumps(body or {}).encode() if method == "POST" else None
    request = urllib.request.Request(
        base_url.rstrip("/") + path, data=data, method=method,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=_API_TIMEOUT_S) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read())["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = exc.reason
        raise ApiCallFailed(f"the edge refused: {message} (HTTP {exc.code})") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ApiCallFailed(f"cannot reach the edge's local API at {base_url}: {reason}; is the agent running?") from None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m edge", description="Vigil edge agent")
    p.add_argument("--config", type=Path, help="TOML config file (VIGIL_EDGE_* variables override it)")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="run the edge agent")
    sub.add_parser("keygen", help="create this edge's key pair (refuses to replace one) and print its public key")
    sub.add_parser("pubkey", help="print this edge's public key")
    release = sub.add_parser("release", help="release a Satel panel's module for DLOADX for N minutes")
    release.add_argument("panel", help="panel id from the edge config")
    release.add_argument("--minutes", type=float, required=True, help="how long the installer needs the panel")
    release.add_argument("--who", required=True, help="who releases it (name of the installer)")
    release.add_argument("--why", required=True, help="why (e.g. the work order)")
    resume = sub.add_parser("resume", help="end a DLOADX release early: the link reconnects now")
    resume.add_argument("panel", help="panel id from the edge config")
    diag = sub.add_parser("diagnostics", help="write a support bundle (config, link states, journal, logs), "
                                              "every secret redacted")
    diag.add_argument("--out", type=Path, default=Path("."), help="folder to write the bundle in")
    diag.add_argument("--log", type=Path, action="append", default=[], help="a log file to include the tail of")
    diag.add_argument("--lines", type=int, default=2000, help="how many lines of each log")
    for tool in (release, resume, diag):
        tool.add_argument("--url", help="the agent's local API (default: from the edge config)")
        tool.add_argument("--token-file", type=Path, help="the running agent's local API token "
                                                          "(default: <data_dir>/local-api.token)")
    _accounts_parser(sub)
    _robot_parser(sub)
    _advertise_parser(sub)
    _enrolment_parsers(sub)
    _sms_test_parser(sub)
    return p


# --- python -m edge sms-test (no config, no agent: for whoever writes a template file) -----------


def _sms_test_parser(sub: Any) -> None:
    sms = sub.add_parser("sms-test", help="show which SMS template matches a text and the fields it yields (JSON)")
    sms.add_argument("text", help="the SMS text, as the sensor sends it")
    sms.add_argument("--templates", type=Path, help="a template file (TOML; default: the shipped templates)")
    sms.add_argument("--tz", default=DEFAULT_ZONE,
                     help=f"the zone a time without an offset is in (IANA name; default {DEFAULT_ZONE})")
    sms.add_argument("--truncated", action="store_true", help="the text is from an incomplete multipart SMS")


def _sms_test(args: argparse.Namespace) -> int:
    """Print the parse of one text as JSON, exit 0 whether or not a template matched; 2 for a
    template file that cannot be used."""
    try:
        templates = load_templates(args.templates, zone=args.tz)
    except TemplateError as exc:
        print(f"vigil edge: {exc}", file=sys.stderr)
        return 2
    parsed = templates.parse(args.text, truncated=args.truncated)
    answer = {"matched": parsed.template is not None, **msgspec.to_builtins(parsed)}
    print(json.dumps(answer, ensure_ascii=False, indent=2))
    return 0


# --- python -m edge enroll | check | units -------------------------------------------------------


def _enrolment_parsers(sub: argparse._SubParsersAction) -> None:
    enroll = sub.add_parser("enroll", help="join this box to a hub with the one-time token an admin created")
    enroll.add_argument("--hub", required=True, help="the hub's https:// URL, as printed with the token")
    enroll.add_argument("--token", required=True, help="the one-time enrolment token")
    trust = enroll.add_mutually_exclusive_group(required=True)
    trust.add_argument("--fingerprint", help="the hub certificate's SHA256:… fingerprint, printed with the token")
    trust.add_argument("--ca-file", type=Path, help="the hub CA certificate (PEM), instead of a fingerprint")
    enroll.add_argument("--config-dir", type=Path, default=Path("/etc/vigil-edge"),
                        help="where the config and credentials go (default /etc/vigil-edge)")
    enroll.add_argument("--data-dir", type=Path, default=Path("/var/lib/vigil-edge"),
                        help="journal, keys, site accounts (default /var/lib/vigil-edge)")
    enroll.add_argument("--units-dir", type=Path, help="write systemd units here (e.g. /etc/systemd/system)")
    enroll.add_argument("--http-host", default="127.0.0.1", help="local page address (the LAN interface to serve it)")
    enroll.add_argument("--http-port", type=int, default=8081)
    enroll.add_argument("--nats-port", type=int, default=4223, help="the site's nats-server client port")
    enroll.add_argument("--nats-http-port", type=int, default=8223, help="its monitoring port")
    enroll.add_argument("--site-admin", default="admin", help="the first local page account (role admin)")
    enroll.add_argument("--site-admin-password-file", type=Path,
                        help="take (or make, 0600) its password in this file instead of printing a new one")
    enroll.add_argument("--service-user", default="vigil", help="the user the services run as")
    enroll.add_argument("--replace", action="store_true",
                        help="enrol an enrolled box again with a new key (after the hub revoked it)")
    check = sub.add_parser("check", help="test every link (hub, leaf credential, local NATS, panels, disk)")
    check.add_argument("--url", help="the agent's local API (default: from the edge config)")
    check.add_argument("--token-file", type=Path, help="the running agent's local API token")
    restore = sub.add_parser("restore", help="restore the journal from its replica onto a replacement box "
                                             "(after enrolment, before the agent runs)")
    restore.add_argument("--from", dest="source", required=True,
                         help="hub (the edge's replica on the hub, through this box's server), file:///folder, "
                              "s3://bucket/path, or config (the replica in the config)")
    restore.add_argument("--force", action="store_true", help="replace an existing journal")
    units = sub.add_parser("units", help="write the systemd units for this box's config")
    units.add_argument("--units-dir", type=Path, required=True)
    units.add_argument("--service-user", default="vigil")


def _enroll(args: argparse.Namespace) -> int:
    try:
        options = EnrolOptions(
            hub_url=args.hub, token=args.token, trust=HubTrust(args.fingerprint, args.ca_file),
            config_dir=args.config_dir, data_dir=args.data_dir, units_dir=args.units_dir, http_host=args.http_host,
            http_port=args.http_port, nats_port=args.nats_port, nats_http_port=args.nats_http_port,
            site_admin=args.site_admin, site_admin_password_file=args.site_admin_password_file,
            service_user=args.service_user, replace=args.replace)
        result = enrol(options, lambda line: print(line, flush=True))
    except EnrolFailed as exc:
        print(f"vigil edge: enrolment failed: {exc}", file=sys.stderr)
        return 1
    except (OSError, KeyFileError, AccountError, AccountStoreError, NatsConfigError, PkiError) as exc:
        print(f"vigil edge: enrolment failed on this box: {exc}", file=sys.stderr)
        return 1
    print()
    print(next_steps(result))
    return 0


def _restore(args: argparse.Namespace, config: EdgeConfig) -> int:
    try:
        restored = restore_journal(config, args.source, force=args.force)
    except RestoreError as exc:
        print(f"vigil edge: {exc}", file=sys.stderr)
        return 1
    print(restored.summary())
    return 0


def _check(args: argparse.Namespace, config: EdgeConfig) -> int:
    base = args.url or _local_url(config)

    async def agent_links() -> list[dict[str, Any]] | None:
        try:
            token = read_cli_token(args.token_file or token_path(config.data_dir))
        except TokenFileError:
            return None  # no agent running (it writes the token at start)
        try:
            answer = await asyncio.to_thread(call_local_api, base, "/api/v1/links/satel", token, None, "GET")
        except ApiCallFailed:
            return None  # a token left by a killed agent: nobody answers, so probe the panels
        return list(answer)

    rows = asyncio.run(run_checks(config, agent_links))
    print(render(rows, colour=sys.stdout.isatty()))
    return 0 if all(r.ok for r in rows) else 1


def _units(args: argparse.Namespace, config: EdgeConfig) -> int:
    if args.config is None:
        print("vigil edge: units needs --config (the file the units will run with)", file=sys.stderr)
        return 2
    try:
        written = write_units(unit_spec(args.config, config, args.service_user), args.units_dir)
    except (ValueError, OSError) as exc:
        print(f"vigil edge: units not written: {exc}", file=sys.stderr)
        return 1
    print("\n".join(str(p) for p in written))
    return 0


# --- python -m edge accounts ---------------------------------------------------------------------


def _accounts_parser(sub: Any) -> None:
    accounts = sub.add_parser("accounts", help="the site accounts that may log in to the local page")
    verbs = accounts.add_subparsers(dest="verb", required=True)
    add = verbs.add_parser("add", help="add an account (asks for its password twice)")
    add.add_argument("name", help="account name: letters, digits, '.', '_' or '-'")
    add.add_argument("--role", required=True, choices=[r.value for r in Role],
                     help="guard: arm, disarm, clear alarms; installer: also DLOADX release, outputs, bypass; "
                          "admin: also manage accounts")
    add.add_argument("--password-file", type=Path, help="read the password from this file (first line) "
                                                        "instead of asking, for automation")
    verbs.add_parser("list", help="list the accounts")
    disable = verbs.add_parser("disable", help="disable an account: it cannot log in, its sessions end")
    disable.add_argument("name")


def _new_password(args: argparse.Namespace) -> str:
    """The new account's password, from --password-file or typed twice; raises AccountError."""
    if args.password_file:
        try:
            lines = args.password_file.read_text().splitlines()
        except OSError as exc:
            raise AccountError(f"cannot read {args.password_file}: {exc.strerror}") from None
        return lines[0] if lines else ""
    password = getpass.getpass(f"password for {args.name} (at least {MIN_PASSWORD} characters): ")
    if getpass.getpass("the same password again: ") != password:
        raise AccountError("the two passwords differ")
    return password


def _accounts(args: argparse.Namespace, config: EdgeConfig) -> int:
    """`accounts add|list|disable`, straight on the accounts file: it works with the agent stopped,
    and a running agent sees the change at its next login or request."""
    store = AccountStore(config.data_dir)
    try:
        if args.verb == "add":
            account = new_account(store, args.name, _new_password(args), args.role)
            print(f"account {account.name} ({account.role.value}) added")
        elif args.verb == "disable":
            account = disable_account(store, args.name)
            print(f"account {account.name} disabled: it cannot log in, and its sessions have ended")
        else:
            for account in store.all():
                state = f"disabled {account.disabled_at}" if account.disabled_at else "active"
                print(f"{account.name:<24} {account.role.value:<10} created {account.created_at}  {state}")
    except (AccountError, AccountStoreError) as exc:
        print(f"vigil edge: {exc}", file=sys.stderr)
        return 1
    return 0


# --- python -m edge robot ------------------------------------------------------------------------


def _robot_parser(sub: Any) -> None:
    robot = sub.add_parser("robot", help="the site's robots: their logins on this box's nats-server")
    verbs = robot.add_subparsers(dest="verb", required=True)
    add = verbs.add_parser("add", help="give a robot a login (its credentials are shown or written once) and "
                                       "add it to the config")
    add.add_argument("robot_id", help="the robot's id: letters, digits, '-' and '_' (e.g. RB-001)")
    add.add_argument("--creds-out", type=Path, help="write its credentials to this new file (0600) instead of "
                                                    "showing them")
    remove = verbs.add_parser("remove", help="take a robot's login away: its connection drops at once")
    remove.add_argument("robot_id")
    listing = verbs.add_parser("list", help="the robots with a login or in the config")
    for verb in (add, remove, listing):
        # Also after the verb (`robot add RB-001 --config edge.toml`); SUPPRESS keeps one given before it.
        verb.add_argument("--config", type=Path, default=argparse.SUPPRESS, help="the edge's config (edge.toml)")


def _robot(args: argparse.Namespace, config: EdgeConfig) -> int:
    """`robot add|remove|list` on the box's files; a running nats-server is told to reload."""
    try:
        files = BoxFiles.of(config, args.config)
        if args.verb == "add":
            add_robot(files, args.robot_id, args.creds_out, lambda line: print(line, flush=True))
        elif args.verb == "remove":
            remove_robot(files, args.robot_id, lambda line: print(line, flush=True))
        else:
            lines = list_robots(files, config)
            print("\n".join(lines) if lines else "no robots")
    except (RobotAdminError, OSError) as exc:
        print(f"vigil edge: {exc}", file=sys.stderr)
        return 1
    return 0


# --- tools that call the running agent ----------------------------------------------------------


def _release_or_resume(args: argparse.Namespace) -> int:
    try:
        if args.url and args.token_file:
            base, token_file = args.url, args.token_file
        else:
            config = load_edge_config(args.config)
            base, token_file = args.url or _local_url(config), args.token_file or token_path(config.data_dir)
    except ConfigError as exc:
        print(f"vigil edge: {exc} (or pass --url and --token-file)", file=sys.stderr)
        return 2
    path = f"/api/v1/links/satel/{urllib.parse.quote(args.panel, safe='')}/{args.command}"
    body = {"minutes": args.minutes, "who": args.who, "why": args.why} if args.command == "release" else None
    try:
        answer = call_local_api(base, path, read_cli_token(token_file), body)
    except (ApiCallFailed, TokenFileError) as exc:
        print(f"vigil edge: {exc}", file=sys.stderr)
        return 1
    if args.command == "release":
        released = answer["released"]
        print(f"panel {args.panel} released until {released['until']} (by {released['who']}: {released['why']}); "
              "the edge reconnects by itself then")
    else:
        print(f"panel {args.panel}: release ended, the edge is reconnecting")
    return 0


# --- python -m edge advertise (an unenrolled box; the agent advertises an enrolled one) ----------


def _advertise_parser(sub: Any) -> None:
    adv = sub.add_parser("advertise", help="advertise this unenrolled box on the LAN over mDNS until SIGTERM, "
                                           "for `python -m provisioning discover`")
    adv.add_argument("--port", type=int, default=8081, help="the port of the box's local page (default 8081)")
    default_dir = next(f.default for f in msgspec.structs.fields(EdgeConfig) if f.name == "data_dir")
    adv.add_argument("--data-dir", default=default_dir,
                     help=f"where the hardware id is kept on a box without /etc/machine-id; the agent's "
                          f"data_dir (default {default_dir})")
    adv.add_argument("--interface", action="append", default=[], metavar="IPV4",
                     help="advertise only on the interface with this address (repeatable; default: every one)")


def _advertise(args: argparse.Namespace) -> int:
    """Advertise as `unenrolled` in the foreground; SIGTERM unregisters and exits 0."""
    try:
        advertisement = Advertisement(hardware_id(args.data_dir), UNENROLLED)
        advertiser = Advertiser(advertisement, args.port, interfaces=args.interface or None)
    except ValueError as exc:  # a bad --port or --interface
        print(f"vigil edge: {exc}", file=sys.stderr)
        return 2
    except DiscoveryError as exc:
        print(f"vigil edge: {exc}", file=sys.stderr)
        return 1
    setup_logging("edge:advertise", "INFO")

    async def advertise() -> None:
        stop = asyncio.Event()
        eventloop.stop_on_signals(stop)
        await advertiser.run(stop)

    eventloop.run(advertise())
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "sms-test":
        return _sms_test(args)
    if args.command == "advertise":
        return _advertise(args)
    if args.command in ("release", "resume"):
        return _release_or_resume(args)
    if args.command == "enroll":
        return _enroll(args)
    try:
        config = load_edge_config(args.config)
    except ConfigError as exc:
        print(f"vigil edge: {exc}", file=sys.stderr)
        return 2
    if args.command == "accounts":
        return _accounts(args, config)
    if args.command == "robot":
        return _robot(args, config)
    if args.command == "check":
        return _check(args, config)
    if args.command == "units":
        return _units(args, config)
    if args.command == "restore":
        return _restore(args, config)
    if args.command == "diagnostics":
        try:
            token: str | None = read_cli_token(args.token_file or token_path(config.data_dir))
        except TokenFileError:
            token = None  # the bundle is written anyway, and says the agent could not be asked
        try:
            bundle = write_bundle(config, args.url or _local_url(config), token, args.out, args.log,
                                  log_lines=args.lines)
        except OSError as exc:
            print(f"vigil edge: cannot write the bundle in {args.out}: {exc.strerror}", file=sys.stderr)
            return 1
        print(f"support bundle written to {bundle} (secrets redacted)")
        return 0
    try:
        if args.command in ("keygen", "pubkey"):
            signer = create_key_file(config.key_path) if args.command == "keygen" else load_key_file(config.key_path)
            print(b64url(signer.public_raw))
            return 0
        setup_logging(f"edge:{config.edge_id}", config.log_level)
        eventloop.run(run_edge(config))
        return 0
    except (JournalError, KeyFileError, ConfigError, ReplicationError) as exc:  # ConfigError: e.g. an unreadable NATS password file
        print(f"vigil edge: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
