"""`python -m firmware_bridges.gsm.emulator --link PATH [--control-port PORT]`: a USB GSM modem on
a pseudo-terminal (PATH becomes a symlink to it) until SIGTERM or Ctrl-C."""
from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from .runner import GsmEmulator


async def _main(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with GsmEmulator(Path(args.link), control_port=args.control_port, capacity=args.capacity) as emulator:
        control = f", control http://127.0.0.1:{emulator.control_port}/" if args.control_port is not None else ""
        print(f"GSM modem emulator on {args.link}{control}", flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m firmware_bridges.gsm.emulator", description=__doc__)
    parser.add_argument("--link", required=True, help="the path to make a symlink to the modem's terminal")
    parser.add_argument("--control-port", type=int, default=None, help="HTTP control endpoint port (0: any free)")
    parser.add_argument("--capacity", type=int, default=20, help="SMS storage slots (default 20)")
    args = parser.parse_args(argv)
    asyncio.run(_main(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
