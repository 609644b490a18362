"""POST /api/v1/devices with a valid token whose account is gone: 404, never a 500.

The insert's foreign key refuses a device for a user that does not exist; that violation
used to escape as a 500 `internal_error`. Found by tests/e2e/test_accounts_api.py against
the deployed stack (every other route already answered 404 for such a token).
"""

from __future__ import annotations

import uuid
from contextlib import contextmanager

import psycopg
from service_helpers import bearer, signer, user_app

from services.user import store
from services.user.context import user_context


class ForeignKeyConnection:
    """A connection whose insert hits the devices -> users foreign key, as PostgreSQL does."""

    def __init__(self):
        self.savepoints = 0

    @contextmanager
    def transaction(self):
        self.savepoints += 1
        yield self

    def execute(self, *_args, **_kwargs):
        raise psycopg.errors.ForeignKeyViolation("insert or update on table devices violates foreign key")


class FakeDatabase:
    def __init__(self, conn):
        self.conn = conn

    @contextmanager
    def connection(self, timeout=None):  # noqa: ARG002 - the signature of Database.connection
        yield self.conn


def test_add_device_for_a_missing_user_returns_none_inside_a_savepoint():
    conn = ForeignKeyConnection()
    assert store.add_device(conn, uuid.uuid4(), "fcm", "token") is None
    # The violation stays inside its own savepoint, so a caller's transaction survives it.
    assert conn.savepoints == 1


def test_registering_a_device_with_a_token_of_a_vanished_account_is_404():
    app = user_app()
    with app.app_context():
        user_context().db = FakeDatabase(ForeignKeyConnection())
    token = signer().issue(str(uuid.uuid4()))
    response = app.test_client().post(
        "/api/v1/devices", json={"platform": "fcm", "token": "t"}, headers=bearer(token)
    )
    assert response.status_code == 404, response.get_data(as_text=True)
    assert response.get_json() == {"error": {"code": "not_found", "message": "no such user"}}
