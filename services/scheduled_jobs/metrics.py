"""Prometheus metrics of scheduled_jobs, in the app's own registry (`metrics_of(app).registry`)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass
class JobMetrics:
    registry: CollectorRegistry
    leader: Gauge
    leader_acquired: Counter
    runs: Counter
    failures: Counter
    items: Counter
    duration_seconds: Histogram
    last_success: Gauge
    queue_messages: Gauge
    queue_consumers: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry) -> JobMetrics:
        return cls(
            registry=registry,
            leader=Gauge(
                "whatsapp_scheduler_leader",
                "1 while this instance holds the leader lock (jobs run only there), else 0.",
                registry=registry,
            ),
            leader_acquired=Counter(
                "whatsapp_scheduler_leadership_acquired_total",
                "Times this instance became the leader.",
                registry=registry,
            ),
            runs=Counter(
                "whatsapp_scheduled_job_runs_total",
                "Runs of each job on the leader (successful or not).",
                ["job"],
                registry=registry,
            ),
            failures=Counter(
                "whatsapp_scheduled_job_failures_total",
                "Runs of each job that stopped on an error (a backend down, or a bug); retried next run.",
                ["job"],
                registry=registry,
            ),
            items=Counter(
                "whatsapp_scheduled_job_items_total",
                "What each job did, by kind of item (expired, deleted, removed...).",
                ["job", "item"],
                registry=registry,
            ),
            duration_seconds=Histogram(
                "whatsapp_scheduled_job_duration_seconds",
                "Time one run of each job took.",
                ["job"],
                buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
                registry=registry,
            ),
            last_success=Gauge(
                "whatsapp_scheduled_job_last_success_timestamp_seconds",
                "Unix time of each job's last run that finished without an error.",
                ["job"],
                registry=registry,
            ),
            queue_messages=Gauge(
                "whatsapp_queue_messages",
                "Messages ready in each RabbitMQ queue (passive declare), as of the last report.",
                ["queue"],
                registry=registry,
            ),
            queue_consumers=Gauge(
                "whatsapp_queue_consumers",
                "Consumers of each RabbitMQ queue, as of the last report.",
                ["queue"],
                registry=registry,
            ),
        )
