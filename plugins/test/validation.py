"""Jinja tests for the roles' validate.yml: one definition of what a value must look like.

chat_memory_limit is docker_size('256m')    a Docker size (1..n followed by k, m or g), at least 256m
chat_port is tcp_port(chat_replicas, 100)   a port with room for a replica every 100 ports above it
chat_replicas is whole_number(1, 32)        a whole number (not a bool, not 1.5), within bounds
whatsapp_backend_subnet is ipv4_cidr        an IPv4 network such as 172.30.0.0/24
"""

from __future__ import annotations

import ipaddress
import re

_DOCKER_SIZE = re.compile(r"[1-9][0-9]*[kKmMgG]")
_UNITS = {"k": 1024, "m": 1024**2, "g": 1024**3}
_DIGITS = re.compile(r"[0-9]+")


def docker_size_bytes(value: object) -> int | None:
    """The bytes a Docker size such as '512m' names, or None when it is not one."""
    if not isinstance(value, str) or not _DOCKER_SIZE.fullmatch(value):
        return None
    return int(value[:-1]) * _UNITS[value[-1].lower()]


def docker_size(value: object, at_least: str | None = None) -> bool:
    """A Docker size (a unit is required: '512' would be bytes), at least `at_least` when given."""
    size = docker_size_bytes(value)
    if size is None:
        return False
    if at_least is None:
        return True
    floor = docker_size_bytes(at_least)
    if floor is None:
        raise ValueError(f"docker_size: {at_least!r} is not a Docker size")
    return size >= floor


def _whole(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        return int(value.strip())
    return None


def whole_number(value: object, low: int | None = None, high: int | None = None) -> bool:
    """A whole number (0, 1, 2... as an int or its digits), within low..high (both included) when given."""
    number = _whole(value)
    if number is None:
        return False
    return (low is None or number >= int(low)) and (high is None or number <= int(high))


def tcp_port(value: object, count: object = 1, step: object = 1) -> bool:
    """A TCP port 1..65535 with room for `count` ports `step` apart from it (replica N
    publishes on port + (N - 1) x step)."""
    number = _whole(value)
    ports = _whole(count)
    apart = _whole(step)
    if number is None or ports is None or not apart:
        return False
    # No replica (count 0) still needs the port itself to be one.
    return number >= 1 and number + (max(ports, 1) - 1) * apart <= 65535


def ipv4_cidr(value: object) -> bool:
    """An IPv4 network in CIDR notation with its host bits clear, such as 172.30.0.0/24."""
    if not isinstance(value, str) or "/" not in value:
        return False
    try:
        ipaddress.IPv4Network(value, strict=True)
    except ValueError:
        return False
    return True


class TestModule:
    def tests(self):
        return {
            "docker_size": docker_size,
            "whole_number": whole_number,
            "tcp_port": tcp_port,
            "ipv4_cidr": ipv4_cidr,
        }
