"""The edge box's systemd units: the leaf nats-server, the agent, and the mDNS advertiser that runs
only while the box is not enrolled (no config yet).

Every unit runs as the dedicated service user, restarts on failure and is hardened: no privilege
gain, no capabilities, the whole file system read-only but for the data dir. So the leaf server's
JetStream store_dir, the journal and the hardware id file must all live under `data_dir`.
`write_units` writes the files; `systemctl daemon-reload` and `enable` are the caller's.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import msgspec

NATS_UNIT = "vigil-edge-nats.service"
AGENT_UNIT = "vigil-edge.service"
DISCOVERY_UNIT = "vigil-edge-discovery.service"

#: The agent's stop takes its links' request in flight (request_timeout_s, 3 s by default) plus the
#: forwarder's drain (drain_on_stop_s, 3 s by default, at most 20): 30 s covers the defaults many
#: times over on a loaded box and the configurable maximum of the drain. Past it systemd sends
#: SIGKILL; the journal is fsync'd so nothing is lost even then, but the link's planned
#: `edge.link.down` would reach the hub only at the next start.
AGENT_STOP_TIMEOUT_S = 30

# systemd's rules for user names (systemd.exec, User=), stricter than useradd's.
_USER_NAME = re.compile(r"[a-z_][a-z0-9_-]{0,30}")
# An argument written bare in ExecStart=; anything else is quoted.
_BARE_ARG = re.compile(r"[A-Za-z0-9/._:=@+,-]+")
# What ProtectHome=yes makes inaccessible to the services.
_HIDDEN_DIRS = ("/home", "/root", "/run/user")
_WITH_NETLINK = "AF_INET AF_INET6 AF_UNIX AF_NETLINK"


class UnitSpec(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Where things are on the box; every path absolute. `advertise_port`: the local page's port
    the unenrolled box advertises."""

    service_user: str
    python: str
    config_path: str
    data_dir: str
    nats_binary: str
    nats_config_path: str
    working_dir: str
    advertise_port: int = 8081

    def __post_init__(self) -> None:
        if not _USER_NAME.fullmatch(self.service_user):
            raise ValueError(f"service_user {self.service_user!r}: lower-case letters, digits, '_' and '-', "
                             "starting with a letter or '_', at most 31")
        for field in ("python", "config_path", "data_dir", "nats_binary", "nats_config_path", "working_dir"):
            value = getattr(self, field)
            if not os.path.isabs(value):
                raise ValueError(f"{field} must be an absolute path, got {value!r}")
            # A line break would end the setting and start another: the unit's meaning would change.
            if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
                raise ValueError(f"{field} {value!r} holds a control character")
            if value != value.strip():
                raise ValueError(f"{field} {value!r} starts or ends with white space")
            # Resolved, as the service would: a venv's python is a link to an interpreter that
            # may live in /root (pyenv), which the service could then not even start.
            real = os.path.realpath(value)
            hidden = next((d for d in _HIDDEN_DIRS if real == d or real.startswith(d + "/")), None)
            if hidden:
                shown = value if real == value else f"{value} (really {real})"
                raise ValueError(f"{field} {shown} is under {hidden}, which ProtectHome=yes hides from the service")
        if not 1 <= self.advertise_port <= 65535:
            raise ValueError(f"advertise_port must be 1..65535, got {self.advertise_port}")


def _specifiers(text: str) -> str:
    # '%' starts a specifier (%h, %n…) in every setting; '%%' is a literal one.
    return text.replace("%", "%%")


def quote_arg(arg: str) -> str:
    """One command-line word for ExecStart= (systemd.service, "Command lines"): quoted when it is
    not plain, with '\\' and '"' escaped inside the quotes, '%' doubled (specifiers) and '$'
    doubled (environment variable expansion)."""
    arg = _specifiers(arg).replace("$", "$$")
    if _BARE_ARG.fullmatch(arg):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _exec(*argv: str) -> str:
    return " ".join(quote_arg(a) for a in argv)


def _path_list(*paths: str) -> str:
    """A space-separated path list (ReadWritePaths=): each quoted, escapes as in command lines."""
    return " ".join('"' + _specifiers(p).replace("\\", "\\\\").replace('"', '\\"') + '"' for p in paths)


Settings = list[tuple[str, str]]  # (key, value) in order; key "#" writes a comment line


def _unit(spec: UnitSpec, *, description: str, unit: Settings, exec_start: str, restart_s: int, stop_s: int,
          service: Settings, hardening: Settings) -> str:
    """One unit file: what every Vigil edge service has (started once the network is up, runs
    from the working dir, restarts on failure, stops on SIGTERM), plus its own settings."""
    sections: list[tuple[str, Settings]] = [
        ("Unit", [("Description", description), ("Wants", "network-online.target"), *unit]),
        ("Service", [
            ("Type", "exec"),
            ("ExecStart", exec_start),
            ("WorkingDirectory", _specifiers(spec.working_dir)),
            ("Restart", "on-failure"),
            ("RestartSec", str(restart_s)),
            ("KillSignal", "SIGTERM"),
            ("TimeoutStopSec", str(stop_s)),
            *service,
            *hardening,
        ]),
        ("Install", [("WantedBy", "multi-user.target")]),
    ]
    out: list[str] = []
    for title, settings in sections:
        out.append(f"[{title}]")
        out += [f"# {value}" if key == "#" else f"{key}={value}" for key, value in settings]
        out.append("")
    return "\n".join(out)


def _hardening(spec: UnitSpec, *, families: str, families_why: str, devices: bool) -> Settings:
    """What every Vigil edge service gets: its own user, no way to gain privileges or
    capabilities, a read-only system but for the data dir. `devices`: keeps /dev (else
    PrivateDevices=yes)."""
    settings = [
        ("User", spec.service_user),
        ("Group", spec.service_user),
        ("UMask", "0077"),
        ("NoNewPrivileges", "yes"),
        ("CapabilityBoundingSet", ""),
        ("AmbientCapabilities", ""),
        ("ProtectSystem", "strict"),
        ("ReadWritePaths", _path_list(spec.data_dir)),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectKernelLogs", "yes"),
        ("ProtectControlGroups", "yes"),
        ("ProtectClock", "yes"),
        ("ProtectHostname", "yes"),
        ("RestrictNamespaces", "yes"),
        ("RestrictRealtime", "yes"),
        ("RestrictSUIDSGID", "yes"),
        ("LockPersonality", "yes"),
        ("SystemCallArchitectures", "native"),
        ("SystemCallFilter", "@system-service"),
        ("#", families_why),
        ("RestrictAddressFamilies", families),
    ]
    if not devices:
        settings.append(("PrivateDevices", "yes"))
    return settings


def render_units(spec: UnitSpec) -> dict[str, str]:
    """The three unit files' text by file name."""
    nats = _unit(
        spec, description="Vigil edge leaf NATS server (the site's one link to the hub)",
        unit=[("After", "network-online.target"), ("ConditionPathExists", _specifiers(spec.nats_config_path))],
        exec_start=_exec(spec.nats_binary, "-c", spec.nats_config_path), restart_s=2, stop_s=30,
        service=[("#", "nats-server stops gracefully on SIGTERM (lame duck is SIGUSR2).")],
        hardening=_hardening(spec, families="AF_INET AF_INET6 AF_UNIX", devices=False,
                             families_why="Seen with strace: TCP sockets only (no netlink) on the box's loopback listener."),
    )
    agent = _unit(
        spec, description="Vigil edge agent (site links, journal, forwarding to the hub)",
        unit=[
            ("#", "After= also orders the stop: the agent drains its last rows into a leaf server still up."),
            ("Requires", NATS_UNIT),
            ("After", f"{NATS_UNIT} network-online.target"),
            ("ConditionPathExists", _specifiers(spec.config_path)),
        ],
        exec_start=_exec(spec.python, "-m", "edge", "--config", spec.config_path, "run"),
        # SIGTERM is the agent's clean stop: links record a planned down, the forwarder drains;
        # the stop timeout is above that (AGENT_STOP_TIMEOUT_S).
        restart_s=5, stop_s=AGENT_STOP_TIMEOUT_S,
        service=[
            ("#", "The GSM modem's serial port (/dev/ttyUSB*, /dev/ttyACM*) is root:dialout 0660;"),
            ("#", "for the same reason no PrivateDevices=, which would hide it."),
            ("SupplementaryGroups", "dialout"),
        ],
        hardening=_hardening(spec, families=_WITH_NETLINK, devices=True,
                             families_why="AF_NETLINK: getifaddrs(3), with which mDNS discovery finds the box's addresses."),
    )
    discovery = _unit(
        spec, description="Vigil edge discovery (mDNS advertisement while the box is not enrolled)",
        unit=[
            ("After", "network-online.target"),
            ("#", "Enrolment writes the config: from then on the agent advertises the box instead."),
            ("ConditionPathExists", "!" + _specifiers(spec.config_path)),
        ],
        exec_start=_exec(spec.python, "-m", "edge", "advertise", "--port", str(spec.advertise_port),
                         "--data-dir", spec.data_dir),
        restart_s=5, stop_s=10,  # SIGTERM unregisters (mDNS goodbye), so browsers drop the box at once
        service=[],
        hardening=_hardening(spec, families=_WITH_NETLINK, devices=False,
                             families_why="AF_NETLINK: getifaddrs(3), with which it finds the addresses to advertise on."),
    )
    return {NATS_UNIT: nats, AGENT_UNIT: agent, DISCOVERY_UNIT: discovery}


def write_units(spec: UnitSpec, target_dir: str | Path) -> list[Path]:
    """Write the units into `target_dir` (e.g. /etc/systemd/system), each replaced atomically
    (a daemon-reload at any moment sees the old file or the new one, whole), mode 0644."""
    target = Path(target_dir)
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_units(spec).items():
        path = target / name
        tmp = target / f".{name}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)  # whatever the umask
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        written.append(path)
    return written
