"""One active scheduled_jobs instance across replicas: a Redis lock with an expiry.

Every instance runs a leadership loop. A standby tries to take the lock without waiting
(`SET key token NX PX ttl`, redis-py's `Lock`); the leader renews it every
`renew_seconds`, resetting its expiry to the full TTL only while the key still holds its
own token (a Lua script). A leader that dies, hangs or loses Redis stops renewing, the key
expires, and a standby takes it at its next try: at most TTL + renew interval later.

The instance's own view of leadership expires too: it counts as leader only until
`TTL - margin` after the start of its last successful acquire or renewal. That moment
comes before Redis can expire the key (the clock started before the command reached
Redis), so an instance that cannot renew stops running jobs before anyone else may start.
Jobs check `is_leader()` before each run and between batches. Nothing fences a batch that
is already running when leadership lapses, which is why every job is idempotent.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable

import redis
from redis.backoff import NoBackoff
from redis.exceptions import LockError, LockNotOwnedError
from redis.lock import Lock
from redis.retry import Retry

log = logging.getLogger(__name__)

# Share of the TTL given up locally, so the local view lapses before the key can.
SAFETY_MARGIN = 0.1


def lock_client(url: str, *, timeout: float, name: str) -> redis.Redis:
    """A Redis client for the lock alone: short timeouts and one immediate retry (a stale
    pooled connection). The services' shared client backs off for seconds between retries,
    which would let a round of the loop outlast the lock it is meant to renew."""
    return redis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 1),
        decode_responses=True,
        client_name=name,
    )


class LeaderElection:
    def __init__(  # noqa: PLR0913 - keyword-only, named at the call
        self,
        client: redis.Redis,
        key: str,
        *,
        ttl_seconds: float,
        renew_seconds: float,
        instance_id: str,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[bool], None] | None = None,
    ):
        if renew_seconds >= ttl_seconds:
            raise ValueError("the renew interval must be shorter than the lock's TTL")
        self.key = key
        self.ttl = ttl_seconds
        self.renew_seconds = renew_seconds
        self.instance_id = instance_id
        # The value stored in the key: unique even when two containers share a hostname and pid.
        self.token = f"{instance_id}:{uuid.uuid4().hex}"
        self._clock = clock
        self._on_change = on_change
        # Not thread-local: the loop thread acquires and renews, job threads only ask.
        self._lock = Lock(client, key, timeout=ttl_seconds, thread_local=False, raise_on_release_error=False)
        self._valid_until = 0.0
        self._was_leader = False
        self._mutex = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- state --------------------------------------------------------------------------
    def is_leader(self) -> bool:
        """True while this instance holds the lock (as far as it can know without asking Redis)."""
        return self._lock.local.token is not None and self._clock() < self._valid_until

    def _holds_token(self) -> bool:
        return self._lock.local.token is not None

    # ---- one round of the loop ------------------------------------------------------------
    def step(self) -> bool:
        """Renew the lock if held, else try to take it; returns whether this instance leads."""
        with self._mutex:
            started = self._clock()
            try:
                if self._holds_token():
                    try:
                        self._lock.reacquire()  # back to the full TTL, only if the key is still ours
                        self._valid_until = started + self.ttl * (1 - SAFETY_MARGIN)
                    except LockNotOwnedError:
                        log.warning("leader lock %s lost (expired or taken by another instance)", self.key)
                        self._lock.local.token = None
                        self._valid_until = 0.0
                if not self._holds_token() and (
                    self._lock.acquire(blocking=False, token=self.token) or self._adopt_own_key()
                ):
                    self._valid_until = started + self.ttl * (1 - SAFETY_MARGIN)
            except redis.RedisError as exc:
                # Whatever validity is left runs out by itself; the next round tries again.
                log.warning("leader lock %s not renewed: %s: %s", self.key, type(exc).__name__, exc)
            self._note_change()
            return self.is_leader()

    def _adopt_own_key(self) -> bool:
        """The key holds our token though we did not see the acquire succeed (its answer was
        lost on the way back): take it back, renewed, instead of waiting for it to expire."""
        stored = self._lock.redis.get(self.key)
        if isinstance(stored, bytes):
            stored = stored.decode("utf-8", "replace")
        if stored != self.token:
            return False
        self._lock.local.token = self.token.encode()
        try:
            self._lock.reacquire()
        except LockNotOwnedError:  # expired in between
            self._lock.local.token = None
            return False
        return True

    def _note_change(self) -> None:
        leader = self.is_leader()
        if leader == self._was_leader:
            return
        self._was_leader = leader
        if leader:
            log.info("this instance (%s) is now the leader: jobs run here", self.instance_id)
        else:
            log.info("this instance (%s) is no longer the leader: jobs pause here", self.instance_id)
        if self._on_change is not None:
            self._on_change(leader)

    def release(self) -> None:
        """Give the lock up now (a clean shutdown), so a standby need not wait for the TTL."""
        with self._mutex:
            if self._holds_token():
                with contextlib.suppress(LockError, redis.RedisError):  # gone already: nothing to give up
                    self._lock.release()
                self._lock.local.token = None
            self._valid_until = 0.0
            self._note_change()

    # ---- the loop -------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="leader-election", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self.step()
            # A leader renews on schedule; a standby retries at the same pace.
            self._stopping.wait(self.renew_seconds)

    def stop(self, *, release: bool = True, timeout: float = 5.0) -> None:
        """Stop the loop; with `release`, free the lock at once (else it expires by itself)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if release:
            self.release()
