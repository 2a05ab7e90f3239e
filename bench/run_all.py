"""Every bench, one after the other: one results file, the tables of docs/benchmarks.md, plots.

``make bench`` (no ``NAME``) runs this: each ``bench/<name>.py`` with its default options
as a process of its own (its progress streamed, prefixed with its name), its closing JSON
line kept. Then it writes ``docs/benchmarks.json`` (every figure, the bar and whether it was
met, the duration), regenerates the generated part of ``docs/benchmarks.md`` (between its
``make bench`` markers) from that file, and draws ``docs/benchmarks/*.png``: latency
percentiles per bench, and throughput against load where a bench steps the load.

``--only hot_sku,cascade`` runs some; ``--render-only`` redraws the tables and plots from
the results file without running anything.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "docs" / "benchmarks.json"
DOC = ROOT / "docs" / "benchmarks.md"
PLOTS = ROOT / "docs" / "benchmarks"
BEGIN = "<!-- make bench: generated from docs/benchmarks.json, do not edit by hand -->"
END = "<!-- make bench: end -->"

Figures = dict[str, Any]


@dataclass(frozen=True)
class Bench:
    name: str
    bar: str
    # Whether the figures meet the bar (None: the bench has no pass/fail bar).
    met: Callable[[Figures], bool | None]
    # The few figures the table shows.
    headline: Callable[[Figures], str]
    args: Sequence[str] = field(default_factory=tuple)


def _get(figures: Figures, *path: str) -> Any:
    value: Any = figures
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _load_summary(figures: Figures) -> str:
    under = (
        f"under 1 s up to {_get(figures, 'last_step_under_limit', 'users')} users "
        f"({_get(figures, 'last_step_under_limit', 'requests_per_s')} requests/s, p99 "
        f"{_get(figures, 'last_step_under_limit', 'p99_ms')} ms)"
    )
    over_users = _get(figures, "first_step_over_limit", "users")
    # A machine fast enough reaches the bench's time bound before the limit.
    over = (
        f"passed at {over_users} users"
        if over_users is not None
        else "not passed before the bench's time bound"
    )
    return f"{under}; {over}; {figures.get('failures_under_limit')} failed below"


BENCHES = (
    Bench(
        "hot_sku",
        "service/PostgreSQL ratio ≥ 0.5 at 16 clients, 0 oversold",
        lambda f: f.get("ratio", 0) >= 0.5 and f.get("oversold") == 0,
        lambda f: (
            f"ratio {f.get('ratio')} at 16 clients ({f.get('service_tps')} vs "
            f"{f.get('postgres_tps')} commits/s), {f.get('oversold')} oversold"
        ),
    ),
    Bench(
        "propagation",
        "p99 < 250 ms at 100 orders/s, 0 lost, 0 oversold, ≤ 1 push per order per shop",
        lambda f: (
            f.get("p99_ms", 1e9) < 250
            and f.get("lost") == 0
            and f.get("oversold") == 0
            and f.get("pushes_per_order", 1e9) <= 1
        ),
        lambda f: (
            f"p50 {f.get('p50_ms')} / p95 {f.get('p95_ms')} / p99 {f.get('p99_ms')} ms, "
            f"{f.get('cpu_ms_per_order')} ms CPU per order, {f.get('pushes_per_order')} "
            f"pushes per order per shop, {f.get('lost')} lost, {f.get('oversold')} oversold"
        ),
        args=("--rate", "100"),
    ),
    Bench(
        "cascade",
        "pending_ms < 100",
        lambda f: f.get("pending_ms", 1e9) < 100,
        lambda f: (
            f"pending {f.get('pending_ms')} ms for {f.get('listings')} listings, "
            f"applied {f.get('applied_ms')} ms"
        ),
    ),
    Bench(
        "reconcile",
        "100,000 listings in < 20 s, every drift found",
        lambda f: f.get("seconds", 1e9) < 20 and bool(f.get("found_exactly_injected")),
        lambda f: (
            f"{f.get('listings')} listings in {f.get('seconds')} s "
            f"({f.get('listings_per_s')}/s), drift found exactly: "
            f"{f.get('found_exactly_injected')}"
        ),
    ),
    Bench(
        "webhook_ingest",
        "500 deliveries/s accepted, ack p99 < 100 ms, 0 lost",
        lambda f: (
            f.get("accepted_per_s", 0) >= 0.99 * f.get("rate_per_s", 500)
            and f.get("p99_ms", 1e9) < 100
            and f.get("lost") == 0
        ),
        lambda f: (
            f"{f.get('accepted_per_s')}/s accepted of {f.get('rate_per_s')}/s, ack p99 "
            f"{f.get('p99_ms')} ms, {f.get('lost')} lost, processed "
            f"{f.get('processed_after_s')} s after the last"
        ),
    ),
    Bench(
        "webhook_burst",
        "0 resets under 32 concurrent deliveries (gunicorn)",
        lambda f: _get(f, "gunicorn", "resets") == 0,
        lambda f: (
            f"gunicorn: {_get(f, 'gunicorn', 'resets')} resets, p99 "
            f"{_get(f, 'gunicorn', 'p99_ms')} ms; runserver: "
            f"{_get(f, 'runserver', 'resets')} resets"
        ),
    ),
    Bench(
        "console",
        "slowest main page < 300 ms (median)",
        lambda f: f.get("main_page_ms", 1e9) < 300,
        lambda f: f"slowest main page {f.get('main_page_ms')} ms",
    ),
    Bench(
        "load",
        "whole system stepped up until p99 > 1 s: no request failed below that",
        lambda f: (
            f.get("failures_under_limit") == 0 and f.get("last_step_under_limit") is not None
        ),
        _load_summary,
    ),
    Bench(
        "viral_burst",
        "0 oversold; every other channel brought down in step",
        lambda f: f.get("oversold") == 0 if "oversold" in f else None,
        lambda f: (
            f"{f.get('orders')} orders at {f.get('per_s')}/s on {f.get('stock')} units: "
            f"{f.get('oversold')} oversold, {f.get('lost')} lost, guard's first rise after "
            f"{f.get('guard_first_rise_after_s')} s, settled {f.get('settled')}"
            + (
                f" (held back by their platform: {', '.join(f['held_by_platforms'])})"
                if f.get("held_by_platforms")
                else ""
            )
        ),
    ),
)


def available() -> list[Bench]:
    """The benches whose script is in ``bench/``."""
    return [bench for bench in BENCHES if (ROOT / "bench" / f"{bench.name}.py").exists()]


def run_one(bench: Bench) -> dict[str, Any]:
    """Run one bench as its own process, streaming its output; its result record."""
    print(f"=== {bench.name}: {bench.bar}", flush=True)
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / f"{bench.name}.py"), *bench.args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    figures: Figures | None = None
    assert process.stdout is not None
    for line in process.stdout:
        print(f"[{bench.name}] {line}", end="", flush=True)
        stripped = line.strip()
        if stripped.startswith("{") and stripped.endswith("}"):
            with contextlib.suppress(ValueError):
                figures = json.loads(stripped)
    exit_code = process.wait()
    seconds = round(time.monotonic() - started, 1)
    met = bench.met(figures) if figures is not None and exit_code == 0 else False
    record = {
        "bar": bench.bar,
        "met": met,
        "headline": bench.headline(figures) if figures is not None else "no figures",
        "figures": figures,
        "exit_code": exit_code,
        "seconds": seconds,
        "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    verdict = {True: "met", False: "NOT met", None: "no bar"}[met]
    print(f"=== {bench.name}: {record['headline']} ({verdict}, {seconds} s)", flush=True)
    return record


def write_results(records: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Merge ``records`` into the results file (benches not run keep their last record)."""
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"benches": {}}
    results["benches"].update(records)
    results["machine"] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.machine()}",
    }
    results["generated_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    return results


def render_table(results: dict[str, Any]) -> str:
    """The generated part of docs/benchmarks.md: one row per bench, and the plots."""
    machine = results.get("machine", {})
    lines = [
        BEGIN,
        "",
        f"**Latest `make bench`** ({results.get('generated_at', '?')[:10]}, "
        f"{machine.get('cpus', '?')} cores, Python {machine.get('python', '?')}; every figure "
        "in `docs/benchmarks.json`):",
        "",
        "| bench | bar | latest figures | bar met | run time |",
        "|---|---|---|:---:|---:|",
    ]
    for name, record in results.get("benches", {}).items():
        met = {True: "yes", False: "**no**", None: "n/a"}[record.get("met")]
        lines.append(
            f"| `{name}` | {record['bar']} | {record['headline']} | {met} | "
            f"{record['seconds']:.0f} s |"
        )
    lines.append("")
    for image in sorted(PLOTS.glob("*.png")):
        lines.append(f"![{image.stem.replace('_', ' ')}](benchmarks/{image.name})")
    lines += ["", END]
    return "\n".join(lines)


def write_doc(results: dict[str, Any]) -> None:
    text = DOC.read_text()
    generated = render_table(results)
    if BEGIN in text and END in text:
        before, _, rest = text.partition(BEGIN)
        _, _, after = rest.partition(END)
        text = before + generated + after
    else:
        heading, _, body = text.partition("\n\n")
        text = f"{heading}\n\n{generated}\n\n{body}"
    DOC.write_text(text)


def draw_plots(results: dict[str, Any]) -> None:
    """Latency percentiles of every bench that reports them; hot SKU throughput by clients."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    PLOTS.mkdir(parents=True, exist_ok=True)
    benches = results.get("benches", {})
    series: dict[str, list[float]] = {}
    for name, record in benches.items():
        figures = record.get("figures") or {}
        for label, source in [(name, figures)] + [
            (f"{name} ({key})", value)
            for key, value in figures.items()
            if isinstance(value, dict) and "p99_ms" in value
        ]:
            if all(isinstance(source.get(k), int | float) for k in ("p50_ms", "p99_ms")):
                series[label] = [
                    float(source.get("p50_ms") or 0),
                    float(source.get("p95_ms") or source.get("p50_ms") or 0),
                    float(source.get("p99_ms") or 0),
                    float(source.get("max_ms") or source.get("p99_ms") or 0),
                ]
    if series:
        figure, axes = plt.subplots(figsize=(8, 0.6 * len(series) + 1.5))
        labels = list(series)
        for index, (percentile, colour) in enumerate(
            zip(
                ("p50", "p95", "p99", "max"),
                ("#4c9f70", "#f2c14e", "#f78154", "#9b2226"),
                strict=True,
            )
        ):
            axes.barh(
                [position + index * 0.2 for position in range(len(labels))],
                [series[label][index] for label in labels],
                height=0.2,
                label=percentile,
                color=colour,
            )
        axes.set_yticks([position + 0.3 for position in range(len(labels))], labels)
        axes.set_xscale("log")
        axes.set_xlabel("latency, ms (log scale)")
        axes.set_title("Latency percentiles by bench")
        axes.legend()
        figure.tight_layout()
        figure.savefig(PLOTS / "latency.png", dpi=100)
        plt.close(figure)
    by_clients = _get(benches, "hot_sku", "figures", "by_clients")
    if isinstance(by_clients, dict) and by_clients:
        clients = sorted(by_clients, key=int)
        figure, axes = plt.subplots(figsize=(7, 4))
        for key, label in (
            ("service_tps", "nventory commit_order"),
            ("postgres_tps", "PostgreSQL UPDATE"),
        ):
            axes.plot(
                [int(c) for c in clients],
                [by_clients[c][key] for c in clients],
                marker="o",
                label=label,
            )
        axes.set_xscale("log", base=2)
        axes.set_xlabel("concurrent clients on one SKU")
        axes.set_ylabel("commits per second")
        axes.set_title("Hot SKU: throughput against load")
        axes.legend()
        figure.tight_layout()
        figure.savefig(PLOTS / "hot_sku_throughput.png", dpi=100)
        plt.close(figure)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated bench names")
    parser.add_argument("--render-only", action="store_true")
    args = parser.parse_args(argv)
    chosen = available()
    if args.only:
        wanted = set(args.only.split(","))
        unknown = wanted - {bench.name for bench in chosen}
        if unknown:
            parser.error(f"no such bench: {', '.join(sorted(unknown))}")
        chosen = [bench for bench in chosen if bench.name in wanted]
    records = {} if args.render_only else {bench.name: run_one(bench) for bench in chosen}
    results = write_results(records)
    draw_plots(results)
    write_doc(results)
    failed = [name for name, record in records.items() if record["met"] is False]
    print(
        f"Wrote {RESULTS.relative_to(ROOT)}, {DOC.relative_to(ROOT)} and "
        f"{PLOTS.relative_to(ROOT)}/; bar not met: {', '.join(failed) or 'none'}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
