"""A fleet of mock robots in one process, for bench/robots.py: each robot is the real bridge
(firmware_bridges.robot: BridgeCore, RobotLink, MockRobot) with its own login and connection to
the box's nats-server, as separate robots would be; one process keeps 50 of them off the agent's
cores' budget less than 50 interpreters would.

    python bench/_robot_fleet.py --nats URL --creds-dir DIR --telemetry-hz 10

runs one robot per `<robot id>.json` credentials file in DIR until SIGTERM, each saying goodbye.
"""
from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import msgspec

from firmware_bridges.robot.core import BridgeCore
from firmware_bridges.robot.link import RobotLink
from firmware_bridges.robot.mock import MockRobot
from shared import eventloop
from shared.clock import SYSTEM_CLOCK
from shared.eventloop import stop_on_signals
from shared.robots import RobotCredentials


async def _fleet(url: str, creds_dir: Path, telemetry_hz: float) -> None:
    stop = asyncio.Event()
    stop_on_signals(stop)
    links = []
    for path in sorted(creds_dir.glob("*.json")):
        credentials = msgspec.json.decode(path.read_bytes(), type=RobotCredentials)
        robot = MockRobot(credentials.robot_id, None)
        core = BridgeCore(credentials.robot_id, robot, SYSTEM_CLOCK, heartbeat_s=2.0, telemetry_hz=telemetry_hz)
        links.append(RobotLink(url, credentials, robot, core, state_dir=None, tick_s=min(0.1, 1 / telemetry_hz)))
    print(f"fleet of {len(links)} robots at {telemetry_hz:g} Hz", flush=True)
    await asyncio.gather(*(link.run(stop) for link in links))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nats", required=True)
    parser.add_argument("--creds-dir", type=Path, required=True)
    parser.add_argument("--telemetry-hz", type=float, default=10.0)
    args = parser.parse_args()
    eventloop.run(_fleet(args.nats, args.creds_dir, args.telemetry_hz))


if __name__ == "__main__":
    main()
