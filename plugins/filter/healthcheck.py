"""Filter plugin: cheap container health checks, run by bash with its own builtins.

Docker runs a health check every `interval` inside the container. A check that boots an
interpreter or a VM costs that much every time: `python3 -c urllib...` ~90 CPU-ms, the
MongoDB stand-in's Python ping ~88, RabbitMQ's two `rabbitmq-diagnostics` (two Erlang
VMs) ~1,500, every 5 s, idle or not. These probes are one `bash` process using only
builtins (`/dev/tcp`, `printf`, `read`): a few CPU-ms, no file to ship, and bash is in
every Debian and Ubuntu image (upstream images included). What each probe proves:

- `http`: the port answers `GET <path>` with status 200 (what urllib's urlopen checked;
  a 4xx or 5xx, a refused connection or no answer within the timeout fails).
- `amqp`: the AMQP listener answers the protocol header with a method frame
  (Connection.Start). RabbitMQ opens its listeners only once the node has booted, so this
  is check_running and check_port_connectivity in one round trip.
- `mongo`: an OP_MSG `{ping: 1}` to the admin database is answered with `ok: 1` (double
  or int32), as the stand-in's Python ping checked. `ping` needs no login under --auth.
- `tcp`: the port accepts a connection.
"""

from __future__ import annotations

from typing import Any

DOCUMENTATION = r"""
name: health_probe
short_description: A Docker healthcheck test that probes a port with bash builtins
positional: _input, port, path
options:
  _input:
    description: The probe, one of http, amqp, mongo, tcp.
    type: str
    required: true
  port:
    description: The port inside the container (127.0.0.1).
    type: int
    required: true
  path:
    description: For http, the path that must answer 200.
    type: str
    default: /health
  timeout:
    description: Seconds to wait for the answer.
    type: int
    default: 2
"""

# OP_MSG {ping: 1, $db: "admin"}: a 16-byte header (length 51, request id 1, opCode 2013),
# flags 0, a kind-0 section and the 30-byte BSON document.
MONGO_PING = (
    b"\x33\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\xdd\x07\x00\x00"
    b"\x00\x00\x00\x00\x00"
    b"\x1e\x00\x00\x00\x10ping\x00\x01\x00\x00\x00\x02$db\x00\x06\x00\x00\x00admin\x00\x00"
)
KINDS = ("http", "amqp", "mongo", "tcp")


def _printf_bytes(data: bytes) -> str:
    """`data` as a printf format: every byte as an octal escape (no quoting surprises)."""
    return "".join(f"\\{byte:03o}" for byte in data)


def probe_script(kind: str, port: int, path: str = "/health", timeout: int = 2) -> str:
    if kind not in KINDS:
        raise ValueError(f"health_probe: unknown probe {kind!r} (one of {', '.join(KINDS)})")
    port = int(port)
    if not 0 < port < 65536:
        raise ValueError(f"health_probe: port {port} is not a TCP port")
    if not path.startswith("/") or any(c in path for c in " '\"\\\r\n"):
        raise ValueError(f"health_probe: path {path!r} must start with / and hold no quote or space")
    connect = f"exec 3<>/dev/tcp/127.0.0.1/{port}"
    if kind == "tcp":
        return connect
    if kind == "http":
        return (
            f"{connect} && printf 'GET {path} HTTP/1.0\\r\\nHost: 127.0.0.1\\r\\n\\r\\n' >&3"
            f" && read -r -t {timeout} status <&3 && [[ $status == HTTP/1.?' 200'* ]]"
        )
    if kind == "amqp":
        # The answer's first byte is the frame type: 1, a method frame (Connection.Start).
        return (
            f"{connect} && printf 'AMQP\\000\\000\\011\\001' >&3"
            f" && IFS= read -r -d '' -N 1 -t {timeout} frame <&3 && [[ $frame == $'\\001' ]]"
        )
    # mongo: read drops NUL bytes, so `ok: 1.0` (01 "ok" 00, then 00 x6 f0 3f) reads as
    # "\x01ok\xf0?" and `ok: 1` as int32 (10 "ok" 00 01 00 00 00) as "\x10ok\x01". The
    # reply's length is unknown here: read it byte by byte until the answer is seen.
    return (
        f"{connect} && printf '{_printf_bytes(MONGO_PING)}' >&3 && export LC_ALL=C && reply= &&"
        f" while IFS= read -r -d '' -N 1 -t {timeout} byte <&3; do reply+=$byte;"
        f" [[ $reply == *$'\\001ok\\360?'* || $reply == *$'\\020ok\\001'* ]] && exit 0;"
        f" [[ ${{#reply}} -gt 4096 ]] && exit 1; done; exit 1"
    )


def health_probe(kind: str, port: Any, path: str = "/health", timeout: int = 2) -> list[str]:
    """The healthcheck `test` list: ["CMD", "bash", "-c", <script>]."""
    return ["CMD", "bash", "-c", probe_script(kind, int(port), path, int(timeout))]


class FilterModule:
    def filters(self):
        return {"health_probe": health_probe}
