"""The monitoring files match the code: every metric is prefixed `vigil_` and catalogued in
docs/operations.md, the alert rules pass `promtool check rules` and their unit tests
(`promtool test rules`), and every metric an alert or a Grafana panel names is one the code
exports (found by importing the modules that define metrics and reading the registry)."""
from __future__ import annotations

import importlib
import json
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "ops" / "prometheus" / "vigil-alerts.yml"
RULE_TESTS = ROOT / "ops" / "prometheus" / "vigil-alerts.test.yml"
DASHBOARDS = sorted((ROOT / "ops" / "grafana").glob("*.json"))
CATALOGUE = ROOT / "docs" / "operations.md"
# The synthetic probe's metrics (hub/probe.py, another piece of issue 17): its alert and the
# catalogue name them whether or not the probe has landed; the rule waits for it.
PROBE = {"vigil_probe_last_success_timestamp", "vigil_probe_latency_seconds"}
# prometheus_client's own process and runtime metrics: exported by every process, not ours to prefix.
LIBRARY_PREFIXES = ("process_", "python_")
_DEFINES_METRIC = re.compile(r"=\s*(?:Counter|Gauge|Histogram|Summary|Info|Enum)\(")
# Which series Prometheus stores for a metric family of each type.
_SERIES_SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count"),
                    "summary": ("", "_sum", "_count"), "info": ("_info",), "stateset": ("",), "unknown": ("",)}
_PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
                 "offset", "atan2", "inf", "nan"}
PROMTOOL_MISSING = ("promtool is not installed: install Debian's prometheus package (sudo apt-get install -y "
                    "prometheus, or `make promtool` as root)")


@cache
def families() -> dict[str, str]:
    """Every metric family the code registers (name → type), after importing each module of
    edge/, hub/ and shared/ that defines one."""
    for package in ("edge", "hub", "shared"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if _DEFINES_METRIC.search(path.read_text(encoding="utf-8")):
                importlib.import_module(".".join(path.relative_to(ROOT).with_suffix("").parts))
    return {family.name: family.type for family in REGISTRY.collect()}


@cache
def exported_series() -> frozenset[str]:
    """The series names Prometheus stores from those families (counters with _total, histograms
    with _bucket, _sum and _count)."""
    return frozenset(name + suffix for name, kind in families().items() for suffix in _SERIES_SUFFIXES[kind])


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: what is left once strings, label matchers,
    ranges, grouping clauses, functions, keywords, numbers and Grafana variables are taken out."""
    expr = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'', '""', expr)
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", expr)
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    names = set()
    for match in re.finditer(r"(?<![\w.$])[A-Za-z_:][\w:]*", expr):
        if re.match(r"\s*\(", expr[match.end():]) or match.group().lower() in _PROMQL_WORDS:
            continue
        names.add(match.group())
    return names


def rules() -> list[dict[str, object]]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def panels() -> list[tuple[str, dict[str, object]]]:
    """(dashboard file, panel) for every panel that is not a row, rows' nested panels included."""
    out = []
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for p in [panel, *panel.get("panels", [])]:
                if p["type"] != "row":
                    out.append((path.name, p))
    return out


def test_the_expression_parser_finds_metrics_only() -> None:
    expr = ('histogram_quantile(0.95, sum by (stage, le) (rate(vigil_a_bucket{x="y", z=~"a|b"}[$__rate_interval])))'
            ' > 300 or on (job) (time() - process_start_time_seconds offset 5m > 3600) unless vigil_b')
    assert metric_names(expr) == {"vigil_a_bucket", "process_start_time_seconds", "vigil_b"}


def test_every_metric_the_code_registers_is_prefixed_vigil() -> None:
    ours = [name for name in families() if not name.startswith(LIBRARY_PREFIXES)]
    assert len(ours) > 50, "the metric modules were not found"
    assert [name for name in ours if not name.startswith("vigil_")] == []


def test_the_catalogue_in_docs_operations_lists_every_metric_and_no_other() -> None:
    listed = set(re.findall(r"^\| `(vigil_\w+)`", CATALOGUE.read_text(), re.MULTILINE))
    ours = {name for name in exported_series() if not name.startswith(LIBRARY_PREFIXES)}
    # A family is catalogued by the series people query: counters with _total, histograms by name.
    wanted = {name + ("_total" if kind == "counter" else "") for name, kind in families().items()
              if not name.startswith(LIBRARY_PREFIXES)}
    assert sorted(wanted - listed) == [], "metrics missing from the catalogue"
    assert sorted(listed - wanted - ours - PROBE) == [], "catalogued metrics the code does not export"


def test_every_metric_an_alert_names_is_exported() -> None:
    named = {name for rule in rules() for name in metric_names(str(rule["expr"]))}
    assert sorted(named - exported_series() - PROBE) == []


def test_every_dashboard_panel_queries_exported_metrics_through_the_datasource_variable() -> None:
    assert [p.name for p in DASHBOARDS] == ["infrastructure.json", "operations.json", "satel-link.json"]
    for path in DASHBOARDS:
        variables = json.loads(path.read_text())["templating"]["list"]
        assert {"name": "DS_PROMETHEUS", "type": "datasource", "query": "prometheus"}.items() <= variables[0].items()
    found = panels()
    assert len(found) >= 30
    for dashboard, panel in found:
        where = f"{dashboard}: {panel['title']}"
        assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}, where
        assert panel["targets"], where
        for target in panel["targets"]:
            names = metric_names(target["expr"])
            assert names, f"{where}: {target['expr']} names no metric"
            assert sorted(names - exported_series()) == [], where
            assert target["datasource"]["uid"] == "${DS_PROMETHEUS}", where


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip(PROMTOOL_MISSING)
    return subprocess.run([promtool, *args], cwd=RULES.parent, capture_output=True, text=True, timeout=60)


def test_promtool_accepts_the_alert_rules() -> None:
    result = _promtool("check", "rules", RULES.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout


def test_each_alert_fires_past_its_threshold_and_not_at_it() -> None:
    result = _promtool("test", "rules", RULE_TESTS.name)
    assert result.returncode == 0, result.stdout + result.stderr
    tested = {t["alertname"] for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
              for t in test["alert_rule_test"]}
    assert tested == {str(rule["alert"]) for rule in rules()}
