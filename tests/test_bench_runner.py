"""``make bench``'s runner: the generated part of docs/benchmarks.md and the plots come from
the results file, and a second render replaces the first instead of adding to it."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

RUNNER = Path(__file__).resolve().parent.parent / "bench" / "run_all.py"


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_run_all", RUNNER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_run_all", module)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "RESULTS", tmp_path / "benchmarks.json")
    monkeypatch.setattr(module, "DOC", tmp_path / "benchmarks.md")
    monkeypatch.setattr(module, "PLOTS", tmp_path / "benchmarks")
    (tmp_path / "benchmarks.md").write_text("# Benchmarks\n\nThe narrative stays.\n")
    return module


def _record(runner: ModuleType, name: str, figures: dict) -> dict:
    bench = next(bench for bench in runner.BENCHES if bench.name == name)
    return {
        "bar": bench.bar,
        "met": bench.met(figures),
        "headline": bench.headline(figures),
        "figures": figures,
        "exit_code": 0,
        "seconds": 12.0,
        "finished_at": "2026-12-01T00:00:00+00:00",
    }


def test_the_tables_and_plots_are_the_results_files_figures(runner, tmp_path):
    records = {
        "propagation": _record(
            runner,
            "propagation",
            {
                "p50_ms": 20.0,
                "p95_ms": 60.0,
                "p99_ms": 300.0,
                "max_ms": 500.0,
                "lost": 0,
                "oversold": 0,
                "cpu_ms_per_order": 21.0,
            },
        ),
        "hot_sku": _record(
            runner,
            "hot_sku",
            {
                "ratio": 0.52,
                "oversold": 0,
                "service_tps": 1100.0,
                "postgres_tps": 2100.0,
                "by_clients": {
                    "1": {"service_tps": 1800.0, "postgres_tps": 3300.0},
                    "16": {"service_tps": 1100.0, "postgres_tps": 2100.0},
                },
            },
        ),
    }
    assert records["propagation"]["met"] is False and records["hot_sku"]["met"] is True
    results = runner.write_results(records)
    runner.draw_plots(results)
    runner.write_doc(results)
    runner.write_doc(json.loads((tmp_path / "benchmarks.json").read_text()))
    doc = (tmp_path / "benchmarks.md").read_text()
    assert doc.count(runner.BEGIN) == 1 and "The narrative stays." in doc
    assert "| `propagation` | p99 < 250 ms" in doc and "p99 300.0 ms" in doc
    assert "| **no** |" in doc and "| yes |" in doc
    assert {path.name for path in (tmp_path / "benchmarks").iterdir()} == {
        "latency.png",
        "hot_sku_throughput.png",
    }
    assert "![latency](benchmarks/latency.png)" in doc


def _load_step(users: int, p99_ms: float) -> dict:
    return {"users": users, "requests_per_s": 10.0 * users, "p99_ms": p99_ms, "failures": 0}


def test_the_load_headline_says_where_p99_passed_the_limit_or_that_it_never_did(runner):
    passed = _record(
        runner,
        "load",
        {
            "last_step_under_limit": _load_step(64, 800.0),
            "first_step_over_limit": _load_step(72, 1200.0),
            "failures_under_limit": 0,
        },
    )
    never = _record(
        runner,
        "load",
        {
            "last_step_under_limit": _load_step(120, 400.0),
            "first_step_over_limit": None,
            "failures_under_limit": 0,
        },
    )

    assert passed["met"] and "up to 64 users" in passed["headline"]
    assert "passed at 72 users" in passed["headline"]
    assert never["met"] and "up to 120 users" in never["headline"]
    assert "not passed before the bench's time bound" in never["headline"]
    assert "None" not in never["headline"]
