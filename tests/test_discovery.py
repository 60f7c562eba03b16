"""mDNS discovery of edge boxes (edge/discovery.py, provisioning/discover.py), over loopback only.

Multicast on loopback works here without `ip link set lo multicast on`: zeroconf, given
interfaces=["127.0.0.1"], binds its responder to 127.0.0.1:5353 with IP_MULTICAST_IF=127.0.0.1 and
joins 224.0.0.251 on lo, and the kernel loops the datagrams back to every member socket on lo; the
MULTICAST flag only matters for routing a group address without IP_MULTICAST_IF. Nothing here
browses or advertises on "all interfaces" in this network namespace: that would send multicast out
of the machine. The tests of that default run in a private network namespace of their own
(`unshare --net`, root), where the only interface is lo.
"""
from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from zeroconf import IPVersion, ServiceInfo
from zeroconf.asyncio import AsyncZeroconf

from edge.agent import run_edge
from edge.config import EdgeConfig, load_edge_config
from edge.discovery import (
    ENROLLED, HARDWARE_ID_FILE, PROTOCOL_VERSION, SERVICE_TYPE, UNENROLLED, Advertisement, Advertiser,
    DiscoveryError, advertise_agent, hardware_id, instance_name, page_interfaces, wait_for_holder,
)
from provisioning.discover import BoxBrowser, DiscoveredBox, render_table
from shared.nats_server import nats_server_binary
from shared.process import ManagedProcess, free_port, tcp_port_open
from shared.signing import create_key_file
from support.waiting import wait_until

LO = ["127.0.0.1"]
REPO = Path(__file__).resolve().parent.parent


def _hw() -> str:
    # Random per test: tests running at the same time, and real agents on this machine, never clash.
    return secrets.token_hex(8)


def _find(boxes: list[DiscoveredBox], *, hw: str | None = None, port: int | None = None) -> DiscoveredBox | None:
    return next((b for b in boxes if (hw is None or b.hardware_id == hw) and (port is None or b.port == port)), None)


@pytest.fixture
async def advertisers() -> AsyncIterator[Callable[..., Advertiser]]:
    """Make advertisers on loopback; every one still running is stopped at the end."""
    made: list[Advertiser] = []

    def make(advertisement: Advertisement, port: int) -> Advertiser:
        made.append(Advertiser(advertisement, port, interfaces=LO))
        return made[-1]

    yield make
    for advertiser in made:
        await advertiser.stop()


def _netns_command(*argv: str) -> list[str]:
    """`argv` in a private network namespace whose only interface is lo (root only)."""
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("needs root with unshare and ip (util-linux, iproute2) for a private network namespace")
    probe = subprocess.run(["unshare", "--net", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a network namespace here: {probe.stderr.strip()}")
    return ["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *argv]


def _without_machine_id(*argv: str) -> list[str]:
    """`argv` in a private mount namespace where /etc/machine-id reads empty (root only)."""
    if os.geteuid() != 0 or shutil.which("unshare") is None or not Path("/etc/machine-id").exists():
        pytest.skip("needs root with unshare, and an /etc/machine-id to hide")
    return ["unshare", "--mount", "sh", "-c", 'mount --bind /dev/null /etc/machine-id && exec "$@"', "sh", *argv]


async def _run(argv: list[str], timeout: float = 60) -> tuple[int, str, str]:
    # Asynchronously: the advertisers in this test's event loop must answer while it runs.
    proc = await asyncio.create_subprocess_exec(*argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return proc.returncode or 0, out.decode(), err.decode()


# --- hardware id ------------------------------------------------------------------------------


def test_hardware_id_from_machine_id_is_stable_and_not_the_machine_id(tmp_path: Path) -> None:
    machine_id = tmp_path / "machine-id"
    machine_id.write_text("3d1219c7c4c5404aaa1f6d2a48adfda4\n")
    first = hardware_id(tmp_path / "a", machine_id_path=machine_id)
    assert first == hardware_id(tmp_path / "b", machine_id_path=machine_id)  # the data dir plays no part
    assert len(first) == 16 and all(c in "0123456789abcdef" for c in first)
    assert first not in "3d1219c7c4c5404aaa1f6d2a48adfda4"  # a keyed hash, not a piece of the id
    machine_id.write_text("00000000000000000000000000000001\n")
    assert hardware_id(tmp_path / "a", machine_id_path=machine_id) != first
    assert not (tmp_path / "a" / HARDWARE_ID_FILE).exists()


@pytest.mark.parametrize("content", [None, "", "uninitialized\n", "not-hex-at-all-not-hex-at-all-xx\n"])
def test_hardware_id_without_a_machine_id_is_random_and_kept(tmp_path: Path, content: str | None) -> None:
    machine_id = tmp_path / "machine-id"
    if content is not None:
        machine_id.write_text(content)
    data_dir = tmp_path / "data"
    first = hardware_id(data_dir, machine_id_path=machine_id)
    assert len(first) == 16 and all(c in "0123456789abcdef" for c in first)
    kept = data_dir / HARDWARE_ID_FILE
    assert kept.read_text().strip() == first
    assert kept.stat().st_mode & 0o777 == 0o600
    assert hardware_id(data_dir, machine_id_path=machine_id) == first  # kept across restarts
    assert hardware_id(tmp_path / "other", machine_id_path=machine_id) != first


def test_hardware_id_refuses_a_damaged_kept_file(tmp_path: Path) -> None:
    (tmp_path / HARDWARE_ID_FILE).write_text("hello\n")
    with pytest.raises(DiscoveryError, match="does not hold a hardware id"):
        hardware_id(tmp_path, machine_id_path=tmp_path / "absent")


def test_hardware_id_says_when_it_cannot_be_kept(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(DiscoveryError, match="cannot keep the hardware id"):
        hardware_id(tmp_path / "file" / "data", machine_id_path=tmp_path / "absent")


# --- what a box says --------------------------------------------------------------------------


def test_advertisement_txt_round_trip_and_nothing_else() -> None:
    hw = _hw()
    enrolled = Advertisement(hw, ENROLLED, "site-7")
    assert enrolled.properties() == {"hw": hw, "state": "enrolled", "edge": "site-7", "ver": PROTOCOL_VERSION}
    assert Advertisement(hw, UNENROLLED).properties() == {"hw": hw, "state": "unenrolled", "ver": PROTOCOL_VERSION}
    txt = {k.encode(): v.encode() for k, v in enrolled.properties().items()}
    assert Advertisement.from_properties(txt) == enrolled


@pytest.mark.parametrize(("txt", "why"), [
    ({b"hw": b"0123456789abcdef", b"state": b"unenrolled", b"ver": b"2"}, "version '2'"),
    ({b"hw": b"0123456789abcdef", b"state": b"unenrolled"}, "version 'missing'"),
    ({b"state": b"unenrolled", b"ver": b"1"}, "hardware id ''"),
    ({b"hw": b"0123456789abcdef", b"state": b"lost", b"ver": b"1"}, "state 'lost'"),
    ({b"hw": b"0123456789abcdef", b"state": b"enrolled", b"ver": b"1"}, "an enrolled box has an edge id"),
    ({b"hw": b"0123456789abcdef", b"state": b"unenrolled", b"edge": b"site-1", b"ver": b"1"}, "only an enrolled"),
    ({b"hw": b"\xff", b"state": b"unenrolled", b"ver": b"1"}, "not UTF-8"),
])
def test_advertisement_refuses_what_it_cannot_read(txt: dict[bytes, bytes], why: str) -> None:
    with pytest.raises(ValueError, match=why):
        Advertisement.from_properties(txt)  # type: ignore[arg-type]


def test_advertiser_checks_its_arguments() -> None:
    ad = Advertisement(_hw(), UNENROLLED)
    with pytest.raises(ValueError, match="port"):
        Advertiser(ad, 0)
    with pytest.raises(ValueError, match="IPv4"):
        Advertiser(ad, 8081, interfaces=["::1"])
    with pytest.raises(ValueError):
        Advertiser(ad, 8081, interfaces=["eth0"])


@pytest.mark.parametrize(("host", "configured", "expected"), [
    ("127.0.0.1", [], ["127.0.0.1"]),
    ("0.0.0.0", [], None),
    ("::", [], None),
    ("localhost", [], ["127.0.0.1"]),
    ("192.0.2.10", [], ["192.0.2.10"]),
    ("0.0.0.0", ["10.1.2.3"], ["10.1.2.3"]),
])
def test_the_agent_advertises_where_its_page_listens(host: str, configured: list[str], expected: list[str] | None) -> None:
    assert page_interfaces(host, configured) == expected


@pytest.mark.parametrize("host", ["edge.local", "fe80::1"])
def test_a_page_host_discovery_cannot_map_is_refused_with_the_setting_to_use(host: str) -> None:
    with pytest.raises(DiscoveryError, match="set discovery.interfaces"):
        page_interfaces(host, [])


def test_discovery_settings_refuse_a_non_ipv4_interface() -> None:
    from shared.config import ConfigError
    with pytest.raises(ConfigError, match="discovery.interfaces"):
        load_edge_config(env={}, overrides={"edge_id": "site-1", "discovery": {"interfaces": ["eth0"]}})
    config = load_edge_config(env={"VIGIL_EDGE_DISCOVERY_ENABLED": "false"}, overrides={"edge_id": "site-1"})
    assert config.discovery.enabled is False and config.discovery.interfaces == []


# --- two advertisers on loopback --------------------------------------------------------------


async def test_browse_finds_both_boxes_and_a_stopped_one_is_gone(advertisers: Callable[..., Advertiser]) -> None:
    hw_new, hw_site = _hw(), _hw()
    new_box = advertisers(Advertisement(hw_new, UNENROLLED), 18081)
    site_box = advertisers(Advertisement(hw_site, ENROLLED, "site-7"), 18082)
    assert await new_box.start() and await site_box.start()
    assert new_box.name == instance_name(hw_new) and new_box.addresses == LO

    async with BoxBrowser(LO) as browser:
        await wait_until(lambda: _find(browser.boxes(), hw=hw_new) and _find(browser.boxes(), hw=hw_site),
                         what="both boxes browsed")
        assert _find(browser.boxes(), hw=hw_new) == DiscoveredBox(
            name=instance_name(hw_new), addresses=LO, port=18081, hardware_id=hw_new, state="unenrolled",
            edge_id=None, version="1")
        assert _find(browser.boxes(), hw=hw_site) == DiscoveredBox(
            name=instance_name(hw_site), addresses=LO, port=18082, hardware_id=hw_site, state="enrolled",
            edge_id="site-7", version="1")

        await new_box.stop()
        assert new_box.name is None and new_box.addresses == []
        # The goodbye: a browser already listening drops the box at once, not when its TTL runs out.
        await wait_until(lambda: _find(browser.boxes(), hw=hw_new) is None, what="the stopped box's goodbye")
        assert _find(browser.boxes(), hw=hw_site)

    async with BoxBrowser(LO) as fresh:
        await wait_until(lambda: _find(fresh.boxes(), hw=hw_site), what="the running box, browsing anew")
        assert _find(fresh.boxes(), hw=hw_new) is None


async def test_a_second_box_with_the_same_hardware_id_is_renamed_not_refused(advertisers: Callable[..., Advertiser]) -> None:
    # A cloned SD card keeps its machine-id: both boxes must show, so the installer sees the clone.
    hw = _hw()
    first, second = advertisers(Advertisement(hw, UNENROLLED), 18083), advertisers(Advertisement(hw, UNENROLLED), 18084)
    assert await first.start() and await second.start()
    assert first.name != second.name
    async with BoxBrowser(LO) as browser:
        await wait_until(lambda: len([b for b in browser.boxes() if b.hardware_id == hw]) == 2, what="both clones")


async def test_the_name_holder_is_seen_and_a_free_name_is_not(advertisers: Callable[..., Advertiser],
                                                              caplog: pytest.LogCaptureFixture) -> None:
    """The browse before registering tells a held name from a free one (zeroconf calls its handler
    with keyword arguments; a misnamed parameter made every call raise in the event loop)."""
    hw = _hw()
    assert await advertisers(Advertisement(hw, UNENROLLED), 18089).start()
    zc = AsyncZeroconf(interfaces=LO, ip_version=IPVersion.V4Only)
    try:
        assert await wait_for_holder(zc, instance_name(hw), 30.0)
        assert not await wait_for_holder(zc, instance_name(_hw()), 0.5)
    finally:
        await zc.async_close()
    assert "Unhandled exception" not in caplog.text


async def test_a_service_of_another_protocol_version_is_reported_not_listed(advertisers: Callable[..., Advertiser]) -> None:
    hw = _hw()
    zc = AsyncZeroconf(interfaces=LO, ip_version=IPVersion.V4Only)
    info = ServiceInfo(SERVICE_TYPE, f"future-{hw}.{SERVICE_TYPE}", port=18085, server=f"future-{hw}.local.",
                       properties={"hw": hw, "state": "unenrolled", "ver": "2"}, parsed_addresses=LO)
    try:
        await (await zc.async_register_service(info))
        async with BoxBrowser(LO) as browser:
            await wait_until(lambda: info.name in browser.unreadable, what="the version-2 service read")
            assert "version '2'" in browser.unreadable[info.name]
            assert _find(browser.boxes(), hw=hw) is None
    finally:
        await zc.async_close()


def test_table_has_a_column_each_and_a_dash_for_no_edge() -> None:
    boxes = [DiscoveredBox("a", ["10.0.0.5"], 8081, "0123456789abcdef", "unenrolled", None, "1"),
             DiscoveredBox("b", ["10.0.0.12", "192.168.1.4"], 8081, "fedcba9876543210", "enrolled", "site-7", "1")]
    lines = render_table(boxes).splitlines()
    assert lines[0].split() == ["ADDRESS", "PORT", "HARDWARE", "ID", "STATE", "EDGE", "ID"]
    assert lines[1].split() == ["10.0.0.5", "8081", "0123456789abcdef", "unenrolled", "-"]
    assert lines[2].split() == ["10.0.0.12,192.168.1.4", "8081", "fedcba9876543210", "enrolled", "site-7"]
    assert len({line.index("8081") for line in lines[1:]}) == 1  # columns line up


# --- the command lines ------------------------------------------------------------------------


async def test_discover_cli_lists_both_boxes(advertisers: Callable[..., Advertiser]) -> None:
    hw_new, hw_site = _hw(), _hw()
    assert await advertisers(Advertisement(hw_new, UNENROLLED), 18086).start()
    assert await advertisers(Advertisement(hw_site, ENROLLED, "site-7"), 18087).start()
    zc = AsyncZeroconf(interfaces=LO, ip_version=IPVersion.V4Only)
    hw_future = _hw()
    future = ServiceInfo(SERVICE_TYPE, f"future-{hw_future}.{SERVICE_TYPE}", port=18088, server=f"future-{hw_future}.local.",
                         properties={"hw": hw_future, "state": "unenrolled", "ver": "2"}, parsed_addresses=LO)
    await (await zc.async_register_service(future))
    try:
        code, out, err = await _run([sys.executable, "-m", "provisioning", "discover", "--timeout", "3",
                                     "--interface", "127.0.0.1"])
        assert code == 0, err
        lines = out.splitlines()
        assert lines[0].split() == ["ADDRESS", "PORT", "HARDWARE", "ID", "STATE", "EDGE", "ID"]
        assert ["127.0.0.1", "18086", hw_new, "unenrolled", "-"] in [line.split() for line in lines]
        assert ["127.0.0.1", "18087", hw_site, "enrolled", "site-7"] in [line.split() for line in lines]
        assert hw_future not in out
        assert f"note: ignored {future.name}: discovery protocol version '2'" in err

        code, out, err = await _run([sys.executable, "-m", "provisioning", "discover", "--timeout", "2", "--json",
                                     "--interface", "127.0.0.1"])
        assert code == 0, err
        found = {box["hardware_id"]: box for box in json.loads(out)}
        assert found[hw_site] == {"name": instance_name(hw_site), "addresses": LO, "port": 18087,
                                  "hardware_id": hw_site, "state": "enrolled", "edge_id": "site-7", "version": "1"}
        assert found[hw_new]["state"] == "unenrolled" and found[hw_new]["edge_id"] is None
    finally:
        await zc.async_close()


async def test_discover_cli_with_no_box_says_so_and_exits_0() -> None:
    code, out, err = await _run(_netns_command(sys.executable, "-m", "provisioning", "discover", "--timeout", "1"))
    assert code == 0, err
    assert out.strip() == "no Vigil edge boxes found on this network (waited 1 s)"
    code, out, _ = await _run(_netns_command(sys.executable, "-m", "provisioning", "discover", "--timeout", "0.5",
                                             "--json"))
    assert code == 0 and json.loads(out) == []


@pytest.mark.parametrize(("args", "message"), [
    (["--timeout", "0"], "--timeout must be in 0..600"),
    (["--interface", "eth0"], "--interface 'eth0' is not an IPv4 address"),
])
async def test_discover_cli_refuses_bad_arguments(args: list[str], message: str) -> None:
    code, out, err = await _run([sys.executable, "-m", "provisioning", "discover", *args])
    assert code == 2 and message in err and out == ""


async def test_advertise_cli_runs_until_sigterm_and_says_goodbye(tmp_path: Path) -> None:
    port = free_port()
    data_dir = tmp_path / "edge"
    proc = ManagedProcess("advertise", [sys.executable, "-m", "edge", "advertise", "--port", str(port),
                                        "--data-dir", str(data_dir), "--interface", "127.0.0.1"],
                          log_path=tmp_path / "advertise.log", cwd=REPO)
    proc.start()
    try:
        async with BoxBrowser(LO) as browser:
            box = await wait_until(lambda: _find(browser.boxes(), port=port), what="the advertised box")
            # The same id the agent on this box will advertise (same machine-id, same data dir).
            assert box.hardware_id == hardware_id(data_dir) and box.state == "unenrolled" and box.edge_id is None
            proc.send_signal(signal.SIGTERM)
            await wait_until(lambda: not proc.running(), what="advertise exiting on SIGTERM")
            assert proc.proc is not None and proc.proc.returncode == 0, proc.log_tail()
            await wait_until(lambda: _find(browser.boxes(), port=port) is None, what="its goodbye")
    finally:
        proc.stop()


@pytest.mark.parametrize(("args", "code", "message"), [
    (["--port", "0"], 2, "port must be 1..65535"),
    (["--port", "8081", "--interface", "fe80::1"], 2, "is not an IPv4 address"),
])
async def test_advertise_cli_refuses_bad_arguments(tmp_path: Path, args: list[str], code: int, message: str) -> None:
    got, _, err = await _run([sys.executable, "-m", "edge", "advertise", "--data-dir", str(tmp_path), *args])
    assert got == code and message in err


async def test_advertise_cli_without_a_usable_data_dir_exits_1(tmp_path: Path) -> None:
    # A box without /etc/machine-id (here: hidden behind an empty file) keeps its id in the data dir.
    (tmp_path / HARDWARE_ID_FILE).write_text("damaged\n")
    got, out, err = await _run(_without_machine_id(sys.executable, "-m", "edge", "advertise", "--data-dir", str(tmp_path)))
    assert got == 1, out + err
    assert f"vigil edge: {tmp_path / HARDWARE_ID_FILE} does not hold a hardware id" in err


# --- the agent --------------------------------------------------------------------------------


@asynccontextmanager
async def _running_agent(tmp_path: Path, **overrides: object) -> AsyncIterator[tuple[EdgeConfig, asyncio.Event, asyncio.Task[None]]]:
    """An agent in this process, on a plain nats-server of its own; stopped at the end."""
    nats_port = free_port()
    nats = ManagedProcess("nats", [nats_server_binary(), "-a", "127.0.0.1", "-p", str(nats_port)],
                          log_path=tmp_path / "nats.log")
    nats.start()
    try:
        await nats.wait_ready(lambda: tcp_port_open("127.0.0.1", nats_port), 20)
        config = load_edge_config(env={}, overrides={
            "data_dir": str(tmp_path / "edge"), "nats_url": f"nats://127.0.0.1:{nats_port}", "http_host": "127.0.0.1",
            "http_port": free_port(), **overrides})
        create_key_file(config.key_path)
        stop = asyncio.Event()
        agent = asyncio.create_task(run_edge(config, stop, handle_signals=False))
        try:
            yield config, stop, agent
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.gather(agent, return_exceptions=True), 60)
    finally:
        nats.stop()


async def test_agent_advertises_itself_enrolled_while_it_runs(tmp_path: Path) -> None:
    async with _running_agent(tmp_path, edge_id="site-42") as (config, stop, agent), BoxBrowser(LO) as browser:
        box = await wait_until(lambda: _find(browser.boxes(), port=config.http_port), what="the agent's advertisement")
        assert (box.state, box.edge_id, box.hardware_id) == ("enrolled", "site-42", hardware_id(config.data_dir))
        stop.set()
        await asyncio.wait_for(agent, 60)
        await wait_until(lambda: _find(browser.boxes(), port=config.http_port) is None, what="the agent's goodbye")


async def test_agent_with_discovery_disabled_runs_no_advertiser(tmp_path: Path) -> None:
    async with _running_agent(tmp_path, edge_id="site-43", discovery={"enabled": False}) as (config, _, _):
        # The agent's tasks exist once its page answers (they are made right after it starts).
        await wait_until(lambda: tcp_port_open("127.0.0.1", config.http_port), what="the agent's page")
        names = {task.get_name() for task in asyncio.all_tasks()}
        assert "journal-prune" in names and "discovery" not in names


async def test_advertise_agent_logs_and_returns_when_it_cannot_advertise(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = load_edge_config(env={}, overrides={"edge_id": "site-44", "data_dir": str(tmp_path), "http_host": "edge.local"})
    await asyncio.wait_for(advertise_agent(config, 8081, asyncio.Event()), 10)  # returns: no stop needed
    assert "not advertising on the LAN: http_host 'edge.local' is a name" in caplog.text


# --- every interface (the production default), in a namespace of its own -----------------------

_ALL_INTERFACES_SCRIPT = textwrap.dedent("""
    import asyncio, json, subprocess, sys, time
    from edge.discovery import UNENROLLED, Advertisement, Advertiser, lan_addresses
    from provisioning.discover import BoxBrowser

    async def until(probe, what):
        deadline = time.monotonic() + 30
        while not probe():
            if time.monotonic() > deadline:
                raise SystemExit(f"timed out waiting for {what}")
            await asyncio.sleep(0.05)

    async def main():
        stop = asyncio.Event()
        advertiser = Advertiser(Advertisement("0123456789abcdef", UNENROLLED), 8081, recheck_s=0.1)
        task = asyncio.create_task(advertiser.run(stop))
        seen = {}
        seen["lan addresses"] = lan_addresses()  # only loopback here: nothing to advertise on yet
        async with BoxBrowser(["127.0.0.1"]) as browser:
            subprocess.run(["ip", "addr", "add", "198.51.100.7/32", "dev", "lo"], check=True)
            await until(lambda: browser.boxes(), "the box on its new address")
            seen["browsed"] = [box.addresses for box in browser.boxes()]
            subprocess.run(["ip", "addr", "del", "198.51.100.7/32", "dev", "lo"], check=True)
            await until(lambda: not advertiser.addresses, "the advertiser giving up the address")
            seen["address gone"] = advertiser.addresses
        stop.set()
        await task
        print(json.dumps(seen))

    asyncio.run(main())
""")


async def test_every_interface_follows_an_address_that_arrives_later() -> None:
    """A box booted before its DHCP lease: nothing to advertise on at first, then its address."""
    code, out, err = await _run(_netns_command(sys.executable, "-c", _ALL_INTERFACES_SCRIPT))
    assert code == 0, err
    assert json.loads(out) == {"lan addresses": [], "browsed": [["198.51.100.7"]], "address gone": []}
