"""Named SMS templates that turn Efento and BluLog temperature alert texts into `ParsedSms`.

Pure: no I/O but reading the template file named by path. The vendors publish no fixed SMS format,
so parsing is data: a TOML file of regular expressions with named groups (`default_templates.toml`
ships with the package; a site's file has the same shape). Everything a file can get wrong is found
when it is loaded (`TemplateError`, naming the template), never at the first SMS.

`TemplateSet.parse` tries the templates in order and returns the first match's fields, with a
`quality`: `garbled` (invalid characters, or the caller says decoding failed), `truncated` (the
caller says a concatenated set was incomplete), `unparseable` (no template matched) or `complete`.
"""
from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass
from datetime import datetime, timezone, tzinfo
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

Kind = Literal["alarm", "normal", "battery_low", "lost_connection"]
Direction = Literal["above", "below"]
Quality = Literal["complete", "truncated", "garbled", "unparseable"]

DEFAULT_TEMPLATES = Path(__file__).with_name("default_templates.toml")
DEFAULT_ZONE = "Europe/Warsaw"  # the sensors' clouds write local time; the installed base is Polish

#: Named groups a pattern may use, and those each kind needs to mean anything.
GROUPS = frozenset({"sensor", "sensor_name", "value", "unit", "threshold", "direction", "timestamp"})
REQUIRED_GROUPS: dict[str, frozenset[str]] = {
    "alarm": frozenset({"sensor", "value"}),
    "normal": frozenset({"sensor"}),
    "battery_low": frozenset({"sensor"}),
    "lost_connection": frozenset({"sensor"}),
}

_QUOTES = "'\"„“”‘’«»"
#: Shorthands a pattern may use; expanded before compiling (see default_templates.toml).
PLACEHOLDERS: dict[str, str] = {
    "{num}": r"[-+–−]?\d+(?:[.,]\d+)?",
    "{unit}": r"(?:°\s?C|℃|st\.?\s?C|C)(?![a-ząćęłńóśźż])",
    "{ts}": (r"(?:\d{4}-\d{2}-\d{2}[ T]\d{1,2}:\d{2}(?::\d{2})?(?:Z|[+-]\d{2}:?\d{2})?"
             r"|\d{1,2}\.\d{1,2}\.\d{4},?\s+\d{1,2}:\d{2}(?::\d{2})?)"),
    "{q}": f"[{_QUOTES}]",
    "{nq}": f"[^{_QUOTES}\\r\\n]",
}

# Invalid characters: C0/C1 controls other than the tab, line breaks and the form feed that GSM-7's
# extension table can carry (TS 23.038 §6.2.1.1), U+FFFD left by a failed decode, and lone
# surrogates from a broken UCS2 pair.
_GARBLED = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f\ufffd\ud800-\udfff]")
_DOTTED_TIME = re.compile(r"(\d{1,2})\.(\d{1,2})\.(\d{4}),?\s+(\d{1,2}):(\d{2})(?::(\d{2}))?")
_MINUSES = str.maketrans({"–": "-", "−": "-", ",": "."})


class TemplateError(ValueError):
    """A template file that cannot be used; the message names the file and the template."""


class ParsedSms(msgspec.Struct, frozen=True, kw_only=True):
    """What a temperature alert SMS says. Fields a template did not capture are None; `template`
    is None when nothing matched (then `quality` is `unparseable`, or worse)."""

    template: str | None
    vendor: str | None
    language: str | None
    kind: Kind | None
    sensor: str | None
    sensor_name: str | None  # when the text gives both an id (`sensor`) and a name
    value: float | None
    unit: str | None  # "C" for every spelling of degrees Celsius
    threshold: float | None
    direction: Direction | None
    at: datetime | None  # aware, in UTC; a naive time in the text is read in the set's zone
    quality: Quality


class _TemplateSpec(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    vendor: str
    language: str
    kind: Kind
    pattern: str
    markers: list[str] | None = None
    direction: Direction | None = None


class _VendorSpec(msgspec.Struct, forbid_unknown_fields=True):
    markers: list[str] = []


class _Directions(msgspec.Struct, forbid_unknown_fields=True):
    above: list[str]
    below: list[str]


@dataclass(frozen=True, slots=True)
class Template:
    """One compiled template. `markers`: lower-case substrings one of which the text must contain
    before the pattern is tried (empty: always tried)."""

    name: str
    vendor: str
    language: str
    kind: Kind
    regex: re.Pattern[str]
    markers: tuple[str, ...]
    direction: Direction | None


class TemplateSet:
    """Templates in the order they are tried, the direction words, and the zone naive times are in."""

    def __init__(self, templates: list[Template], directions: dict[str, Direction], zone: tzinfo) -> None:
        self.templates = tuple(templates)
        self.zone = zone
        self._directions = directions

    def parse(self, text: str, *, truncated: bool = False, decode_failed: bool = False) -> ParsedSms:
        """Parse one SMS text. `truncated`: it came from an incomplete concatenated set;
        `decode_failed`: the PDU's user data could not be decoded cleanly. Never raises."""
        garbled = decode_failed or _GARBLED.search(text) is not None
        folded = text.casefold()
        seen: dict[tuple[str, ...], bool] = {}
        for template in self.templates:
            if template.markers:
                present = seen.get(template.markers)
                if present is None:
                    present = seen[template.markers] = any(m in folded for m in template.markers)
                if not present:
                    continue
            match = template.regex.search(text)
            if match is None:
                continue
            parsed = self._fields(template, match.groupdict(), garbled, truncated)
            if parsed is not None:
                return parsed
        return ParsedSms(template=None, vendor=None, language=None, kind=None, sensor=None, sensor_name=None,
                         value=None, unit=None, threshold=None, direction=None, at=None,
                         quality="garbled" if garbled else "truncated" if truncated else "unparseable")

    def _fields(self, template: Template, groups: dict[str, str | None], garbled: bool,
                truncated: bool) -> ParsedSms | None:
        """The match's fields, or None when a captured number is not one (a loose custom pattern):
        the next template gets its chance."""
        value_text, threshold_text = groups.get("value"), groups.get("threshold")
        value = _number(value_text) if value_text is not None else None
        threshold = _number(threshold_text) if threshold_text is not None else None
        if (value_text is not None and value is None) or (threshold_text is not None and threshold is None):
            return None
        if template.kind == "alarm" and value is None:
            return None  # an alarm needs its reading; the group was optional in the pattern
        direction = template.direction
        word = groups.get("direction")
        if word is not None:
            direction = self._directions.get(word.strip().casefold(), direction)
        if direction is None and template.kind == "alarm" and value is not None and threshold is not None:
            direction = "above" if value > threshold else "below" if value < threshold else None
        unit_text = groups.get("unit")
        stamp = groups.get("timestamp")
        return ParsedSms(
            template=template.name, vendor=template.vendor, language=template.language, kind=template.kind,
            sensor=_name(groups.get("sensor")), sensor_name=_name(groups.get("sensor_name")),
            value=value, unit=_unit(unit_text) if unit_text is not None else ("C" if value is not None else None),
            threshold=threshold, direction=direction,
            at=_timestamp(stamp, self.zone) if stamp is not None else None,
            quality="garbled" if garbled else "truncated" if truncated else "complete",
        )


def _number(text: str) -> float | None:
    """A reading as written: decimal comma or point, minus as '-', en dash or U+2212."""
    try:
        number = float(text.strip().translate(_MINUSES).replace(" ", ""))
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _name(text: str | None) -> str | None:
    if text is None:
        return None
    name = text.strip().strip(_QUOTES).strip()
    return name or None


def _unit(text: str) -> str:
    """'C' for °C, ° C, C, ℃, st. C; anything else as written."""
    compact = text.replace("°", "").replace(" ", "").casefold()
    if compact in ("c", "℃", "st.c", "stc"):
        return "C"
    return text.strip()


def _timestamp(text: str, zone: tzinfo) -> datetime | None:
    """The text's time in UTC; a time without an offset is local time in `zone`. An impossible
    date (31.02) gives None rather than a guess."""
    dotted = _DOTTED_TIME.fullmatch(text.strip())
    try:
        if dotted:
            day, month, year, hour, minute, second = dotted.groups()
            local = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0))
        else:
            local = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if local.tzinfo is None:
        local = local.replace(tzinfo=zone)
    return local.astimezone(timezone.utc)


def _compile(spec: _TemplateSpec, vendors: dict[str, _VendorSpec]) -> Template:
    where = f"template {spec.name!r}"
    source = spec.pattern
    for placeholder, expansion in PLACEHOLDERS.items():
        source = source.replace(placeholder, expansion)
    try:
        regex = re.compile(source, re.IGNORECASE | re.DOTALL)
    except re.error as exc:
        raise TemplateError(f"{where}: bad regular expression: {exc}") from None
    groups = set(regex.groupindex)
    unknown = sorted(groups - GROUPS)
    if unknown:
        raise TemplateError(f"{where}: unknown named group(s) {unknown}; known: {', '.join(sorted(GROUPS))}")
    missing = sorted(REQUIRED_GROUPS[spec.kind] - groups)
    if missing:
        raise TemplateError(f"{where}: kind {spec.kind!r} needs the named group(s) {missing}")
    if spec.markers is not None:
        markers = spec.markers
    elif spec.vendor in vendors:
        markers = vendors[spec.vendor].markers
    else:
        markers = []
    return Template(name=spec.name, vendor=spec.vendor, language=spec.language, kind=spec.kind, regex=regex,
                    markers=tuple(m.casefold() for m in markers if m), direction=spec.direction)


def templates_from_table(table: dict[str, Any], *, zone: str = DEFAULT_ZONE,
                         source: str = "templates") -> TemplateSet:
    """A TemplateSet from a parsed TOML table (`source` names it in errors): keys `template`
    (array of tables), optional `vendors`, `directions` (else the defaults') and
    `include_defaults` (append the default templates after these). Raises TemplateError."""
    known = {"template", "vendors", "directions", "include_defaults"}
    extra = sorted(set(table) - known)
    if extra:
        raise TemplateError(f"{source}: unknown key(s) {extra}; known: {', '.join(sorted(known))}")
    try:
        tz: tzinfo = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise TemplateError(f"{source}: {zone!r} is not a known IANA time zone") from None
    try:
        vendors = msgspec.convert(table.get("vendors", {}), dict[str, _VendorSpec])
        include_defaults = msgspec.convert(table.get("include_defaults", False), bool)
        directions_spec = (msgspec.convert(table["directions"], _Directions) if "directions" in table else None)
    except msgspec.ValidationError as exc:
        raise TemplateError(f"{source}: {exc}") from None
    raw_templates = table.get("template", [])
    if not isinstance(raw_templates, list):
        raise TemplateError(f"{source}: `template` must be an array of tables ([[template]])")
    templates: list[Template] = []
    for index, raw in enumerate(raw_templates):
        label = raw.get("name") if isinstance(raw, dict) else None
        where = f"{source}: template {label!r}" if isinstance(label, str) else f"{source}: template #{index + 1}"
        try:
            spec = msgspec.convert(raw, _TemplateSpec)
        except msgspec.ValidationError as exc:
            raise TemplateError(f"{where}: {exc}") from None
        if not spec.name.strip():
            raise TemplateError(f"{where}: the name is empty")
        if any(t.name == spec.name for t in templates):
            raise TemplateError(f"{where}: the name is used twice")
        try:
            templates.append(_compile(spec, vendors))
        except TemplateError as exc:
            raise TemplateError(f"{source}: {exc}") from None
    if include_defaults or directions_spec is None:
        defaults = _default_table()
        if directions_spec is None:
            directions_spec = msgspec.convert(defaults["directions"], _Directions)
        if include_defaults:
            own = {t.name for t in templates}
            templates += [t for t in default_templates(zone=zone).templates if t.name not in own]
    if not templates:
        raise TemplateError(f"{source}: no templates (add [[template]] tables or include_defaults = true)")
    directions: dict[str, Direction] = {w.casefold(): "above" for w in directions_spec.above}
    directions.update({w.casefold(): "below" for w in directions_spec.below})
    return TemplateSet(templates, directions, tz)


def load_templates(path: Path | None = None, *, zone: str = DEFAULT_ZONE) -> TemplateSet:
    """The templates in the TOML file at `path` (the shipped defaults when None); naive times in the
    texts are read in `zone`. Raises TemplateError naming the file and the template at fault."""
    if path is None:
        return default_templates(zone=zone)
    try:
        with open(path, "rb") as f:
            table = tomllib.load(f)
    except OSError as exc:
        raise TemplateError(f"{path}: cannot read the template file: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise TemplateError(f"{path}: not valid TOML: {exc}") from None
    return templates_from_table(table, zone=zone, source=str(path))


def _default_table() -> dict[str, Any]:
    with open(DEFAULT_TEMPLATES, "rb") as f:
        return tomllib.load(f)


def default_templates(*, zone: str = DEFAULT_ZONE) -> TemplateSet:
    """The shipped Efento, BluLog and vendor-neutral templates, Polish and English."""
    return templates_from_table(_default_table(), zone=zone, source=str(DEFAULT_TEMPLATES))
