"""scheduled_jobs: periodic upkeep of the stores, on one active instance (port 8086).

Run it with `gunicorn 'services.scheduled_jobs:create_app()'` (one worker: the HTTP side
only answers /health, /ready and /metrics; the scheduler and the leader election run as
threads beside it). Jobs (runner.py): expire_messages, prune_presence,
prune_refresh_tokens, prune_dead_letters, report_queue_depths. Several replicas are safe:
a Redis lock (leader.py) lets only one of them run jobs; the others stand by.
"""

from __future__ import annotations

import atexit

from flask import Flask

from services.common.app import create_base_app
from services.common.db import Database
from services.common.health import add_readiness_check
from services.common.metrics import metrics_of
from services.common.mongo import create_mongo, mongo_check
from services.common.redis_client import create_redis, redis_check
from services.scheduled_jobs.context import Broker, JobsContext
from services.scheduled_jobs.leader import LeaderElection, lock_client
from services.scheduled_jobs.metrics import JobMetrics
from services.scheduled_jobs.runner import JobService
from services.scheduled_jobs.settings import ScheduledJobsSettings

EXTENSION = "whatsapp_scheduled_jobs"


def create_app(settings: ScheduledJobsSettings | None = None, *, background: bool = True) -> Flask:
    settings = settings or ScheduledJobsSettings.from_env()
    app = create_base_app(settings.service_name, settings)
    metrics = JobMetrics.create(metrics_of(app).registry)
    election = LeaderElection(
        lock_client(
            settings.redis_url,
            # A round of the leadership loop must end well inside the lock's TTL.
            timeout=min(settings.backend_timeout_seconds, settings.leader_lock_ttl_seconds / 4),
            name=f"whatsapp-{settings.service_name}-leader",
        ),
        settings.leader_lock_key,
        ttl_seconds=settings.leader_lock_ttl_seconds,
        renew_seconds=settings.leader_renew_seconds,
        instance_id=settings.instance_id,
        on_change=lambda leader: metrics.leader_acquired.inc() if leader else None,
    )
    # Read at each scrape: the gauge is never staler than the election itself.
    metrics.leader.set_function(lambda: 1.0 if election.is_leader() else 0.0)
    ctx = JobsContext(
        settings=settings,
        db=Database(settings),
        redis=create_redis(settings),
        mongo=create_mongo(settings.mongodb_url, settings.mongodb_database, settings),
        broker=Broker(settings.rabbitmq_url, timeout=settings.backend_timeout_seconds),
        metrics=metrics,
        election=election,
    )
    app.extensions[EXTENSION] = ctx
    # Readiness is about the backends only; which instance leads is in /metrics.
    add_readiness_check(app, "postgres", ctx.db.check)
    add_readiness_check(app, "redis", lambda: redis_check(ctx.redis))
    add_readiness_check(app, "mongodb", lambda: mongo_check(ctx.mongo))
    add_readiness_check(app, "rabbitmq", ctx.broker.check)
    if background:
        service = JobService(ctx)
        service.start()
        # gunicorn's worker exits through sys.exit: give the lock up on the way out.
        atexit.register(service.stop)
    return app
