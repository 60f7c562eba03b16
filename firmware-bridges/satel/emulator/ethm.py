"""SatelEmulator: an ETHM-1 Plus with its INTEGRA panel, scriptable from Python and over HTTP."""

from __future__ import annotations

from types import TracebackType
from typing import Any

from aiohttp import web

from .control import create_control_app
from .diagnostics import diagnostics
from .panel import Panel
from .server import ModuleServer
from .site import sample_panel

CONTROL_HOST = "127.0.0.1"


class SatelEmulator:
    """The emulated device. Use as ``async with SatelEmulator(port=0) as emu: emu.port``.

    ``port=0`` binds a free port (read it back from :attr:`port`); ``key`` turns on the encrypted
    integration mode; ``control_port`` (0 = free port) also serves the HTTP control endpoint on
    127.0.0.1. Control methods change the panel at once and must run on the emulator's loop.
    """

    def __init__(
        self,
        *,
        port: int = 0,
        key: str | None = None,
        host: str = "127.0.0.1",
        panel: Panel | None = None,
        idle_timeout: float = 25.0,
        drop_first_client: bool = False,
        control_port: int | None = None,
    ) -> None:
        self.panel = panel if panel is not None else sample_panel()
        self.server = ModuleServer(
            self.panel,
            host=host,
            port=port,
            integration_key=key,
            idle_timeout=idle_timeout,
            drop_first_client=drop_first_client,
        )
        self._control_port = control_port
        self._runner: web.AppRunner | None = None

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the module's TCP port and, if asked for, the HTTP control endpoint."""
        await self.server.start()
        if self._control_port is not None:
            self._runner = web.AppRunner(create_control_app(self), access_log=None)
            await self._runner.setup()
            await web.TCPSite(self._runner, CONTROL_HOST, self._control_port).start()

    async def stop(self) -> None:
        """Stop both endpoints and drop every client."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.server.close()

    async def __aenter__(self) -> SatelEmulator:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        """The module's bound TCP port."""
        return self.server.port

    @property
    def control_port(self) -> int:
        """The bound port of the HTTP control endpoint."""
        if self._runner is None or not self._runner.addresses:
            raise RuntimeError("the HTTP control endpoint is not running")
        return int(self._runner.addresses[0][1])

    # --- control API ----------------------------------------------------------------------

    def violate_zone(self, number: int) -> None:
        """Violate a zone (alarms if its partition is armed)."""
        self.panel.violate_zone(number)

    def restore_zone(self, number: int) -> None:
        """End a zone's violation."""
        self.panel.restore_zone(number)

    def tamper_zone(self, number: int) -> None:
        """Open a zone's tamper loop (always alarms)."""
        self.panel.tamper_zone(number)

    def restore_tamper(self, number: int) -> None:
        """Close a zone's tamper loop."""
        self.panel.restore_tamper(number)

    def set_temperature(self, number: int, celsius: float | None) -> None:
        """Set what a zone reports for 0x7D (None: unknown)."""
        self.panel.set_temperature(number, celsius)

    def trigger_trouble(self, name: str) -> None:
        """Raise a named system trouble, e.g. ``"ac"`` or ``"battery"``."""
        self.panel.trigger_trouble(name)

    def clear_trouble(self, name: str) -> None:
        """End a named system trouble (its memory stays)."""
        self.panel.clear_trouble(name)

    def start_entry_time(self, partition: int) -> None:
        """Start entry time in a partition."""
        self.panel.start_entry_time(partition)

    def start_exit_time(self, partition: int) -> None:
        """Start exit time in a partition."""
        self.panel.start_exit_time(partition)

    def rename(self, device: str, number: int, name: str) -> None:
        """Rename a ``"zone"``, ``"partition"`` or ``"output"``; the name may hold control bytes."""
        self.panel.rename(device, number, name)

    def clear_event_log(self) -> None:
        """Reset the panel's event log (the reset itself is logged as the first new record)."""
        self.panel.clear_event_log()

    def cut_connections(self) -> None:
        """Drop every client connection at once."""
        self.server.cut_connections()

    def set_response_delay(self, seconds: float) -> None:
        """Delay every answer by ``seconds`` (0 for none)."""
        if seconds < 0:
            raise ValueError(f"response delay {seconds!r} must not be negative")
        self.server.response_delay = seconds

    def corrupt_next_frame(self) -> None:
        """Send the next answer with a wrong checksum."""
        self.server.corrupt_next_frame()

    def diagnostics(self) -> dict[str, Any]:
        """State and counters with user codes and the integration key redacted."""
        return diagnostics(self.server)
