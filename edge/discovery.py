"""mDNS discovery of edge boxes: each box advertises `_vigil-edge._tcp` with its hardware id and
whether it is enrolled, so an installer finds it on the site's LAN (`python -m provisioning
discover`) without knowing its address.

An unenrolled box runs `python -m edge advertise` (its systemd unit runs only while the box has no
config); an enrolled box's agent advertises itself while it runs. The TXT records carry nothing
secret: the hardware id is derived from /etc/machine-id by a keyed hash, never the id itself
(machine-id(5): it must not be exposed on the network), and never a MAC address.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import logging
import secrets
import string
from collections.abc import Callable, Sequence
from pathlib import Path

import ifaddr
import msgspec
from zeroconf import Error as ZeroconfError
from zeroconf import IPVersion, ServiceInfo, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncZeroconf

from edge.config import EdgeConfig
from shared.backoff import sleep_or_stop
from shared.private_file import create_private_file

log = logging.getLogger("vigil.edge.discovery")

SERVICE_TYPE = "_vigil-edge._tcp.local."
#: The TXT layout's version (`ver`); a browser lists only versions it understands.
PROTOCOL_VERSION = "1"
UNENROLLED = "unenrolled"
ENROLLED = "enrolled"
STATES = (UNENROLLED, ENROLLED)

MACHINE_ID_PATH = Path("/etc/machine-id")
HARDWARE_ID_FILE = "hardware-id"
_HARDWARE_ID_LEN = 16  # hex digits: 64 bits, ample for any fleet and short enough to read out
# machine-id(5): derive application ids with a keyed hash under a fixed application key.
_APP_KEY = b"vigil-edge-hardware-id"
#: How often the advertiser looks at the box's addresses (a DHCP lease arriving after boot, a
#: cable moved to another switch): a change re-registers with the new ones.
ADDRESS_RECHECK_S = 10.0
#: How long a box asks whether its instance name is taken before claiming it (answers come in
#: well under a second; no answer costs this once per start).
NAME_QUERY_MS = 1500


class DiscoveryError(Exception):
    """The box cannot advertise itself; the message says why."""


def _valid_hardware_id(text: str) -> bool:
    return len(text) == _HARDWARE_ID_LEN and all(c in string.hexdigits.lower() for c in text)


def hardware_id(data_dir: str | Path, *, machine_id_path: Path = MACHINE_ID_PATH) -> str:
    """This box's stable hardware id (16 lower-case hex digits).

    From /etc/machine-id when it holds one (a keyed hash of it, so the id itself never leaves the
    box); else a random id made once and kept in `<data_dir>/hardware-id`, so it survives restarts
    and is the same for the advertiser and the agent (both get the same data dir). Raises
    DiscoveryError when the kept file is unreadable or holds something else.
    """
    try:
        machine_id = machine_id_path.read_text().strip()
    except (FileNotFoundError, NotADirectoryError):
        machine_id = ""
    except OSError as exc:
        raise DiscoveryError(f"cannot read {machine_id_path}: {exc.strerror}") from None
    # An image not yet booted holds an empty file or "uninitialized" (machine-id(5)).
    if len(machine_id) == 32 and all(c in string.hexdigits for c in machine_id):
        digest = hmac.new(bytes.fromhex(machine_id), _APP_KEY, hashlib.sha256).hexdigest()
        return digest[:_HARDWARE_ID_LEN]
    path = Path(data_dir) / HARDWARE_ID_FILE
    try:
        # Two processes starting together: the loser of the race keeps the winner's id.
        create_private_file(path, secrets.token_hex(_HARDWARE_ID_LEN // 2) + "\n")
        kept = path.read_text().strip()
    except OSError as exc:
        raise DiscoveryError(f"cannot keep the hardware id in {path}: {exc.strerror}") from None
    if not _valid_hardware_id(kept):
        raise DiscoveryError(f"{path} does not hold a hardware id ({_HARDWARE_ID_LEN} hex digits); "
                             "remove it and a new one is made")
    return kept


class Advertisement(msgspec.Struct, frozen=True):
    """What a box says about itself in its TXT records (`hw`, `state`, `edge`, `ver`)."""

    hardware_id: str
    state: str
    edge_id: str | None = None
    version: str = PROTOCOL_VERSION

    def __post_init__(self) -> None:
        if not _valid_hardware_id(self.hardware_id):
            raise ValueError(f"hardware id {self.hardware_id!r} is not {_HARDWARE_ID_LEN} lower-case hex digits")
        if self.state not in STATES:
            raise ValueError(f"state {self.state!r} is not one of {', '.join(STATES)}")
        if (self.state == ENROLLED) != bool(self.edge_id):
            raise ValueError("an enrolled box has an edge id, and only an enrolled box")

    def properties(self) -> dict[str, str]:
        """The TXT records."""
        txt = {"hw": self.hardware_id, "state": self.state, "ver": self.version}
        if self.edge_id:
            txt["edge"] = self.edge_id
        return txt

    @classmethod
    def from_properties(cls, txt: dict[bytes, bytes | None]) -> Advertisement:
        """Read TXT records back; raises ValueError naming what is wrong (a box of another
        protocol version, a missing or bad field)."""
        try:
            fields = {key.decode(): (value or b"").decode() for key, value in txt.items()}
        except UnicodeDecodeError:
            raise ValueError("TXT records are not UTF-8") from None
        version = fields.get("ver", "")
        if version != PROTOCOL_VERSION:
            raise ValueError(f"discovery protocol version {version or 'missing'!r}, this tool reads {PROTOCOL_VERSION!r}")
        return cls(fields.get("hw", ""), fields.get("state", ""), fields.get("edge") or None, version)


def instance_name(hw: str) -> str:
    """The mDNS service instance name of the box with hardware id `hw`."""
    return f"vigil-{hw}.{SERVICE_TYPE}"


def lan_addresses() -> list[str]:
    """The box's IPv4 addresses except loopback, sorted: where a box on the LAN can be reached."""
    found = {ip.ip for adapter in ifaddr.get_adapters() for ip in adapter.ips if ip.is_IPv4}
    return sorted(a for a in found if not ipaddress.ip_address(a).is_loopback)


async def wait_for_holder(zc: AsyncZeroconf, wanted: str, timeout_s: float) -> bool:
    """Browse the service type until a box announcing `wanted` is seen (True), or `timeout_s`
    passes (False)."""
    seen = asyncio.Event()

    # zeroconf calls a handler with keyword arguments: these names are its API.
    def on_change(zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange) -> None:
        if name == wanted:
            seen.set()

    browser = AsyncServiceBrowser(zc.zeroconf, SERVICE_TYPE, handlers=[on_change])
    try:
        await asyncio.wait_for(seen.wait(), timeout_s)
    except TimeoutError:
        return False  # nobody holds it: the common case
    finally:
        await browser.async_cancel()
    return True


class Advertiser:
    """Advertises one box over mDNS until stopped.

    `interfaces`: the IPv4 addresses to advertise on (and to publish); None: every non-loopback
    address the box has, looked at again every `recheck_s` so an address that arrives or changes
    later is advertised too.
    """

    def __init__(
        self, advertisement: Advertisement, port: int, *, interfaces: Sequence[str] | None = None,
        recheck_s: float = ADDRESS_RECHECK_S,
    ) -> None:
        if not 1 <= port <= 65535:
            raise ValueError(f"port must be 1..65535, got {port}")
        for address in interfaces or ():
            if not isinstance(ipaddress.ip_address(address), ipaddress.IPv4Address):
                raise ValueError(f"interface {address!r} is not an IPv4 address")
        self.advertisement = advertisement
        self.port = port
        self._list_addresses: Callable[[], list[str]] = (
            (lambda: sorted(set(interfaces))) if interfaces else lan_addresses
        )
        self.recheck_s = recheck_s
        self._zc: AsyncZeroconf | None = None
        self._info: ServiceInfo | None = None
        self.addresses: list[str] = []  # what is advertised now; empty while not advertising

    @property
    def name(self) -> str | None:
        """The registered instance name (zeroconf appends `-2`… when another box claims ours),
        or None while not advertising."""
        return self._info.name if self._info else None

    async def start(self) -> bool:
        """Register on the box's current addresses (probing for a name conflict first) and
        announce; False when the box has no address yet. Raises DiscoveryError when mDNS cannot
        be used."""
        addresses = self._list_addresses()
        if not addresses:
            return False
        hw = self.advertisement.hardware_id
        info = ServiceInfo(
            SERVICE_TYPE, instance_name(hw), port=self.port, properties=self.advertisement.properties(),
            server=f"vigil-{hw}.local.", parsed_addresses=addresses,
        )
        zc: AsyncZeroconf | None = None
        try:
            zc = AsyncZeroconf(interfaces=addresses, ip_version=IPVersion.V4Only)
            # zeroconf's probe sees a name conflict only in its cache (the service type's PTR
            # records), which a fresh responder has not filled: browse first, so a box already
            # holding our name answers into the cache.
            if await wait_for_holder(zc, info.name, NAME_QUERY_MS / 1000):
                log.warning("another box already announces %s (a cloned machine-id?): taking a new name", info.name)
            # A second box claiming our name (a cloned machine-id) is renamed, not refused: the
            # installer then sees both, with the same hardware id, and can tell what happened.
            announced = await zc.async_register_service(info, allow_name_change=True)
            await announced
        except BaseException as exc:
            if zc is not None:
                await zc.async_close()  # also when cancelled: no responder is left behind
            if isinstance(exc, (OSError, ZeroconfError)):
                raise DiscoveryError(f"cannot advertise on {', '.join(addresses)}: {exc}") from exc
            raise
        self._zc, self._info, self.addresses = zc, info, addresses
        log.info("advertising %s (%s) on %s port %d", info.name, self.advertisement.state,
                 ", ".join(addresses), self.port)
        return True

    async def stop(self) -> None:
        """Unregister (goodbye packets, so browsers drop the box at once) and close; idempotent."""
        zc, self._zc, self._info, self.addresses = self._zc, None, None, []
        if zc is not None:
            await zc.async_close()  # unregisters every service first

    async def _start_unless(self, stop: asyncio.Event) -> bool | None:
        """start(), given up (None) when `stop` is set first: probing and announcing take a
        second or two, which a stopping agent should not wait for."""
        starting = asyncio.ensure_future(self.start())
        waiting = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({starting, waiting}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiting.cancel()
            if not starting.done():
                starting.cancel()
                await asyncio.gather(starting, return_exceptions=True)
        return None if starting.cancelled() else starting.result()

    async def run(self, stop: asyncio.Event) -> None:
        """Advertise until `stop` is set, following address changes; an mDNS failure is logged
        and retried at the next look, never raised: a box that cannot advertise still works."""
        try:
            while not stop.is_set():
                current = self._list_addresses()
                if current != self.addresses:
                    await self.stop()
                    try:
                        started = await self._start_unless(stop)
                        if started is None:
                            break
                        if not started:
                            log.info("no network address yet to advertise on; looking again in %.0f s", self.recheck_s)
                    except DiscoveryError as exc:
                        log.warning("%s; trying again in %.0f s", exc, self.recheck_s)
                if await sleep_or_stop(self.recheck_s, stop):
                    break
        finally:
            await self.stop()


def page_interfaces(http_host: str, configured: Sequence[str]) -> list[str] | None:
    """Where the agent advertises: the `configured` addresses, else where its local page listens
    (None: every interface, for a wildcard `http_host`). An installer who finds the box should be
    able to open its page; and a page kept on loopback keeps the box off the LAN. Raises
    DiscoveryError when `http_host` names no IPv4 address this can use."""
    if configured:
        return list(configured)
    if http_host in ("", "0.0.0.0", "::"):
        return None
    if http_host == "localhost":
        return ["127.0.0.1"]
    try:
        address = ipaddress.ip_address(http_host)
    except ValueError:
        raise DiscoveryError(f"http_host {http_host!r} is a name, not an address: set discovery.interfaces") from None
    if not isinstance(address, ipaddress.IPv4Address):
        raise DiscoveryError(f"http_host {http_host} is IPv6 and discovery speaks IPv4: set discovery.interfaces")
    return [http_host]


async def advertise_agent(config: EdgeConfig, port: int, stop: asyncio.Event) -> None:
    """The running agent's advertisement (`enrolled`, its edge id, its local page's `port`) until
    `stop` is set. A box that cannot advertise logs why and works on: discovery is for finding a
    box, never a reason for it to stop watching its site."""
    try:
        interfaces = page_interfaces(config.http_host, config.discovery.interfaces)
        advertisement = Advertisement(hardware_id(config.data_dir), ENROLLED, config.edge_id)
    except DiscoveryError as exc:
        log.warning("not advertising on the LAN: %s", exc)
        return
    await Advertiser(advertisement, port, interfaces=interfaces).run(stop)
