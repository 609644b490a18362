"""Delivering one notification job to each of a user's devices.

Every device is tried; those that fail in a retryable way are tried again in rounds,
after an exponential backoff with full jitter (a wait drawn from [0, min(max, base *
2^(round-1))], longer if a provider asked for it with Retry-After), until they succeed or
the attempts run out. Waiting once per round, not once per device, bounds a job's time by
the policy whatever the number of devices. A device whose token the provider calls
invalid is removed and never retried. Each final outcome is logged with the job's
request id and counted in `whatsapp_push_results_total{platform, outcome}`.

`deliver_job` never raises for a failed push: the consumer acknowledges the job once it
returns. Only a malformed job raises (`InvalidJob`, from `parse_job`): dead-letter it.
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

from services.common.request_id import current_request_id
from services.notification.base import Device, Outcome, PushPayload, Sender, SendResult
from services.notification.jobs import PushJob, parse_job
from services.notification.providers import DEVICE_PLATFORMS, build_senders
from services.notification.settings import NotificationSettings

log = logging.getLogger(__name__)

# Push round trips: tens of milliseconds to a provider nearby, seconds when it struggles.
SEND_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
METRIC_PLATFORMS = (*DEVICE_PLATFORMS, "log")


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 4
    base_seconds: float = 0.5
    max_seconds: float = 8.0

    @classmethod
    def from_settings(cls, settings: NotificationSettings) -> RetryPolicy:
        return cls(
            max_attempts=settings.push_max_attempts,
            base_seconds=settings.push_retry_base_seconds,
            max_seconds=settings.push_retry_max_seconds,
        )

    def ceiling(self, attempt: int) -> float:
        """The longest wait after failed attempt number `attempt` (1-based)."""
        return min(self.max_seconds, self.base_seconds * 2 ** (attempt - 1))

    def delay(self, attempt: int, rng: random.Random, retry_after: float | None = None) -> float:
        # Full jitter: retries of many consumers after one provider hiccup spread out
        # instead of arriving together again.
        wait = rng.uniform(0, self.ceiling(attempt))
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_seconds))
        return wait


@dataclass(frozen=True)
class PushMetrics:
    results_total: Counter
    retries_total: Counter
    send_seconds: Histogram

    @classmethod
    def create(cls, registry: CollectorRegistry) -> PushMetrics:
        metrics = cls(
            results_total=Counter(
                "whatsapp_push_results_total",
                "Final outcome of each push to a device, by provider and outcome.",
                ["platform", "outcome"],
                registry=registry,
            ),
            retries_total=Counter(
                "whatsapp_push_retries_total",
                "Push attempts that failed in a retryable way and were tried again, by provider.",
                ["platform"],
                registry=registry,
            ),
            send_seconds=Histogram(
                "whatsapp_push_send_seconds",
                "Duration of one push attempt (request and answer), by provider.",
                ["platform"],
                buckets=SEND_BUCKETS,
                registry=registry,
            ),
        )
        # Series exist at 0 from the start, so rate() and alerts see the first failure.
        for platform in METRIC_PLATFORMS:
            metrics.retries_total.labels(platform)
            for outcome in Outcome:
                metrics.results_total.labels(platform, outcome.value)
        return metrics


@dataclass(frozen=True)
class DeviceResult:
    device_id: str
    # The device's platform, and the provider that handled it (`log` when standing in).
    device_platform: str
    provider: str
    outcome: Outcome
    attempts: int
    status: int | None = None
    reason: str = ""
    removed: bool = False


@dataclass(frozen=True)
class DeliverySummary:
    user_id: str
    message_id: str
    request_id: str | None
    results: tuple[DeviceResult, ...]

    def counts(self) -> dict[str, int]:
        """`{outcome: devices}` for the outcomes that occurred."""
        return dict(Tally(r.outcome.value for r in self.results))

    @property
    def requeue_advised(self) -> bool:
        """True when no device got the push and some may later: a redelivery of the job
        then duplicates nothing (the broker's delivery limit still bounds it)."""
        outcomes = {r.outcome for r in self.results}
        return Outcome.RETRYABLE_FAILURE in outcomes and Outcome.DELIVERED not in outcomes


@dataclass
class Delivery:
    """What deliver_job needs besides the job: build it once per process with from_settings."""

    senders: Mapping[str, Sender]
    # Called with a device id whose token is invalid; the real one runs accounts.remove_device.
    remove_device: Callable[[str], object]
    metrics: PushMetrics
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    ids_only: bool = True
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)

    @classmethod
    def from_settings(
        cls,
        settings: NotificationSettings,
        *,
        remove_device: Callable[[str], object],
        registry: CollectorRegistry,
        senders: Mapping[str, Sender] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> Delivery:
        return cls(
            senders=build_senders(settings) if senders is None else senders,
            remove_device=remove_device,
            metrics=PushMetrics.create(registry),
            policy=RetryPolicy.from_settings(settings),
            ids_only=settings.push_privacy_ids_only,
            sleep=sleep,
        )


def deliver_job(
    job: PushJob | Mapping[str, Any] | bytes | str,
    devices: Iterable[Device],
    delivery: Delivery,
) -> DeliverySummary:
    """Send `job` to each of `devices`; retry, remove dead tokens, count and log. See the module doc.

    Raises InvalidJob (dead-letter the job) only when `job` is malformed.
    """
    job = parse_job(job if not isinstance(job, Mapping) else dict(job))
    payload = PushPayload.from_job(job, ids_only=delivery.ids_only)
    context = current_request_id.set(job.request_id)
    try:
        results = _deliver(job, payload, list(devices), delivery)
    finally:
        current_request_id.reset(context)
    return DeliverySummary(
        user_id=job.user_id_text, message_id=job.message_id, request_id=job.request_id, results=tuple(results)
    )


def _deliver(
    job: PushJob, payload: PushPayload, devices: Sequence[Device], delivery: Delivery
) -> list[DeviceResult]:
    results: list[DeviceResult] = []
    pending = list(devices)
    attempt = 1
    while pending:
        retry: list[tuple[Device, SendResult]] = []
        for device in pending:
            sender = delivery.senders.get(device.platform)
            result = _attempt(sender, device, payload, delivery.metrics)
            provider = sender.platform if sender is not None else device.platform
            if result.outcome is Outcome.RETRYABLE_FAILURE and attempt < delivery.policy.max_attempts:
                delivery.metrics.retries_total.labels(provider).inc()
                _log_retry(job, device, provider, result, attempt)
                retry.append((device, result))
                continue
            outcome = DeviceResult(
                device_id=device.id,
                device_platform=device.platform,
                provider=provider,
                outcome=result.outcome,
                attempts=attempt,
                status=result.status,
                reason=result.reason,
            )
            results.append(_finish(job, outcome, delivery))
        if not retry:
            break
        asked = [r.retry_after for _, r in retry if r.retry_after is not None]
        delivery.sleep(delivery.policy.delay(attempt, delivery.rng, max(asked) if asked else None))
        pending = [device for device, _ in retry]
        attempt += 1
    return results


def _attempt(sender: Sender | None, device: Device, payload: PushPayload, metrics: PushMetrics) -> SendResult:
    if sender is None:
        return SendResult(Outcome.DISABLED, reason=f"no provider for platform {device.platform!r}")
    started = time.perf_counter()
    try:
        return sender.send(device, payload)
    except Exception as exc:
        # Senders answer outcomes; an exception is a bug of ours, and one device's bug
        # must neither stop the others nor loop the job through the queue.
        log.exception("push sender %s raised", sender.platform, extra={"device_id": device.id})
        return SendResult(Outcome.PERMANENT_FAILURE, reason=f"sender raised {type(exc).__name__}")
    finally:
        metrics.send_seconds.labels(sender.platform).observe(time.perf_counter() - started)


def _finish(job: PushJob, result: DeviceResult, delivery: Delivery) -> DeviceResult:
    """Remove a dead device, count and log a device's final outcome."""
    if result.outcome is Outcome.INVALID_TOKEN:
        result = replace(result, removed=_remove(job, result.device_id, delivery))
    delivery.metrics.results_total.labels(result.provider, result.outcome.value).inc()
    level = logging.INFO if result.outcome in (Outcome.DELIVERED, Outcome.DISABLED) else logging.WARNING
    log.log(level, "push %s", result.outcome.value, extra=_log_fields(job, result))
    return result


def _remove(job: PushJob, device_id: str, delivery: Delivery) -> bool:
    try:
        delivery.remove_device(device_id)
    except Exception as exc:
        # The token stays; the provider will call it invalid again on the next push.
        log.warning(
            "could not remove device %s with an invalid token: %s: %s",
            device_id,
            type(exc).__name__,
            exc,
            extra={"request_id": job.request_id, "device_id": device_id},
        )
        return False
    return True


def _log_retry(job: PushJob, device: Device, provider: str, result: SendResult, attempt: int) -> None:
    log.info(
        "push attempt %d failed, will retry",
        attempt,
        extra={
            "request_id": job.request_id,
            "user_id": job.user_id_text,
            "message_id": job.message_id,
            "device_id": device.id,
            "platform": provider,
            "status": result.status,
            "reason": result.reason,
        },
    )


def _log_fields(job: PushJob, result: DeviceResult) -> dict[str, Any]:
    # Ids and outcome only: never the token (a webhook URL may hold a secret) nor the body.
    return {
        "request_id": job.request_id,
        "user_id": job.user_id_text,
        "message_id": job.message_id,
        "conversation_id": job.conversation_id,
        "device_id": result.device_id,
        "device_platform": result.device_platform,
        "platform": result.provider,
        "outcome": result.outcome.value,
        "attempts": result.attempts,
        "status": result.status,
        "reason": result.reason,
        "device_removed": result.removed,
    }
