"""The Jinja tests validate.yml uses (plugins/test/validation.py), value by value."""

from __future__ import annotations

import importlib.util

import pytest
from conftest import ROOT

spec = importlib.util.spec_from_file_location("validation_tests", ROOT / "plugins/test/validation.py")
validation = importlib.util.module_from_spec(spec)
spec.loader.exec_module(validation)


@pytest.mark.parametrize(
    ("value", "at_least", "ok"),
    [
        ("512m", None, True),
        ("1g", None, True),
        ("64K", None, True),
        ("512", None, False),  # bytes: Docker would take it, a limit this small is a typo
        ("0m", None, False),
        ("1.5g", None, False),
        ("lots", None, False),
        (512, None, False),
        ("256m", "256m", True),
        ("255m", "256m", False),
        ("1g", "768m", True),
        ("262144k", "256m", True),
    ],
)
def test_docker_size(value, at_least, ok):
    assert validation.docker_size(value, at_least) is ok


def test_docker_size_refuses_a_floor_that_is_not_a_size():
    with pytest.raises(ValueError, match="not a Docker size"):
        validation.docker_size("1g", "a lot")


@pytest.mark.parametrize(
    ("value", "count", "ok"),
    [
        (80, 1, True),
        ("8082", 1, True),
        (65535, 1, True),
        (65536, 1, False),
        (0, 1, False),
        ("http", 1, False),
        ("80.5", 1, False),
        (True, 1, False),
        (65534, 2, True),  # two replicas: 65534 and 65535
        (65535, 2, False),
        (8082, 0, True),
        (65536, 0, False),
        (8082, "many", False),
        (8082, "3", True),
    ],
)
def test_tcp_port(value, count, ok):
    assert validation.tcp_port(value, count) is ok


@pytest.mark.parametrize(
    ("value", "count", "step", "ok"),
    [
        (8082, 32, 100, True),  # the last replica on 11182
        (62100, 36, 100, False),  # the 36th replica would be on 65600
        (65400, 2, 100, True),
        (65436, 2, 100, False),
        (8082, 2, 0, False),
        (8082, 2, "x", False),
    ],
)
def test_tcp_port_with_a_step_between_replicas(value, count, step, ok):
    assert validation.tcp_port(value, count, step) is ok


@pytest.mark.parametrize(
    ("value", "low", "high", "ok"),
    [
        (3, 1, 32, True),
        ("32", 1, 32, True),
        (33, 1, 32, False),
        (0, 1, 32, False),
        ("two", 1, 32, False),
        (False, None, None, False),
        (-1, None, None, False),
        ("7", None, None, True),
        (2.0, None, None, False),
    ],
)
def test_whole_number(value, low, high, ok):
    assert validation.whole_number(value, low, high) is ok


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("172.31.250.0/24", True),
        ("10.0.0.0/8", True),
        ("10.0.0.0", False),
        ("10.0.0.1/24", False),  # host bits set: Docker refuses such a subnet
        ("300.0.0.0/24", False),
        ("fd00::/64", False),
        (None, False),
    ],
)
def test_ipv4_cidr(value, ok):
    assert validation.ipv4_cidr(value) is ok


def test_ansible_finds_every_test():
    assert set(validation.TestModule().tests()) == {"docker_size", "tcp_port", "whole_number", "ipv4_cidr"}
