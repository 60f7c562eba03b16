"""The emulated panel as pure state: change tracking, the event log, codes and outputs."""

from __future__ import annotations

import dataclasses
import datetime

import pytest

from firmware_bridges.satel.emulator import PanelChange, UnknownDevice, sample_panel
from firmware_bridges.satel.protocol import NEWEST_EVENT, PartitionState, ResultCode, UserCode, ZoneState

CODE = UserCode.from_digits("1234")
FIXED_TIME = datetime.datetime(2024, 5, 17, 13, 45, 9)


def test_changes_are_reported_to_listeners() -> None:
    panel = sample_panel(clock=lambda: FIXED_TIME)
    changes: list[PanelChange] = []
    panel.listeners.append(changes.append)
    panel.violate_zone(1)
    assert changes == [PanelChange(frozenset({ZoneState.VIOLATION, PartitionState.VIOLATED_ZONES}), ())]
    panel.violate_zone(1)  # nothing new
    assert len(changes) == 1


def test_alarm_logs_an_event_with_the_panel_clock() -> None:
    panel = sample_panel(clock=lambda: FIXED_TIME)
    assert panel.arm(CODE, {2}, 0) is ResultCode.OK
    panel.violate_zone(6)
    newest = panel.events.read(NEWEST_EVENT)
    assert newest.record.code == 130 and newest.record.partition == 2 and newest.record.source == 6
    assert newest.record.timestamp(FIXED_TIME) == FIXED_TIME.replace(second=0)
    assert newest.requested_index == NEWEST_EVENT
    previous = panel.events.read(newest.previous_index)
    assert previous.record.code == 401 and previous.record.restore  # armed by user
    assert panel.events.read(previous.previous_index).record.is_end
    assert panel.events.read(0x00ABCD).record.is_end


def test_event_log_is_bounded() -> None:
    panel = dataclasses.replace(sample_panel(), log_size=4)
    for _ in range(10):
        panel.tamper_zone(1)
    walked = 0
    answer = panel.events.read(NEWEST_EVENT)
    while not answer.record.is_end:
        walked += 1
        answer = panel.events.read(answer.previous_index)
    assert walked == 4


def test_prefix_and_codes() -> None:
    panel = sample_panel(code_prefix="97")
    assert panel.authorise(CODE) is None
    user = panel.authorise(UserCode.from_digits("1234", prefix="97"))
    assert user is not None and user.name == "Administrator"
    assert panel.authorise(UserCode(bytes.fromhex("12ab" + "ff" * 6))) is None


def test_bypass_and_outputs_results() -> None:
    panel = sample_panel()
    cleaner = UserCode.from_digits("5678")
    assert panel.set_bypass(cleaner, {5}, True) is ResultCode.NO_ACCESS  # zone 5 is in partition 2
    assert panel.set_bypass(CODE, {42}, True) is ResultCode.NO_ACCESS
    assert panel.set_bypass(UserCode.from_digits("1"), {1}, True) is ResultCode.USER_CODE_NOT_FOUND
    assert panel.set_bypass(cleaner, {1}, True) is ResultCode.OK
    assert panel.zone_set(ZoneState.BYPASS) == {1}
    assert panel.switch_outputs(CODE, {1}, None) is ResultCode.OK
    assert panel.switch_outputs(CODE, {1}, None) is ResultCode.OK
    assert panel.outputs_on() == frozenset()
    assert panel.switch_outputs(CODE, {3}, True) is ResultCode.NO_ACCESS


def test_unknown_devices_raise() -> None:
    panel = sample_panel()
    with pytest.raises(UnknownDevice):
        panel.violate_zone(9)
    with pytest.raises(UnknownDevice, match="known: ac"):
        panel.trigger_trouble("flood")
