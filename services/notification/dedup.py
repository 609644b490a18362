"""At most one push per (message, user), whatever RabbitMQ redelivers or a producer repeats.

A job claims `whatsapp:push:<message_id>:<user_id>` in Redis before it is delivered (SET NX,
"pending", for `push_claim_seconds`) and marks it "done" (for `push_dedup_seconds`) once
its devices got it. Another copy of the same job then finds:
- "done": it is acknowledged as a duplicate, nothing is sent;
- "pending": a delivery of it is in flight on some consumer, and that copy is the one
  RabbitMQ keeps until it is acknowledged, so this one is dropped as a duplicate too;
  unless this copy is itself a redelivery (its holder may have died with it): then it
  takes the claim over and delivers.
A job that is requeued (no device got it yet) releases its claim. Redis down: the job is
delivered unchecked (a push twice beats no push) and the log says so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import redis

from services.notification.jobs import PushJob

log = logging.getLogger(__name__)

KEY_PREFIX = "whatsapp:push:"
PENDING, DONE = "pending", "done"


def ledger_key(job: PushJob) -> str:
    return f"{KEY_PREFIX}{job.message_id}:{job.user_id}"


@dataclass
class PushLedger:
    client: redis.Redis
    claim_seconds: int
    done_seconds: int

    def claim(self, job: PushJob, *, redelivered: bool) -> bool:
        """True: deliver this job now; False: another copy delivered it or is delivering it."""
        key = ledger_key(job)
        try:
            if self.client.set(key, PENDING, nx=True, ex=self.claim_seconds):
                return True
            state = self.client.get(key)
            if state == DONE or (state == PENDING and not redelivered):
                return False
            # A redelivered copy of a pending job, or a claim that expired just now.
            self.client.set(key, PENDING, ex=self.claim_seconds)
            return True
        except redis.RedisError as exc:
            log.warning(
                "push ledger unavailable (%s): delivering without the duplicate check", type(exc).__name__
            )
            return True

    def done(self, job: PushJob) -> None:
        try:
            self.client.set(ledger_key(job), DONE, ex=self.done_seconds)
        except redis.RedisError as exc:
            log.warning("push ledger unavailable (%s): the push is not recorded as done", type(exc).__name__)

    def release(self, job: PushJob) -> None:
        try:
            self.client.delete(ledger_key(job))
        except redis.RedisError as exc:
            # The claim expires by itself after claim_seconds; a requeued copy is redelivered.
            log.warning("push ledger unavailable (%s): the claim expires by itself", type(exc).__name__)
