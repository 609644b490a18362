"""chat and message_processor without containers: settings, frames, the socket's ordering
rules (catch-up first, live frames held and de-duplicated), payload parsing, and the 401
before a WebSocket upgrade and the REST validation, which never reach a store."""

from __future__ import annotations

import json
import queue
import socket
import uuid
from datetime import UTC, datetime

import pytest
from service_helpers import UNREACHABLE_DSN, UNREACHABLE_REDIS, keypair
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request, TextMessage

from services.chat import create_app
from services.chat.hub import Connection, send_texts
from services.chat.messages import message_json
from services.chat.models import SendFrame
from services.chat.settings import ChatSettings
from services.chat.store import direct_key
from services.chat.ws import TokenBucket
from services.common.auth import AccessTokenSigner
from services.common.config import SettingsError
from services.message_processor.process import PoisonMessage, parse_payload
from services.message_processor.settings import ProcessorSettings


def chat_env(**overrides: str) -> dict[str, str]:
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


@pytest.fixture
def client():
    app = create_app(ChatSettings.from_env(chat_env()), background=False)
    app.config["TESTING"] = True
    return app.test_client()


def token(user_id: str | None = None) -> str:
    signer = AccessTokenSigner(keypair()[0], issuer="whatsapp-user", audience="whatsapp", ttl_seconds=60)
    return signer.issue(user_id or str(uuid.uuid4()))


# ---- settings -----------------------------------------------------------------------------


def test_missing_and_malformed_urls_are_named():
    with pytest.raises(SettingsError) as missing:
        ChatSettings.from_env({k: v for k, v in chat_env().items() if k != "WHATSAPP_MONGODB_URL"})
    assert "WHATSAPP_MONGODB_URL is missing" in str(missing.value)
    with pytest.raises(SettingsError) as malformed:
        ProcessorSettings.from_env(chat_env(WHATSAPP_RABBITMQ_URL="http://broker"))
    assert "WHATSAPP_RABBITMQ_URL is malformed" in str(malformed.value)
    with pytest.raises(SettingsError) as batch:
        ProcessorSettings.from_env(chat_env(WHATSAPP_BATCH_SIZE="0"))
    assert "WHATSAPP_BATCH_SIZE" in str(batch.value)


# ---- frames and shapes ----------------------------------------------------------------------


def test_send_frame_limits():
    conversation = str(uuid.uuid4())
    ok = SendFrame.model_validate(
        {"type": "message.send", "client_msg_id": "c1", "conversation_id": conversation, "body": "x" * 4096}
    )
    assert ok.body == "x" * 4096
    for bad in (
        {"body": "x" * 4097},
        {"body": ""},
        {"body": "   "},
        {"conversation_id": "not-a-uuid"},
        {"ttl_seconds": 0},
        {"ttl_seconds": "10"},
        {"extra": 1},
    ):
        frame = {
            "type": "message.send",
            "client_msg_id": "c1",
            "conversation_id": conversation,
            "body": "hi",
        } | bad
        with pytest.raises(ValueError):
            SendFrame.model_validate(frame)


def test_an_encrypted_body_is_opaque_up_to_65536_characters():
    conversation = str(uuid.uuid4())
    base = {"type": "message.send", "client_msg_id": "c1", "conversation_id": conversation}
    for body in ("x" * 65_536, "   ", "\u00e9" * 5000):
        assert SendFrame.model_validate(base | {"body": body, "encrypted": True}).body == body
    for bad in (
        {"body": "x" * 65_537, "encrypted": True},
        {"body": "", "encrypted": True},
        {"encrypted": "yes"},
    ):
        with pytest.raises(ValueError):
            SendFrame.model_validate(base | {"body": "hi"} | bad)
    # Without the flag the plain rules stand: 4096 characters, not blank.
    with pytest.raises(ValueError, match="at most 4096"):
        SendFrame.model_validate(base | {"body": "x" * 4097})


def test_direct_key_is_the_same_for_both_orders():
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    assert direct_key(a, b) == direct_key(b, a)
    assert direct_key(a, b).count(":") == 1


def test_message_json_from_a_stored_document_hides_nothing_and_formats_times():
    doc = {
        "_id": "m1",
        "conversation_id": uuid.uuid4(),
        "seq": 3,
        "sender_id": uuid.uuid4(),
        "client_msg_id": "c",
        "body": "hi",
        "created_at": datetime(2026, 11, 25, 10, 0, tzinfo=UTC),
        "expires_at": None,
        "deleted": False,
    }
    message = message_json(doc)
    assert message["id"] == "m1" and message["seq"] == 3 and message["status"] == "sent"
    assert message["created_at"] == "2026-11-25T10:00:00.000Z"
    assert "expires_at" not in message


def test_token_bucket_allows_a_burst_then_refuses():
    bucket = TokenBucket(5)
    allowed = sum(bucket.take() for _ in range(50))
    assert 10 <= allowed <= 11


# ---- the socket's ordering rules ------------------------------------------------------------


class RecordingSocket:
    def __init__(self):
        self.sent: list[dict] = []

    def send(self, text: str) -> None:
        self.sent.append(json.loads(text))

    def close(self, reason=None, message=None) -> None:
        pass


class QuietCounter:
    def labels(self, *_):
        return self

    def inc(self, *_):
        pass


class QuietHub:
    """What a Connection asks of its hub: metrics, and where its open gaps are noted."""

    def __init__(self):
        self.gaps: set[str] = set()

    class ctx:  # noqa: N801 - a namespace standing in for ChatContext's metrics
        class metrics:  # noqa: N801
            frames_sent = QuietCounter()
            order_gaps_forced = QuietCounter()

    def note_gap(self, conn, conversation_id):
        self.gaps.add(conversation_id)

    def gap_closed(self, conn, conversation_id):
        self.gaps.discard(conversation_id)


def new_frame(seq: int, message_id: str | None = None) -> dict:
    return {
        "type": "message.new",
        "message": {"id": message_id or f"m{seq}", "conversation_id": "c", "seq": seq},
    }


def drain(conn: Connection) -> list[dict]:
    frames = []
    while True:
        try:
            frame = conn.queue.get_nowait()
        except queue.Empty:
            return frames
        frames.append(frame)


def test_live_frames_wait_until_catch_up_is_sent_and_duplicates_are_dropped():
    conn = Connection(RecordingSocket(), "u", QuietHub(), queue_size=100)
    conn.begin_catch_up()
    conn.deliver(new_frame(3))  # live, arrives while catching up
    conn.deliver({"type": "typing", "conversation_id": "c", "user_id": "v", "state": "start"})
    conn.send_catch_up(new_frame(1))
    conn.send_catch_up(new_frame(2))
    conn.send_catch_up(new_frame(3))
    assert [f["message"]["seq"] for f in drain(conn)] == [1, 2, 3]
    conn.end_catch_up()
    held = drain(conn)
    assert [f["type"] for f in held] == ["typing"]  # message 3 was already sent by catch-up
    conn.deliver(new_frame(4))
    assert [f["message"]["seq"] for f in drain(conn)] == [4]
    assert conn.last_seq == {"c": 4}
    conn.deliver(new_frame(2))  # a late duplicate of a caught-up message
    assert drain(conn) == []


def seqs(frames: list[dict]) -> list[int]:
    return [f["message"]["seq"] for f in frames if f["type"] == "message.new"]


def live_connection() -> tuple[Connection, QuietHub]:
    hub = QuietHub()
    conn = Connection(RecordingSocket(), "u", hub, queue_size=100)
    conn.end_catch_up({"c": 0})
    return conn, hub


def test_a_frame_whose_predecessor_was_not_sent_waits_for_it():
    conn, hub = live_connection()
    conn.deliver(new_frame(1))
    conn.deliver(new_frame(3))
    conn.deliver(new_frame(4))
    assert seqs(drain(conn)) == [1]
    assert hub.gaps == {"c"} and conn.gap("c") == (2, 3)
    conn.deliver(new_frame(2))
    assert seqs(drain(conn)) == [2, 3, 4]
    assert hub.gaps == set() and conn.gap("c") is None
    conn.deliver(new_frame(3))  # redelivered: sent once only
    conn.deliver(new_frame(5))
    assert seqs(drain(conn)) == [5]


def stored_row(seq: int, **fields) -> dict:
    row = {
        "id": f"m{seq}",
        "conversation_id": "c",
        "seq": seq,
        "sender_id": "s",
        "client_msg_id": f"k{seq}",
        "body": f"body {seq}",
        "created_at": datetime(2026, 12, 2, tzinfo=UTC),
        "expires_at": None,
        "deleted_at": None,
    }
    row.update(fields)
    return row


def test_a_gap_is_filled_from_the_recorded_rows_skipping_deleted_and_expired_ones():
    conn, hub = live_connection()
    conn.deliver(new_frame(1))
    conn.deliver(new_frame(6))
    drain(conn)
    rows = [
        stored_row(2),
        stored_row(3, body=None, deleted_at=datetime(2026, 12, 2, tzinfo=UTC)),
        stored_row(4, expires_at=datetime(2020, 1, 1, tzinfo=UTC)),
        stored_row(5),
    ]
    conn.fill_gap("c", rows, force=False)
    frames = drain(conn)
    assert seqs(frames) == [2, 5, 6]
    assert frames[0]["message"]["body"] == "body 2"
    assert hub.gaps == set()
    conn.deliver(new_frame(5))  # the live copy of a message the gap fill sent
    assert drain(conn) == []


def test_a_gap_not_yet_recorded_keeps_waiting_and_a_forced_one_still_gets_the_late_message():
    conn, hub = live_connection()
    conn.deliver(new_frame(1))
    conn.deliver(new_frame(4))
    drain(conn)
    conn.fill_gap("c", [stored_row(2)], force=False)  # 3 is not committed yet
    assert seqs(drain(conn)) == [2]
    assert conn.gap("c") == (3, 4)
    conn.fill_gap("c", [], force=True)  # waited order_gap_max_ms: what follows goes out
    assert seqs(drain(conn)) == [4]
    conn.deliver(new_frame(3))  # late, but never lost
    conn.deliver(new_frame(3))
    assert seqs(drain(conn)) == [3]
    assert hub.gaps == set()


def test_catch_up_sets_where_live_frames_continue():
    conn = Connection(RecordingSocket(), "u", QuietHub(), queue_size=100)
    conn.begin_catch_up()
    conn.deliver(new_frame(12))  # live, during catch-up; 11 is still on its way
    conn.send_catch_up(new_frame(10))
    conn.end_catch_up({"c": 10, "d": 7})
    assert seqs(drain(conn)) == [10]
    assert conn.gap("c") == (11, 12)
    conn.deliver(new_frame(11))
    assert seqs(drain(conn)) == [11, 12]
    assert conn.last_seq == {"c": 12, "d": 7}


def test_a_socket_too_slow_for_its_queue_is_closed():
    conn = Connection(RecordingSocket(), "u", QuietHub(), queue_size=10)
    conn.end_catch_up()
    for seq in range(1, 20):
        conn.deliver(new_frame(seq))
    assert conn.closed.is_set()


def test_writer_sends_in_order_and_stops_on_close():
    ws = RecordingSocket()
    conn = Connection(ws, "u", QuietHub(), queue_size=100)
    conn.end_catch_up()
    for seq in (1, 2, 3):
        conn.deliver(new_frame(seq))
    conn.close()
    conn.write_loop()
    assert [f["message"]["seq"] for f in ws.sent] == [1, 2, 3]


# ---- message_processor payloads -------------------------------------------------------------


def test_processor_refuses_poison_and_accepts_chat_payloads():
    good = {
        "message": {
            "id": "m1",
            "conversation_id": str(uuid.uuid4()),
            "seq": 1,
            "sender_id": str(uuid.uuid4()),
            "client_msg_id": "c",
            "body": "hi",
            "created_at": "2026-11-25T10:00:00.000Z",
            "status": "sent",
        },
        "request_id": "r1",
    }
    assert parse_payload(json.dumps(good)).message.seq == 1
    for bad in (
        b"not json",
        b"[]",
        json.dumps({"message": {"id": "m"}}),
        json.dumps(good).replace('"seq":', '"sq":'),
    ):
        with pytest.raises(PoisonMessage):
            parse_payload(bad)


# ---- HTTP without stores --------------------------------------------------------------------


def test_websocket_upgrade_needs_a_valid_token(client):
    upgrade = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": "x3JJHMbDL1EzLkh9GBhXDw==",
        "Sec-WebSocket-Version": "13",
    }
    for query in ("", "?access_token=garbage"):
        answer = client.get("/ws" + query, headers=upgrade)
        assert answer.status_code == 401
        assert answer.get_json()["error"]["code"] == "unauthorized"


def test_rest_validation_answers_400_before_any_store(client):
    auth = {"Authorization": f"Bearer {token()}"}
    cases = [
        ("/api/v1/conversations", {"type": "channel"}),
        ("/api/v1/conversations", {"type": "direct", "member_id": 5}),
        ("/api/v1/conversations", {"type": "group", "title": "", "member_ids": []}),
        (f"/api/v1/conversations/{uuid.uuid4()}/messages", {"client_msg_id": "c", "body": "x" * 4097}),
        (f"/api/v1/conversations/{uuid.uuid4()}/read", {"up_to_seq": -1}),
    ]
    for path, body in cases:
        answer = client.post(path, json=body, headers=auth)
        assert answer.status_code == 400, (path, body, answer.get_json())
        assert answer.get_json()["error"]["code"] == "validation_error"
    answer = client.get(f"/api/v1/conversations/{uuid.uuid4()}/messages?limit=101", headers=auth)
    assert answer.status_code == 400
    answer = client.get("/api/v1/conversations", headers={})
    assert answer.status_code == 401


def test_a_direct_conversation_with_oneself_is_refused(client):
    me = str(uuid.uuid4())
    answer = client.post(
        "/api/v1/conversations",
        json={"type": "direct", "member_id": me},
        headers={"Authorization": f"Bearer {token(me)}"},
    )
    assert answer.status_code == 400


def test_a_backend_down_is_503_not_500(client):
    answer = client.get("/api/v1/conversations", headers={"Authorization": f"Bearer {token()}"})
    assert answer.status_code == 503
    assert answer.get_json()["error"]["code"] == "unavailable"


def test_a_send_with_the_database_down_is_503_through_the_acceptor(client):
    answer = client.post(
        f"/api/v1/conversations/{uuid.uuid4()}/messages",
        json={"client_msg_id": "k1", "body": "hello"},
        headers={"Authorization": f"Bearer {token()}"},
    )
    assert answer.status_code == 503, answer.get_json()
    assert answer.get_json()["error"]["code"] == "unavailable"


def test_pools_and_queues_are_in_metrics_once_used(client):
    before = client.get("/metrics").get_data(as_text=True)
    assert 'whatsapp_amqp_pool_limit{pool="messages"} 16.0' in before
    assert 'pool="chat"' not in before  # the PostgreSQL pool is opened lazily, not by a scrape
    assert "whatsapp_accept_queue_depth 0.0" in before
    assert "whatsapp_ws_send_queue_frames 0.0" in before
    client.get("/api/v1/conversations", headers={"Authorization": f"Bearer {token()}"})  # 503: no database
    after = client.get("/metrics").get_data(as_text=True)
    for series in (
        "whatsapp_db_pool_connections",
        "whatsapp_db_pool_requests_total",
        "whatsapp_db_pool_timeouts_total",
    ):
        assert f'{series}{{pool="chat"}}' in after, series
    timeouts = next(
        line for line in after.splitlines() if line.startswith('whatsapp_db_pool_timeouts_total{pool="chat"}')
    )
    assert float(timeouts.split()[-1]) >= 1


# ---- frames written together ----------------------------------------------------------------


def test_frames_queued_together_leave_in_one_write_and_parse_in_order():
    """send_texts frames each text with the socket's own wsproto connection and writes them
    at once; a real wsproto client on the other end of a socket pair reads them in order."""
    client, server = WSConnection(ConnectionType.CLIENT), WSConnection(ConnectionType.SERVER)
    server.receive_data(client.send(Request(host="chat", target="/ws")))
    assert any(isinstance(e, Request) for e in server.events())
    client.receive_data(server.send(AcceptConnection()))
    assert any(isinstance(e, AcceptConnection) for e in client.events())

    ours, theirs = socket.socketpair()
    writes: list[bytes] = []

    class CountingSocket:
        def sendall(self, data: bytes) -> None:
            writes.append(data)
            ours.sendall(data)

    class ServerSocket:  # what simple_websocket's Server offers
        ws, sock, connected = server, CountingSocket(), True

    texts = [json.dumps({"type": "message.new", "n": n}) for n in range(50)]
    send_texts(ServerSocket(), texts)
    assert len(writes) == 1
    theirs.settimeout(2)
    received: list[str] = []
    while len(received) < len(texts):
        client.receive_data(theirs.recv(65536))
        received += [e.data for e in client.events() if isinstance(e, TextMessage)]
    assert received == texts

    class Closed(ServerSocket):
        connected, close_reason, close_message = False, 1000, ""

    with pytest.raises(Exception, match="Connection closed"):
        send_texts(Closed(), ["x"])
    ours.close(), theirs.close()


def test_a_socket_without_a_wsproto_connection_gets_frame_by_frame_sends():
    recording = RecordingSocket()
    send_texts(recording, ['{"a":1}', '{"b":2}'])
    assert recording.sent == [{"a": 1}, {"b": 2}]
