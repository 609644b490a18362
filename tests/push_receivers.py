"""Local receivers that stand in for FCM, APNs and webhook endpoints.

Real servers in threads that record every request (method, path, headers, body, protocol)
and answer what the test queued. `HttpReceiver` speaks HTTP/1.1 (http.server); `H2Receiver`
speaks HTTP/2 with the h2 library, over TLS with ALPN (a CA and certificate made here with
`cryptography`), or in clear text with prior knowledge (h2c). They listen on 127.0.0.1, or
on the address given (the end-to-end push test: the Docker network's gateway, which the
notification container reaches).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import ipaddress
import json
import socket
import ssl
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.events
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

# How long a "hang" answer holds a request at most (the client's timeout ends it sooner).
HANG_SECONDS = 5.0


@dataclass
class Received:
    method: str
    path: str
    # Lower-case names; HTTP/2 pseudo-headers (:authority...) are kept apart.
    headers: dict[str, str]
    body: bytes
    protocol: str
    peer: tuple[str, int]
    pseudo: dict[str, str] = field(default_factory=dict)
    alpn: str | None = None

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: bytes | dict[str, Any] = b""
    headers: dict[str, str] = field(default_factory=dict)
    # Hold the request without answering until the receiver stops (timeout tests).
    hang: bool = False

    def encoded(self) -> tuple[bytes, dict[str, str]]:
        if isinstance(self.body, dict):
            return json.dumps(self.body).encode(), {"content-type": "application/json", **self.headers}
        return self.body, dict(self.headers)


Responder = Callable[[Received], Reply]


class Recorder:
    """What both receivers share: the requests seen, and the replies queued for them."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self._replies: deque[Reply] = deque()
        self.responder: Responder | None = None
        self.default = Reply(200, b"{}")
        self.released = threading.Event()
        self._lock = threading.Lock()

    def queue(self, *replies: Reply) -> None:
        self._replies.extend(replies)

    def answer(self, received: Received) -> Reply:
        with self._lock:
            self.requests.append(received)
            if self.responder is not None:
                return self.responder(received)
            return self._replies.popleft() if self._replies else self.default


class HttpReceiver(Recorder):
    """An HTTP/1.1 server with keep-alive, so connection reuse shows as one client port."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        super().__init__()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                received = Received(
                    method=self.command,
                    path=self.path,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=self.rfile.read(length),
                    protocol=self.request_version,
                    peer=self.client_address,
                )
                reply = recorder.answer(received)
                if reply.hang:
                    recorder.released.wait(HANG_SECONDS)
                    self.close_connection = True
                    return
                body, headers = reply.encoded()
                self.send_response(reply.status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET = _handle  # noqa: N815 - http.server's naming

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://{host}:{self.server.server_address[1]}"
        # A short poll interval: shutdown() waits for it, once per test.
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)

    def __enter__(self) -> HttpReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


@dataclass(frozen=True)
class Tls:
    """A CA and a certificate for 127.0.0.1 signed by it, as files."""

    ca_file: str
    cert_file: str
    key_file: str


def make_tls(directory: Path) -> Tls:
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "notification test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    files = Tls(
        ca_file=str(directory / "ca.pem"),
        cert_file=str(directory / "cert.pem"),
        key_file=str(directory / "key.pem"),
    )
    Path(files.ca_file).write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    Path(files.cert_file).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    Path(files.key_file).write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return files


class H2Receiver(Recorder):
    """An HTTP/2 server: TLS with ALPN h2 when given certificates, else h2c (prior knowledge)."""

    def __init__(self, tls: Tls | None = None, host: str = "127.0.0.1") -> None:
        super().__init__()
        self._context: ssl.SSLContext | None = None
        if tls is not None:
            self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self._context.load_cert_chain(tls.cert_file, tls.key_file)
            self._context.set_alpn_protocols(["h2"])
        self._listener = socket.create_server((host, 0))
        # accept() wakes this often to see whether the receiver is stopping.
        self._listener.settimeout(0.05)
        port = self._listener.getsockname()[1]
        self.url = f"{'https' if tls else 'http'}://{host}:{port}"
        self.connections = 0
        self._sockets: list[socket.socket] = []
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> H2Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.released.set()
        self._stopping.set()
        self._thread.join(timeout=2)
        self._listener.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                raw, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            raw.settimeout(None)
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw: socket.socket) -> None:
        alpn = None
        sock = raw
        try:
            if self._context is not None:
                sock = self._context.wrap_socket(raw, server_side=True)
                alpn = sock.selected_alpn_protocol()
            self._sockets.append(sock)
            self.connections += 1
            self._speak_h2(sock, alpn)
        except (OSError, ssl.SSLError):
            pass
        finally:
            sock.close()

    def _speak_h2(self, sock: socket.socket, alpn: str | None) -> None:
        conn = h2.connection.H2Connection(
            config=h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        )
        conn.initiate_connection()
        sock.sendall(conn.data_to_send())
        peer = sock.getpeername()
        streams: dict[int, tuple[dict[str, str], bytearray]] = {}
        while True:
            data = sock.recv(65_536)
            if not data:
                return
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.RequestReceived):
                    streams[event.stream_id] = ({str(k): str(v) for k, v in event.headers}, bytearray())
                elif isinstance(event, h2.events.DataReceived):
                    streams[event.stream_id][1].extend(event.data)
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.StreamEnded):
                    headers, body = streams.pop(event.stream_id)
                    received = Received(
                        method=headers[":method"],
                        path=headers[":path"],
                        headers={k: v for k, v in headers.items() if not k.startswith(":")},
                        pseudo={k: v for k, v in headers.items() if k.startswith(":")},
                        body=bytes(body),
                        protocol="HTTP/2",
                        peer=peer,
                        alpn=alpn,
                    )
                    self._respond(conn, event.stream_id, received)
                elif isinstance(event, h2.events.ConnectionTerminated):
                    return
            out = conn.data_to_send()
            if out:
                sock.sendall(out)

    def _respond(self, conn: h2.connection.H2Connection, stream_id: int, received: Received) -> None:
        reply = self.answer(received)
        if reply.hang:
            return  # never answered: the client's timeout ends the stream
        content, extra = reply.encoded()
        conn.send_headers(
            stream_id,
            [(":status", str(reply.status)), ("content-length", str(len(content))), *extra.items()],
            end_stream=not content,
        )
        if content:
            conn.send_data(stream_id, content, end_stream=True)


@functools.cache
def apns_key_pem() -> str:
    """A .p8-like key: PKCS#8 PEM of a P-256 key."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@functools.cache
def rsa_key_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65_537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def service_account(token_uri: str, project_id: str = "whatsapp-test") -> str:
    """A Google service-account key file's JSON, with a key made here."""
    return json.dumps(
        {
            "type": "service_account",
            "project_id": project_id,
            "private_key_id": "key-1",
            "private_key": rsa_key_pem(),
            "client_email": "push@whatsapp-test.iam.gserviceaccount.com",
            "client_id": "1",
            "token_uri": token_uri,
        }
    )
