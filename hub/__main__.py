"""`python -m hub`: serve, migrate, edge admin and quarantine commands."""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import getpass
import json
import logging
import sys
from datetime import datetime, timezone
from pathlib import Path

import asyncpg

from hub.config import HubConfig, load_hub_config
from hub.db.errors import DB_ERRORS
from hub.ingest import quarantine
from hub.edges import registry
from hub.edges.enrolment import EnrolmentError
from hub.ingest.edge_keys import EdgeAdminError, add_edge
from hub.nats_access import NatsAccessError
from hub.auth import BootstrapError, KeyRingError
from hub.auth.audit import audit
from hub.db.migrate import MigrationError
from hub.db.roles import DatabaseRoleError, prepare_database
from hub.secret_box import SecretBox, SecretBoxError, SecretFileError, add_current_key, drop_keys
from hub.secret_rotation import key_ids_in_use, reseal_all
from hub.service import run_hub
from shared import eventloop
from shared.config import ConfigError
from shared.logs import setup_logging
from shared.signing import b64url_decode


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m hub", description="Vigil hub")
    p.add_argument("--config", type=Path, help="TOML config file (VIGIL_HUB_* variables override it)")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the hub: ingest, API, console")
    sub.add_parser("migrate", help="apply pending database migrations and exit")
    edge = sub.add_parser("edge", help="manage enrolled edges").add_subparsers(dest="edge_command", required=True)
    add = edge.add_parser("add", help="enrol an edge with its public key (re-keying clears a revocation)")
    add.add_argument("edge_id")
    # REMAINDER: a base64url key may start with "-" (1 in 64 do), which argparse would take for an option.
    add.add_argument("public_key", nargs=argparse.REMAINDER,
                     help="base64url Ed25519 public key, as `python -m edge pubkey` prints it")
    rev = edge.add_parser("revoke", help="revoke an edge: its segments are refused and its leaf link dropped "
                                         "(audited); the console and POST /api/v1/edges/{id}/revoke do the same")
    rev.add_argument("edge_id")
    edge.add_parser("list", help="list edges with their seq status")
    secrets = sub.add_parser("secrets", help="the hub's secret file: rotate its key, prune old keys").add_subparsers(
        dest="secrets_command", required=True)
    secrets.add_parser("rotate", help="add a new current key and seal every stored secret again under it")
    secrets.add_parser("prune", help="remove earlier keys that no stored secret uses any more")
    q = sub.add_parser("quarantine", help="segments ingest refused: list, replay, drop").add_subparsers(
        dest="quarantine_command", required=True)
    ls = q.add_parser("list", help="quarantined segments, oldest first")
    ls.add_argument("--status", choices=("HELD", "REPLAYED", "DROPPED", "any"), default="HELD")
    ls.add_argument("--edge")
    ls.add_argument("--limit", type=int, default=100)
    rp = q.add_parser("replay", help="verify held segments again and store those that pass")
    rp.add_argument("ids", nargs="*", type=int)
    rp.add_argument("--edge", help="every held segment of this edge")
    rp.add_argument("--all", action="store_true", help="every held segment")
    dr = q.add_parser("drop", help="give up a held segment (kept for the record)")
    dr.add_argument("id", type=int)
    dr.add_argument("--note", required=True, help="why")
    return p


async def _quarantine(args: argparse.Namespace, conn: asyncpg.Connection) -> int:
    now = datetime.now(timezone.utc)
    actor = f"cli:{getpass.getuser()}"
    if args.quarantine_command == "list":
        status = None if args.status == "any" else args.status
        for row in await quarantine.list_quarantine(conn, status=status, edge=args.edge, limit=args.limit):
            print(json.dumps(row, default=str))
        return 0
    if args.quarantine_command == "replay":
        if not (args.ids or args.edge or args.all):
            raise quarantine.QuarantineError("name the quarantined segments to replay: ids, --edge, or --all")
        ids = args.ids or None
        outcomes = await quarantine.replay(conn, ids=ids, edge=args.edge, actor=actor, now=now)
        for o in outcomes:
            print(json.dumps(dataclasses.asdict(o)))
        return 0 if all(o.replayed for o in outcomes) else 1
    if not await quarantine.drop(conn, args.id, actor=actor, note=args.note, now=now):
        print(f"quarantined segment {args.id} is unknown or not held", file=sys.stderr)
        return 1
    print(json.dumps({"id": args.id, "dropped": True}))
    return 0


async def _secrets(args: argparse.Namespace, conn: asyncpg.Connection, path: Path) -> int:
    if args.secrets_command == "rotate":
        kid = add_current_key(path)
        counts = await reseal_all(conn, SecretBox.from_file(path))
        await audit(conn, datetime.now(timezone.utc), f"cli:{getpass.getuser()}", "secrets.rotated", "secret_file",
                    kid, None, resealed=counts)
        print(json.dumps({"key_id": kid, "resealed": counts,
                          "next": "restart nothing; run `secrets prune` once every hub has the new file"}))
        return 0
    used = await key_ids_in_use(conn)
    if None in used:
        print(f"{used[None]} stored secrets are from before key ids: run `python -m hub secrets rotate` first",
              file=sys.stderr)
        return 1
    removed = drop_keys(path, {kid for kid in used if kid})
    print(json.dumps({"removed": removed, "in_use": {k: n for k, n in used.items() if k}}))
    return 0


async def _admin(args: argparse.Namespace, config: HubConfig) -> int:
    await prepare_database(config.database_url, config.database_owner_url)
    if args.command == "migrate":
        return 0
    conn = await asyncpg.connect(config.database_url)
    try:
        if args.command == "quarantine":
            return await _quarantine(args, conn)
        if args.command == "secrets":
            return await _secrets(args, conn, Path(config.auth.secret_file))
        if args.edge_command == "add":
            if len(args.public_key) != 1:
                raise EdgeAdminError("give the edge's public key, one argument, as `python -m edge pubkey` prints it")
            try:
                raw = b64url_decode(args.public_key[0])
            except ValueError as exc:
                raise EdgeAdminError(str(exc)) from None
            async with conn.transaction():
                kid = await add_edge(conn, args.edge_id, raw)
                await audit(conn, datetime.now(timezone.utc), f"cli:{getpass.getuser()}", "edge.keyed", "edge",
                            args.edge_id, None, key_id=kid)
            print(json.dumps({"edge_id": args.edge_id, "key_id": kid}))
        elif args.edge_command == "revoke":
            # The running hub notices within seconds and drops the edge's leaf link
            # (hub.edges.setup.keep_access_in_step).
            try:
                revoked = await registry.revoke_edge(conn, args.edge_id, f"cli:{getpass.getuser()}",
                                                     datetime.now(timezone.utc), None)
            except EnrolmentError as exc:
                raise EdgeAdminError(str(exc)) from None
            if not revoked:
                print(f"edge {args.edge_id!r} is already revoked", file=sys.stderr)
                return 1
            print(json.dumps({"edge_id": args.edge_id, "revoked": True}))
        else:
            rows = await conn.fetch("SELECT * FROM edge_seq_status ORDER BY edge_id")
            for r in rows:
                print(json.dumps(dict(r)))
        return 0
    finally:
        await conn.close()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = load_hub_config(args.config)
    except ConfigError as exc:
        print(f"vigil hub: {exc}", file=sys.stderr)
        return 2
    setup_logging("hub", config.log_level)
    try:
        if args.command == "serve":
            eventloop.run(run_hub(config))
            return 0
        return asyncio.run(_admin(args, config))
    except (EdgeAdminError, MigrationError, SecretFileError, SecretBoxError, KeyRingError, BootstrapError,
            quarantine.QuarantineError, ConfigError, NatsAccessError, DatabaseRoleError) as exc:
        print(f"vigil hub: {exc}", file=sys.stderr)
        return 2
    except DB_ERRORS as exc:
        logging.getLogger("vigil.hub").error("cannot reach a dependency: %s", exc)
        print(f"vigil hub: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
