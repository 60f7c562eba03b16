"""Run every benchmark in bench/ and collect their figures into bench/last.json (`make bench`).

Each `bench/*.py` except this file and private modules (`_*.py`) runs as its own subprocess, one
after another so they do not compete for the cores, with its output echoed as it comes. Every
`BENCH name=value unit target=T better=higher|lower` line is collected; bench/last.json gets the
list of figures even when a benchmark fails. Exits non-zero if any benchmark failed, timed out or
printed no figure. The whole run is bounded (BUDGET_S), so it finishes in under 10 minutes.

Then come the derived figures (DERIVED): a figure over its baseline of the limit, both from this
run, since a shared machine's disk and cores vary from run to run and only a ratio of the same
run says how much of the machine the code gets. They are printed as BENCH lines too and kept in
bench/last.json with the others; one whose inputs are missing fails the run.
"""
from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import NamedTuple, TypedDict

BENCH_DIR = Path(__file__).resolve().parent
OUTPUT = BENCH_DIR / "last.json"
BUDGET_S = 540.0  # all benchmarks together, leaving room for teardown under the 10-minute limit
SCRIPT_CAP_S = 300.0  # one benchmark at most, so one hang cannot eat the others' time
STOP_GRACE_S = 30.0  # after SIGTERM, time to stop its processes and drop its database

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
BENCH_RE = re.compile(
    rf"^BENCH (?P<name>[A-Za-z0-9_]+)=(?P<value>{_NUMBER}) (?P<unit>\S+) "
    rf"target=(?P<target>{_NUMBER}) better=(?P<better>higher|lower)$"
)


class Figure(TypedDict):
    name: str
    value: float
    unit: str
    target: float
    better: str


def parse_bench_line(line: str) -> Figure | None:
    """The figure a `BENCH ...` line carries, or None if the line is not one."""
    match = BENCH_RE.match(line.strip())
    if match is None:
        return None
    return Figure(
        name=match["name"], value=float(match["value"]), unit=match["unit"],
        target=float(match["target"]), better=match["better"],
    )


class Derived(NamedTuple):
    """A figure over its baseline, both of the same run; better in the numerator's direction."""

    name: str
    numerator: str
    denominator: str
    # None: the numerator's target over the denominator's, the ratio at which a machine that just
    # meets the baseline's target still meets the figure's.
    target: float | None


DERIVED = (
    # Share of PostgreSQL's bare insert rate for the same rows (bench/pg_insert_raw.py).
    Derived("ingest_ratio", "ingest", "pg_insert_raw", 0.6),
    Derived("lifecycle_ratio", "lifecycle", "pg_insert_raw", 0.3),
    # p99 latencies in fdatasyncs of this disk (bench/fsync.py).
    Derived("latency_ratio", "latency_p99_ms", "fsync_p99_ms", None),
    Derived("api_ratio", "api_p99_ms", "fsync_p99_ms", None),
    # 1,000 edges against 4 for the same events (bench/ingest_1000_edges.py).
    Derived("ingest_1000_edges_ratio", "ingest_1000_edges", "ingest", None),
)


def bench_line(name: str, value: float, unit: str, target: float, better: str, decimals: int) -> str:
    """The machine-readable line of one figure (bench/_rig.emit prints the benchmarks' own)."""
    return f"BENCH {name}={value:.{decimals}f} {unit} target={target:g} better={better}"


def derive(figures: list[Figure]) -> tuple[list[Figure], list[str]]:
    """The DERIVED figures computable from `figures` (as their BENCH lines carry them), and why
    each other one is not."""
    by_name = {f["name"]: f for f in figures}
    derived: list[Figure] = []
    missing: list[str] = []
    for d in DERIVED:
        num, den = by_name.get(d.numerator), by_name.get(d.denominator)
        if num is None or den is None:
            absent = [n for n in (d.numerator, d.denominator) if n not in by_name]
            missing.append(f"{d.name}: no {' and no '.join(absent)} in this run")
            continue
        if den["value"] == 0:
            missing.append(f"{d.name}: {d.denominator} is 0")
            continue
        target = d.target if d.target is not None else num["target"] / den["target"]
        figure = parse_bench_line(bench_line(d.name, num["value"] / den["value"], "ratio", target, num["better"], 3))
        assert figure is not None
        derived.append(figure)
    return derived, missing


def benchmark_scripts() -> list[Path]:
    """Every benchmark script: bench/*.py but this runner and private modules."""
    return sorted(p for p in BENCH_DIR.glob("*.py") if p.name != Path(__file__).name and not p.name.startswith("_"))


def run_one(script: Path, timeout: float) -> tuple[int | None, list[Figure]]:
    """Run one benchmark, echoing its output; returns its exit code (None if it timed out) and
    its figures. A benchmark past its time gets SIGTERM, which makes it clean up, then SIGKILL."""
    figures: list[Figure] = []
    proc = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        cwd=BENCH_DIR.parent, bufsize=1,
    )

    def echo() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            print(line, end="", flush=True)
            figure = parse_bench_line(line)
            if figure is not None:
                figures.append(figure)

    # A reader thread, so the wait below can have a deadline while the output streams.
    reader = threading.Thread(target=echo, daemon=True)
    reader.start()
    try:
        code: int | None = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        print(f"run_all: {script.name} still running after {timeout:.0f} s; stopping it", flush=True)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        code = None
    reader.join()
    return code, figures


def main() -> int:
    deadline = time.monotonic() + BUDGET_S
    collected: list[Figure] = []
    failures: list[str] = []
    try:
        for script in benchmark_scripts():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                failures.append(f"{script.name}: not run, the time budget was used up")
                continue
            print(f"== {script.relative_to(BENCH_DIR.parent)} ==", flush=True)
            started = time.monotonic()
            code, figures = run_one(script, min(remaining, SCRIPT_CAP_S))
            collected.extend(figures)
            took = time.monotonic() - started
            if code is None:
                failures.append(f"{script.name}: timed out after {took:.0f} s")
            elif code != 0:
                failures.append(f"{script.name}: exited with code {code}")
            elif not figures:
                failures.append(f"{script.name}: printed no BENCH line")
            print(f"== {script.name}: {'ok' if code == 0 and figures else 'FAILED'} in {took:.1f} s ==\n", flush=True)
        derived, missing = derive(collected)
        print("== derived from this run's figures ==")
        for figure in derived:
            print(bench_line(figure["name"], figure["value"], figure["unit"], figure["target"], figure["better"], 3))
        collected.extend(derived)
        failures.extend(f"not derived: {why}" for why in missing)
    finally:
        # Whatever was measured is kept, even when a benchmark failed or the run was interrupted.
        OUTPUT.write_text(json.dumps(collected, indent=2) + "\n")
    width = max((len(f["name"]) for f in collected), default=0)
    for figure in collected:
        met = figure["value"] >= figure["target"] if figure["better"] == "higher" else figure["value"] <= figure["target"]
        print(f"{figure['name']:>{width}} {figure['value']:>12g} {figure['unit']:<9} target {figure['target']:g} "
              f"({figure['better']} is better): {'met' if met else 'MISSED'}")
    print(f"figures written to {OUTPUT}")
    for failure in failures:
        print(f"FAILED {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
