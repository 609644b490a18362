"""Steady message traffic for the fault tests (tests/reliability, tests/swarm): senders that
retry each message with its client_msg_id until acknowledged, as a real client does; a
receiver that reconnects and confirms with delivered receipts; and the final check that
every acknowledged message arrived once, in order (on each connection, one conversation's
seqs only increase), and is in the history. `OtherDevice`: the receiver's second session,
offline during the faults, which then catches up from its own delivered mark."""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import requests
from stack_client import PASSWORD, Socket, User, auth_call
from websockets.exceptions import ConnectionClosed, WebSocketException

SEND_INTERVAL = 0.05  # each sender: ~20 messages/s


class Sender(threading.Thread):
    """Sends numbered messages until stopped; each is retried with its client_msg_id until acked."""

    def __init__(self, user: User, conversation_id: str, transport: str, stop: threading.Event):
        super().__init__(daemon=True, name=f"sender-{transport}")
        self.user, self.conversation_id, self.transport, self.stop = user, conversation_id, transport, stop
        self.acked: dict[str, dict[str, Any]] = {}  # client_msg_id -> acked message
        self.attempts = 0
        self.failures = 0
        self.socket: Socket | None = None
        self.error: Exception | None = None  # what ended the thread early, if anything

    def run(self) -> None:
        try:
            self._send_until_stopped()
        except Exception as error:  # noqa: BLE001 - reported by assert_nothing_lost
            self.error = error

    def _send_until_stopped(self) -> None:
        number = 0
        while not self.stop.is_set():
            number += 1
            client_msg_id = f"{self.transport}-{number}-{uuid.uuid4().hex[:8]}"
            while not self.stop.is_set():
                self.attempts += 1
                message = self._try(client_msg_id, f"{self.transport} #{number}")
                if message is not None:
                    self.acked[client_msg_id] = message
                    break
                self.failures += 1
                time.sleep(0.2)
            time.sleep(SEND_INTERVAL)
        if self.socket:
            self.socket.close()

    def _try(self, client_msg_id: str, body: str) -> dict[str, Any] | None:
        try:
            if self.transport == "rest":
                answer = self.user.api.call(
                    "POST",
                    f"/conversations/{self.conversation_id}/messages",
                    {"client_msg_id": client_msg_id, "body": body},
                )
                return answer.json() if answer.status_code in (200, 201) else None
            if self.socket is None or self.socket.closed is not None:
                self.socket = self.user.socket()
            frame = self.socket.send_message(self.conversation_id, body, client_msg_id=client_msg_id)
            return frame["message"] if frame["type"] == "message.ack" else None
        except (OSError, requests.RequestException, WebSocketException, AssertionError, ValueError):
            if self.socket is not None and self.socket.closed is not None:
                self.socket = None
            return None


class Receiver(threading.Thread):
    """Keeps a socket open, reconnecting when it drops; confirms what it got with receipts."""

    def __init__(self, user: User, stop: threading.Event):
        super().__init__(daemon=True, name="receiver")
        self.user, self.stop = user, stop
        self.messages: dict[str, dict[str, Any]] = {}  # id -> message (de-duplicated)
        self.order: list[dict[str, Any]] = []  # first arrival of each id, in arrival order
        self.duplicates = 0
        self.reconnects = 0
        # The contract's order on each connection: one conversation's message.new seqs only
        # increase (no repeat, no step back). Each violation, described.
        self.out_of_order: list[str] = []

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                sock = self.user.socket()
            except Exception:  # noqa: BLE001 - chat is down: try again
                time.sleep(0.5)
                continue
            self.reconnects += 1
            seen = 0
            confirmed: dict[str, int] = {}
            last_on_connection: dict[str, int] = {}
            while not self.stop.is_set() and sock.closed is None:
                time.sleep(0.2)
                frames = sock.of_type("message.new")
                for frame in frames[seen:]:
                    message = frame["message"]
                    self._check_order(last_on_connection, message)
                    if message["id"] in self.messages:
                        self.duplicates += 1
                        continue
                    self.messages[message["id"]] = message
                    self.order.append(message)
                seen = len(frames)
                self._confirm(sock, confirmed)
            self._drain(sock, seen, last_on_connection)
            sock.close()

    def _check_order(self, last: dict[str, int], message: dict[str, Any]) -> None:
        conversation, seq = message["conversation_id"], int(message["seq"])
        if seq <= last.get(conversation, 0):
            self.out_of_order.append(
                f"connection {self.reconnects}: seq {seq} after {last[conversation]} in {conversation}"
            )
        last[conversation] = max(seq, last.get(conversation, 0))

    def _drain(self, sock: Socket, seen: int, last_on_connection: dict[str, int]) -> None:
        for frame in sock.of_type("message.new")[seen:]:
            message = frame["message"]
            self._check_order(last_on_connection, message)
            if message["id"] not in self.messages:
                self.messages[message["id"]] = message
                self.order.append(message)

    def _confirm(self, sock: Socket, confirmed: dict[str, int]) -> None:
        # Report delivered only up to the highest seq with no gap below it, so a reconnect's
        # catch-up still covers anything missing.
        by_conversation: dict[str, set[int]] = {}
        for message in self.messages.values():
            by_conversation.setdefault(message["conversation_id"], set()).add(message["seq"])
        for conversation_id, seqs in by_conversation.items():
            contiguous = 0
            while contiguous + 1 in seqs:
                contiguous += 1
            if contiguous > confirmed.get(conversation_id, 0):
                try:
                    sock.send(
                        json.dumps(
                            {
                                "type": "receipt",
                                "conversation_id": conversation_id,
                                "up_to_seq": contiguous,
                                "status": "delivered",
                            }
                        )
                    )
                    confirmed[conversation_id] = contiguous
                except ConnectionClosed:
                    return


def assert_nothing_lost(
    senders: list[Sender], receiver: Receiver, receiver_user: User, conversations: list[str]
) -> str:
    """After the senders stopped: every acknowledged message reached the receiver and the
    history exactly once, seqs distinct and ordered. Returns the counts as one line."""
    # Let the last acked messages through the processor, then a fresh socket catches up.
    deadline = time.monotonic() + 60
    expected = {m["id"]: m for s in senders for m in s.acked.values()}
    while time.monotonic() < deadline and not set(expected) <= set(receiver.messages):
        time.sleep(1)
        if not receiver.is_alive():
            break
    receiver.join(timeout=10)
    with receiver_user.socket() as final:
        time.sleep(5)
        for frame in final.of_type("message.new"):
            receiver.messages.setdefault(frame["message"]["id"], frame["message"])

    assert not receiver.out_of_order, (
        f"{len(receiver.out_of_order)} message.new frames out of seq order on their connection: "
        f"{receiver.out_of_order[:10]}"
    )
    acked_count = len(expected)
    attempts = sum(s.attempts for s in senders)
    counts = (
        f"acked {acked_count}, attempts {attempts}, receiver reconnects {receiver.reconnects}, "
        f"duplicates dropped by id {receiver.duplicates} (across reconnects), lost 0, out of order 0"
    )
    assert acked_count > 100, "too little traffic to prove anything"
    for sender in senders:
        assert sender.error is None, f"{sender.name} stopped early: {sender.error!r}"
        assert len(sender.acked) > 20, f"{sender.name} got only {len(sender.acked)} messages acknowledged"
    missing = sorted(set(expected) - set(receiver.messages))
    assert not missing, (
        f"{len(missing)} acknowledged messages never reached the receiver: {missing[:10]}; "
        + late_or_lost(receiver_user, conversations, missing)
    )
    # Every acked message is the one the receiver got (same seq), and per conversation the
    # acked seqs are distinct: nothing was accepted twice.
    for conversation_id in conversations:
        acked = sorted(m["seq"] for m in expected.values() if m["conversation_id"] == conversation_id)
        assert len(acked) == len(set(acked)), "one seq acknowledged for two messages"
        history = receiver_user.history(conversation_id)
        history_ids = {m["id"] for m in history}
        lost = [
            i for i, m in expected.items() if m["conversation_id"] == conversation_id and i not in history_ids
        ]
        assert not lost, f"{len(lost)} acknowledged messages missing from history: {lost[:10]}"
        seqs = [m["seq"] for m in history]
        assert seqs == sorted(seqs) and len(seqs) == len(set(seqs))
    return counts


def late_or_lost(user: User, conversations: list[str], missing: list[str], wait: float = 120) -> str:
    """For a failure message: of the missing messages, how many are in the history now, and
    how many after waiting longer (late, e.g. held by a consumer on a lost node until the
    broker gives up on it) rather than lost."""

    def stored() -> set[str]:
        return {m["id"] for c in conversations for m in user.history(c)} & set(missing)

    now = stored()
    deadline = time.monotonic() + wait
    later = now
    while len(later) < len(missing) and time.monotonic() < deadline:
        time.sleep(5)
        later = stored()
    return (
        f"in the history at the check: {len(now)}, {int(wait)} s later: {len(later)} "
        f"(never stored: {sorted(set(missing) - later)[:10]})"
    )


@dataclass
class Traffic:
    """Two senders (WebSocket, REST) writing to one receiver in two direct conversations."""

    receiver_user: User
    conversations: list[str]
    stop: threading.Event
    receiver: Receiver
    senders: list[Sender]
    other_device: OtherDevice | None = None

    @classmethod
    def start(cls, prefix: str = "", *, other_device: bool = False) -> Traffic:
        """Register the three users, start the receiver, then both senders. `other_device`:
        the receiver also logs in on a second device before the conversations exist (so
        that device's session is owed every message of them)."""
        alice, bob = User(f"{prefix}Sender WS"), User(f"{prefix}Receiver")
        carol = User(f"{prefix}Sender REST")
        laptop = OtherDevice(bob) if other_device else None
        conversations = [alice.direct_with(bob), carol.direct_with(bob)]
        stop = threading.Event()
        receiver = Receiver(bob, stop)
        senders = [Sender(alice, conversations[0], "ws", stop), Sender(carol, conversations[1], "rest", stop)]
        receiver.start()
        time.sleep(1.0)
        for sender in senders:
            sender.start()
        return cls(bob, conversations, stop, receiver, senders, laptop)

    def assert_nothing_lost(self) -> str:
        return assert_nothing_lost(self.senders, self.receiver, self.receiver_user, self.conversations)


def contiguous_marks(messages: dict[str, dict[str, Any]]) -> dict[str, int]:
    """Per conversation, the highest seq with every seq below it present."""
    by_conversation: dict[str, set[int]] = {}
    for message in messages.values():
        by_conversation.setdefault(message["conversation_id"], set()).add(message["seq"])
    marks = {}
    for conversation_id, seqs in by_conversation.items():
        top = 0
        while top + 1 in seqs:
            top += 1
        marks[conversation_id] = top
    return marks


class OtherDevice:
    """The receiver's second session (a laptop beside the phone): it visits (connects, takes
    what comes until the socket is quiet, confirms with delivered receipts, leaves). While it
    is away the phone confirms everything; on its next visits it must still get every
    message, from its own session's mark, in order on each connection and once per visit."""

    def __init__(self, user: User):
        answer = auth_call(
            "/auth/login", {"phone": user.phone, "password": PASSWORD, "device_name": "laptop"}
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        self.access_token, self.refresh_token = body["access_token"], body["refresh_token"]
        self.messages: dict[str, dict[str, Any]] = {}
        self.problems: list[str] = []  # order violations and repeats within one visit
        self.visits = 0

    def refresh(self) -> None:
        """A new access token of the same session (the first may have expired meanwhile)."""
        answer = auth_call("/auth/refresh", {"refresh_token": self.refresh_token})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        self.access_token, self.refresh_token = body["access_token"], body["refresh_token"]

    def visit(self, quiet: float = 3.0, longest: float = 60.0) -> int:
        """One connection; the number of messages new to this device."""
        self.visits += 1
        new = 0
        with Socket(self.access_token) as sock:
            deadline = time.monotonic() + longest
            seen, last_change = 0, time.monotonic()
            while time.monotonic() < deadline and time.monotonic() - last_change < quiet:
                time.sleep(0.2)
                frames = sock.of_type("message.new")
                if len(frames) > seen:
                    seen, last_change = len(frames), time.monotonic()
            on_connection: dict[str, int] = {}
            ids: set[str] = set()
            for frame in sock.of_type("message.new"):
                message = frame["message"]
                conversation, seq = message["conversation_id"], int(message["seq"])
                if message["id"] in ids or seq <= on_connection.get(conversation, 0):
                    self.problems.append(
                        f"visit {self.visits}: seq {seq} after {on_connection.get(conversation)}"
                    )
                ids.add(message["id"])
                on_connection[conversation] = max(seq, on_connection.get(conversation, 0))
                if message["id"] not in self.messages:
                    self.messages[message["id"]] = message
                    new += 1
            for conversation_id, top in contiguous_marks(self.messages).items():
                sock.send(
                    {
                        "type": "receipt",
                        "conversation_id": conversation_id,
                        "up_to_seq": top,
                        "status": "delivered",
                    }
                )
            time.sleep(0.5)  # let the receipts land before the socket closes
        return new

    def catch_up(self, expected: set[str], visits: int = 20) -> None:
        """Visit until every expected message is here (a visit brings at most chat's
        catch-up limit per conversation) or a visit brings nothing."""
        self.refresh()
        for _ in range(visits):
            if expected <= set(self.messages) or self.visit() == 0:
                break
