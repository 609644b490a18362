"""Clients of the deployed stack for the end-to-end and reliability tests.

Everything goes through nginx on 127.0.0.1, as a client's would: REST to the gateway
replicas, the WebSocket to the chat replicas, with the token on the upgrade as the
contract says.
`Socket` keeps a reader thread that files every frame, so tests wait for frames by
predicate instead of reading the socket themselves.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import requests
import yaml
from conftest import ROOT
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

GROUP_VARS: dict[str, Any] = {}
for _path in sorted((ROOT / "group_vars/all").glob("*.yml")):
    GROUP_VARS.update(yaml.safe_load(_path.read_text()) or {})
ADDRESS = GROUP_VARS["whatsapp_publish_address"]
API = f"http://{ADDRESS}:{GROUP_VARS['nginx_http_port']}/api/v1"
WS_URL = f"ws://{ADDRESS}:{GROUP_VARS['nginx_http_port']}/ws"
PASSWORD = "correct horse battery staple"  # noqa: S105 - test accounts only


def random_phone() -> str:
    return "+1555" + "".join(random.choices("0123456789", k=8))  # noqa: S311 - test data


class Api:
    """One user's REST session through the gateway."""

    def __init__(self, token: str | None = None):
        self.http = requests.Session()
        self.token = token

    def call(self, method: str, path: str, body: Any = None, **kwargs: Any) -> requests.Response:
        headers = kwargs.pop("headers", {})
        if self.token:
            headers.setdefault("Authorization", f"Bearer {self.token}")
        return self.http.request(method, API + path, json=body, headers=headers, timeout=15, **kwargs)


def auth_call(
    path: str, body: dict[str, Any], token: str | None = None, tries: int = 20
) -> requests.Response:
    """POST to an /auth route as a client that honours 429: the routes are rate limited per
    address (gateway_rate_limit_auth, nginx's auth zone), and a test making many accounts or
    logins from one address waits for its turn as Retry-After says."""
    for _ in range(tries - 1):
        answer = Api(token).call("POST", path, body)
        if answer.status_code != 429:
            return answer
        time.sleep(min(float(answer.headers.get("Retry-After", "1")), 5.0))
    return Api(token).call("POST", path, body)


class User:
    def __init__(self, name: str):
        self.name = name
        self.phone = random_phone()
        answer = auth_call(
            "/auth/register", {"phone": self.phone, "password": PASSWORD, "display_name": name}
        )
        assert answer.status_code == 201, answer.text
        body = answer.json()
        self.id: str = body["user"]["id"]
        self.token: str = body["access_token"]
        self.api = Api(self.token)

    def second_session(self) -> User:
        """The same user logged in again (another device): its own token, its own session."""
        answer = auth_call(
            "/auth/login", {"phone": self.phone, "password": PASSWORD, "device_name": "second"}
        )
        assert answer.status_code == 200, answer.text
        other = object.__new__(User)
        other.name, other.phone, other.id = self.name, self.phone, self.id
        other.token = answer.json()["access_token"]
        other.api = Api(other.token)
        return other

    def direct_with(self, other: User) -> str:
        answer = self.api.call("POST", "/conversations", {"type": "direct", "member_id": other.id})
        assert answer.status_code in (200, 201), answer.text
        return answer.json()["id"]

    def post_message(self, conversation_id: str, body: str) -> dict[str, Any]:
        """Send a message over REST (a fresh client_msg_id); the stored message."""
        answer = self.api.call(
            "POST",
            f"/conversations/{conversation_id}/messages",
            {"client_msg_id": str(uuid.uuid4()), "body": body},
        )
        assert answer.status_code == 201, answer.text
        return answer.json()

    def group(self, title: str, members: list[User]) -> dict[str, Any]:
        answer = self.api.call(
            "POST", "/conversations", {"type": "group", "title": title, "member_ids": [m.id for m in members]}
        )
        assert answer.status_code == 201, answer.text
        return answer.json()

    def socket(self, **kwargs: Any) -> Socket:
        return Socket(self.token, **kwargs)

    def history(self, conversation_id: str, limit: int = 100) -> list[dict[str, Any]]:
        """Every message of the conversation, oldest first (pages followed to the start)."""
        messages: list[dict[str, Any]] = []
        before = None
        while True:
            query = f"?limit={limit}" + (f"&before_seq={before}" if before else "")
            answer = self.api.call("GET", f"/conversations/{conversation_id}/messages{query}")
            assert answer.status_code == 200, answer.text
            page = answer.json()
            messages.extend(page["messages"])
            before = page["next_before_seq"]
            if before is None:
                return list(reversed(messages))


class Socket:
    """A WebSocket with a reader thread; frames are kept in arrival order."""

    def __init__(self, token: str, *, via_query: bool = False, url: str | None = None):
        # Read at call time: the Swarm tests point API and WS_URL at the cluster's entry.
        url = url or WS_URL
        if via_query:
            self.ws: ClientConnection = connect(
                f"{url}?access_token={token}", open_timeout=10, max_size=2**22
            )
        else:
            self.ws = connect(
                url, additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=10, max_size=2**22
            )
        self.frames: list[dict[str, Any]] = []
        self.cond = threading.Condition()
        self.closed: ConnectionClosed | None = None
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        try:
            for raw in self.ws:
                frame = json.loads(raw)
                with self.cond:
                    self.frames.append(frame)
                    self.cond.notify_all()
        except ConnectionClosed as closed:
            self.closed = closed
        except Exception as exc:  # noqa: BLE001 - recorded for the test to see
            self.closed = ConnectionClosed(None, None)
            self.closed.__cause__ = exc
        with self.cond:
            self.cond.notify_all()

    def send(self, frame: dict[str, Any] | str) -> None:
        self.ws.send(frame if isinstance(frame, str) else json.dumps(frame))

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 15.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self.cond:
            seen = 0
            while True:
                for frame in self.frames[seen:]:
                    if predicate(frame):
                        return frame
                seen = len(self.frames)
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.closed is not None and seen == len(self.frames)):
                    raise AssertionError(f"no matching frame within {timeout} s; got {self.frames[-10:]}")
                self.cond.wait(remaining)

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        with self.cond:
            return [f for f in self.frames if f.get("type") == kind]

    def send_message(self, conversation_id: str, body: str, **extra: Any) -> dict[str, Any]:
        """Send and wait for the ack (or the error frame with the same ref)."""
        client_msg_id = extra.pop("client_msg_id", None) or str(uuid.uuid4())
        self.send(
            {
                "type": "message.send",
                "client_msg_id": client_msg_id,
                "conversation_id": conversation_id,
                "body": body,
                **extra,
            }
        )
        return self.wait_for(
            lambda f: (
                (f.get("type") == "message.ack" and f.get("client_msg_id") == client_msg_id)
                or (f.get("type") == "error" and f.get("ref") == client_msg_id)
            )
        )

    def new_messages(self, conversation_id: str) -> list[dict[str, Any]]:
        """message.new of one conversation, de-duplicated by id, in arrival order."""
        seen: dict[str, dict[str, Any]] = {}
        for frame in self.of_type("message.new"):
            message = frame["message"]
            if message["conversation_id"] == conversation_id:
                seen.setdefault(message["id"], message)
        return list(seen.values())

    def close(self) -> None:
        self.ws.close()
        self.reader.join(timeout=5)

    def __enter__(self) -> Socket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
