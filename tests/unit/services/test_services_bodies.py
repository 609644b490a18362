"""The one JSON body parser (services.common.bodies): every hostile body is a fast 400.

Each body goes through a small app made by services.common.app.create_base_app (the body
cap, the error handlers), whose views read it with json_object() or parse_body(), as the
services' views do. The answer must be 400 `validation_error` in the contract's shape,
never a 500, and come at once: deep nesting is refused by a linear scan before the
recursive parser could exhaust its stack, and no shape makes the parser or int() grind.
"""

from __future__ import annotations

import io
import json
import time

import pytest
from flask import jsonify
from service_helpers import user_settings

from services.common.app import MAX_BODY_BYTES, create_base_app
from services.common.bodies import (
    MAX_INTEGER,
    MAX_NESTING_DEPTH,
    MIN_INTEGER,
    RequestModel,
    json_object,
    nested_deeper_than,
    parse_body,
)

# Far above what the parser needs for any of these bodies; a CPU burn shows as seconds.
FAST_SECONDS = 0.5
OBJECT = b'{"name": "x"}'


class NamedBody(RequestModel):
    name: str
    count: int = 0


@pytest.fixture(scope="module")
def app():
    app = create_base_app("bodies-test", user_settings())
    app.config["TESTING"] = True

    @app.post("/echo")
    def echo():
        return jsonify(json_object())

    @app.post("/model")
    def model():
        return jsonify(parse_body(NamedBody).model_dump())

    return app


@pytest.fixture
def client(app):
    return app.test_client()


def post(client, body: bytes | str, content_type: str | None = "application/json", path: str = "/echo"):
    data = body.encode("utf-8") if isinstance(body, str) else body
    headers = {"Content-Type": content_type} if content_type else {}
    started = time.perf_counter()
    response = client.post(path, data=data, headers=headers)
    elapsed = time.perf_counter() - started
    assert elapsed < FAST_SECONDS, f"{elapsed:.2f} s for a {len(data)}-byte body"
    return response


def refused(response, status: int = 400, code: str = "validation_error") -> str:
    """Assert the contract's error shape with `status` and `code`; return the message."""
    assert response.status_code == status, response.get_data(as_text=True)[:300]
    assert response.is_json, response.content_type
    body = response.get_json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    assert body["error"]["code"] == code, body
    message = body["error"]["message"]
    assert isinstance(message, str) and message.strip(), body
    assert "Traceback" not in message and "Error(" not in message, message
    return message


def nested(depth: int, open_: str = "[", close: str = "]", inner: str = "1") -> str:
    return open_ * depth + inner + close * depth


def nested_objects(depth: int) -> str:
    return '{"a": ' * depth + "1" + "}" * depth


# ---- nesting ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("[" * 5000 + "]" * 5000, id="arrays-5000-deep"),
        pytest.param("{" + '"a": ' + "[" * 5000 + "]" * 5000 + "}", id="arrays-in-an-object"),
        pytest.param(nested_objects(5000), id="objects-5000-deep"),
        pytest.param('{"a": [' * 3000 + "1" + "]}" * 3000, id="objects-and-arrays"),
        pytest.param("[" * (MAX_BODY_BYTES - 1), id="arrays-unclosed-at-the-cap"),
        pytest.param('{"a": ' * (MAX_BODY_BYTES // 6), id="objects-unclosed-at-the-cap"),
        pytest.param("{" + '"a": ' + nested(MAX_NESTING_DEPTH) + "}", id="one-level-over-the-bound"),
        pytest.param('{"a": "x\\\\", "b": ' + nested(200) + "}", id="after-an-escaped-backslash"),
    ],
)
def test_deep_nesting_is_refused_before_parsing(client, body):
    assert "nested too deeply" in refused(post(client, body))


def test_nesting_up_to_the_bound_is_read(client):
    body = "{" + '"a": ' + nested(MAX_NESTING_DEPTH - 1) + "}"
    response = post(client, body)
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == json.loads(body)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param('{"a": "' + "[" * 5000 + '"}', id="brackets-in-a-string"),
        pytest.param('{"a": "\\"' + "{[" * 3000 + '"}', id="brackets-after-an-escaped-quote"),
        pytest.param('{"' + "[" * 3000 + '": 1}', id="brackets-in-a-key"),
        pytest.param('{"a": [' + "[], " * 10_000 + "[]]}", id="wide-not-deep"),
    ],
)
def test_brackets_that_do_not_nest_are_not_counted(client, body):
    response = post(client, body)
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == json.loads(body)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param('"\\"' * 20_000, id="escaped-quotes-never-closed"),
        pytest.param('["' + "\\" * 60_000, id="backslashes-never-closed"),
        pytest.param('{"a": "' + "[" * 60_000, id="one-string-never-closed"),
        pytest.param('"' * 60_000, id="quotes"),
        pytest.param("]" * 30_000 + "[" * 30_000, id="closed-before-opened"),
    ],
)
def test_unterminated_strings_and_stray_brackets_are_a_fast_400(client, body):
    refused(post(client, body))


def test_the_nesting_scan_is_linear_at_the_cap():
    worst = ["[]," * (MAX_BODY_BYTES // 3), '"\\"' * (MAX_BODY_BYTES // 3), "[" * MAX_BODY_BYTES]
    for text in worst:
        started = time.perf_counter()
        nested_deeper_than(text, MAX_NESTING_DEPTH)
        assert time.perf_counter() - started < 0.25, text[:20]


# ---- numbers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "literal",
    [
        pytest.param("1" * 5000, id="5000-digits"),
        pytest.param("-" + "9" * 4301, id="4301-digits"),
        pytest.param("9" * (MAX_BODY_BYTES - 10), id="digits-to-the-cap"),
        pytest.param(str(MAX_INTEGER + 1), id="2**63"),
        pytest.param(str(MIN_INTEGER - 1), id="-2**63-1"),
        pytest.param("1" * 25, id="25-digits"),
    ],
)
def test_integers_outside_64_bits_are_refused(client, literal):
    refused(post(client, '{"a": ' + literal + "}"))


@pytest.mark.parametrize("value", [MAX_INTEGER, MIN_INTEGER, 0, -1])
def test_integers_inside_64_bits_are_read(client, value):
    response = post(client, json.dumps({"a": value}))
    assert response.status_code == 200
    assert response.get_json() == {"a": value}


@pytest.mark.parametrize(
    "literal", ["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1" * 400 + ".0", "[NaN]"]
)
def test_non_finite_numbers_are_refused(client, literal):
    refused(post(client, '{"a": ' + literal + "}"))


def test_finite_floats_are_read(client):
    response = post(client, '{"a": 1.5, "b": 1e-999, "c": -0.25e3}')
    assert response.status_code == 200
    assert response.get_json() == {"a": 1.5, "b": 0.0, "c": -250.0}


# ---- encodings ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'{"a": "\xff"}', id="invalid-byte"),
        pytest.param(b'{"a": "\xc0\xaf"}', id="overlong-encoding"),
        pytest.param(b'{"a": "\xed\xa0\x80"}', id="encoded-surrogate"),
        pytest.param(b'{"a": "\xe2\x82"}', id="truncated-sequence"),
        pytest.param(b"\xef\xbb\xbf" + OBJECT, id="utf-8-bom"),
        pytest.param(OBJECT.decode().encode("utf-16"), id="utf-16-bom"),
        pytest.param(OBJECT.decode().encode("utf-16-le"), id="utf-16-le"),
        pytest.param(OBJECT.decode().encode("utf-16-be"), id="utf-16-be"),
        pytest.param(OBJECT.decode().encode("utf-32"), id="utf-32-bom"),
        pytest.param(OBJECT.decode().encode("utf-32-le"), id="utf-32-le"),
        pytest.param('{"a": "é"}'.encode("latin-1"), id="latin-1"),
    ],
)
def test_bodies_that_are_not_utf8_are_refused(client, body):
    refused(post(client, body))


def test_utf8_text_and_escapes_are_read(client):
    body = '{"a": "é ☃ 😀", "b": "\\u00e9\\ud83d\\ude00"}'
    response = post(client, body)
    assert response.status_code == 200
    assert response.get_json() == {"a": "é ☃ 😀", "b": "é😀"}


# ---- keys, shapes, empty bodies -------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    ['{"a": 1, "a": 2}', '{"a": 1, "a": 1}', '{"b": {"a": 1, "a": 2}}', '{"b": [{"x": 1, "x": 2}]}'],
)
def test_duplicate_keys_are_refused(client, body):
    assert "more than once" in refused(post(client, body))


@pytest.mark.parametrize(
    "body",
    ['"text"', "42", "-1.5", "null", "true", "false", "[]", "[1, 2]", '[{"a": 1}]'],
)
def test_a_body_that_is_not_an_object_is_refused(client, body):
    assert "JSON object" in refused(post(client, body))


@pytest.mark.parametrize(
    "body",
    ["", " ", "\n\t ", "{", "}", '{"a"}', "{'a': 1}", '{"a": 1,}', '{"a": 1} {"b": 2}', '{"a": 01}'],
)
def test_empty_and_malformed_bodies_are_refused(client, body):
    refused(post(client, body))


# ---- content types ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json; charset=latin-1",
        "application/json; charset=iso-8859-1",
        "application/json; charset=utf-16",
        "application/json; charset=windows-1252",
        "text/plain",
        "text/json",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/jsonx",
        None,
    ],
)
def test_other_content_types_and_charsets_are_refused(client, content_type):
    assert "Content-Type" in refused(post(client, OBJECT, content_type=content_type))


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "application/json; charset=UTF-8",
        'application/json; charset="utf-8"',
        "application/json;charset=utf8",
        "Application/JSON",
        "application/merge-patch+json",
    ],
)
def test_json_content_types_are_read(client, content_type):
    response = post(client, OBJECT, content_type=content_type)
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"name": "x"}


# ---- the body cap -----------------------------------------------------------------------------


def test_a_body_over_the_cap_is_413(client):
    body = b'{"a": "' + b"x" * MAX_BODY_BYTES + b'"}'
    refused(post(client, body), 413, "payload_too_large")


def post_streamed(client, body: bytes):
    """POST `body` as gunicorn hands over a chunked body: no Content-Length, input terminated."""
    return client.post(
        "/echo",
        input_stream=io.BytesIO(body),
        headers={"Content-Type": "application/json"},
        environ_overrides={"wsgi.input_terminated": True, "CONTENT_LENGTH": None},
    )


@pytest.mark.parametrize("extra", [1, 1024 * 1024])
def test_a_streamed_body_over_the_cap_is_413_not_read_as_cut(client, extra):
    # Valid JSON once cut at the cap: reading the cut body as whole would accept it.
    body = OBJECT + b" " * (MAX_BODY_BYTES - len(OBJECT) + extra)
    refused(post_streamed(client, body), 413, "payload_too_large")


def test_a_streamed_body_of_exactly_the_cap_is_read(client):
    body = OBJECT + b" " * (MAX_BODY_BYTES - len(OBJECT))
    response = post_streamed(client, body)
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"name": "x"}


# ---- the model on top -------------------------------------------------------------------------


def test_pydantic_errors_are_still_rendered_naming_the_field(client):
    message = refused(post(client, '{"name": 5}', path="/model"))
    assert message.startswith("name:"), message
    assert "is required" in refused(post(client, "{}", path="/model"))
    assert "is not an accepted field" in refused(post(client, '{"name": "x", "admin": true}', path="/model"))


def test_text_the_store_cannot_keep_is_refused_by_the_model(client):
    refused(post(client, '{"name": "\\ud800"}', path="/model"))
    refused(post(client, '{"name": "a\\u0000b"}', path="/model"))


def test_a_valid_body_reaches_the_model(client):
    response = post(client, '{"name": "x", "count": 3}', path="/model")
    assert response.status_code == 200
    assert response.get_json() == {"name": "x", "count": 3}


def test_the_model_sees_the_same_refusals(client):
    for body in ("[" * 5000 + "]" * 5000, '{"name": "x", "name": "y"}', '{"name": "x", "count": NaN}'):
        refused(post(client, body, path="/model"))
