"""`python -m edge robot add|remove|list`: the site's robots' logins on this box's nats-server
(docs/architecture.md §4.4).

`add` makes the robot a password, keeps only its bcrypt hash (edge.leaf_credentials), shows or
writes its `RobotCredentials` once (0600), adds it to edge.toml's `[[robots.robots]]` if it is
not there, renders the box's nats.conf again and has the running nats-server reload it.
`remove` undoes each of these. A reload re-checks every client against the new users: the
removed robot's live connection is closed at once and it cannot log in again (no kick or
restart needed). The running agent reads its robots at start: it is restarted to take a change.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import time
import tomllib
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import msgspec

from edge.config import EdgeConfig
from edge.leaf_credentials import EdgeNatsAuth, RobotLoginError, SiteServerParams, write_site_nats_config
from shared.nats_server import NatsConfigError, nats_server_binary
from shared.private_file import create_private_file, write_private_file
from shared.robots import RobotCredentials

#: How long a reloaded server has to show its new config before we say it did not.
RELOAD_TIMEOUT_S = 5.0
_RESTART_AGENT = "restart the agent to take it in (sudo systemctl restart vigil-edge)"


class RobotAdminError(Exception):
    """A robot cannot be added, removed or listed; the message says what to do."""


@dataclass(frozen=True)
class BoxFiles:
    """Where an enrolled box keeps what `robot` changes."""

    auth: EdgeNatsAuth
    nats_conf: Path
    config_path: Path | None  # edge.toml; None: the robots come from elsewhere (VIGIL_EDGE_ROBOTS)

    @classmethod
    def of(cls, config: EdgeConfig, config_path: Path | None) -> "BoxFiles":
        """The files of the box `config` describes; RobotAdminError when it is not enrolled."""
        if not config.hub.credentials_dir or not config.hub.nats_config_file:
            raise RobotAdminError("this box's config names no hub.credentials_dir or hub.nats_config_file: enrol "
                                  "it first, or pass its config (--config /etc/vigil-edge/edge.toml)")
        return cls(EdgeNatsAuth(Path(config.hub.credentials_dir), config.edge_id), Path(config.hub.nats_config_file),
                   config_path)


def add_robot(files: BoxFiles, robot_id: str, creds_out: Path | None, say: Callable[[str], None]) -> RobotCredentials:
    """Give `robot_id` a login (see the module docstring); returns its credentials, which `say`
    shows only when `creds_out` is not given."""
    if creds_out is not None and creds_out.exists():
        raise RobotAdminError(f"{creds_out} exists already: credentials are written once, to a new file")
    try:
        params = SiteServerParams.read(files.nats_conf)
        credentials = files.auth.add_robot(robot_id)
    except (RobotLoginError, NatsConfigError) as exc:
        raise RobotAdminError(str(exc)) from None
    text = msgspec.json.encode(credentials).decode()
    if creds_out is not None:
        create_private_file(creds_out, text + "\n")
        say(f"robot {robot_id}: login made; its credentials are in {creds_out} (0600; give them to its bridge, "
            "--creds)")
    else:
        say(f"robot {robot_id}: login made; its credentials (shown only now, give them to its bridge):")
        say(text)
    _rewrite(files, params, say)
    if files.config_path is not None and _add_to_config(files.config_path, robot_id):
        say(f"added to {files.config_path} ([[robots.robots]] id = {robot_id!r}); {_RESTART_AGENT}")
    return credentials


def remove_robot(files: BoxFiles, robot_id: str, say: Callable[[str], None]) -> None:
    """Take `robot_id`'s login away: its connection is dropped at the reload, and it cannot log in
    again. RobotAdminError when it has none."""
    try:
        params = SiteServerParams.read(files.nats_conf)
        removed = files.auth.remove_robot(robot_id)
    except NatsConfigError as exc:
        raise RobotAdminError(str(exc)) from None
    in_config = files.config_path is not None and _remove_from_config(files.config_path, robot_id)
    if not removed and not in_config:
        raise RobotAdminError(f"robot {robot_id} has no login on this box")
    if removed:
        say(f"robot {robot_id}: login removed")
        _rewrite(files, params, say)
    if in_config:
        say(f"removed from {files.config_path}; {_RESTART_AGENT}")


def list_robots(files: BoxFiles, config: EdgeConfig) -> list[str]:
    """One line per robot with a login or in the config."""
    try:
        logins = files.auth.robot_logins()
    except NatsConfigError as exc:
        raise RobotAdminError(str(exc)) from None
    configured = {r.id: r for r in config.robots.robots}
    lines = []
    for robot in sorted(set(logins) | set(configured)):
        login = f"login since {logins[robot].added_at.isoformat()}" if robot in logins else "NO LOGIN"
        watched = f"watched, {configured[robot].telemetry_hz:g} Hz" if robot in configured else "NOT IN THE CONFIG"
        name = configured[robot].name if robot in configured else ""
        lines.append(f"{robot:<24} {login:<44} {watched:<22} {name}".rstrip())
    return lines


def _rewrite(files: BoxFiles, params: SiteServerParams, say: Callable[[str], None]) -> None:
    try:
        write_site_nats_config(files.auth, files.nats_conf, params)
    except NatsConfigError as exc:
        raise RobotAdminError(f"{files.nats_conf} not rewritten: {exc}") from None
    say(f"{files.nats_conf} rewritten; {reload_server(params)}")


def reload_server(params: SiteServerParams, timeout: float = RELOAD_TIMEOUT_S) -> str:
    """Have the running nats-server (its pid file) reload its config; what happened, in words."""
    if not params.pid_file:
        return ("the server keeps no pid file (enrolled before robots): restart it to take the change "
                "(sudo systemctl restart vigil-edge-nats)")
    try:
        pid = int(Path(params.pid_file).read_text().strip())
    except (OSError, ValueError):
        return "no nats-server is running: it takes the new config at its next start"
    comm = Path(f"/proc/{pid}/comm")
    if not _alive(pid) or (comm.exists() and "nats-server" not in comm.read_text()):
        return "no nats-server is running (its pid file is stale): it takes the new config at its next start"
    before = _config_load_time(params)
    try:
        subprocess.run([nats_server_binary(), "--signal", f"reload={pid}"], check=True, capture_output=True,
                       timeout=timeout)
    except (OSError, subprocess.SubprocessError) as exc:
        raise RobotAdminError(f"the nats-server (pid {pid}) could not be asked to reload ({exc}): run this as its "
                              "service user, or restart it (sudo systemctl restart vigil-edge-nats)") from None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        loaded = _config_load_time(params)
        if loaded is not None and loaded != before:
            return f"the running nats-server (pid {pid}) reloaded it"
        time.sleep(0.1)
    raise RobotAdminError(f"the nats-server (pid {pid}) was asked to reload but did not within {timeout:g} s: "
                          "check its log (it refuses a config it cannot read) or restart it")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's: the reload will say so
    return True


def _config_load_time(params: SiteServerParams) -> str | None:
    try:
        with urllib.request.urlopen(f"http://{params.host}:{params.http_port}/varz", timeout=1.0) as resp:
            return json.loads(resp.read()).get("config_load_time")
    except (OSError, ValueError):
        return None


# --- edge.toml's [[robots.robots]], edited as text: the installer's comments and layout stay --------

_TABLE_RE = re.compile(r"^\s*\[")
_ROBOT_TABLE = "[[robots.robots]]"


def _configured(text: str) -> list[str]:
    return [r.get("id") for r in tomllib.loads(text).get("robots", {}).get("robots", [])]


def _add_to_config(path: Path, robot_id: str) -> bool:
    """Append a `[[robots.robots]]` table for the robot; False when it is there already."""
    text = path.read_text()
    if robot_id in _configured(text):
        return False
    new = text.rstrip("\n") + f"\n\n{_ROBOT_TABLE}\nid = {json.dumps(robot_id)}\n"
    try:
        ok = robot_id in _configured(new)
    except tomllib.TOMLDecodeError:
        ok = False
    if not ok:
        raise RobotAdminError(f"{path} lists its robots in a way this tool cannot extend: add "
                              f"{_ROBOT_TABLE} id = {json.dumps(robot_id)} by hand, then {_RESTART_AGENT}")
    write_private_file(path, new)
    return True


def _remove_from_config(path: Path, robot_id: str) -> bool:
    """Remove the robot's `[[robots.robots]]` table; False when it has none."""
    text = path.read_text()
    if robot_id not in _configured(text):
        return False
    lines = text.splitlines(keepends=True)
    kept: list[str] = []
    i = 0
    while i < len(lines):
        if lines[i].strip() == _ROBOT_TABLE:
            end = next((j for j in range(i + 1, len(lines)) if _TABLE_RE.match(lines[j])), len(lines))
            block = lines[i:end]
            if any(re.fullmatch(rf"\s*id\s*=\s*{re.escape(json.dumps(robot_id))}\s*(#.*)?", ln.rstrip("\n"))
                   for ln in block):
                i = end
                continue
        kept.append(lines[i])
        i += 1
    new = "".join(kept)
    try:
        ok = robot_id not in _configured(new)
    except tomllib.TOMLDecodeError:
        ok = False
    if not ok:
        raise RobotAdminError(f"{path}: remove robot {robot_id} from [robots] by hand, then {_RESTART_AGENT}")
    write_private_file(path, new)
    return True
