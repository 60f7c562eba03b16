"""Run the emulator: ``python -m firmware_bridges.satel.emulator --port 7094 [--key KEY] [--control-port 7095]``.

Starts with the sample site (8 zones in 2 partitions, 2 outputs, user code 1234 for partitions
1 and 2) and runs until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from shared.eventloop import stop_on_signals

from .ethm import SatelEmulator
from .site import sample_panel


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m firmware_bridges.satel.emulator",
        description="Emulated Satel ETHM-1 Plus with a sample INTEGRA site.",
    )
    parser.add_argument("--port", type=int, required=True, help="TCP port of the module (0 = any free port)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--key", help="integration key: turns on the encrypted integration mode")
    parser.add_argument("--control-port", type=int, help="also serve the HTTP control endpoint on 127.0.0.1")
    parser.add_argument("--idle-timeout", type=float, default=25.0, help="drop clients idle this long (s)")
    parser.add_argument(
        "--drop-first-client", action="store_true", help="on a second client drop the first (newer firmware)"
    )
    parser.add_argument("--code-prefix", default="", help="prefix the panel expects before user codes")
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    return parser


async def _run(args: argparse.Namespace) -> None:
    emulator = SatelEmulator(
        port=args.port,
        key=args.key,
        host=args.host,
        panel=sample_panel(code_prefix=args.code_prefix),
        idle_timeout=args.idle_timeout,
        drop_first_client=args.drop_first_client,
        control_port=args.control_port,
    )
    stop = asyncio.Event()
    stop_on_signals(stop)
    async with emulator:
        control = f", control http://127.0.0.1:{emulator.control_port}" if args.control_port is not None else ""
        mode = "encrypted" if args.key else "plain"
        print(f"satel emulator on {args.host}:{emulator.port} ({mode}){control}", flush=True)
        await stop.wait()
    logging.getLogger(__name__).info("satel emulator stopped")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m firmware_bridges.satel.emulator``."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(_run(args))
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
