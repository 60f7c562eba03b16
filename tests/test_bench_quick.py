"""Every benchmark runs end to end with `--quick` and prints well-formed figures.

This checks that the benchmarks work (start their topology, measure, clean up, exit 0), never how
fast anything is: performance is `make bench`'s business, on a quiet machine.
"""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH_DIR = Path(__file__).resolve().parent.parent / "bench"
# The figures these benchmarks must print, among them every input of run_all's derived figures.
# Any other benchmark must print at least one figure, and name every figure after itself
# (`edge_idle` → `edge_idle_cpu_pct`, ...).
FIGURES = {
    "api": ["api_p99_ms"],
    "append": ["append"],
    "catchup": ["catchup_100_edges_s", "catchup_alarm_p99_ms"],
    "commands": ["command_p99_ms"],
    "forward": ["forward"],
    "fsync": ["fsync_p99_ms"],
    "ingest": ["ingest"],
    "ingest_1000_edges": ["ingest_1000_edges"],
    "latency": ["latency_p99_ms"],
    "lifecycle": ["lifecycle"],
    "outage": ["outage_alarm_ms", "outage_drain"],
    "pg_insert_raw": ["pg_insert_raw"],
    "robots": ["robot_telemetry", "robot_edge_cpu_pct"],
    "sms": ["sms_parse"],
}
# Benchmarks that start nats-server, PostgreSQL databases, hub or edge processes.
TOPOLOGY = {"commands", "ingest", "ingest_1000_edges", "forward", "latency", "lifecycle", "edge_idle", "api", "fanout", "pg_insert_raw", "robots",
            "outage", "catchup"}
QUICK_TIMEOUT_S = 60


def _load_runner() -> ModuleType:
    """bench/run_all.py (not a package), for its script list and its one BENCH-line parser."""
    spec = importlib.util.spec_from_file_location("bench_run_all", BENCH_DIR / "run_all.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


run_all = _load_runner()


def _params() -> list[object]:
    return [
        pytest.param(script, id=script.stem, marks=[pytest.mark.slow] if script.stem in TOPOLOGY else [])
        for script in run_all.benchmark_scripts()
    ]


def test_bench_line_parser() -> None:
    assert run_all.parse_bench_line("BENCH ingest=12345.6 events/s target=10000 better=higher") == {
        "name": "ingest", "value": 12345.6, "unit": "events/s", "target": 10000.0, "better": "higher"}
    assert run_all.parse_bench_line("BENCH latency_p99_ms=3.25 ms target=50 better=lower\n")["value"] == 3.25
    assert run_all.parse_bench_line("ingest: 1.23x target") is None
    assert run_all.parse_bench_line("BENCH ingest=fast events/s target=10000 better=higher") is None
    assert run_all.parse_bench_line("BENCH ingest=1 events/s target=10000 better=more") is None


def _figure(name: str, value: float, target: float, better: str = "higher") -> dict[str, object]:
    return {"name": name, "value": value, "unit": "x", "target": target, "better": better}


def test_derived_figures_come_from_the_same_run() -> None:
    run = [_figure("ingest", 6000, 10000), _figure("pg_insert_raw", 20000, 30000),
           _figure("latency_p99_ms", 12.0, 50, "lower"), _figure("fsync_p99_ms", 0.5, 5, "lower"),
           _figure("ingest_1000_edges", 4500, 8000)]
    derived, missing = run_all.derive(run)
    by_name = {f["name"]: f for f in derived}
    assert by_name["ingest_ratio"] == {"name": "ingest_ratio", "value": 0.3, "unit": "ratio", "target": 0.6,
                                       "better": "higher"}
    # Without a target of its own, a ratio's target is the numerator's over the baseline's.
    assert by_name["latency_ratio"] == {"name": "latency_ratio", "value": 24.0, "unit": "ratio", "target": 10.0,
                                        "better": "lower"}
    assert by_name["ingest_1000_edges_ratio"]["value"] == 0.75
    assert by_name["ingest_1000_edges_ratio"]["target"] == 0.8
    # The run had no lifecycle nor api figure: those ratios are reported missing, never guessed.
    assert set(by_name) == {"ingest_ratio", "latency_ratio", "ingest_1000_edges_ratio"}
    assert sorted(missing) == ["api_ratio: no api_p99_ms in this run", "lifecycle_ratio: no lifecycle in this run"]


def test_derived_inputs_are_checked_here() -> None:
    """Every figure a derived one divides is among those the quick runs below must print."""
    printed = {name for names in FIGURES.values() for name in names}
    assert {n for d in run_all.DERIVED for n in (d.numerator, d.denominator)} <= printed


@pytest.mark.parametrize("script", _params())
def test_benchmark_runs_quick(script: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(script), "--quick"], capture_output=True, text=True, timeout=QUICK_TIMEOUT_S,
        cwd=BENCH_DIR.parent,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{script.name} --quick exited with {proc.returncode}:\n{output}"
    figures = {f["name"]: f for line in proc.stdout.splitlines() if (f := run_all.parse_bench_line(line))}
    expected = FIGURES.get(script.stem)
    if expected is None:
        assert figures, f"{script.name} printed no BENCH line:\n{output}"
        assert all(name.startswith(script.stem) for name in figures), f"{script.name}: {sorted(figures)}"
        expected = list(figures)
    for name in expected:
        assert name in figures, f"{script.name} printed no BENCH line for {name}:\n{output}"
        figure = figures[name]
        # A rate or a latency is positive; a cost (lower is better, e.g. idle CPU) may round to 0.
        assert figure["value"] > 0 or (figure["better"] == "lower" and figure["value"] == 0), f"{script.name}: {figure}"
