"""`python -m provisioning discover`: list the Vigil edge boxes on this LAN (mDNS, see
edge/discovery.py) with their address, hardware id and whether they are enrolled."""
from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import sys
from collections.abc import Sequence

import msgspec
from zeroconf import IPVersion, ServiceInfo, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from edge.discovery import SERVICE_TYPE, Advertisement

log = logging.getLogger("vigil.provisioning.discover")

#: How long one box's records may take to arrive once its name is seen; they usually come with it.
RESOLVE_TIMEOUT_MS = 1500


class DiscoveredBox(msgspec.Struct, frozen=True):
    """One box as it advertises itself."""

    name: str  # the mDNS instance name
    addresses: list[str]
    port: int
    hardware_id: str
    state: str
    edge_id: str | None
    version: str


def box_from_info(info: ServiceInfo) -> DiscoveredBox:
    """The box a resolved service describes; raises ValueError when it is not a box this tool
    understands (another TXT version, a missing field)."""
    ad = Advertisement.from_properties(info.properties)
    if not info.port:
        raise ValueError("no port")
    return DiscoveredBox(
        name=info.name, addresses=sorted(info.parsed_addresses(IPVersion.V4Only), key=ipaddress.ip_address),
        port=info.port, hardware_id=ad.hardware_id, state=ad.state, edge_id=ad.edge_id, version=ad.version,
    )


class BoxBrowser:
    """Browses for boxes until closed (an async context manager). `boxes()` is what is on the
    network now: a box that says goodbye leaves it at once."""

    def __init__(self, interfaces: Sequence[str] | None = None) -> None:
        self._interfaces = list(interfaces) if interfaces else None
        self._zc: AsyncZeroconf | None = None
        self._browser: AsyncServiceBrowser | None = None
        self._boxes: dict[str, DiscoveredBox] = {}
        self._resolving: dict[str, asyncio.Task[None]] = {}
        #: Services of our type this tool cannot read, with the reason (name → why).
        self.unreadable: dict[str, str] = {}

    async def __aenter__(self) -> BoxBrowser:
        if self._interfaces:
            self._zc = AsyncZeroconf(interfaces=self._interfaces, ip_version=IPVersion.V4Only)
        else:
            self._zc = AsyncZeroconf(ip_version=IPVersion.V4Only)
        self._browser = AsyncServiceBrowser(self._zc.zeroconf, SERVICE_TYPE, handlers=[self._on_change])
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for task in self._resolving.values():
            task.cancel()
        await asyncio.gather(*self._resolving.values(), return_exceptions=True)
        if self._browser is not None:
            await self._browser.async_cancel()
        if self._zc is not None:
            await self._zc.async_close()

    def _on_change(self, zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange) -> None:
        # Called on the event loop; a newer change about the same box supersedes the older one.
        previous = self._resolving.pop(name, None)
        if previous is not None:
            previous.cancel()
        if state_change is ServiceStateChange.Removed:
            self._boxes.pop(name, None)
            self.unreadable.pop(name, None)
            return
        self._resolving[name] = asyncio.get_running_loop().create_task(self._resolve(name))

    async def _resolve(self, name: str) -> None:
        assert self._zc is not None
        info = AsyncServiceInfo(SERVICE_TYPE, name)
        try:
            if not await info.async_request(self._zc.zeroconf, RESOLVE_TIMEOUT_MS):
                log.info("%s did not answer with its records", name)
                return
            try:
                box = box_from_info(info)
            except ValueError as exc:
                self.unreadable[name] = str(exc)
                self._boxes.pop(name, None)
            else:
                self._boxes[name] = box
                self.unreadable.pop(name, None)
        finally:
            if self._resolving.get(name) is asyncio.current_task():
                del self._resolving[name]

    async def settled(self) -> None:
        """Wait for the lookups of boxes already seen (each at most RESOLVE_TIMEOUT_MS)."""
        await asyncio.gather(*self._resolving.values(), return_exceptions=True)

    def boxes(self) -> list[DiscoveredBox]:
        """The boxes seen and resolved so far, by address."""
        return sorted(self._boxes.values(), key=lambda b: ([ipaddress.ip_address(a) for a in b.addresses], b.name))


async def discover(timeout_s: float, interfaces: Sequence[str] | None = None) -> tuple[list[DiscoveredBox], dict[str, str]]:
    """Browse for `timeout_s` seconds; the boxes found, and the services of our type this tool
    could not read (name → why)."""
    async with BoxBrowser(interfaces) as browser:
        # A browse is a listening window: boxes answer the queries sent during it, at their pace.
        await asyncio.sleep(timeout_s)
        await browser.settled()
        return browser.boxes(), dict(browser.unreadable)


def render_table(boxes: Sequence[DiscoveredBox]) -> str:
    """The boxes as a text table: address, port, hardware id, state, edge id."""
    rows = [("ADDRESS", "PORT", "HARDWARE ID", "STATE", "EDGE ID")]
    rows += [(",".join(b.addresses) or "-", str(b.port), b.hardware_id, b.state, b.edge_id or "-") for b in boxes]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `discover` subcommand's options."""
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds to listen for boxes (default 3)")
    parser.add_argument("--json", action="store_true", help="print the boxes as a JSON array")
    parser.add_argument("--interface", action="append", default=[], metavar="IPV4",
                        help="browse only on the interface with this address (repeatable; default: all)")


def run(args: argparse.Namespace) -> int:
    """`python -m provisioning discover`: exit 0 whether or not boxes were found."""
    if not 0 < args.timeout <= 600:
        print("vigil provisioning: --timeout must be in 0..600 seconds", file=sys.stderr)
        return 2
    for address in args.interface:
        try:
            ipaddress.IPv4Address(address)
        except ValueError:
            print(f"vigil provisioning: --interface {address!r} is not an IPv4 address", file=sys.stderr)
            return 2
    try:
        boxes, unreadable = asyncio.run(discover(args.timeout, args.interface or None))
    except OSError as exc:
        print(f"vigil provisioning: cannot browse the network: {exc}", file=sys.stderr)
        return 1
    for name, why in sorted(unreadable.items()):
        print(f"note: ignored {name}: {why}", file=sys.stderr)
    if args.json:
        print(msgspec.json.encode(boxes).decode())
    elif boxes:
        print(render_table(boxes))
    else:
        print(f"no Vigil edge boxes found on this network (waited {_seconds(args.timeout)} s)")
    return 0


def _seconds(value: float) -> int | float:
    return int(value) if value == int(value) else value
