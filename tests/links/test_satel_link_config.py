"""The `satel` section of the edge config: from TOML or one JSON variable, validated at start-up
with errors that name the setting and never echo a secret."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edge.config import SATEL_PANELS_VAR, load_edge_config
from shared.config import ConfigError
from shared.envelope import Priority

TOML = """
edge_id = "site-1"

[[satel.panels]]
id = "panel-1"
host = "10.0.0.5"
integration_key = "Integra1"
timezone = "Europe/Warsaw"

[satel.panels.zones.8]
violation = "HIGH"
alarm = "CRITICAL"

[[satel.panels]]
id = "panel-2"
host = "10.0.0.6"
port = 10004
push = true
"""


def test_panels_from_toml_with_defaults_and_zone_overrides(tmp_path: Path) -> None:
    conf = tmp_path / "edge.toml"
    conf.write_text(TOML)
    config = load_edge_config(conf, env={})
    first, second = config.satel.panels
    assert (first.id, first.host, first.port, first.poll_interval_s, first.request_timeout_s) == (
        "panel-1", "10.0.0.5", 7094, 0.25, 3.0)
    assert (first.reconnect_min_s, first.reconnect_max_s, first.push) == (1.0, 30.0, False)
    assert first.zones == {8: {"violation": Priority.HIGH, "alarm": Priority.CRITICAL}}
    assert (second.port, second.push, second.integration_key) == (10004, True, None)
    assert (first.event_log_window, first.event_log_alarm_age_s) == (50, 3600.0)
    assert load_edge_config(env={"VIGIL_EDGE_EDGE_ID": "a"}).satel.panels == []


def test_panels_from_the_environment_replace_the_files(tmp_path: Path) -> None:
    conf = tmp_path / "edge.toml"
    conf.write_text(TOML)
    panels = [{"id": "panel-9", "host": "127.0.0.1", "port": 17094, "poll_interval_s": 0.5}]
    config = load_edge_config(conf, env={SATEL_PANELS_VAR: json.dumps(panels)})
    [panel] = config.satel.panels
    assert (panel.id, panel.port, panel.poll_interval_s) == ("panel-9", 17094, 0.5)
    # Explicit overrides (tests) still win over the variable.
    config = load_edge_config(conf, env={SATEL_PANELS_VAR: json.dumps(panels)}, overrides={"satel": {"panels": []}})
    assert config.satel.panels == []


@pytest.mark.parametrize(("panel", "message"), [
    ({"id": "Panel 1", "host": "h"}, "panel id 'Panel 1' must be lower-case"),
    ({"id": "p", "host": "h", "port": 70000}, "port must be 1..65535"),
    ({"id": "p", "host": "h", "poll_interval_s": 20}, "poll_interval_s must be 0.05..15"),
    ({"id": "p", "host": "h", "keepalive_s": 30}, "keepalive_s must be 0.05..15"),
    ({"id": "p", "host": "h", "reconnect_min_s": 5, "reconnect_max_s": 1}, "reconnect_min_s <= reconnect_max_s"),
    ({"id": "p", "host": "h", "integration_key": "far-too-long-key"}, "integration key is 1–12 ASCII characters"),
    # The edge keeps no user code: a config that still names one is told so, not obeyed.
    ({"id": "p", "host": "h", "user_code": "1234"}, "unknown field `user_code`"),
    ({"id": "p", "host": "h", "code_prefix": "9a"}, "code_prefix must be digits"),
    ({"id": "p", "host": "h", "timezone": "Mars/Base"}, "timezone 'Mars/Base' is not a known"),
    ({"id": "p", "host": "h", "event_log_window": 0}, "event_log_window must be 1..1024"),
    ({"id": "p", "host": "h", "event_log_alarm_age_s": 0}, "event_log_alarm_age_s must be positive"),
    ({"id": "p", "host": "h", "zones": {"300": {"alarm": "HIGH"}}}, "zone 300 in zones is outside 1..256"),
    ({"id": "p", "host": "h", "zones": {"3": {"alarms": "HIGH"}}}, "unknown events ['alarms']"),
    ({"id": "p", "host": "h", "zones": {"3": {"alarm": "URGENT"}}}, "Invalid enum value 'URGENT'"),
    ({"id": "p", "host": "h", "colour": "red"}, "unknown field `colour`"),
])
def test_bad_panel_settings_are_refused_with_the_reason(panel: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=SATEL_PANELS_VAR) as info:
        load_edge_config(env={"VIGIL_EDGE_EDGE_ID": "a", SATEL_PANELS_VAR: json.dumps([panel])})
    assert message in str(info.value)
    assert "far-too-long-key" not in str(info.value)


def test_duplicate_ids_and_bad_json_are_refused() -> None:
    env = {"VIGIL_EDGE_EDGE_ID": "a"}
    twice = json.dumps([{"id": "p", "host": "a"}, {"id": "p", "host": "b"}])
    with pytest.raises(ConfigError, match="panel ids must be unique; repeated: p"):
        load_edge_config(env={**env, SATEL_PANELS_VAR: twice})
    with pytest.raises(ConfigError, match=f"{SATEL_PANELS_VAR} is not valid JSON"):
        load_edge_config(env={**env, SATEL_PANELS_VAR: "[{id: p}]"})


def test_the_agent_exits_with_the_config_error() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env.update({"VIGIL_EDGE_EDGE_ID": "a", SATEL_PANELS_VAR: json.dumps([{"id": "p", "host": "h", "port": 0}])})
    proc = subprocess.run([sys.executable, "-m", "edge", "run"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "port must be 1..65535" in proc.stderr
