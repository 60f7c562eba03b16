"""SMS templates (edge/links/gsm/templates.py): every default template on real-looking Efento, BluLog
and vendor-neutral texts in Polish and English, numbers as people write them, quality flags, custom
and broken template files, the `python -m edge sms-test` CLI, and random text that never raises."""
from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.links.gsm import DEFAULT_TEMPLATES, TemplateError, default_templates, load_templates, templates_from_table

REPO = Path(__file__).resolve().parents[2]
TEMPLATES = default_templates()


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


# (text, template expected to match, fields expected in the result)
SAMPLES: list[tuple[str, str, dict[str, Any]]] = [
    # --- Efento, English
    ("Efento: sensor 282C02 'Chłodnia 1' temperature 9.4°C above threshold 8.0°C at 2026-11-30 14:05",
     "efento-en-alarm", dict(kind="alarm", sensor="282C02", sensor_name="Chłodnia 1", value=9.4, unit="C",
                             threshold=8.0, direction="above", at=utc(2026, 11, 30, 13, 5))),
    ("Efento: sensor 282C03 temperature -21.3°C below threshold -18.0°C at 2026-07-01 03:12",
     "efento-en-alarm", dict(sensor="282C03", sensor_name=None, value=-21.3, threshold=-18.0, direction="below",
                             at=utc(2026, 7, 1, 1, 12))),  # summer: CEST is UTC+2
    ("Efento alarm: sensor 28AF11 „Freezer 2” temperature 9.4 °C is above the threshold of 8.0 °C",
     "efento-en-alarm", dict(sensor="28AF11", sensor_name="Freezer 2", value=9.4, direction="above", at=None)),
    ("Efento: sensor 282C02 temperature back to normal 6.1°C",
     "efento-en-normal", dict(kind="normal", sensor="282C02", value=6.1, unit="C", threshold=None, direction=None)),
    ("Efento: sensor 282C02 'Chłodnia 1' temperature returned to normal: 6.1 ℃ at 2026-11-30T14:35:00+01:00",
     "efento-en-normal", dict(sensor_name="Chłodnia 1", value=6.1, unit="C", at=utc(2026, 11, 30, 13, 35))),
    ("Efento: sensor 282C02 'Chłodnia 1' battery low at 2026-11-30 14:05",
     "efento-en-battery", dict(kind="battery_low", sensor="282C02", value=None, unit=None,
                               at=utc(2026, 11, 30, 13, 5))),
    ("Efento: sensor 282C02 low battery", "efento-en-battery", dict(kind="battery_low", sensor="282C02")),
    ("Efento: sensor 282C02 no measurement / lost connection",
     "efento-en-lost", dict(kind="lost_connection", sensor="282C02", at=None)),
    ("Efento: sensor 282C02 'Chłodnia 1' no measurements since 2026-11-30 13:05",
     "efento-en-lost", dict(kind="lost_connection", sensor_name="Chłodnia 1", at=utc(2026, 11, 30, 12, 5))),
    # --- Efento, Polish (decimal comma)
    ("Efento: czujnik 282C02 'Chłodnia 1' temperatura 9,4°C powyżej progu 8,0°C o 2026-11-30 14:05",
     "efento-pl-alarm", dict(kind="alarm", sensor="282C02", sensor_name="Chłodnia 1", value=9.4, threshold=8.0,
                             direction="above", at=utc(2026, 11, 30, 13, 5))),
    ("EFENTO: CZUJNIK 282C03 TEMPERATURA −21,3 °C PONIŻEJ PROGU −18,0 °C",
     "efento-pl-alarm", dict(sensor="282C03", value=-21.3, threshold=-18.0, direction="below")),
    ("Efento: czujnik 282C02 temperatura wróciła do normy 6,1°C",
     "efento-pl-normal", dict(kind="normal", sensor="282C02", value=6.1)),
    ("Efento: czujnik 282C02 „Chłodnia 1” powrót temperatury do normy: 6,1 st. C, 30.11.2026 14:35",
     "efento-pl-normal", dict(sensor_name="Chłodnia 1", value=6.1, unit="C", at=utc(2026, 11, 30, 13, 35))),
    ("Efento: czujnik 282C02 niski poziom baterii", "efento-pl-battery", dict(kind="battery_low", sensor="282C02")),
    ("Efento: czujnik 282C02 'Chłodnia 1' słaba bateria, 2026-11-30 14:05",
     "efento-pl-battery", dict(sensor_name="Chłodnia 1", at=utc(2026, 11, 30, 13, 5))),
    ("Efento: czujnik 282C02 brak pomiarów / utrata połączenia",
     "efento-pl-lost", dict(kind="lost_connection", sensor="282C02")),
    ("Efento: czujnik 282C02 'Chłodnia 1' utrata połączenia od 2026-11-30 13:05",
     "efento-pl-lost", dict(sensor_name="Chłodnia 1", at=utc(2026, 11, 30, 12, 5))),
    # --- BluLog, English
    ("BluLog ALARM: Logger 'Apteka-1' T=-18.5C < -15.0C 30.11.2026 14:05",
     "blulog-en-alarm", dict(kind="alarm", sensor="Apteka-1", value=-18.5, unit="C", threshold=-15.0,
                             direction="below", at=utc(2026, 11, 30, 13, 5))),
    ("BluLog ALARM: Logger 'Chłodnia 2' T=9.4C > 8.0C 30.11.2026 14:05:33",
     "blulog-en-alarm", dict(sensor="Chłodnia 2", value=9.4, threshold=8.0, direction="above",
                             at=utc(2026, 11, 30, 13, 5, 33))),
    ("BluLog: Logger 'Apteka-1' alarm cleared T=-17.0C 30.11.2026 14:20",
     "blulog-en-normal", dict(kind="normal", sensor="Apteka-1", value=-17.0, at=utc(2026, 11, 30, 13, 20))),
    ("BluLog OK: Logger 'Apteka-1' back to normal T=5.2C", "blulog-en-normal", dict(sensor="Apteka-1", value=5.2)),
    ("BluLog: Logger 'Apteka-1' low battery 30.11.2026 14:05",
     "blulog-en-battery", dict(kind="battery_low", sensor="Apteka-1", at=utc(2026, 11, 30, 13, 5))),
    ("BluLog WARNING: Logger 'Apteka-1' battery low", "blulog-en-battery", dict(sensor="Apteka-1")),
    ("BluLog: Logger 'Apteka-1' no connection since 30.11.2026 12:05",
     "blulog-en-lost", dict(kind="lost_connection", sensor="Apteka-1", at=utc(2026, 11, 30, 11, 5))),
    ("BluLog ALARM: Logger 'Apteka-1' lost connection", "blulog-en-lost", dict(kind="lost_connection")),
    # --- BluLog, Polish
    ("BluLog ALARM: Rejestrator 'Apteka-1' T=-18,5C < -15,0C 30.11.2026 14:05",
     "blulog-pl-alarm", dict(kind="alarm", sensor="Apteka-1", value=-18.5, threshold=-15.0, direction="below")),
    ("BluLog ALARM: Rejestrator 'Chłodnia 2' T=9,4°C > 8,0°C",
     "blulog-pl-alarm", dict(sensor="Chłodnia 2", value=9.4, threshold=8.0, direction="above", at=None)),
    ("BluLog: Alarm ustąpił / Powrót do normy",
     "blulog-pl-normal", dict(kind="normal", sensor=None, value=None)),
    ("BluLog: Rejestrator 'Apteka-1' Alarm ustąpił T=-17,0C 30.11.2026 14:20",
     "blulog-pl-normal", dict(sensor="Apteka-1", value=-17.0, at=utc(2026, 11, 30, 13, 20))),
    ("BluLog: Rejestrator 'Apteka-1' niski stan baterii 30.11.2026 14:05",
     "blulog-pl-battery", dict(kind="battery_low", sensor="Apteka-1")),
    ("BluLog OSTRZEŻENIE: Rejestrator 'Apteka-1' słaba bateria", "blulog-pl-battery", dict(sensor="Apteka-1")),
    ("BluLog: Rejestrator 'Apteka-1' brak połączenia od 30.11.2026 12:05",
     "blulog-pl-lost", dict(kind="lost_connection", sensor="Apteka-1", at=utc(2026, 11, 30, 11, 5))),
    ("BluLog ALARM: Rejestrator 'Apteka-1' utrata łączności", "blulog-pl-lost", dict(sensor="Apteka-1")),
    # --- vendor-neutral
    ("Alarm temperatury: czujnik Chłodnia 1 9,4°C powyżej progu 8,0°C",
     "generic-pl-alarm", dict(kind="alarm", sensor="Chłodnia 1", value=9.4, threshold=8.0, direction="above")),
    ("ALARM TEMPERATURY: czujnik Mroźnia –20,5 °C poniżej progu –18,0 °C 30.11.2026 14:05",
     "generic-pl-alarm", dict(sensor="Mroźnia", value=-20.5, threshold=-18.0, direction="below",
                              at=utc(2026, 11, 30, 13, 5))),
    ("Temperatura w normie: czujnik Chłodnia 1 6,1°C", "generic-pl-normal", dict(kind="normal", value=6.1)),
    ("Koniec alarmu temperatury: czujnik Mroźnia -19,0°C", "generic-pl-normal", dict(sensor="Mroźnia", value=-19.0)),
    ("Temperature alarm: sensor Cold room 1 9.4°C above threshold 8.0°C",
     "generic-en-alarm", dict(sensor="Cold room 1", value=9.4, threshold=8.0, direction="above")),
    ("Temperature alarm: sensor Freezer -21.0 °C below the threshold of -18.0 °C at 2026-11-30 03:12",
     "generic-en-alarm", dict(sensor="Freezer", value=-21.0, direction="below", at=utc(2026, 11, 30, 2, 12))),
    ("Temperature back to normal: sensor Cold room 1 6.1°C", "generic-en-normal", dict(sensor="Cold room 1")),
    ("Temperature alarm cleared: sensor Freezer -19.5°C", "generic-en-normal", dict(value=-19.5)),
]


@pytest.mark.parametrize(("text", "template", "fields"), SAMPLES, ids=[f"{s[1]}-{i}" for i, s in enumerate(SAMPLES)])
def test_default_templates_parse_real_texts(text: str, template: str, fields: dict[str, Any]) -> None:
    parsed = TEMPLATES.parse(text)
    assert parsed.template == template, parsed
    assert parsed.quality == "complete"
    assert parsed.vendor == template.split("-")[0]
    assert parsed.language == template.split("-")[1]
    for name, expected in fields.items():
        assert getattr(parsed, name) == expected, (name, parsed)


def test_every_default_template_has_two_samples_in_both_languages() -> None:
    counts = Counter(template for _, template, _ in SAMPLES)
    names = [t.name for t in TEMPLATES.templates]
    assert set(counts) == set(names)
    assert all(counts[name] >= 2 for name in names), counts
    assert {t.language for t in TEMPLATES.templates} == {"pl", "en"}
    assert {t.vendor for t in TEMPLATES.templates} == {"efento", "blulog", "generic"}


@pytest.mark.parametrize(("text", "value"), [
    ("Temperature alarm: sensor X 9,4°C above threshold 8°C", 9.4),
    ("Temperature alarm: sensor X 9.4C above threshold 8C", 9.4),
    ("Temperature alarm: sensor X -9.4℃ above threshold -10℃", -9.4),
    ("Temperature alarm: sensor X –9,4 °C above threshold –10 °C", -9.4),  # en dash
    ("Temperature alarm: sensor X −9,4 °C above threshold −10 °C", -9.4),  # U+2212
    ("Temperature alarm: sensor X +12 °C above threshold 8 °C", 12.0),
])
def test_numbers_as_people_write_them(text: str, value: float) -> None:
    parsed = TEMPLATES.parse(text)
    assert (parsed.value, parsed.unit, parsed.direction) == (value, "C", "above")


def test_no_template_matches_is_unparseable() -> None:
    parsed = TEMPLATES.parse("Twoja faktura za grudzień: 49,99 zł. Dziękujemy!")
    assert parsed.template is None and parsed.kind is None and parsed.value is None
    assert parsed.quality == "unparseable"
    # a vendor's name alone passes the pre-check but matches nothing
    assert TEMPLATES.parse("Efento: welcome to Efento Cloud").quality == "unparseable"


def test_garbled_text_is_flagged_but_still_parsed() -> None:
    text = "BluLog ALARM: Logger 'Apt\ufffdka-1' T=-18.5C < -15.0C"
    parsed = TEMPLATES.parse(text)
    assert (parsed.template, parsed.quality, parsed.value) == ("blulog-en-alarm", "garbled", -18.5)
    assert TEMPLATES.parse("Efento: sensor 282C02 low battery\x01").quality == "garbled"
    assert TEMPLATES.parse("\x1b\x00\x7f").quality == "garbled"
    decoded_badly = TEMPLATES.parse("Efento: sensor 282C02 low battery", decode_failed=True)
    assert (decoded_badly.template, decoded_badly.quality) == ("efento-en-battery", "garbled")
    # line breaks, tabs and GSM-7's form feed are ordinary characters
    assert TEMPLATES.parse("Efento:\r\nsensor 282C02\tlow battery\x0c").quality == "complete"


def test_truncated_flag() -> None:
    first_part = "Efento: sensor 282C02 'Chłodnia 1' temperature 9.4°C above threshold 8.0°C at 2026-1"
    parsed = TEMPLATES.parse(first_part, truncated=True)
    assert (parsed.template, parsed.quality, parsed.value, parsed.at) == ("efento-en-alarm", "truncated", 9.4, None)
    lost = TEMPLATES.parse("Efento: sensor 282C02 'Chłod", truncated=True)
    assert (lost.template, lost.quality) == (None, "truncated")
    # garbled outranks truncated
    assert TEMPLATES.parse("Efento: \ufffd", truncated=True).quality == "garbled"


def test_zone_reads_naive_times() -> None:
    utc_set = default_templates(zone="UTC")
    parsed = utc_set.parse("BluLog: Logger 'Apteka-1' low battery 30.11.2026 14:05")
    assert parsed.at == utc(2026, 11, 30, 14, 5)
    impossible = TEMPLATES.parse("BluLog: Logger 'Apteka-1' low battery 31.02.2026 14:05")
    assert (impossible.template, impossible.at) == ("blulog-en-battery", None)


CUSTOM = """
include_defaults = true

[vendors.acme]
markers = ["acme"]

[[template]]
name = "acme-alarm"
vendor = "acme"
language = "en"
kind = "alarm"
pattern = '''ACME (?P<sensor>\\w+) (?P<value>{num})(?P<unit>{unit}) limit (?P<threshold>{num})'''

[[template]]
name = "acme-door"
vendor = "acme"
language = "en"
kind = "normal"
direction = "above"
markers = []
pattern = '''^door (?P<sensor>\\w+) ok'''
"""


def test_custom_template_file(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_text(CUSTOM)
    templates = load_templates(path)
    assert [t.name for t in templates.templates][:2] == ["acme-alarm", "acme-door"]
    parsed = templates.parse("ACME fridge7 -3,5°C limit -5")
    assert (parsed.template, parsed.vendor, parsed.sensor, parsed.value, parsed.threshold, parsed.direction) == \
        ("acme-alarm", "acme", "fridge7", -3.5, -5.0, "above")  # no direction group: inferred from the values
    assert templates.parse("door D1 ok").template == "acme-door"
    # include_defaults: the shipped templates are tried after the site's own
    assert templates.parse("Efento: sensor 282C02 low battery").template == "efento-en-battery"
    alone = templates_from_table({"template": [{"name": "x", "vendor": "v", "language": "pl", "kind": "lost_connection",
                                                "pattern": "(?P<sensor>czujnik \\d+) cisza"}]})
    assert [t.name for t in alone.templates] == ["x"]
    assert alone.parse("Efento: sensor 282C02 low battery").quality == "unparseable"


@pytest.mark.parametrize(("template", "message"), [
    ({"pattern": "(?P<sensor>\\w+) (?P<value>[0-9]+"}, "template 'bad': bad regular expression"),
    ({"pattern": "(?P<sensor>\\w+) alarm"}, "template 'bad': kind 'alarm' needs the named group(s) ['value']"),
    ({"pattern": "(?P<sensor>\\w+) (?P<vlaue>{num})"}, "template 'bad': unknown named group(s) ['vlaue']"),
    ({"kind": "fire"}, "template 'bad': Invalid enum value 'fire'"),
    ({"colour": "red"}, "template 'bad': Object contains unknown field `colour`"),
])
def test_bad_template_file_fails_at_load_naming_the_template(tmp_path: Path, template: dict[str, str],
                                                             message: str) -> None:
    spec = {"name": "bad", "vendor": "v", "language": "en", "kind": "alarm",
            "pattern": "(?P<sensor>\\w+) (?P<value>{num})"} | template
    lines = [f"{key} = '''{value}'''" for key, value in spec.items()]
    path = tmp_path / "bad.toml"
    path.write_text("[[template]]\nname = 'fine'\nvendor = 'v'\nlanguage = 'en'\nkind = 'normal'\n"
                    "pattern = '(?P<sensor>x)'\n\n[[template]]\n" + "\n".join(lines) + "\n")
    with pytest.raises(TemplateError) as caught:
        load_templates(path)
    assert str(path) in str(caught.value) and message in str(caught.value), caught.value


def test_bad_files_and_tables(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match="cannot read"):
        load_templates(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[[template]\n")
    with pytest.raises(TemplateError, match="not valid TOML"):
        load_templates(broken)
    with pytest.raises(TemplateError, match="no templates"):
        templates_from_table({})
    with pytest.raises(TemplateError, match="unknown key"):
        templates_from_table({"templates": []})
    twice = {"name": "a", "vendor": "v", "language": "en", "kind": "normal", "pattern": "(?P<sensor>x)"}
    with pytest.raises(TemplateError, match="template 'a': the name is used twice"):
        templates_from_table({"template": [twice, twice]})
    with pytest.raises(TemplateError, match="not a known IANA time zone"):
        templates_from_table({"template": [twice]}, zone="Mars/Olympus")


def test_default_file_is_the_package_data() -> None:
    assert DEFAULT_TEMPLATES.is_file()
    assert [t.name for t in load_templates(DEFAULT_TEMPLATES).templates] == [t.name for t in TEMPLATES.templates]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge", "sms-test", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=60)


def test_cli_shows_the_match_and_fields(tmp_path: Path) -> None:
    done = _cli("Alarm temperatury: czujnik Chłodnia 1 9,4°C powyżej progu 8,0°C 30.11.2026 14:05")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["matched"] is True
    assert {k: answer[k] for k in ("template", "kind", "sensor", "value", "threshold", "direction", "at", "quality")} \
        == {"template": "generic-pl-alarm", "kind": "alarm", "sensor": "Chłodnia 1", "value": 9.4, "threshold": 8.0,
            "direction": "above", "at": "2026-11-30T13:05:00Z", "quality": "complete"}

    nothing = _cli("hello")
    assert nothing.returncode == 0
    none_matched = json.loads(nothing.stdout)
    assert (none_matched["matched"], none_matched["template"], none_matched["quality"]) == (False, None, "unparseable")

    path = tmp_path / "site.toml"
    path.write_text(CUSTOM)
    custom = _cli("--templates", str(path), "--tz", "UTC", "ACME f1 9C limit 8")
    assert json.loads(custom.stdout)["template"] == "acme-alarm"

    bad = tmp_path / "bad.toml"
    bad.write_text("[[template]]\nname = 'oops'\nvendor = 'v'\nlanguage = 'en'\nkind = 'alarm'\npattern = '(?P<sensor>'\n")
    failed = _cli("--templates", str(bad), "anything")
    assert failed.returncode == 2
    assert "template 'oops': bad regular expression" in failed.stderr and failed.stdout == ""


# Fragments of real texts, so random strings also reach deep into the patterns.
_FRAGMENTS = st.sampled_from([
    "Efento:", "BluLog ALARM:", "BluLog:", "sensor 282C02", "czujnik", "Logger 'A'", "Rejestrator '",
    "temperature", "temperatura", " 9,4°C", " -18.5C", "T=", " < ", " > ", "above threshold", "powyżej progu",
    "30.11.2026 14:05", "2026-11-30 14:05", "99.99.9999 99:99", "\ufffd", "'", "„", " ", "\n", "1e999", "nan",
    "Alarm temperatury:", "Temperature alarm:", "back to normal", "Alarm ustąpił",
])


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(), st.lists(st.one_of(_FRAGMENTS, st.text(max_size=5)), max_size=12).map("".join)),
       st.booleans(), st.booleans())
def test_random_text_never_raises(text: str, truncated: bool, decode_failed: bool) -> None:
    parsed = TEMPLATES.parse(text, truncated=truncated, decode_failed=decode_failed)
    assert parsed.quality in ("complete", "truncated", "garbled", "unparseable")
    assert (parsed.template is None) == (parsed.kind is None)
    if parsed.at is not None:
        assert parsed.at.utcoffset() is not None
