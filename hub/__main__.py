"""`python -m hub`: serve, migrate, and edge admin commands."""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path

import asyncpg

from hub.config import load_hub_config
from hub.ingest.edge_keys import EdgeAdminError, add_edge, revoke_edge
from hub.auth import BootstrapError, KeyRingError
from hub.db.migrate import MigrationError, migrate
from hub.secret_box import SecretFileError
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
    add.add_argument("public_key", help="base64url Ed25519 public key, as `python -m edge pubkey` prints it")
    rev = edge.add_parser("revoke", help="revoke an edge: its segments are refused from now on")
    rev.add_argument("edge_id")
    edge.add_parser("list", help="list edges with their seq status")
    return p


async def _admin(args: argparse.Namespace, dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
        if args.command == "migrate":
            return 0
        if args.edge_command == "add":
            try:
                raw = b64url_decode(args.public_key)
            except ValueError as exc:
                raise EdgeAdminError(str(exc)) from None
            kid = await add_edge(conn, args.edge_id, raw)
            print(json.dumps({"edge_id": args.edge_id, "key_id": kid}))
        elif args.edge_command == "revoke":
            if not await revoke_edge(conn, args.edge_id):
                print(f"edge {args.edge_id!r} is unknown or already revoked", file=sys.stderr)
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
        return asyncio.run(_admin(args, config.database_url))
    except (EdgeAdminError, MigrationError, SecretFileError, KeyRingError, BootstrapError) as exc:
        print(f"vigil hub: {exc}", file=sys.stderr)
        return 2
    except (OSError, asyncpg.PostgresError) as exc:
        logging.getLogger("vigil.hub").error("cannot reach a dependency: %s", exc)
        print(f"vigil hub: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
