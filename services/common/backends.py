"""What "a backend is down" means, once for every service.

A backend that is down, unreachable or too slow to answer in time (PostgreSQL, Redis,
MongoDB, RabbitMQ, a socket under any of them) is a condition to wait out: the consumers
retry the batch or the job, the scheduled jobs retry at their next run, the HTTP services
answer 503. Anything else is a fault of the input or of the code, handled by each caller
its own way (dead letters, a traceback, a 500 that the contract forbids and the tests
catch).
"""

from __future__ import annotations

import amqp.exceptions
import kombu.exceptions
import psycopg
import psycopg_pool
import pymongo.errors
import redis

from services.common.amqp import PublishError

BACKEND_DOWN: tuple[type[BaseException], ...] = (
    psycopg.OperationalError,  # includes psycopg.errors.ConnectionTimeout
    psycopg_pool.PoolTimeout,
    psycopg_pool.PoolClosed,
    redis.ConnectionError,  # includes BusyLoadingError
    redis.TimeoutError,
    pymongo.errors.ConnectionFailure,  # includes AutoReconnect, NetworkTimeout, server selection
    kombu.exceptions.OperationalError,
    amqp.exceptions.ConnectionError,
    PublishError,
    OSError,  # a socket's own error, below any client
)


def backend_down(exc: BaseException) -> bool:
    """True for a backend that is down or did not answer in time.

    MongoDB's timeouts count wherever they show (pymongo's `timeout` property): a client-side
    deadline (pymongo.timeout) or the server's maxTimeMS expiring surfaces as an
    OperationFailure, a WTimeoutError or a BulkWriteError, not as a ConnectionFailure.
    """
    if isinstance(exc, BACKEND_DOWN):
        return True
    return isinstance(exc, pymongo.errors.PyMongoError) and exc.timeout
