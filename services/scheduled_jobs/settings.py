"""Settings of scheduled_jobs: the message path's backends, the leader lock, and each
job's schedule, batch bounds and retention.

Every schedule is a whole number of seconds between two runs of one job
(`WHATSAPP_<JOB>_INTERVAL_SECONDS`); a malformed one stops start-up naming its variable.
"""

from __future__ import annotations

import os
import socket

from pydantic import Field, ValidationInfo, field_validator

from services.common.config import MessagingSettings

# A week: longer intervals are a configuration mistake, not a schedule.
MAX_INTERVAL_SECONDS = 7 * 86_400
MAX_RETENTION_DAYS = 3650


def default_instance_id() -> str:
    # The container's hostname is the same for every container of one role (the spec sets
    # it), so the lock token adds a random part; this id is what the logs show.
    return f"{socket.gethostname()}-{os.getpid()}"


def _names(value: object) -> object:
    """A comma-separated environment value as a tuple of names (blanks dropped)."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


class ScheduledJobsSettings(MessagingSettings):
    service_name: str = Field(default="scheduled_jobs", min_length=1, max_length=64)
    instance_id: str = Field(default_factory=default_instance_id, min_length=1, max_length=128)
    # Redis pub/sub channel every chat instance listens on (message.deleted, presence).
    events_channel: str = Field(default="whatsapp:events", min_length=1)

    # The leader lock: one key in Redis, held with an expiry by the one active instance.
    leader_lock_key: str = Field(default="whatsapp:scheduled_jobs:leader", min_length=1, max_length=200)
    # How long the lock lives without a renewal: a leader that dies is replaced after this.
    leader_lock_ttl_seconds: float = Field(default=30.0, ge=0.5, le=3600)
    # How often the leader renews the lock (and a standby tries to take it).
    leader_renew_seconds: float = Field(default=10.0, gt=0, le=1800)

    # Schedules: seconds between two runs of each job.
    expire_messages_interval_seconds: int = Field(default=10, ge=1, le=MAX_INTERVAL_SECONDS)
    prune_presence_interval_seconds: int = Field(default=60, ge=1, le=MAX_INTERVAL_SECONDS)
    prune_refresh_tokens_interval_seconds: int = Field(default=3600, ge=1, le=MAX_INTERVAL_SECONDS)
    prune_dead_letters_interval_seconds: int = Field(default=3600, ge=1, le=MAX_INTERVAL_SECONDS)
    report_queue_depths_interval_seconds: int = Field(default=30, ge=1, le=MAX_INTERVAL_SECONDS)
    sweep_media_interval_seconds: int = Field(default=3600, ge=1, le=MAX_INTERVAL_SECONDS)

    # Bounds of one run: items per batch (rows, keys, dead letters) and batches per run.
    # What is left over waits for the next run.
    job_batch_size: int = Field(default=500, ge=1, le=10_000)
    job_max_batches: int = Field(default=20, ge=1, le=1000)

    # Refresh tokens are deleted this many days after they expired or were revoked.
    refresh_token_retention_days: float = Field(default=7.0, ge=0, le=MAX_RETENTION_DAYS)
    # Dead letters are deleted this many days after they were dead-lettered.
    dead_letter_retention_days: float = Field(default=14.0, ge=0, le=MAX_RETENTION_DAYS)
    # The dead-letter queues pruned (this service's broker login may read only `.dead` queues).
    dead_letter_queues: tuple[str, ...] = ("messages.process.dead", "notifications.send.dead")
    # Queues whose depth is reported besides the dead-letter queues.
    monitored_queues: tuple[str, ...] = ("messages.process", "notifications.send")

    @field_validator("leader_renew_seconds")
    @classmethod
    def _renew_well_inside_ttl(cls, value: float, info: ValidationInfo) -> float:
        ttl = info.data.get("leader_lock_ttl_seconds")
        if ttl is not None and value > ttl / 2:
            # One renewal may fail (a Redis blip) without the lock lapsing.
            raise ValueError("must be at most half of WHATSAPP_LEADER_LOCK_TTL_SECONDS")
        return value

    @field_validator("dead_letter_queues", "monitored_queues", mode="before")
    @classmethod
    def _split_names(cls, value: object) -> object:
        return _names(value)

    @field_validator("dead_letter_queues")
    @classmethod
    def _only_dead_letter_queues(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        # This job deletes messages: a live queue named here by mistake must never be pruned.
        wrong = [name for name in value if not name.endswith(".dead")]
        if wrong:
            raise ValueError("every name must end in .dead (only dead-letter queues are pruned)")
        return value

    @property
    def depth_queues(self) -> tuple[str, ...]:
        """Every queue whose depth is reported: the monitored ones, then the dead-letter ones."""
        return tuple(dict.fromkeys(self.monitored_queues + self.dead_letter_queues))

    @property
    def max_items_per_run(self) -> int:
        return self.job_batch_size * self.job_max_batches
