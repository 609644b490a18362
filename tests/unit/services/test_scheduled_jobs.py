"""scheduled_jobs without backends: settings, the pure pieces of each job (batching,
cut-offs, dead-letter ages, event shapes), one run of a job on the leader and off it,
outages that must not escape a run, and the app's /health, /metrics and /ready."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime

import psycopg
import pytest
from prometheus_client import CollectorRegistry
from service_helpers import UNREACHABLE_DSN, UNREACHABLE_REDIS, keypair

from services.common.config import SettingsError
from services.scheduled_jobs import create_app
from services.scheduled_jobs.context import JobsContext
from services.scheduled_jobs.messages import deletion_events
from services.scheduled_jobs.metrics import JobMetrics
from services.scheduled_jobs.presence import Pruned, last_seen_at, user_of
from services.scheduled_jobs.queues import as_utc, dead_lettered_at
from services.scheduled_jobs.retention import retention_cutoff
from services.scheduled_jobs.runner import JOBS, Job, describe, run_job
from services.scheduled_jobs.settings import ScheduledJobsSettings


def jobs_env(**overrides: str) -> dict[str, str]:
    env = {
        "WHATSAPP_POSTGRES_DSN": UNREACHABLE_DSN,
        "WHATSAPP_REDIS_URL": UNREACHABLE_REDIS,
        "WHATSAPP_JWT_PUBLIC_KEY": keypair()[1],
        "WHATSAPP_MONGODB_URL": "mongodb://127.0.0.1:1/?directConnection=true",
        "WHATSAPP_RABBITMQ_URL": "amqp://nobody:nothing@127.0.0.1:1/whatsapp",
        "WHATSAPP_BACKEND_TIMEOUT_SECONDS": "0.5",
    }
    env.update(overrides)
    return env


def jobs_settings(**overrides: str) -> ScheduledJobsSettings:
    return ScheduledJobsSettings.from_env(jobs_env(**overrides))


# ---- settings -----------------------------------------------------------------------------


def test_defaults_cover_every_job_and_the_dead_letter_queues():
    settings = jobs_settings()
    assert settings.service_name == "scheduled_jobs"
    assert settings.events_channel == "whatsapp:events"
    for job in JOBS:
        assert job.interval(_context(settings)) >= 1, job.name
    assert settings.dead_letter_queues == ("messages.process.dead", "notifications.send.dead")
    assert settings.depth_queues == (
        "messages.process",
        "notifications.send",
        "messages.process.dead",
        "notifications.send.dead",
    )
    assert settings.max_items_per_run == settings.job_batch_size * settings.job_max_batches
    assert settings.leader_renew_seconds <= settings.leader_lock_ttl_seconds / 2


@pytest.mark.parametrize("job", [job.name for job in JOBS])
@pytest.mark.parametrize("bad", ["soon", "0", "-5", "1.5", str(8 * 86_400)])
def test_a_malformed_schedule_names_its_variable(job, bad):
    variable = f"WHATSAPP_{job.upper()}_INTERVAL_SECONDS"
    with pytest.raises(SettingsError) as error:
        jobs_settings(**{variable: bad})
    assert f"{variable} is malformed" in str(error.value)
    assert bad not in str(error.value).replace(variable, "")


def test_a_schedule_from_the_environment_is_used():
    settings = jobs_settings(WHATSAPP_PRUNE_PRESENCE_INTERVAL_SECONDS="7")
    assert settings.prune_presence_interval_seconds == 7


def test_renewal_must_fit_twice_in_the_lock_ttl():
    with pytest.raises(SettingsError) as error:
        jobs_settings(WHATSAPP_LEADER_LOCK_TTL_SECONDS="10", WHATSAPP_LEADER_RENEW_SECONDS="6")
    assert "WHATSAPP_LEADER_RENEW_SECONDS is malformed" in str(error.value)
    ok = jobs_settings(WHATSAPP_LEADER_LOCK_TTL_SECONDS="10", WHATSAPP_LEADER_RENEW_SECONDS="5")
    assert ok.leader_renew_seconds == 5


def test_queue_lists_are_comma_separated_and_only_dead_letter_queues_are_pruned():
    settings = jobs_settings(
        WHATSAPP_DEAD_LETTER_QUEUES=" a.dead , b.dead,, ", WHATSAPP_MONITORED_QUEUES="a, b"
    )
    assert settings.dead_letter_queues == ("a.dead", "b.dead")
    assert settings.depth_queues == ("a", "b", "a.dead", "b.dead")
    with pytest.raises(SettingsError) as error:
        jobs_settings(WHATSAPP_DEAD_LETTER_QUEUES="messages.process.dead,messages.process")
    assert "WHATSAPP_DEAD_LETTER_QUEUES is malformed" in str(error.value)


@pytest.mark.parametrize(
    ("variable", "bad"),
    [
        ("WHATSAPP_JOB_BATCH_SIZE", "0"),
        ("WHATSAPP_JOB_MAX_BATCHES", "many"),
        ("WHATSAPP_REFRESH_TOKEN_RETENTION_DAYS", "-1"),
        ("WHATSAPP_DEAD_LETTER_RETENTION_DAYS", "a fortnight"),
        ("WHATSAPP_LEADER_LOCK_TTL_SECONDS", "0.1"),
    ],
)
def test_other_malformed_values_name_their_variable(variable, bad):
    with pytest.raises(SettingsError) as error:
        jobs_settings(**{variable: bad})
    assert f"{variable} is malformed" in str(error.value)


# ---- pure pieces ----------------------------------------------------------------------------


def test_retention_cutoff_counts_back_from_now_in_days():
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    assert retention_cutoff(now, 7) == datetime(2026, 11, 18, 12, 0, tzinfo=UTC)
    assert retention_cutoff(now, 0.5) == datetime(2026, 11, 25, 0, 0, tzinfo=UTC)
    assert retention_cutoff(now, 0) == now
    with pytest.raises(ValueError, match="aware"):
        retention_cutoff(datetime(2026, 11, 25, 12, 0), 7)  # noqa: DTZ001 (the point of the test)


def test_dead_letter_age_is_the_newest_x_death_time():
    older = datetime(2026, 1, 1, 10, 0)  # noqa: DTZ001 (py-amqp decodes timestamps naive, in UTC)
    newer = datetime(2026, 1, 2, 10, 0)  # noqa: DTZ001
    headers = {"x-death": [{"time": newer, "queue": "a"}, {"time": older, "queue": "b"}, "junk"]}
    assert dead_lettered_at(headers, {"timestamp": 0}) == newer.replace(tzinfo=UTC)


def test_dead_letter_age_falls_back_to_the_timestamp_property_then_to_none():
    assert dead_lettered_at({}, {"timestamp": 86_400}) == datetime(1970, 1, 2, tzinfo=UTC)
    assert dead_lettered_at(None, {"timestamp": datetime(2026, 1, 1, tzinfo=UTC)}) == datetime(
        2026, 1, 1, tzinfo=UTC
    )
    assert dead_lettered_at({"x-death": [{"queue": "a"}]}, {}) is None
    assert dead_lettered_at(None, None) is None
    assert as_utc(True) is None and as_utc("2026-01-01") is None


def test_deletion_events_name_every_member_who_saw_it_and_skip_empty_conversations():
    conversation, empty = str(uuid.uuid4()), str(uuid.uuid4())
    alice, bob, late = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    rows = [
        {"id": "m1", "conversation_id": uuid.UUID(conversation), "seq": 3},
        {"id": "m2", "conversation_id": empty, "seq": 1},
    ]
    # `late` joined after seq 5: it never saw m1 and hears nothing of its expiry.
    events = deletion_events(rows, {conversation: {alice: 0, bob: 2, late: 5}, empty: {}})
    assert events == [
        {
            "to": [alice, bob],
            "frame": {"type": "message.deleted", "conversation_id": conversation, "message_id": "m1"},
        }
    ]


def test_socket_keys_name_a_user_only_when_the_rest_is_a_uuid():
    user = str(uuid.uuid4())
    assert user_of(f"sockets:{user}") == user
    assert user_of(f"sockets:{user.upper()}") == user
    assert user_of("sockets:not-a-user") is None
    assert user_of(f"presence:{user}") is None


def test_last_seen_is_when_the_last_socket_went_stale_never_later_than_now():
    now = 1_800_000_000.0
    assert last_seen_at(now - 30, now) == datetime.fromtimestamp(now - 30, UTC)
    assert last_seen_at(now + 30, now) == datetime.fromtimestamp(now, UTC)
    assert Pruned.from_reply([2, 1, 1]) == Pruned(removed=2, emptied=True, presence_deleted=True)
    assert Pruned.from_reply([b"0", b"0", b"0"]) == Pruned(removed=0, emptied=False, presence_deleted=False)


def test_describe_lists_counts_in_order():
    assert describe(Counter({"events": 2, "expired": 3})) == "events 2, expired 3"
    assert describe(Counter()) == "nothing"


# ---- one run ----------------------------------------------------------------------------------


class FixedElection:
    def __init__(self, leader: bool):
        self.leader = leader

    def is_leader(self) -> bool:
        return self.leader


def _context(settings: ScheduledJobsSettings | None = None, *, leader: bool = True) -> JobsContext:
    return JobsContext(
        settings=settings or jobs_settings(),
        db=None,  # type: ignore[arg-type]  # the jobs under test touch no store
        redis=None,  # type: ignore[arg-type]
        mongo=None,  # type: ignore[arg-type]
        broker=None,  # type: ignore[arg-type]
        metrics=JobMetrics.create(CollectorRegistry()),
        election=FixedElection(leader),  # type: ignore[arg-type]
    )


def sample(ctx: JobsContext, name: str, **labels: str) -> float | None:
    return ctx.metrics.registry.get_sample_value(name, labels)


def test_a_run_off_the_leader_does_nothing():
    calls = []
    ctx = _context(leader=False)
    job = Job("probe", lambda c, counts: calls.append(1), "expire_messages_interval_seconds")
    assert run_job(ctx, job) is None
    assert calls == []
    assert sample(ctx, "whatsapp_scheduled_job_runs_total", job="probe") is None


def test_a_run_on_the_leader_counts_its_items():
    ctx = _context()

    def work(c: JobsContext, counts: Counter) -> None:
        counts["expired"] += 3
        counts["events"] += 2

    counts = run_job(ctx, Job("probe", work, "expire_messages_interval_seconds"))
    assert counts == Counter({"expired": 3, "events": 2})
    assert sample(ctx, "whatsapp_scheduled_job_runs_total", job="probe") == 1
    assert sample(ctx, "whatsapp_scheduled_job_items_total", job="probe", item="expired") == 3
    assert sample(ctx, "whatsapp_scheduled_job_failures_total", job="probe") in (None, 0)
    assert sample(ctx, "whatsapp_scheduled_job_last_success_timestamp_seconds", job="probe") > 0


@pytest.mark.parametrize(
    "error",
    [psycopg.OperationalError("connection refused"), ConnectionRefusedError(111, "refused"), KeyError("bug")],
)
def test_an_outage_or_a_bug_is_counted_and_never_escapes_a_run(error, caplog):
    ctx = _context()

    def work(c: JobsContext, counts: Counter) -> None:
        counts["expired"] += 1  # a first batch went through
        raise error

    counts = run_job(ctx, Job("probe", work, "expire_messages_interval_seconds"))
    assert counts == Counter({"expired": 1})
    assert sample(ctx, "whatsapp_scheduled_job_failures_total", job="probe") == 1
    assert sample(ctx, "whatsapp_scheduled_job_items_total", job="probe", item="expired") == 1
    assert sample(ctx, "whatsapp_scheduled_job_last_success_timestamp_seconds", job="probe") is None
    assert any("probe" in r.getMessage() and "expired 1" in r.getMessage() for r in caplog.records)


# ---- the app ----------------------------------------------------------------------------------


@pytest.fixture
def client():
    app = create_app(jobs_settings(), background=False)
    app.config["TESTING"] = True
    return app.test_client()


def test_health_answers_without_backends(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.get_json()["service"] == "scheduled_jobs"


def test_metrics_show_the_leader_gauge_and_the_job_series(client):
    text = client.get("/metrics").get_data(as_text=True)
    assert "whatsapp_scheduler_leader 0.0" in text
    for name in ("whatsapp_scheduled_job_runs_total", "whatsapp_queue_messages"):
        assert f"# TYPE {name.removesuffix('_total')}" in text


def test_ready_checks_the_four_backends_only(client):
    response = client.get("/ready")
    assert response.status_code == 503
    assert response.get_json()["checks"] == {
        "postgres": "down",
        "redis": "down",
        "mongodb": "down",
        "rabbitmq": "down",
    }


def test_jobs_wait_for_leadership_between_batches():
    # The batching jobs stop when leadership goes: none of them reaches a store then.
    ctx = _context(leader=False)
    for job in JOBS:
        if job.name in {"expire_messages", "prune_refresh_tokens"}:
            counts: Counter = Counter()
            job.function(ctx, counts)
            assert counts == Counter({"stopped_not_leader": 1}), job.name
