"""The worker's message reader and token check against arbitrary bytes (hypothesis): every input
is answered with well-formed replies or ends the session; nothing raises out of the server loop
or hangs, and no first line without the token is admitted."""

from __future__ import annotations

import io
import json
import struct

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nfhm.methods.state import WorkerState
from nfhm.rpc import wire
from nfhm.rpc.registry import Registry
from nfhm.rpc.lobby import answer
from nfhm.rpc.serve import Disconnected, read_message, serve_stream

MAX_FRAME = 1 << 16
FUZZ = settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
REGISTRY = Registry()


def frame_bytes(table: pa.Table) -> bytes:
    out = io.BytesIO()
    wire.write_frame(out, table)
    return out.getvalue()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=10,
)
# Only methods that are quick whatever their params: a fuzzer must not walk the disk.
headers = st.fixed_dictionaries(
    {},
    optional={
        "id": json_values,
        "method": st.sampled_from(["echo", "no.such.method"]) | st.text(max_size=8),
        "params": json_values,
        "tables": st.lists(st.text(max_size=3), max_size=2) | json_values,
        "auth": st.text(max_size=5),
    },
)
frames = st.one_of(
    st.just(frame_bytes(pa.table({"x": [1, 2, 3]}))),
    st.binary(max_size=40).map(lambda b: struct.pack("<Q", len(b)) + b),
    st.integers(0, 2**64 - 1).map(lambda n: struct.pack("<Q", n)),
    st.binary(max_size=12),
)
lines = st.one_of(
    headers.map(lambda h: json.dumps(h).encode() + b"\n"),
    st.binary(max_size=60).map(lambda b: b + b"\n"),
    st.integers(1, 5000).map(lambda n: b"[" * n + b"\n"),
    st.sampled_from(
        [
            b'{"$int": "12x"}\n',
            b'{"$float": null}\n',
            b'{"$int": "' + b"9" * 5000 + b'"}\n',
            b"\xff\xfe\n",
            b'{"auth": "\\ud800"}\n',
        ]
    ),
)
streams = st.lists(st.one_of(lines, frames), max_size=6).map(b"".join) | st.binary(max_size=300)


def replies(data: bytes) -> list[dict]:
    """Every message in `data`; each must be a well-formed message."""
    inp, out = io.BytesIO(data), []
    while True:
        try:
            header, _ = read_message(inp, max_frame=1 << 30)
        except Disconnected:
            return out
        out.append(header)


@FUZZ
@given(streams)
def test_serve_stream_answers_or_returns_on_any_bytes(data):
    out = io.BytesIO()
    serve_stream(WorkerState(), io.BytesIO(data), out, MAX_FRAME, REGISTRY.dispatch)
    for reply in replies(out.getvalue()):
        assert isinstance(reply["ok"], bool)
        if not reply["ok"]:
            assert isinstance(reply["error"]["message"], str)


@FUZZ
@given(streams)
def test_authentication_refuses_any_first_line_without_the_token(data):
    first_line = data.partition(b"\n")[0] + b"\n"
    [reply] = replies(wire.control_line(answer(first_line, b"the-token"), []))
    assert reply["ok"] is False and "authentication failed" in reply["error"]["message"]


def test_authentication_admits_the_token_alone():
    assert answer(b'{"id": 0, "auth": "the-token"}\n', b"the-token") == {"id": 0, "ok": True}
    listed = answer(b'{"id": 0, "auth": "the-token", "tables": ["t"]}\n', b"the-token")
    assert listed["ok"] is False
    assert answer(b'{"auth": "\\ud800"}\n', b"the-token")["ok"] is False  # a lone surrogate cannot be UTF-8


@FUZZ
@given(st.binary(max_size=200) | st.text(max_size=200) | st.integers(1, 5000).map(lambda n: "[" * n + "]" * n))
def test_loads_gives_a_value_or_a_protocol_error(text):
    try:
        wire.loads(text)
    except wire.ProtocolError:
        pass


def test_frames_within_the_limit_one_by_one_but_over_it_together_are_refused():
    frame = frame_bytes(pa.table({"x": list(range(100))}))
    size = len(frame) - wire.FRAME_HEADER.size
    stream = io.BytesIO(json.dumps({"id": 1, "method": "echo", "tables": ["a", "b"]}).encode() + b"\n" + frame + frame)
    limit = 2 * size - 1
    with pytest.raises(wire.ProtocolError, match=rf"^frames of {2 * size} bytes in one message exceed the limit of {limit} bytes"):
        read_message(stream, max_frame=limit)
    _, tables = read_message(io.BytesIO(stream.getvalue()), max_frame=2 * size)
    assert list(tables) == ["a", "b"]
