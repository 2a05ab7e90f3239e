"""Run any reconciliation job now: ``manage.py reconcile poll|full-sync|shadow|report``."""

from __future__ import annotations

import datetime as dt
import sys
import threading
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from channels.models import Channel
from reconciliation import reports, services, shadow
from reconciliation.models import ReconciliationRun

BAR_WIDTH = 30


class Command(BaseCommand):
    help = "Run a reconciliation poll, a full sync, the shadow comparison or the daily report."

    def add_arguments(self, parser: CommandParser) -> None:
        jobs = parser.add_subparsers(dest="job", required=True)
        poll = jobs.add_parser("poll", help="Compare channels with the master; correct them.")
        poll.add_argument("--channel", action="append", default=None, help="slug (repeatable)")
        poll.add_argument("--workers", type=int, default=5, help="channels read at once")
        full = jobs.add_parser("full-sync", help="Owe every active listing a push.")
        full.add_argument("--channel", action="append", default=None, help="slug (repeatable)")
        full.add_argument(
            "--wait", action="store_true", help="show progress until every push is sent"
        )
        compare = jobs.add_parser("shadow", help="Compare shadow channels for a day.")
        compare.add_argument("--date", type=dt.date.fromisoformat, default=None)
        compare.add_argument("--force", action="store_true", help="redo a finished comparison")
        report = jobs.add_parser("report", help="Build the daily report and email it.")
        report.add_argument("--no-email", action="store_true")
        report.add_argument("--force", action="store_true", help="rebuild an emailed report")

    def handle(self, *args: Any, **options: Any) -> None:
        job = options["job"]
        if job == "poll":
            self._poll(options)
        elif job == "full-sync":
            self._full_sync(options)
        elif job == "shadow":
            self._shadow(options)
        else:
            self._report(options)

    def _channel_ids(self, slugs: list[str] | None) -> list[int] | None:
        if not slugs:
            return None
        ids = list(Channel.objects.filter(slug__in=slugs).values_list("pk", flat=True))
        if len(ids) != len(set(slugs)):
            raise CommandError(f"Unknown channel among {slugs}.")
        return ids

    def _poll(self, options: dict[str, Any]) -> None:
        bars = _Bars(self.stdout)
        runs = services.reconcile_channels(
            channel_ids=self._channel_ids(options["channel"]),
            max_workers=options["workers"],
            progress=bars.update,
        )
        bars.finish()
        for run in runs:
            self._summary(run)

    def _full_sync(self, options: dict[str, Any]) -> None:
        runs = services.start_full_sync(channel_ids=self._channel_ids(options["channel"]))
        for run in runs:
            self.stdout.write(f"{run.channel.slug}: {run.listings_total} listings owed a push")
        if not options["wait"]:
            return
        bars = _Bars(self.stdout)
        while True:
            running = services.refresh_full_syncs()
            for run in runs:
                run.refresh_from_db()
                bars.update(run)
            if not running:
                break
            time.sleep(1)
        bars.finish()

    def _shadow(self, options: dict[str, Any]) -> None:
        day = options["date"] or timezone.localdate()
        bars = _Bars(self.stdout)
        channel_ids = Channel.objects.filter(mode=Channel.Mode.SHADOW).values_list("pk", flat=True)
        runs = [
            shadow.compare_shadow_channel(
                channel_id=channel_id, day=day, force=options["force"], progress=bars.update
            )
            for channel_id in channel_ids
        ]
        bars.finish()
        for run in runs:
            if run is None:
                continue
            end_of_day = run.figures.get("end_of_day", {})
            replay = run.figures.get("replay", {})
            self.stdout.write(
                f"{run.channel.slug} {day}: match rate {end_of_day.get('match_rate')}, "
                f"within 1%: {end_of_day.get('within_one_percent')}, would have oversold: "
                f"{replay.get('would_have_oversold')} "
                f"({len(replay.get('exposed_orders', []))} orders)"
            )

    def _report(self, options: dict[str, Any]) -> None:
        report = reports.generate_daily_report(force=options["force"])
        wanted = not options["no_email"] and report.emailed_at is None
        if wanted and not reports.send_daily_report(report=report):
            self.stderr.write("No operator emails configured: the report was not sent.")
        self.stdout.write(report.text)

    def _summary(self, run: ReconciliationRun) -> None:
        line = (
            f"{run.channel.slug}: {run.status}, {run.listings_checked}/{run.listings_total} "
            f"checked, {run.skipped_in_flight} in flight, {run.found} drifted "
            f"({run.drift_percent or 0:.2f}%), {run.corrected} corrected"
        )
        if run.alerted_at:
            line += ", operators alerted"
        if run.error:
            line += f"; {run.error}"
        self.stdout.write(line)


class _Bars:
    """One text progress line per channel, redrawn in place on a terminal."""

    def __init__(self, stdout: Any) -> None:
        self.stdout = stdout
        self.lock = threading.Lock()
        self.lines: dict[int, str] = {}
        self.interactive = sys.stdout.isatty()

    def update(self, run: ReconciliationRun) -> None:
        done = round(BAR_WIDTH * run.progress_percent / 100)
        line = (
            f"{run.channel.slug:<24} [{'#' * done}{'.' * (BAR_WIDTH - done)}] "
            f"{run.listings_checked}/{run.listings_total} {run.status}"
        )
        with self.lock:
            if self.lines.get(run.pk) == line:
                return
            self.lines[run.pk] = line
            if self.interactive:
                self.stdout.write("\r" + line, ending="")
                self.stdout.flush()
            else:
                self.stdout.write(line)

    def finish(self) -> None:
        if self.interactive and self.lines:
            self.stdout.write("")
