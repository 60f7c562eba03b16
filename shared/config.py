"""The one config loader: defaults, then a TOML file, then `VIGIL_<SECTION>_<KEY>` environment
variables, validated into a msgspec Struct at start-up.

Errors name the key, the value and where it came from, so an admin on call knows what to fix.
"""
from __future__ import annotations

import json
import os
import re
import tomllib
from pathlib import Path
from typing import Any, Mapping, TypeVar

import msgspec

T = TypeVar("T", bound=msgspec.Struct)

_PATH_RE = re.compile(r"at `\$((?:\.[A-Za-z0-9_]+|\[\d+\])*)`")


class ConfigError(Exception):
    """A config value is missing, unknown or of the wrong type; the message names it."""


def _struct_fields(cls: type) -> dict[str, Any]:
    info = msgspec.inspect.type_info(cls)
    if not isinstance(info, msgspec.inspect.StructType):
        return {}
    return {f.encode_name: f.type for f in info.fields}


def _env_overrides(cls: type, prefix: str, env: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Collect env values for every (nested) field: VIGIL_HUB_DATABASE_URL → database_url,
    VIGIL_EDGE_JOURNAL_MAX_BYTES → journal.max_bytes. Returns the nested dict and, per dotted key,
    the variable it came from."""
    found: dict[str, Any] = {}
    sources: dict[str, str] = {}

    def walk(struct_cls: type, path: list[str], target: dict[str, Any]) -> None:
        for name, ftype in _struct_fields(struct_cls).items():
            var = "_".join(["VIGIL", prefix, *path, name]).upper()
            if isinstance(ftype, msgspec.inspect.StructType):
                sub: dict[str, Any] = {}
                walk(ftype.cls, [*path, name], sub)
                if sub:
                    target[name] = sub
            elif var in env:
                target[name] = env[var]
                sources[".".join([*path, name])] = var

    walk(cls, [], found)
    return found, sources


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _lookup(data: Mapping[str, Any], dotted: str) -> Any:
    cur: Any = data
    for part in dotted.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return None
        cur = cur[part]
    return cur


def load_config(
    cls: type[T],
    *,
    prefix: str,
    path: Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> T:
    """Load `cls` from defaults, the TOML file at `path` (if given), the environment, then
    `overrides` (for tests). Raises ConfigError naming the bad key and value."""
    env = os.environ if env is None else env
    data: dict[str, Any] = {}
    origin = "defaults"
    if path is not None:
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
        origin = str(path)
    env_data, env_sources = _env_overrides(cls, prefix, env)
    data = _merge(data, env_data)
    if overrides:
        data = _merge(data, dict(overrides))
    try:
        return msgspec.convert(data, cls, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(_explain(str(exc), data, env_sources, origin, prefix)) from None


def _explain(message: str, data: Mapping[str, Any], env_sources: Mapping[str, str], origin: str, prefix: str) -> str:
    match = _PATH_RE.search(message)
    dotted = match.group(1).lstrip(".") if match else ""
    reason = _PATH_RE.sub("", message).strip(" -")
    unknown = re.search(r"unknown field `([^`]+)`", message)
    if unknown:
        key = ".".join(filter(None, [dotted, unknown.group(1)]))
        return f"config key `{prefix.lower()}.{key}` is not a known setting (in {origin})"
    missing = re.search(r"missing required field `([^`]+)`", message)
    if missing:
        parts = [p for p in [dotted, missing.group(1)] if p]
        var = "_".join(["VIGIL", prefix, *".".join(parts).split(".")]).upper()
        return f"config key `{prefix.lower()}.{'.'.join(parts)}` is required: set it in the config file or {var}"
    if not dotted:
        return f"invalid {prefix.lower()} config: {reason}"
    value = _lookup(data, dotted)
    where = f"environment variable {env_sources[dotted]}" if dotted in env_sources else origin
    shown = "missing" if value is None and "required" in reason else repr(value)
    return f"config key `{prefix.lower()}.{dotted}` = {shown} (from {where}): {reason}"


def dump_toml(data: Mapping[str, Any]) -> str:
    """`data` as a TOML document, for config files our tools write (e.g. `edge enroll`): scalars
    first, then each sub-table; strings JSON-escaped, which TOML basic strings accept."""
    lines: list[str] = []

    def scalar(value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (int, float)):
            return repr(value)
        if isinstance(value, str):
            return json.dumps(value, ensure_ascii=False)
        if isinstance(value, list):
            return "[" + ", ".join(scalar(v) for v in value) + "]"
        raise TypeError(f"cannot write {type(value).__name__} to TOML")

    def table(prefix: str, body: Mapping[str, Any]) -> None:
        subs = {k: v for k, v in body.items() if isinstance(v, Mapping)}
        if prefix and (len(subs) < len(body) or not body):
            lines.append(f"\n[{prefix}]")
        for key, value in body.items():
            if key not in subs and value is not None:
                lines.append(f"{key} = {scalar(value)}")
        for key, value in subs.items():
            table(f"{prefix}.{key}" if prefix else key, value)

    table("", data)
    return "\n".join(lines).lstrip("\n") + "\n"
