"""The jobs, their schedules, and the APScheduler that runs them on the leader only.

Every instance schedules every job (APScheduler's BackgroundScheduler, interval triggers),
but a run does its work only while this instance is the leader (leader.py): elsewhere it
returns at once. A run is bounded (batches per run), counted in Prometheus, logged in one
line with what it did, and never raises into the scheduler: a backend outage is logged
and the next run tries again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from services.common.backends import backend_down
from services.scheduled_jobs.context import JobsContext
from services.scheduled_jobs.media import sweep_media
from services.scheduled_jobs.messages import expire_messages
from services.scheduled_jobs.presence import prune_presence
from services.scheduled_jobs.queues import prune_dead_letters, report_queue_depths
from services.scheduled_jobs.tokens import prune_refresh_tokens

log = logging.getLogger(__name__)

# First runs after start-up come soon (a restart must not push an hourly job back an
# hour), spread a little so they do not all start at once.
FIRST_RUN_DELAY_SECONDS = 5.0
FIRST_RUN_SPREAD_SECONDS = 2.0

JobFunction = Callable[[JobsContext, Counter], None]


@dataclass(frozen=True)
class Job:
    name: str
    function: JobFunction
    # The settings field holding its interval (seconds).
    interval_field: str

    def interval(self, ctx: JobsContext) -> int:
        return int(getattr(ctx.settings, self.interval_field))


JOBS: tuple[Job, ...] = (
    Job("expire_messages", expire_messages, "expire_messages_interval_seconds"),
    Job("prune_presence", prune_presence, "prune_presence_interval_seconds"),
    Job("prune_refresh_tokens", prune_refresh_tokens, "prune_refresh_tokens_interval_seconds"),
    Job("prune_dead_letters", prune_dead_letters, "prune_dead_letters_interval_seconds"),
    Job("report_queue_depths", report_queue_depths, "report_queue_depths_interval_seconds"),
    Job("sweep_media", sweep_media, "sweep_media_interval_seconds"),
)


def describe(counts: Counter[str]) -> str:
    """`expired 3, events 3` (sorted; `nothing` when the run found nothing to do)."""
    return ", ".join(f"{item} {n}" for item, n in sorted(counts.items())) or "nothing"


def run_job(ctx: JobsContext, job: Job) -> Counter[str] | None:
    """One run of `job` if this instance leads; returns what it did (None: not the leader)."""
    if not ctx.leading():
        return None
    metrics = ctx.metrics
    counts: Counter[str] = Counter()
    started = time.perf_counter()
    failed: BaseException | None = None
    try:
        job.function(ctx, counts)
    except Exception as exc:
        failed = exc
        if backend_down(exc):  # worth a warning, not a traceback
            log.warning(
                "job %s: a backend is down (%s: %s); done so far: %s; the next run retries",
                job.name,
                type(exc).__name__,
                exc,
                describe(counts),
                extra={"job": job.name, "counts": dict(counts)},
            )
        else:
            log.exception(
                "job %s failed (%s); done so far: %s",
                job.name,
                type(exc).__name__,
                describe(counts),
                extra={"job": job.name, "counts": dict(counts)},
            )
    duration = time.perf_counter() - started
    metrics.runs.labels(job.name).inc()
    metrics.duration_seconds.labels(job.name).observe(duration)
    for item, n in counts.items():
        metrics.items.labels(job.name, item).inc(n)
    if failed is not None:
        metrics.failures.labels(job.name).inc()
        return counts
    metrics.last_success.labels(job.name).set_to_current_time()
    log.info(
        "job %s: %s (%.0f ms)",
        job.name,
        describe(counts),
        duration * 1000,
        extra={"job": job.name, "counts": dict(counts), "duration_ms": round(duration * 1000, 1)},
    )
    return counts


class JobService:
    """The leader election loop and the scheduler of one process."""

    def __init__(self, ctx: JobsContext, jobs: tuple[Job, ...] = JOBS):
        self.ctx = ctx
        self.jobs = jobs
        self.scheduler = BackgroundScheduler(
            timezone=UTC,
            # A run that is still going when the next is due: skip, never overlap; runs
            # missed while the process was busy are coalesced into one.
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        self._stopped = threading.Event()

    def start(self) -> None:
        # APScheduler logs every run at INFO ("Running job ..."); our own line says more.
        logging.getLogger("apscheduler.executors.default").setLevel(logging.WARNING)
        now = datetime.now(UTC)
        for index, job in enumerate(self.jobs):
            interval = job.interval(self.ctx)
            first = min(float(interval), FIRST_RUN_DELAY_SECONDS + index * FIRST_RUN_SPREAD_SECONDS)
            self.scheduler.add_job(
                run_job,
                IntervalTrigger(seconds=interval, timezone=UTC),
                args=(self.ctx, job),
                id=job.name,
                name=job.name,
                next_run_time=now + timedelta(seconds=first),
            )
        self.ctx.election.start()
        self.scheduler.start()
        log.info(
            "scheduler started: %s",
            ", ".join(f"{job.name} every {job.interval(self.ctx)} s" for job in self.jobs),
        )

    def stop(self) -> None:
        """Stop scheduling and give the leader lock up (a standby takes over at once)."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        try:
            self.scheduler.shutdown(wait=False)
        except Exception as exc:  # noqa: BLE001 - never started, or already down
            log.debug("scheduler shutdown: %s", exc)
        self.ctx.election.stop(release=True)
