"""Run a robot's bridge:

    python -m firmware_bridges.robot --nats URL --creds FILE --robot-id RB-001 --mode MOCK
        [--control-port N] [--telemetry-hz 10] [--heartbeat-s 2] [--time-scale 1] [--state-dir DIR] [--name NAME]
    python -m firmware_bridges.robot ... --mode ADAPTER --adapter package.module:factory

`--creds` is the JSON file `python -m edge robot add` writes (robot id, user, password; mode
0600). Runs until SIGTERM or Ctrl-C, then sends a last status with `goodbye` and exits 0. Logs
are JSON lines on stderr; one line on stdout says where it runs; SIGUSR1 logs a diagnostics dump
(redacted: diagnostics.py). Exit status 2: bad arguments, a
bad credentials file, or a robot id that is not valid or not the credentials'.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import msgspec
from aiohttp import web

from shared.clock import SYSTEM_CLOCK
from shared.eventloop import run, stop_on_signals
from shared.logs import setup_logging
from shared.private_file import read_private_file
from shared.robots import RESERVED_ROBOT_IDS, RobotCredentials, valid_robot_id

from .adapter import AdapterLoadError, AdapterOptions, RobotAdapter, load_adapter
from .control import create_control_app
from .core import BridgeCore
from .diagnostics import diagnostics
from .link import RobotLink, load_fencing_token, redact_url
from .mock import MockRobot

log = logging.getLogger("vigil.robot")


class StartError(Exception):
    """The bridge cannot start as asked; the message says why."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m firmware_bridges.robot",
                                     description="A robot's bridge to its Vigil edge box.")
    parser.add_argument("--nats", required=True, help="the edge box's nats-server, e.g. nats://192.168.1.10:4222")
    parser.add_argument("--creds", required=True, type=Path, help="the robot's credentials file (JSON, mode 0600)")
    parser.add_argument("--robot-id", required=True, help="this robot's id (the one in the credentials)")
    parser.add_argument("--mode", required=True, choices=("MOCK", "ADAPTER"), help="a simulated robot, or a real one")
    parser.add_argument("--adapter", help="ADAPTER mode: package.module:factory making the robot's adapter")
    parser.add_argument("--name", help="the robot's name, reported in its identity")
    parser.add_argument("--control-port", type=int, help="MOCK mode: HTTP control endpoint on 127.0.0.1 (0: any)")
    parser.add_argument("--telemetry-hz", type=float, default=10.0, help="telemetry samples per second (0: none)")
    parser.add_argument("--heartbeat-s", type=float, default=2.0, help="status heartbeat interval (s)")
    parser.add_argument("--time-scale", type=float, default=1.0, help="MOCK mode: robot time per clock second")
    parser.add_argument("--settings-delay-s", type=float, default=0.5, help="MOCK mode: robot time to apply settings")
    parser.add_argument("--state-dir", type=Path, help="keep the highest fencing token here across restarts")
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    return parser


def read_credentials(path: Path, robot_id: str) -> RobotCredentials:
    """The robot's credentials from `path`, checked against `robot_id`."""
    if not valid_robot_id(robot_id):
        raise StartError(f"robot id {robot_id!r} is not valid: one token of letters, digits, '-' and '_' "
                         f"(at most 64), none of {sorted(RESERVED_ROBOT_IDS)}")
    text = read_private_file(path, "robot credentials file", StartError)
    try:
        credentials = msgspec.json.decode(text, type=RobotCredentials)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise StartError(f"robot credentials file {path} is not valid: {exc}") from None
    if credentials.robot_id != robot_id:
        raise StartError(f"robot credentials file {path} is robot {credentials.robot_id!r}'s, not {robot_id!r}'s")
    return credentials


def _check(args: argparse.Namespace) -> None:
    if not 0 < args.heartbeat_s <= 300:
        raise StartError(f"--heartbeat-s {args.heartbeat_s} must be in (0, 300]")
    if args.telemetry_hz < 0:
        raise StartError(f"--telemetry-hz {args.telemetry_hz} must not be negative")
    if args.time_scale <= 0:
        raise StartError(f"--time-scale {args.time_scale} must be positive")
    if args.mode == "ADAPTER":
        if not args.adapter:
            raise StartError("--mode ADAPTER needs --adapter package.module:factory")
        if args.control_port is not None:
            raise StartError("--control-port is the MOCK robot's; a real robot's faults are its own")
    elif args.adapter:
        raise StartError("--adapter is for --mode ADAPTER")


def _make_robot(args: argparse.Namespace) -> tuple[RobotAdapter, MockRobot | None]:
    if args.mode == "MOCK":
        mock = MockRobot(args.robot_id, args.name, time_scale=args.time_scale, settings_delay_s=args.settings_delay_s)
        return mock, mock
    try:
        return load_adapter(args.adapter, AdapterOptions(args.robot_id, args.name)), None
    except AdapterLoadError as exc:
        raise StartError(str(exc)) from None


async def _run(args: argparse.Namespace, credentials: RobotCredentials) -> None:
    adapter, mock = _make_robot(args)
    state_dir: Path | None = args.state_dir
    if state_dir is not None:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    core = BridgeCore(args.robot_id, adapter, SYSTEM_CLOCK, heartbeat_s=args.heartbeat_s,
                      telemetry_hz=args.telemetry_hz, highest_token=load_fencing_token(state_dir, args.robot_id))
    # Ticks as often as telemetry is due, and at least ten times a second so a change of state
    # goes out within 100 ms.
    tick_s = min(0.1, 1.0 / args.telemetry_hz) if args.telemetry_hz > 0 else 0.1
    link = RobotLink(args.nats, credentials, adapter, core, state_dir=state_dir, tick_s=tick_s)
    stop = asyncio.Event()
    stop_on_signals(stop)
    asyncio.get_running_loop().add_signal_handler(
        signal.SIGUSR1, lambda: log.info("diagnostics", extra={"robot": args.robot_id,
                                                               "diagnostics": diagnostics(link, mock)}))
    runner: web.AppRunner | None = None
    control = ""
    if mock is not None and args.control_port is not None:
        runner = web.AppRunner(create_control_app(link, mock), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", args.control_port).start()
        control = f", control http://127.0.0.1:{runner.addresses[0][1]}/"
    print(f"robot bridge {args.robot_id} ({args.mode}) for {redact_url(args.nats)}{control}", flush=True)
    try:
        await link.run(stop)
    finally:
        if runner is not None:
            await runner.cleanup()
    log.info("robot bridge %s stopped", args.robot_id, extra={"robot": args.robot_id})


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m firmware_bridges.robot`."""
    args = _parser().parse_args(argv)
    setup_logging("robot-bridge", args.log_level)
    try:
        _check(args)
        credentials = read_credentials(args.creds, args.robot_id)
        run(_run(args, credentials))
    except (StartError, OSError) as exc:  # OSError: the control port or the state dir
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
